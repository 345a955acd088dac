//! routewatch, the CLI: follows the routing tables of this host or of many
//! routewatch agents.
//!
//! # Layout
//!
//! - [`cli`]: the command line; [`filter_args`]: its filter flags.
//! - [`target`]: what a TARGET argument names.
//! - [`subscription`]: one subscription per target (and per address of a
//!   `dns:///` target), merged with host labels.
//! - [`remote`]: one subscription to an agent, on a connection that notices
//!   a dead path; [`response_codec`]: how its responses are decoded.
//! - [`reconnect`]: `tail`'s resubscribing after every loss, paced by
//!   [`backoff`], resuming from the [`cursor`]; [`restart`]: starting over
//!   from a snapshot when a digest shows the picture drifted.
//! - [`tail`]: the `tail` command, keeping the [`cursor_file`] and each
//!   target's [`picture`] (a resync prints only the differences).
//! - [`show`]: the `show` command, in [`order`] (each host's lines held
//!   [`in_order`]) or as a [`summary`]; a busy agent is asked again
//!   ([`busy`]).
//! - [`info`]: the `info` command.
//! - [`query`]: the `query` command, answering from a [`store`].
//! - [`web`]: the `web` command, the store as web pages.
//! - [`when`]: times and durations on the command line.
//! - [`generate`]: `completions` and `man`.
//! - [`tls`]: TLS to agents (`--ca`, `--cert`, `--key`), failures in words.
//! - [`certs`]: `routewatch certs init`, a CA and certificates to try
//!   mutual TLS with.
//! - [`printer`]: one printer per output format; [`protojson`]: the API's
//!   JSON mapping.
//! - [`error`]: the `ClientError` type and the exit statuses; [`usage`]:
//!   what a wrong command line or environment variable is told.
//! - `fuzz` (tests only): fuzzing harnesses of what the client reads.

pub mod backoff;
pub mod busy;
pub mod certs;
pub mod cli;
pub mod collect;
pub mod cursor;
pub mod cursor_file;
pub mod error;
pub mod filter_args;
pub mod generate;
pub mod in_order;
pub mod info;
pub mod order;
pub mod picture;
pub mod printer;
pub mod protojson;
pub mod query;
pub mod reconnect;
pub mod remote;
pub mod response_codec;
pub mod restart;
pub mod show;
pub mod store;
pub mod subscription;
pub mod summary;
pub mod tail;
pub mod target;
pub mod tls;
pub mod usage;
pub mod web;
pub mod when;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
pub(crate) mod testing;

pub use error::ClientError;

use routewatch_proto::v1::SubscribeRequest;
use tokio_util::sync::CancellationToken;

use cli::{Command, Watch};
use target::Target;
use tls::Security;

/// Runs one command until it is done or `shutdown` is cancelled.
pub async fn run(command: Command, shutdown: CancellationToken) -> Result<(), ClientError> {
    match command {
        Command::Tail(args) => tail::run(args, shutdown).await,
        Command::Show(args) => show::run(args, shutdown).await,
        Command::Collect(args) => collect::run(args, shutdown).await,
        Command::Info(watch) => info::run(watch, shutdown).await,
        Command::Query(query) => query::run(query).await,
        Command::Web(args) => web::run(args, shutdown).await,
        Command::Completions { shell } => generate::completions(shell),
        Command::Man { dir, agent } => generate::man(dir.as_deref(), agent),
        Command::Certs(certs) => certs.run(),
    }
}

pub(crate) fn targets(watch: &Watch) -> Result<Vec<Target>, ClientError> {
    if watch.targets.is_empty() {
        return Ok(vec![Target::Local]);
    }
    watch.targets.iter().map(|t| Target::parse(t)).collect()
}

/// How remote targets are reached: TLS unless `--insecure`. This host
/// alone needs no setup.
pub(crate) fn security(watch: &Watch, targets: &[Target]) -> Result<Security, ClientError> {
    if targets.iter().all(|t| *t == Target::Local) {
        return Ok(Security::Plaintext);
    }
    Security::from_args(watch.reach.insecure, &watch.reach.tls)
}

/// Whether lines need a host label: several targets, or a `dns:///`
/// target, which may find several hosts.
pub(crate) fn many_hosts(targets: &[Target]) -> bool {
    targets.len() > 1 || targets.iter().any(|t| matches!(t, Target::Dns { .. }))
}

/// The request's filters in the API's JSON, as a cursor file records them
/// (none when unfiltered).
pub(crate) fn filter_record(request: &SubscribeRequest) -> Option<serde_json::Value> {
    if request.allow.is_empty() && request.deny.is_empty() {
        return None;
    }
    let filters = SubscribeRequest {
        allow: request.allow.clone(),
        deny: request.deny.clone(),
        ..Default::default()
    };
    Some(protojson::to_json(
        "routewatch.v1.SubscribeRequest",
        &filters,
    ))
}

/// Failed targets: with one target its error is the command's; with several
/// each is reported as it happens and the command fails at the end.
pub(crate) struct Failures {
    total: usize,
    errors: Vec<ClientError>,
}

impl Failures {
    pub(crate) fn new(total: usize) -> Failures {
        Failures {
            total,
            errors: Vec::new(),
        }
    }

    /// A `dns:///` target found another host to follow.
    pub(crate) fn add_one(&mut self) {
        self.total += 1;
    }

    pub(crate) fn note(&mut self, e: ClientError) {
        if self.total > 1 {
            eprintln!("routewatch: {e}");
        }
        self.errors.push(e);
    }

    pub(crate) fn result(mut self) -> Result<(), ClientError> {
        match self.errors.len() {
            0 => Ok(()),
            1 if self.total == 1 => Err(self.errors.remove(0)),
            failed => {
                let first = self.errors[0].exit_code();
                let code = if self.errors.iter().all(|e| e.exit_code() == first) {
                    first
                } else {
                    error::exit::FAILURE
                };
                Err(ClientError::TargetsFailed {
                    failed,
                    total: self.total,
                    code,
                })
            }
        }
    }
}
