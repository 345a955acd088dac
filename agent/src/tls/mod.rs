//! TLS for the gRPC port: rustls with the ring provider, done on the accept
//! loop so that the client's certificate reaches the handlers.
//!
//! - [`config`]: the flags (`--tls-cert`, `--tls-key`, `--client-ca`,
//!   `--allow-client`, ...).
//! - [`material`]: reading the files into a server configuration.
//! - [`reloader`]: rotation without a restart (file changes, SIGHUP).
//! - [`incoming`]: accepted connections, handshaken with a deadline; accept
//!   failures (out of file descriptors) pause accepting.
//! - [`peers`]: the limit of connections per address
//!   (`--max-connections-per-peer`).
//! - [`first_request`]: the deadline of a connection's first call
//!   (`--first-request-timeout-secs`).
//! - [`connection`]: one connection and what handlers know of its peer.
//! - [`identity`]: a client certificate's DNS and URI names.
//! - [`allow_list`]: `--allow-client`, checked on every call.
//! - [`stats`]: what the TLS layer counts.

pub mod allow_list;
pub mod config;
pub mod connection;
pub mod first_request;
pub mod identity;
pub mod incoming;
pub mod material;
pub mod peers;
pub mod reloader;
pub mod stats;

pub use allow_list::AllowList;
pub use config::TlsConfig;
pub use connection::{Connection, PeerInfo};
pub use identity::ClientIdentity;
pub use incoming::{Handshaker, Incoming, Limits};
pub use material::{provider, TlsFiles};
pub use reloader::Reloader;
pub use stats::TlsStats;
