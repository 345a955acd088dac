//! routewatch-agent: keeps this host's routing state and streams every
//! change of it to subscribers over gRPC.
//!
//! # Layout
//!
//! The data path is one straight line:
//! `socket` → `decode` → `state` → `journal` → `session` → `server`.
//!
//! - [`socket`]: the rtnetlink socket (groups, receive buffer, dump requests).
//! - [`decode`]: netlink bytes into routes, nexthop objects and link facts.
//! - [`state`]: the state table; the only place that knows kernel semantics.
//! - [`source`]: the loop that feeds the table, re-dumps and reconciles.
//! - [`journal`]: sequence numbers and the bounded ring of recent changes.
//! - [`session`]: one subscriber's cursor and batcher.
//! - [`persist`]: `--state-dir`, so a restarted agent continues its stream.
//! - [`pipeline`]: source + journal for one namespace, in process or served.
//! - [`server`]: the gRPC service and [`run`].
//! - [`request`]: checks a subscription request before its session starts.
//! - [`admission`]: the `--max-subscribers` limit.
//! - [`tls`]: TLS on the accept loop, certificate rotation, `--allow-client`.
//! - [`config`], [`error`].

pub mod admission;
pub mod config;
pub mod decode;
pub mod error;
pub mod journal;
pub mod persist;
pub mod pipeline;
pub mod request;
pub mod server;
pub mod session;
pub mod socket;
pub mod source;
pub mod state;
pub mod tls;

pub use config::{AgentConfig, PipelineConfig};
pub use error::AgentError;
pub use pipeline::Pipeline;
pub use server::run;
