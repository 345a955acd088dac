//! `routewatch show`: every target's snapshot, sorted as `ip route show`
//! sorts, or counted (`--summary`).

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use routewatch_proto::v1::{Event, SubscribeRequest};
use tokio_util::sync::CancellationToken;

use crate::cli::Show;
use crate::printer::{printer, Mode, Origin, Paint};
use crate::subscription::{fan_in, Delivery, Options};
use crate::{order, summary, ClientError, Failures};

/// Collects every target's snapshot, then prints it.
pub async fn run(args: Show, shutdown: CancellationToken) -> Result<(), ClientError> {
    let watch = args.watch;
    let targets = crate::targets(&watch)?;
    let many = crate::many_hosts(&targets);
    let mut remaining = targets.len();
    let request = SubscribeRequest {
        snapshot: true,
        follow: false,
        resume_from: None,
        allow: args.filter.allow,
        deny: args.filter.deny,
    };
    // A snapshot that cannot be had now is an error, not something to wait for.
    let options = Options {
        reconnect: false,
        compression: watch.reach.compression,
        security: crate::security(&watch, &targets)?,
        resume: Default::default(),
        dns_refresh: Duration::from_secs(watch.reach.dns_refresh.max(1)),
        claims: None,
        iproute2_dir: watch.iproute2_dir.clone(),
    };
    let mut rx = fan_in(targets, request, options, shutdown);
    let mut collected: Vec<(Arc<str>, Event)> = Vec::new();
    let mut failures = Failures::new(remaining);
    while remaining > 0 {
        match rx.recv().await {
            Some(Delivery::Events { host, events, .. }) => {
                collected.extend(events.into_iter().map(|e| (host.clone(), e)));
            }
            Some(Delivery::Added { .. }) => {
                remaining += 1;
                failures.add_one();
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
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    if args.summary {
        summary::print(&mut out, watch.format, &collected)?;
    } else {
        collected.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| order::compare(&a.1, &b.1)));
        let mut print = printer(watch.format, Mode::Show, Paint::NONE);
        for (host, event) in &collected {
            print.print(&mut out, &Origin { host, many }, event)?;
        }
        print.finish(&mut out)?;
    }
    out.flush()?;
    failures.result()
}
