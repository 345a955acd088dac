//! routewatch, the CLI: follows the routing tables of this host or of many
//! routewatch agents.
//!
//! # Layout
//!
//! - [`cli`]: the command line.
//! - [`target`]: what a TARGET argument names.
//! - [`subscription`]: one subscription per target, merged with host labels.
//! - [`printer`]: one printer per output format.
//! - [`error`]: the `ClientError` type.

pub mod cli;
pub mod error;
pub mod printer;
pub mod subscription;
pub mod target;

pub use error::ClientError;

use std::io::{self, Write};

use routewatch_proto::v1::{change, event, Event, Family, SubscribeRequest};
use tokio_util::sync::CancellationToken;

use cli::{Command, Watch};
use printer::{printer, Mode, Origin};
use subscription::{fan_in, Delivery};
use target::Target;

/// Runs one command until it is done or `shutdown` is cancelled.
pub async fn run(command: Command, shutdown: CancellationToken) -> Result<(), ClientError> {
    match command {
        Command::Tail(watch) => tail(watch, shutdown).await,
        Command::Show(watch) => show(watch, shutdown).await,
    }
}

fn targets(watch: &Watch) -> Result<Vec<Target>, ClientError> {
    if watch.targets.is_empty() {
        return Ok(vec![Target::Local]);
    }
    if !watch.insecure {
        return Err(ClientError::TlsRequired);
    }
    watch.targets.iter().map(|t| Target::parse(t)).collect()
}

async fn tail(watch: Watch, shutdown: CancellationToken) -> Result<(), ClientError> {
    let targets = targets(&watch)?;
    let many = targets.len() > 1;
    let mut remaining = targets.len();
    let request = SubscribeRequest {
        snapshot: true,
        follow: true,
        resume_from: None,
    };
    let mut rx = fan_in(targets, request, shutdown);
    let mut print = printer(watch.format, Mode::Tail);
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut failures = Failures::new(remaining);
    while let Some(delivery) = rx.recv().await {
        match delivery {
            Delivery::Events { host, events } => {
                let from = Origin { host: &host, many };
                for event in &events {
                    print.print(&mut out, &from, event)?;
                }
                out.flush()?;
            }
            Delivery::Ended { .. } => remaining -= 1,
            Delivery::Failed(e) => {
                failures.note(e);
                remaining -= 1;
            }
        }
        if remaining == 0 {
            break;
        }
    }
    failures.result()
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
    let mut rx = fan_in(targets, request, shutdown);
    let mut collected: Vec<(std::sync::Arc<str>, Event)> = Vec::new();
    let mut failures = Failures::new(remaining);
    while remaining > 0 {
        match rx.recv().await {
            Some(Delivery::Events { host, events }) => {
                collected.extend(events.into_iter().map(|e| (host.clone(), e)));
            }
            Some(Delivery::Ended { .. }) => remaining -= 1,
            Some(Delivery::Failed(e)) => {
                failures.note(e);
                remaining -= 1;
            }
            None => break,
        }
    }
    collected.sort_by(|a, b| (&a.0, sort_key(&a.1)).cmp(&(&b.0, sort_key(&b.1))));
    let mut print = printer(watch.format, Mode::Show);
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    for (host, event) in &collected {
        print.print(&mut out, &Origin { host, many }, event)?;
    }
    out.flush()?;
    failures.result()
}

/// `show` order: nexthop objects by id, then routes by family, table and
/// destination; markers last.
fn sort_key(e: &Event) -> (u8, i32, u32, String, u32) {
    match &e.kind {
        Some(event::Kind::Change(c)) => match &c.object {
            Some(change::Object::Nexthop(n)) => (0, 0, n.id, String::new(), 0),
            Some(change::Object::Route(r)) => {
                let family = if r.family == Family::Inet6 as i32 {
                    6
                } else {
                    4
                };
                (1, family, r.table, r.dst.clone(), r.metric)
            }
            None => (2, 0, 0, String::new(), 0),
        },
        _ => (3, 0, 0, String::new(), 0),
    }
}

/// Failed targets: with one target its error is the command's; with several
/// each is reported as it happens and the command fails at the end.
struct Failures {
    total: usize,
    errors: Vec<ClientError>,
}

impl Failures {
    fn new(total: usize) -> Failures {
        Failures {
            total,
            errors: Vec::new(),
        }
    }

    fn note(&mut self, e: ClientError) {
        if self.total > 1 {
            eprintln!("routewatch: {e}");
        }
        self.errors.push(e);
    }

    fn result(mut self) -> Result<(), ClientError> {
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
