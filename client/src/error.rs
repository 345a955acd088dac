//! The client library's errors, worded for the operator.

/// Everything that can stop `routewatch`.
pub use routewatch_agent::error::chain;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A TARGET that is not `host:port`.
    #[error(
        "bad target {0:?}: expected HOST:PORT or dns:///NAME:PORT, for example 10.0.0.1:50051, [2001:db8::1]:50051 or dns:///routewatch-agent.kube-system.svc:50051"
    )]
    BadTarget(String),
    /// A `dns:///` target's name did not resolve to any address.
    #[error("cannot resolve {target}: {problem}")]
    Resolve { target: String, problem: String },
    /// The TLS flags or files cannot be used.
    #[error("{0}")]
    TlsSetup(String),
    /// TLS with an agent failed: the handshake, or the agent's verdict on
    /// this client's certificate.
    #[error("{target}: {problem}")]
    Tls { target: String, problem: String },
    /// The agent could not be reached; `hint` says what the failure
    /// suggests (nothing listening, no answer after connecting, ...).
    #[error("cannot connect to {target}: {} ({hint})", chain(source))]
    Connect {
        target: String,
        #[source]
        source: tonic::transport::Error,
        hint: &'static str,
    },
    /// The agent refused or ended the subscription with an error.
    #[error("{target}: {} ({:?})", self.cause(), status.code())]
    Stream {
        target: String,
        status: tonic::Status,
    },
    /// The agent refused a one-shot call as busy (RESOURCE_EXHAUSTED) on
    /// every attempt within `show --retry-for`.
    #[error("{target}: {problem} (still busy after {attempts} attempts in {:.1}s; try again later, or wait longer with --retry-for)", waited.as_secs_f64())]
    Busy {
        target: String,
        problem: String,
        attempts: u32,
        waited: std::time::Duration,
    },
    /// A response that did not decode (a bug, or a version mismatch).
    #[error("cannot decode a response: {0}")]
    Decode(String),
    /// The in-process pipeline failed.
    #[error(transparent)]
    Local(#[from] routewatch_agent::AgentError),
    /// Several targets, some of which failed (each was reported already);
    /// `code` is their exit status when they agree, else 1.
    #[error("{failed} of {total} targets failed")]
    TargetsFailed {
        failed: usize,
        total: usize,
        code: u8,
    },
    /// `tail --retries`: this many attempts in a row failed; `lost` says
    /// whether the target had been followed in this run (its stream is
    /// now incomplete) or was never reached.
    #[error("{target}: giving up after {attempts} failed attempts in a row (--retries): {}", last.cause())]
    GaveUp {
        target: String,
        attempts: u32,
        lost: bool,
        last: Box<ClientError>,
    },
    /// `collect`: the agent at `target` is no longer the one its record was
    /// claimed for (the address now reaches another agent): the record is
    /// let go and the address claimed again for whoever answers there.
    #[error("{target}: the agent there is now {found}, not {expected}: following the record of the agent that answers instead")]
    IdentityChanged {
        target: String,
        expected: String,
        found: String,
    },
    /// `--connect-timeout` passed before the agent answered.
    #[error("cannot connect to {target}: no answer within {}s (--connect-timeout)", after.as_secs_f64())]
    ConnectTimeout {
        target: String,
        after: std::time::Duration,
    },
    /// `--cursor-file` exists but cannot be read or is not a cursor file.
    #[error("cannot use cursor file {}: {problem} (fix it, or remove it to start from a fresh snapshot)", path.display())]
    CursorFile {
        path: std::path::PathBuf,
        problem: String,
    },
    /// `--cursor-file` could not be written.
    #[error("cannot write cursor file {}: {source}", path.display())]
    CursorSave {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `routewatch certs init` could not make or write the files.
    #[error("certs init: {0}")]
    Certs(String),
    /// Arguments that do not go together, or a value that does not parse,
    /// found after the command line was read, in words; exits with status
    /// 2, as the command line's own errors do.
    #[error("{0}")]
    Usage(String),
    /// The store of `collect` and `query` failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// `query --store` names an SQLite file that does not exist (`query`
    /// only reads; it never makes a store).
    #[error("no store at {0}: run routewatch collect first, or pass --store")]
    NoStore(String),
    /// A row of the store that does not read as what the schema says (a
    /// damaged database, or one written by a newer routewatch).
    #[error("cannot read the store: {0}")]
    Record(String),
    /// `query verify`: the store's record of a host differs from what its
    /// agent holds (the parts are printed).
    #[error("{0}")]
    Mismatch(String),
    /// Writing the output failed (other than a closed pipe).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// The exit statuses (README "Exit status", and the manual pages).
pub mod exit {
    /// Done: the command finished, `--count` or `--until` was reached, or
    /// `tail` was stopped (Ctrl-C, SIGTERM), or its output pipe closed.
    pub const OK: u8 = 0;
    /// Any other failure: output, store, cursor file, this host's rtnetlink.
    pub const FAILURE: u8 = 1;
    /// The command line or the environment is wrong (a flag, a value, a
    /// filter the agent refuses, TLS files that cannot be used).
    pub const USAGE: u8 = 2;
    /// An agent could not be reached (connection refused, no answer, name
    /// not resolved, unavailable, busy beyond `show --retry-for`).
    pub const UNREACHABLE: u8 = 3;
    /// TLS or authentication failed (handshake, certificate refused,
    /// permission denied).
    pub const TLS: u8 = 4;
    /// A target `tail` was following was lost and not regained within
    /// `--retries`: its output stops at a gap.
    pub const LOST: u8 = 5;
    /// `query verify`: the store's record of the host differs from what
    /// its agent holds.
    pub const MISMATCH: u8 = 6;

    /// Every status with its meaning, for the manual pages and README.
    pub const STATUSES: &[(u8, &str)] = &[
        (OK, "done: the command finished, --count or --until was reached, tail was stopped (Ctrl-C, SIGTERM) or its output pipe was closed"),
        (FAILURE, "any other failure: writing the output, the store, the cursor file, this host's rtnetlink"),
        (USAGE, "the command line or an environment variable is wrong (the message names which), or an agent refused the request as such (a filter value its host does not know)"),
        (UNREACHABLE, "an agent could not be reached: connection refused, no answer within --connect-timeout, a name that does not resolve, an agent that is unavailable or still busy after show --retry-for"),
        (TLS, "TLS or authentication failed: the handshake, a certificate either side refuses, permission denied"),
        (LOST, "tail --retries: a target that was being followed was lost and not regained; its lines stop at a gap"),
        (MISMATCH, "query verify: the store's record of the host differs from what its agent holds (the differing parts are printed)"),
    ];
}

impl ClientError {
    /// The process's exit status for this error (see [`exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Usage(_) | ClientError::BadTarget(_) | ClientError::TlsSetup(_) => {
                exit::USAGE
            }
            e if e.is_refused_request() => exit::USAGE,
            ClientError::Connect { .. }
            | ClientError::Resolve { .. }
            | ClientError::ConnectTimeout { .. }
            | ClientError::Busy { .. } => exit::UNREACHABLE,
            ClientError::Tls { .. } => exit::TLS,
            ClientError::Stream { status, .. } => match status.code() {
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => exit::TLS,
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => exit::UNREACHABLE,
                _ => exit::FAILURE,
            },
            ClientError::GaveUp { lost: true, .. } => exit::LOST,
            ClientError::Mismatch(_) => exit::MISMATCH,
            ClientError::GaveUp { last, .. } => last.exit_code(),
            ClientError::TargetsFailed { code, .. } => *code,
            ClientError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
            _ => exit::FAILURE,
        }
    }

    /// The agent refused the request as such (INVALID_ARGUMENT: a filter
    /// value it cannot read, a malformed cursor): sending it again gets
    /// the same answer.
    pub fn is_refused_request(&self) -> bool {
        matches!(self, ClientError::Stream { status, .. } if status.code() == tonic::Code::InvalidArgument)
    }

    /// The agent refused the call because it is busy (RESOURCE_EXHAUSTED:
    /// its slots are taken); the same call may succeed a moment later.
    pub fn is_busy(&self) -> bool {
        matches!(self, ClientError::Stream { status, .. } if status.code() == tonic::Code::ResourceExhausted)
    }

    /// Why a subscription ended, for a line that already names the target.
    pub fn cause(&self) -> String {
        match self {
            ClientError::Connect { source, hint, .. } => {
                format!("cannot connect: {} ({hint})", chain(source))
            }
            ClientError::Tls { problem, .. } => problem.clone(),
            ClientError::ConnectTimeout { after, .. } => {
                format!("cannot connect: no answer within {}s", after.as_secs_f64())
            }
            ClientError::Stream { status, .. } => {
                let mut text = if status.message().is_empty() {
                    status.code().description().to_owned()
                } else {
                    status.message().to_owned()
                };
                // tonic repeats a cause's words in the message: keep each once.
                let mut cause = std::error::Error::source(status);
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
            other => other.to_string(),
        }
    }
}
