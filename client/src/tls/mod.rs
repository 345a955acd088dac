//! TLS to agents: rustls with the ring provider, on a connector of our own
//! so that every failure can be told in the operator's words.
//!
//! - [`args`]: `--ca`, `--cert`, `--key`, `--tls-server-name`.
//! - [`security`]: plaintext or TLS, with the files read once per run.
//! - [`connector`]: TCP then TLS, for tonic.
//! - [`connection`]: one connection, remembering why it failed.
//! - [`problem`]: TLS failures in words.

pub mod args;
pub mod connection;
pub mod connector;
pub mod problem;
pub mod security;

pub use args::TlsArgs;
pub use connection::Verdict;
pub use connector::Connector;
pub use security::{Security, TlsSettings};
