//! The routewatch gRPC API and what both sides of it share.
//!
//! # Layout
//!
//! - [`v1`]: the types generated from `routewatch/v1/routewatch.proto`.
//! - [`batch`]: `SubscribeResponse`, whose events can be pre-encoded.
//! - [`key`]: an object's key as text and as the 16 bytes a change may
//!   carry instead.
//! - [`names`]: iproute2's built-in spellings of route types, protocols,
//!   scopes, tables, flags and metrics, so that agent and client print alike.
//! - [`host_names`]: [`Names`], those names as a host's iproute2 files
//!   have them, read by [`rt_names`] exactly as `ip` reads them.
//! - [`digest`]: anti-entropy digests: an object's hash in the form both
//!   sides have, and the per-(netns, kind, table) counts and sums that
//!   the agent sends and a consumer compares its picture with.
//! - [`filter`]: subscription filters compiled into predicates, one file
//!   per kind of field; the agent applies them, the client checks them
//!   before it connects.
//! - `fuzzing` (feature `fuzzing`): mutators, case counts and bounds shared
//!   by the crates' fuzzing harnesses.

pub mod batch;
pub mod digest;
pub mod filter;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod host_names;
pub mod key;
pub mod names;
pub mod rt_names;

pub use host_names::{Names, NamesError};

/// The Subscribe response header that carries the agent's host name.
pub const HOSTNAME_HEADER: &str = "routewatch-hostname";

/// The Subscribe response header that carries the agent's identity:
/// `AGENT_ID/NETNS` (see `AgentInfo.agent_id` and `agent_netns`).
pub const IDENTITY_HEADER: &str = "routewatch-agent-id";

/// Generated from `routewatch/v1/routewatch.proto`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("routewatch.v1");
    pub use crate::batch::SubscribeResponse;

    /// The encoded file descriptor set, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("routewatch_descriptor");
}
