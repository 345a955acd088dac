//! The agent library's errors.

use std::fmt;

/// Everything that can stop the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The rtnetlink socket could not be opened, bound or joined to its groups.
    #[error("cannot open the rtnetlink socket ({step}): {source}")]
    Netlink {
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The gRPC listener could not bind its address.
    #[error("cannot listen on {addr}: {source} (is another agent running, or is --listen wrong?)")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Another network namespace could not be entered.
    #[error("cannot watch network namespace {name} ({step}): {source}")]
    Netns {
        name: String,
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// --netns named a namespace that does not exist.
    #[error("no network namespace {name} in {} ({source}); create it with `ip netns add {name}`, or see --netns-dir", dir.display())]
    NoNetns {
        name: String,
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The ops listener (metrics, health) could not bind its address.
    #[error("cannot listen on {addr} for --ops-listen: {source}")]
    OpsListen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The ops server (metrics, health) failed while serving.
    #[error("ops server (--ops-listen) failed: {0}")]
    OpsServe(#[source] std::io::Error),
    /// The gRPC server failed while serving.
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// The --state-dir could not be used.
    #[error("state dir {}: cannot {step}: {source}", dir.display())]
    StateDir {
        dir: std::path::PathBuf,
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// --iproute2-dir cannot be read.
    #[error("--iproute2-dir: {0}")]
    Names(#[from] routewatch_proto::NamesError),
    /// The agent was stopped before its first complete dump.
    #[error("stopped before the first complete dump of the routing tables")]
    NotReady,
    /// Neither TLS material nor --insecure was given.
    #[error("refusing to serve without TLS: give --tls-cert and --tls-key (and --client-ca to require client certificates), or --insecure to serve plaintext")]
    TlsRequired,
    /// TLS flags that do not fit together.
    #[error("{0}")]
    TlsFlags(String),
    /// A TLS file could not be read.
    #[error("cannot read {flag} {}: {error}", path.display())]
    TlsFile {
        flag: &'static str,
        path: std::path::PathBuf,
        error: std::io::Error,
    },
    /// TLS files that were read but cannot serve (not PEM, a key that does
    /// not match its certificate, ...).
    #[error("{0}")]
    TlsMaterial(String),
    /// The reflection service could not be built from the API's descriptors.
    #[error("cannot serve gRPC reflection: {0}")]
    Reflection(String),
}

/// A netlink message that could not be decoded. It is never dropped
/// quietly: the source counts it, logs its bytes and re-reads the tables.
#[derive(Debug, Clone)]
pub struct DecodeFailure {
    pub reason: String,
    pub bytes: Vec<u8>,
}

impl DecodeFailure {
    pub fn new(bytes: &[u8], reason: String) -> DecodeFailure {
        DecodeFailure {
            reason,
            bytes: bytes.to_vec(),
        }
    }
}

impl fmt::Display for DecodeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (bytes:", self.reason)?;
        for b in &self.bytes {
            write!(f, " {b:02x}")?;
        }
        write!(f, ")")
    }
}

/// An error and its causes, "a: b: c", each cause once: most messages here
/// name their source already, tonic's say only "transport error".
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}
