//! routewatch-agent: keeps this host's routing state and streams every
//! change of it to subscribers over gRPC.
//!
//! # Layout
//!
//! The data path is one straight line:
//! `socket` → `decode` → `state` → `journal` → `session` → `server`.
//!
//! - [`socket`]: the rtnetlink socket (groups, receive buffer, dump requests).
//! - [`netns`]: named network namespaces and entering them; [`dirwatch`]
//!   notices names as they come and go.
//! - [`decode`]: netlink bytes into routes, nexthop objects and link facts.
//! - [`state`]: the state table; the only place that knows kernel semantics.
//! - [`source`]: the loop that feeds the table, re-dumps and reconciles.
//! - [`attribution`]: who asked for a change: a notification's netlink
//!   port id, its socket, the process holding it, that process's container;
//!   [`cause`] carries it (and a reconcile's reason) beside each change.
//! - [`unknown`]: attributes passed on undecoded, counted and logged once.
//! - [`journal`]: sequence numbers and the bounded ring of recent changes,
//!   one stream for every namespace watched; [`digest`]: the counts and
//!   hash sums of what it holds, kept on every change it numbers.
//! - [`labelled`]: the host's iproute2 names beside the numbers, written
//!   as a change is encoded (the table holds numbers only).
//! - [`session`]: one subscriber's cursor and batcher.
//! - [`interest`]: what a filtered subscriber receives of the journal.
//! - [`subscribers`]: the open sessions, for `GetInfo` ([`info`]) and the
//!   metrics; [`identity`]: who the agent is (machine id and namespace),
//!   whatever its address.
//! - [`persist`]: `--state-dir`, so a restarted agent continues its stream;
//!   [`state_file`] frames and checks its files.
//! - [`trim`]: memory a burst or a dump freed, given back when it is over.
//! - [`namespaces`]: one source per namespace watched (`--netns`);
//!   [`unwatched`] finds the namespaces in use that `--netns all` cannot see.
//! - [`pipeline`]: the sources + journal, in process or served.
//! - [`server`]: the gRPC service and [`run`].
//! - [`metrics`]: every metric's name and help, read at scrape time;
//!   [`ops`] serves them with the health checks (`--ops-listen`).
//! - [`request`]: checks a subscription request before its session starts;
//!   [`replay`]: where a subscription that replays the journal starts.
//! - [`silence`]: how long a connection's peer has sent nothing (a stalled
//!   subscriber's disconnection is said and counted by [`wire`]).
//! - [`admission`]: the `--max-subscribers` limit.
//! - [`tls`]: TLS on the accept loop, certificate rotation, `--allow-client`.
//! - [`ratelog`]: warnings that come in floods, logged with counts.
//! - [`config`], [`error`]; [`cli`]: the command line (also for the
//!   manual page `routewatch man` writes).
//! - `fuzz` (tests only): fuzzing harnesses of the decoders of outside
//!   input.

pub mod admission;
pub mod attribution;
pub mod cause;
pub mod cli;
pub mod config;
pub mod decode;
pub mod digest;
pub mod dirwatch;
pub mod error;
pub mod identity;
pub mod info;
pub mod interest;
pub mod journal;
pub mod labelled;
pub mod metrics;
pub mod namespaces;
pub mod netns;
pub mod ops;
pub mod persist;
pub mod pipeline;
pub mod process;
pub mod ratelog;
pub mod replay;
pub mod request;
pub mod server;
pub mod session;
pub mod silence;
pub mod socket;
pub mod source;
pub mod state;
pub mod state_file;
pub mod subscribers;
pub mod tls;
pub mod trim;
pub mod unknown;
pub mod unwatched;
pub mod wire;

pub use config::{env_flags_not_boolish, AgentConfig, NetnsSelection, PipelineConfig};
pub use error::AgentError;
pub use pipeline::Pipeline;
pub use server::run;

#[cfg(test)]
mod fuzz;
