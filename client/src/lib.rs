//! routewatch, the CLI: follows the routing tables of this host or of many
//! routewatch agents.
//!
//! # Layout
//!
//! - [`cli`]: the command line.
//! - [`target`]: what a TARGET argument names.
//! - [`subscription`]: one subscription per target, merged with host labels.
//! - [`remote`]: one subscription to an agent, on a connection that notices
//!   a dead path.
//! - [`reconnect`]: `tail`'s resubscribing after every loss, paced by
//!   [`backoff`], resuming from the [`cursor`].
//! - [`tail`]: the `tail` command, keeping the [`cursor_file`].
//! - [`tls`]: TLS to agents (`--ca`, `--cert`, `--key`), failures in words.
//! - [`certs`]: `routewatch certs init`, a CA and certificates to try
//!   mutual TLS with.
//! - [`printer`]: one printer per output format.
//! - [`error`]: the `ClientError` type.

pub mod backoff;
pub mod certs;
pub mod cli;
pub mod cursor;
pub mod cursor_file;
pub mod error;
pub mod printer;
pub mod reconnect;
pub mod remote;
pub mod subscription;
pub mod tail;
pub mod target;
pub mod tls;

pub use error::ClientError;

use std::io::{self, Write};

use routewatch_proto::v1::{change, event, Event, Family, SubscribeRequest};
use tokio_util::sync::CancellationToken;

use cli::{Command, Watch};
use printer::{printer, Mode, Origin};
use subscription::{fan_in, Delivery, Options};
use target::Target;
use tls::Security;

/// Runs one command until it is done or `shutdown` is cancelled.
pub async fn run(command: Command, shutdown: CancellationToken) -> Result<(), ClientError> {
    match command {
        Command::Tail(args) => tail::run(args, shutdown).await,
        Command::Show(watch) => show(watch, shutdown).await,
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
    Security::from_args(watch.insecure, &watch.tls)
}

async fn show(watch: Watch, shutdown: CancellationToken) -> Result<(), ClientError> {
    let targets = targets(&watch)?;
    let many = targets.len() > 1;
    let mut remaining = targets.len();
    let request = SubscribeRequest {
        snapshot: true,
        follow: false,
        resume_from: None,
    };
    // A snapshot that cannot be had now is an error, not something to wait for.
    let options = Options {
        reconnect: false,
        compression: watch.compression,
        security: security(&watch, &targets)?,
        resume: Default::default(),
    };
    let mut rx = fan_in(targets, request, options, shutdown);
    let mut collected: Vec<(std::sync::Arc<str>, Event)> = Vec::new();
    let mut failures = Failures::new(remaining);
    while remaining > 0 {
        match rx.recv().await {
            Some(Delivery::Events { host, events, .. }) => {
                collected.extend(events.into_iter().map(|e| (host.clone(), e)));
            }
            Some(Delivery::Ended { .. }) => remaining -= 1,
            // Only `tail` reconnects.
            Some(Delivery::Connected { .. } | Delivery::Disconnected { .. }) => {}
            Some(Delivery::Failed(e)) => {
                failures.note(e);
                remaining -= 1;
            }
            None => break,
        }
    }
    collected.sort_by_cached_key(|(host, event)| (host.clone(), sort_key(event)));
    let mut print = printer(watch.format, Mode::Show);
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    for (host, event) in &collected {
        print.print(&mut out, &Origin { host, many }, event)?;
    }
    out.flush()?;
    failures.result()
}

/// `show` order: nexthop objects by id, then routes by family, table,
/// destination (numerically, shorter prefixes first) and metric; markers
/// last.
fn sort_key(e: &Event) -> (u8, i32, u32, u128, u8, u32) {
    match &e.kind {
        Some(event::Kind::Change(c)) => match &c.object {
            Some(change::Object::Nexthop(n)) => (0, 0, n.id, 0, 0, 0),
            Some(change::Object::Route(r)) => {
                let family = if r.family == Family::Inet6 as i32 {
                    6
                } else {
                    4
                };
                let (addr, len) = prefix_order(&r.dst);
                (1, family, r.table, addr, len, r.metric)
            }
            None => (2, 0, 0, 0, 0, 0),
        },
        _ => (3, 0, 0, 0, 0, 0),
    }
}

/// A CIDR prefix as (address bits, length), for numeric ordering.
fn prefix_order(prefix: &str) -> (u128, u8) {
    let (addr, len) = prefix.split_once('/').unwrap_or((prefix, "0"));
    let bits = match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => u128::from(u32::from(a)),
        Ok(std::net::IpAddr::V6(a)) => u128::from(a),
        Err(_) => 0,
    };
    (bits, len.parse().unwrap_or(0))
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
            failed => Err(ClientError::TargetsFailed {
                failed,
                total: self.total,
            }),
        }
    }
}
