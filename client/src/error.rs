//! The client library's errors, worded for the operator.

/// Everything that can stop `routewatch`.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A TARGET that is not `host:port`.
    #[error("bad target {0:?}: expected HOST:PORT, for example 10.0.0.1:50051 or [2001:db8::1]:50051")]
    BadTarget(String),
    /// TLS is not implemented yet, so remote targets need --insecure.
    #[error("--insecure is required for remote targets: this version connects in plaintext only")]
    TlsRequired,
    /// The agent could not be reached.
    #[error("cannot connect to {target}: {source} (is routewatch-agent running there and listening on that port?)")]
    Connect {
        target: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// The agent refused or ended the subscription with an error.
    #[error("{target}: {status}")]
    Stream { target: String, status: tonic::Status },
    /// The in-process pipeline failed.
    #[error(transparent)]
    Local(#[from] routewatch_agent::AgentError),
    /// Writing the output failed (other than a closed pipe).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}
