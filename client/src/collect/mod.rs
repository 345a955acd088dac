//! `routewatch collect`: follows agents and stores every change, with the
//! history of every route, in SQLite or PostgreSQL.
//!
//! - [`claims`]: which collector follows a target (one per target; with
//!   PostgreSQL, shared among collectors by advisory locks).
//! - [`open_files`]: the open files limit, raised at start, and how many
//!   targets it lets this collector follow at once.
//! - [`writer`]: the store's single writer.
//! - [`metrics`]: the collector's metrics on `--ops-listen`.

pub mod claims;
pub mod metrics;
pub mod open_files;
pub mod writer;

use std::time::Duration;

use routewatch_agent::ops;
use routewatch_proto::v1::SubscribeRequest;
use tokio_util::sync::CancellationToken;

use crate::cli::Collect;
use crate::store::{Store, StoreUrl};
use crate::subscription::{fan_in, Options};
use crate::target::Target;
use crate::tls::Security;
use crate::ClientError;

/// Runs `collect` until `shutdown`.
pub async fn run(args: Collect, shutdown: CancellationToken) -> Result<(), ClientError> {
    let targets = args
        .targets
        .iter()
        .map(|t| Target::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    if targets.is_empty() {
        return Err(ClientError::Usage(
            "collect needs at least one TARGET (HOST:PORT or dns:///NAME:PORT of routewatch-agent)"
                .into(),
        ));
    }
    let security = Security::from_args(args.reach.insecure, &args.reach.tls)?;
    let url = StoreUrl::parse(&args.store)?;
    let connections = match open_files::OpenFiles::raise() {
        Ok(files) => {
            if let Some(shortage) = files.shortage(targets.len()) {
                eprintln!("routewatch collect: {shortage}");
            }
            files.connections()
        }
        Err(e) => {
            eprintln!("routewatch collect: cannot read the open files limit ({e}); following every target at once");
            tokio::sync::Semaphore::MAX_PERMITS
        }
    };
    let metrics = metrics::Metrics::new();
    // The ops port first, so that probes can tell "starting" from "dead".
    let ops = match args.ops_listen {
        Some(addr) => {
            let listener = ops::bind(addr).await?;
            Some(ops::serve(listener, metrics.clone(), shutdown.clone()))
        }
        None => None,
    };
    let mut store = Store::open(&url).await?;
    store.lock_for_collecting()?;
    eprintln!(
        "routewatch collect: storing into {url}{}",
        if store.shared() {
            " (targets shared with any other collector on this database)"
        } else {
            ""
        }
    );
    let (claims, requests) = claims::Claims::new(connections);
    let request = SubscribeRequest {
        snapshot: true,
        follow: true,
        resume_from: None,
        allow: Vec::new(),
        deny: Vec::new(),
        replay_last: 0,
        replay_since_unix_nano: 0,
        digest: false,
    };
    // A digest that differs from a target's record starts its
    // subscription over from a snapshot (see `store::Ledger`).
    let restarts = crate::restart::Restarts::default();
    let options = Options {
        reconnect: true,
        compression: args.reach.compression,
        security,
        resume: Default::default(),
        dns_refresh: Duration::from_secs(args.reach.dns_refresh.max(1)),
        claims: Some(claims),
        iproute2_dir: None,
        connect_timeout: args.reach.connect_timeout(),
        retries: None,
        busy_retry: Duration::ZERO,
        restarts: restarts.clone(),
    };
    let follow = shutdown.child_token();
    let deliveries = fan_in(targets, request, options, follow.clone());
    let settings = writer::Settings {
        claim_interval: Duration::from_secs(args.claim_interval.max(1)),
        retain: args.retain,
        restarts,
    };
    let writer = writer::Writer::new(store, url, settings, metrics);
    writer.run(deliveries, requests, shutdown.clone()).await;
    follow.cancel();
    if let Some(ops) = ops {
        ops.stop().await?;
    }
    Ok(())
}
