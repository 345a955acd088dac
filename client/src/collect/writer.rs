//! The store's single writer: owns the store and one [`Ledger`] per target
//! this collector holds, turns deliveries into transactions, and answers
//! claims.
//!
//! Nothing is lost on a fault: a target's cursor moves only in the
//! transaction that writes its rows, a failed commit is retried as is, and
//! a target whose claim is lost is followed again (here or by another
//! collector) from the cursor the store holds.
//!
//! The writer keeps one commit in flight: [`Writer::flush`] hands the
//! store and the writes taken from the ledgers to a task of their own and
//! goes back to applying the next deliveries while the store commits, so
//! that the ledgers' work and the store's overlap (on SQLite, which
//! commits on its thread, and on PostgreSQL, whose server does the work).
//! The next writes are taken (and encoded, for PostgreSQL) while that
//! commit runs too, and sent once it is settled: its outcome handled as if
//! it had been awaited (metrics, gaps, lost targets, retries). A commit is
//! also settled before anything else uses the store (claims, releases,
//! pruning, stopping), and as soon as it ends.
//!
//! Exactly once holds as it did with one commit at a time. A ledger's
//! next write expects the cursor the write in flight leaves the store at,
//! and is sent only after that one is settled: committed; or retried, the
//! same writes in the same order, until it is; or refused by the compare
//! and set of its target's cursor (the target was taken elsewhere: it is
//! given up, and its next write is dropped with its ledger); or lost with
//! the store's connection (every target is given up, and every write
//! taken is dropped). A target given up is claimed again and continues
//! from the cursor the store holds. A collector killed with a commit in
//! flight leaves the store as it was before that transaction or after it,
//! and the next collector continues from there.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use routewatch_proto::v1::Cursor;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinError, JoinHandle};
use tokio::time::{interval, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::claims::{Agent, Granted, Request};
use super::metrics::Metrics;
use crate::printer::now_unix_nano;
use crate::store::{
    Batch, Ledger, OpenVersion, Outcome, Store, StoreError, StoreUrl, TargetRow, Write,
};
use crate::subscription::Delivery;

/// Events gathered into one transaction, at most (more when one delivery
/// is larger), while a commit is in flight. Larger transactions cost the
/// store less per event (on SQLite 20,000 a transaction cost 7.7 µs per
/// event, 40,000 7.2) and the collector more memory while a backlog is
/// stored (peak RSS about 360 MiB with 40,000, 320 with 20,000).
const BATCH_EVENTS: usize = 40_000;
/// Longest wait between attempts at a failing store.
const MAX_RETRY: Duration = Duration::from_secs(10);
/// How long a stopping collector keeps trying a failing store.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How often `--retain` prunes.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Rows stored since the allocator last gave memory back, past which it
/// is asked to (see [`Writer::give_back`]).
const TRIM_AFTER_ROWS: u64 = 10_000;
/// How long after such a write the allocator is asked.
const TRIM_DELAY: Duration = Duration::from_secs(1);
/// What [`Writer::told`] holds of a target another collector holds.
const HELD_ELSEWHERE: &str = "held elsewhere";
/// How [`Writer::told`]'s note of an address standing by for another
/// address of its agent begins.
const STANDS_BY: &str = "the agent followed at";

/// A claim waiting for its answer.
struct Claim {
    /// The address dialled.
    name: String,
    /// Who answered there (`None`: an agent without identity, whose
    /// record is keyed by the address).
    agent: Option<Agent>,
    reply: oneshot::Sender<Granted>,
}

/// How the writer behaves.
pub struct Settings {
    /// How often claims of targets held by other collectors are retried.
    pub claim_interval: Duration,
    /// Keep closed versions, log rows and gaps this long (none: forever).
    pub retain: Option<Duration>,
    /// Where a target whose record differs from its agent's digest is
    /// started over from a snapshot.
    pub restarts: crate::restart::Restarts,
}

/// A target this collector holds.
struct Held {
    ledger: Ledger,
    target_id: i64,
    lost: CancellationToken,
    /// Events arrived since the last disconnect (for the metrics).
    connected: bool,
    /// The agent whose record this is (`None`: keyed by the address).
    agent: Option<Agent>,
}

/// A commit sent to the store, as its task gives it back.
struct Flight {
    store: Store,
    batch: Batch,
    /// The targets of the batch's writes, in their order.
    names: Vec<String>,
    result: Result<Vec<Outcome>, StoreError>,
}

pub struct Writer {
    /// The store, while no commit is in flight (see [`Writer::settle`]).
    store: Option<Store>,
    /// The commit in flight, which holds the store until it is settled.
    in_flight: Option<JoinHandle<Flight>>,
    /// Cancelled when the store's connection ends (PostgreSQL).
    store_ended: Option<CancellationToken>,
    /// A failed commit was given up on, stopping: nothing more is sent.
    gave_up: bool,
    url: StoreUrl,
    settings: Settings,
    metrics: Arc<Metrics>,
    held: HashMap<String, Held>,
    /// Claims of targets another collector holds (or whose agent is
    /// followed through another address, or whose identity another agent
    /// has), retried on a timer.
    waiting: Vec<Claim>,
    /// The last problem told about each target (said once, not per retry).
    told: HashMap<String, String>,
    /// Who held each waiting target when last looked at (PostgreSQL).
    holders: HashMap<String, String>,
    /// Targets taken from another collector, by whom they were taken
    /// from, until their first connection says so.
    taken_over: HashMap<String, String>,
    /// Targets that lost their agent while another address of it stands
    /// by: let go after the next flush, so that the other is followed.
    hand_over: Vec<String>,
    /// Events applied to the ledgers since their writes were last taken.
    gathered: usize,
    /// Rows stored since memory was last given back.
    stored_since_trim: u64,
    /// When to give memory back next (set once a burst is stored).
    trim_at: Option<Instant>,
}

impl Writer {
    pub fn new(store: Store, url: StoreUrl, settings: Settings, metrics: Arc<Metrics>) -> Writer {
        metrics.set_ready(true);
        Writer {
            store_ended: store.ended(),
            gave_up: false,
            store: Some(store),
            in_flight: None,
            url,
            settings,
            metrics,
            held: HashMap::new(),
            waiting: Vec::new(),
            told: HashMap::new(),
            holders: HashMap::new(),
            taken_over: HashMap::new(),
            hand_over: Vec::new(),
            gathered: 0,
            stored_since_trim: 0,
            trim_at: None,
        }
    }

    /// Runs until `shutdown` (or until every sender is gone), then writes
    /// what it holds.
    pub async fn run(
        mut self,
        mut deliveries: mpsc::Receiver<Delivery>,
        mut requests: mpsc::UnboundedReceiver<Request>,
        shutdown: CancellationToken,
    ) {
        let mut claim_tick = interval(self.settings.claim_interval);
        claim_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut prune_tick = interval(PRUNE_EVERY);
        prune_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                // The commit in flight is settled as soon as it ends, not
                // with the next delivery.
                landed = landing(&mut self.in_flight) => {
                    self.in_flight = None;
                    let done = self.land(landed, &shutdown).await;
                    // What arrived meanwhile goes to the store at once.
                    self.flush(&shutdown).await;
                    drop(done);
                }
                // The connection went: opened again now, not at the next
                // write (an idle collector's next write is the next
                // heartbeat, up to 30 s away), so that its targets are
                // claimed again at once.
                () = ended(&self.store_ended) => {
                    self.settle(&shutdown).await;
                    if self.store.as_ref().is_some_and(Store::is_closed) {
                        self.reopen(&shutdown).await;
                    }
                }
                request = requests.recv() => match request {
                    Some(request) => {
                        // Whatever a released subscription sent is stored
                        // before its target is given out again.
                        while let Ok(d) = deliveries.try_recv() {
                            self.deliver(d);
                        }
                        self.flush(&shutdown).await;
                        self.settle(&shutdown).await;
                        // Every request waiting now, so that claims made
                        // together (a collector starting, or many targets
                        // let go at once) go to the store together.
                        let mut batch = vec![request];
                        while let Ok(request) = requests.try_recv() {
                            batch.push(request);
                        }
                        self.requests(batch).await;
                    }
                    None => break,
                },
                delivery = deliveries.recv() => match delivery {
                    Some(d) => {
                        // Deliveries are applied while the commit in
                        // flight runs; the next commit is sent once it
                        // has ended, or waits for it once BATCH_EVENTS
                        // are gathered. With none in flight, what arrived
                        // goes at once: the store does not wait for a
                        // full batch (a backlog's first commit waited
                        // 0.2 s for one), and while it commits the next
                        // batch grows as large as the commit is slow.
                        self.gathered += self.deliver(d);
                        while self.gathered < BATCH_EVENTS
                            && self.in_flight.is_some()
                            && !self.landed()
                        {
                            match deliveries.try_recv() {
                                Ok(d) => self.gathered += self.deliver(d),
                                Err(_) => break,
                            }
                        }
                        if self.in_flight.is_none() || self.landed() || self.gathered >= BATCH_EVENTS {
                            self.flush(&shutdown).await;
                        }
                        self.hand_over(&shutdown).await;
                    }
                    None => break,
                },
                _ = claim_tick.tick(), if !self.waiting.is_empty() => {
                    self.settle(&shutdown).await;
                    self.retry_claims().await;
                }
                _ = prune_tick.tick(), if self.settings.retain.is_some() => {
                    self.settle(&shutdown).await;
                    self.prune().await;
                }
                () = sleep_until_or_never(self.trim_at) => self.give_back(),
            }
        }
        // Stopping: what already arrived is written (what did not is
        // fetched again from the stored cursors next time), unless the
        // store keeps failing for longer than STOP_GRACE.
        while let Ok(d) = deliveries.try_recv() {
            self.deliver(d);
        }
        let give_up = CancellationToken::new();
        let timer = tokio::spawn({
            let give_up = give_up.clone();
            async move {
                tokio::time::sleep(STOP_GRACE).await;
                give_up.cancel();
            }
        });
        self.settle(&give_up).await;
        self.flush(&give_up).await;
        self.settle(&give_up).await;
        timer.abort();
    }

    /// Notes one delivery; returns how many events it carried.
    fn deliver(&mut self, delivery: Delivery) -> usize {
        match delivery {
            Delivery::Events {
                host,
                target,
                events,
                ..
            } => {
                let Some(held) = self.held.get_mut(&*target) else {
                    // From a subscription whose claim was just lost.
                    return 0;
                };
                if !held.connected {
                    held.connected = true;
                    self.metrics.connected(&target, &host, true);
                }
                held.ledger.set_host(&host);
                if let Some(mismatches) = held.ledger.apply(&events) {
                    for m in &mismatches {
                        eprintln!(
                            "routewatch collect: {target} ({host}): warning: digest mismatch at {}:{}: {m}",
                            held.ledger.cursor().stream_id,
                            held.ledger.cursor().seq
                        );
                    }
                    eprintln!(
                        "routewatch collect: {target} ({host}): the record differs from the agent's; starting over from a fresh snapshot (a gap with reason \"digest mismatch\" is recorded)"
                    );
                    self.settings.restarts.restart(&target);
                }
                events.len()
            }
            Delivery::Connected {
                host,
                target,
                resume_from,
                ..
            } => {
                self.metrics.connected(&target, &host, true);
                let from = || match &resume_from {
                    Some(c) => format!("resuming after {}:{}", c.stream_id, c.seq),
                    None => "from a snapshot".into(),
                };
                if let Some(holder) = self.taken_over.remove(&*target) {
                    eprintln!(
                        "routewatch collect: {target} ({host}): connected, taken over from {holder}, {}",
                        from()
                    );
                } else if self.told.remove(&*target).is_some() {
                    eprintln!(
                        "routewatch collect: {target} ({host}): connected again, {}",
                        from()
                    );
                }
                0
            }
            Delivery::Disconnected {
                host,
                target,
                error,
                retry_in,
            } => {
                self.metrics.connected(&target, &host, false);
                if let Some(held) = self.held.get_mut(&*target) {
                    held.connected = false;
                    // Another address of the agent stands by: follow it
                    // there rather than wait for this one.
                    let key = held.agent.as_ref().map(|a| a.key.as_str());
                    let standby = key.is_some()
                        && self.waiting.iter().any(|c| {
                            c.agent.as_ref().map(|a| a.key.as_str()) == key
                                && self
                                    .told
                                    .get(&c.name)
                                    .is_some_and(|t| t.starts_with(STANDS_BY))
                        });
                    if standby && !self.hand_over.iter().any(|n| **n == *target) {
                        self.hand_over.push(target.to_string());
                    }
                }
                if self.told.get(&*target) != Some(&error) {
                    eprintln!(
                        "routewatch collect: {target} ({host}): {error}; retrying with backoff, first in {:.1}s (said again when the error changes)",
                        retry_in.as_secs_f64()
                    );
                    self.told.insert(target.to_string(), error);
                }
                0
            }
            Delivery::Failed(e) => {
                eprintln!("routewatch collect: {e}");
                0
            }
            Delivery::Added { .. } | Delivery::Ended { .. } => 0,
        }
    }

    /// The store, with no commit in flight (see [`Writer::settle`]).
    fn store(&mut self) -> &mut Store {
        self.store
            .as_mut()
            .expect("the commit in flight is settled before the store is used")
    }

    /// Takes every target's pending rows and sends them to the store in a
    /// task of its own, without waiting for them: they are settled by the
    /// next flush, by whatever else needs the store, or as soon as they
    /// are committed. The commit in flight, if any, is settled first, but
    /// only once the new writes are taken and ready (encoded for
    /// PostgreSQL), which overlaps it too; those of targets given up as it
    /// is settled are dropped.
    async fn flush(&mut self, shutdown: &CancellationToken) {
        self.gathered = 0;
        let mut writes: Vec<Write> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for (name, held) in &mut self.held {
            if let Some(write) = held.ledger.take() {
                writes.push(write);
                names.push(name.clone());
            }
        }
        let mut batch = (!writes.is_empty()).then(|| Batch::new(&self.url, writes));
        let done = self.settle(shutdown).await;
        if self.gave_up {
            // Stopping with a store that still fails: the writes taken
            // are not sent (each would be refused, its cursor expected
            // where the failed write left it); the agents send them again
            // from the stored cursors next time.
            return;
        }
        if let Some(batch) = &mut batch {
            // A target lost, or given up with the store's connection:
            // claimed again from its stored cursor, with a new ledger.
            let held = &self.held;
            let kept: Vec<bool> = batch
                .writes()
                .iter()
                .zip(&names)
                .map(|(w, name)| held.get(name).is_some_and(|h| h.target_id == w.target_id))
                .collect();
            batch.keep(&kept);
            crate::store::keep_marked(&mut names, &kept);
        }
        if let Some(batch) = batch.filter(|b| !b.writes().is_empty()) {
            let mut store = self.store.take().expect("no commit in flight");
            self.in_flight = Some(tokio::spawn(async move {
                let result = store.commit_batch(&batch).await;
                Flight {
                    store,
                    batch,
                    names,
                    result,
                }
            }));
        }
        // The rows of the commit settled are freed while the next one
        // runs.
        drop(done);
    }

    /// Whether the commit in flight has ended (and waits to be settled).
    fn landed(&self) -> bool {
        self.in_flight.as_ref().is_some_and(JoinHandle::is_finished)
    }

    /// Waits for the commit in flight, if any, and handles its outcome;
    /// a failing store is retried until it works or `shutdown`. Returns
    /// the writes settled, for the caller to drop when it suits it.
    async fn settle(&mut self, shutdown: &CancellationToken) -> Vec<Write> {
        match self.in_flight.take() {
            Some(flight) => self.land(flight.await, shutdown).await,
            None => Vec::new(),
        }
    }

    /// Handles the end of a commit: takes the store back, notes what was
    /// stored, gives up the targets whose writes were refused, and retries
    /// the same writes, in the same order, while the store fails.
    async fn land(
        &mut self,
        landed: Result<Flight, JoinError>,
        shutdown: &CancellationToken,
    ) -> Vec<Write> {
        let Flight {
            store,
            batch,
            names,
            mut result,
        } = match landed {
            Ok(flight) => flight,
            // The commit panicked (the store went with it): so does the
            // writer, as it would have with the commit awaited here.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        self.store = Some(store);
        let mut delay = Duration::from_millis(200);
        loop {
            match result {
                Ok(outcomes) => {
                    let writes = batch.into_writes();
                    self.metrics.committed();
                    self.stored_since_trim += writes.iter().map(|w| w.rows() as u64).sum::<u64>();
                    if self.stored_since_trim >= TRIM_AFTER_ROWS && self.trim_at.is_none() {
                        self.trim_at = Some(Instant::now() + TRIM_DELAY);
                    }
                    let now = now_unix_nano();
                    for ((write, outcome), name) in writes.iter().zip(outcomes).zip(&names) {
                        match outcome {
                            Outcome::Committed => {
                                let lag = write.last_seen.map_or(0.0, |t| (now - t) as f64 / 1e9);
                                self.metrics.stored(
                                    name,
                                    write.events.len() as u64,
                                    write.snapshots,
                                    write.gaps.len() as u64,
                                    lag,
                                );
                                for gap in &write.gaps {
                                    eprintln!(
                                        "routewatch collect: {name}: gap recorded: {} (the history between {}:{} and {}:{} is not exact)",
                                        gap.reason, gap.from.stream_id, gap.from.seq, gap.to.stream_id, gap.to.seq
                                    );
                                }
                            }
                            Outcome::Lost => {
                                // Only the ledger that took this write: a
                                // target let go and claimed again since
                                // starts from the stored cursor anyway.
                                if self
                                    .held
                                    .get(name)
                                    .is_some_and(|h| h.target_id == write.target_id)
                                {
                                    self.lose(name, "another collector wrote to it").await;
                                }
                            }
                        }
                    }
                    return writes;
                }
                Err(e) => {
                    let what = format!(
                        "cannot write to {}: {e} (nothing is lost: cursors move only with their rows)",
                        self.url
                    );
                    if !self.wait_to_retry(&what, &mut delay, shutdown).await {
                        self.gave_up = true;
                        return batch.into_writes();
                    }
                    if self.store().is_closed() {
                        // The locks went with the connection: every target
                        // is claimed again, from the cursors stored, and
                        // these writes are dropped with their ledgers.
                        self.reopen(shutdown).await;
                        return batch.into_writes();
                    }
                    result = self.store().commit_batch(&batch).await;
                }
            }
        }
    }

    /// The store's connection is gone: open it again, and give up every
    /// target (their claims are asked for again).
    async fn reopen(&mut self, shutdown: &CancellationToken) {
        let names: Vec<String> = self.held.keys().cloned().collect();
        for name in names {
            self.lose(&name, "the store's connection was lost").await;
        }
        let mut delay = Duration::from_millis(500);
        loop {
            match Store::open(&self.url).await {
                Ok(store) => {
                    self.store_ended = store.ended();
                    self.store = Some(store);
                    self.metrics.set_ready(true);
                    eprintln!("routewatch collect: {} is back", self.url);
                    return;
                }
                Err(e) => {
                    let what = format!("cannot open {}: {e}", self.url);
                    if !self.wait_to_retry(&what, &mut delay, shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    /// Counts and reports a store failure, then waits `delay` (doubled
    /// for next time, up to [`MAX_RETRY`]); false when stopping instead.
    async fn wait_to_retry(
        &self,
        what: &str,
        delay: &mut Duration,
        shutdown: &CancellationToken,
    ) -> bool {
        self.metrics.store_error();
        eprintln!(
            "routewatch collect: {what}; retrying in {:.1}s",
            delay.as_secs_f64()
        );
        let waited = tokio::select! {
            () = tokio::time::sleep(*delay) => true,
            () = shutdown.cancelled() => false,
        };
        *delay = (*delay * 2).min(MAX_RETRY);
        waited
    }

    /// Stops following `name`, if it is still followed: its subscription
    /// stops and asks again.
    async fn lose(&mut self, name: &str, why: &str) {
        self.taken_over.remove(name);
        if let Some(held) = self.held.remove(name) {
            held.lost.cancel();
            let _ = self.store().release(held.target_id).await;
            self.metrics.lost();
            self.metrics.forget(name);
            eprintln!("routewatch collect: {name}: given up ({why}); claiming it again");
        }
        self.count_targets();
    }

    /// Answers `requests` in their order; the claims among them go to the
    /// store at the end, in one round.
    async fn requests(&mut self, requests: Vec<Request>) {
        let mut claims: Vec<Claim> = Vec::new();
        for request in requests {
            match request {
                Request::Claim { name, agent, reply } => claims.push(Claim { name, agent, reply }),
                Request::Release { name } => {
                    claims.retain(|c| c.name != name);
                    self.waiting.retain(|c| c.name != name);
                    self.holders.remove(&name);
                    self.taken_over.remove(&name);
                    if let Some(held) = self.held.remove(&name) {
                        let _ = self.store().release(held.target_id).await;
                        self.metrics.forget(&name);
                    }
                }
            }
        }
        self.claim(claims).await;
        self.count_targets();
    }

    /// Lets go of the targets in [`Writer::hand_over`] (their rows are
    /// stored), and claims at once the addresses standing by for them,
    /// which continue from the stored cursor. The address let go is
    /// claimed again by its subscription, and stands by in turn once its
    /// agent answers there again.
    async fn hand_over(&mut self, shutdown: &CancellationToken) {
        if self.hand_over.is_empty() {
            return;
        }
        // Their rows are stored before they are let go.
        self.flush(shutdown).await;
        self.settle(shutdown).await;
        for name in std::mem::take(&mut self.hand_over) {
            if let Some(held) = self.held.remove(&name) {
                held.lost.cancel();
                let _ = self.store().release(held.target_id).await;
                self.metrics.forget(&name);
                let host = held.agent.map(|a| a.host).unwrap_or_default();
                eprintln!(
                    "routewatch collect: {name} ({host}) is unreachable and another address of its agent stands by: following the agent there"
                );
            }
        }
        self.count_targets();
        self.retry_claims().await;
    }

    async fn retry_claims(&mut self) {
        // Before the claims: a target let go in between is taken from the
        // collector that held it.
        let names: Vec<String> = self.waiting.iter().map(|c| c.name.clone()).collect();
        self.look_at_holders(&names).await;
        let waiting = std::mem::take(&mut self.waiting);
        self.claim(waiting).await;
        self.count_targets();
    }

    /// Notes who holds `names` (one query for all of them); a target let
    /// go since keeps its last holder.
    async fn look_at_holders(&mut self, names: &[impl AsRef<str>]) {
        match self.store().holders().await {
            Ok(mut holders) => {
                for name in names {
                    if let Some(holder) = holders.remove(name.as_ref()) {
                        self.holders.insert(name.as_ref().to_owned(), holder);
                    }
                }
            }
            Err(e) => {
                self.metrics.store_error();
                eprintln!(
                    "routewatch collect: {}: cannot tell who holds the targets this collector waits for: {e}",
                    self.url
                );
            }
        }
    }

    /// Claims the targets of `claims` in one round: each one this
    /// collector can hold now is granted, the others wait for the next
    /// [`Settings::claim_interval`].
    async fn claim(&mut self, claims: Vec<Claim>) {
        let claims: Vec<Claim> = claims
            .into_iter()
            .filter(|c| !c.reply.is_closed())
            .collect();
        let claims = self.one_record_per_agent(claims);
        if claims.is_empty() {
            return;
        }
        let started = Instant::now();
        // Each claim's record: its agent's (found by identity, adopting
        // the record of the address it is reached at when that has none
        // yet), or the address's.
        let mut names: Vec<String> = Vec::with_capacity(claims.len());
        let mut found: Vec<Claim> = Vec::with_capacity(claims.len());
        for claim in claims {
            let Some(agent) = &claim.agent else {
                names.push(claim.name.clone());
                found.push(claim);
                continue;
            };
            match self.store().agent_record(&agent.key, &claim.name).await {
                Ok(record) => {
                    if record.adopted {
                        eprintln!(
                            "routewatch collect: {} (agent {}): the record of {} is now keyed by the agent's identity",
                            agent.host, agent.key, claim.name
                        );
                    }
                    names.push(record.name);
                    found.push(claim);
                }
                Err(e) => {
                    self.metrics.store_error();
                    eprintln!(
                        "routewatch collect: {}: cannot find the record of {} (agent {}): {e}; retrying",
                        self.url, claim.name, agent.key
                    );
                    self.waiting.push(claim);
                }
            }
        }
        let claims = found;
        if claims.is_empty() {
            return;
        }
        let claimed = match self.store().claim_many(&names).await {
            Ok(claimed) => claimed,
            Err(e) => {
                self.metrics.store_error();
                eprintln!(
                    "routewatch collect: {}: cannot claim {} targets: {e}; retrying",
                    self.url,
                    names.len()
                );
                self.waiting.extend(claims);
                return;
            }
        };
        let elapsed = started.elapsed().as_secs_f64();
        let (mut granted, mut taken_over) = (0, 0);
        let mut refused = Vec::new();
        for (claim, claimed) in claims.into_iter().zip(claimed) {
            match claimed {
                Some((row, open)) => {
                    granted += 1;
                    if let Some(agent) = &claim.agent {
                        self.note_address(row.id, &claim.name, agent).await;
                    }
                    taken_over += usize::from(self.grant(claim, &row, open, elapsed));
                }
                None => refused.push(claim),
            }
        }
        self.metrics.claimed(granted, taken_over);
        let untold: Vec<String> = refused
            .iter()
            .filter(|c| self.told.get(&c.name).map(String::as_str) != Some(HELD_ELSEWHERE))
            .map(|c| c.name.clone())
            .collect();
        if !untold.is_empty() {
            self.look_at_holders(&untold).await;
            for name in untold {
                let holder = self
                    .holders
                    .get(&name)
                    .map_or_else(|| "another collector".to_owned(), Clone::clone);
                eprintln!("routewatch collect: {name} is held by {holder} (a collector that died holds it until the server notices); taking it over when it is let go");
                self.told.insert(name, HELD_ELSEWHERE.into());
            }
        }
        self.waiting.extend(refused);
    }

    /// Notes on the record of `agent`, now held, that it is reached at
    /// `address` (once held, so that only the collector following it
    /// moves its address), and says so when the address changed.
    async fn note_address(&mut self, target_id: i64, address: &str, agent: &Agent) {
        match self.store().note_address(target_id, address, now_unix_nano()).await {
            Ok(Some(before)) => eprintln!(
                "routewatch collect: {} (agent {}) is now reached at {address}, no longer at {before}: its record continues (the new address is noted in fleet_hosts)",
                agent.host, agent.key
            ),
            Ok(None) => {}
            Err(e) => {
                // The note is not the record: following goes on.
                self.metrics.store_error();
                eprintln!(
                    "routewatch collect: {}: cannot note that {} (agent {}) is reached at {address}: {e}",
                    self.url, agent.host, agent.key
                );
            }
        }
    }

    /// Claims whose agent this collector follows already, through
    /// another address, wait (the agent is collected once); claims whose
    /// agent reports the identity of another agent followed here (another
    /// stream) are refused loudly and wait too: two agents claiming one
    /// identity are never merged into one record. The others are returned.
    fn one_record_per_agent(&mut self, claims: Vec<Claim>) -> Vec<Claim> {
        // The agents followed, and those of this round, by identity.
        let mut followed: HashMap<String, (String, Agent)> = self
            .held
            .iter()
            .filter_map(|(name, held)| {
                let agent = held.agent.clone()?;
                Some((agent.key.clone(), (name.clone(), agent)))
            })
            .collect();
        let mut out = Vec::with_capacity(claims.len());
        for claim in claims {
            let Some(agent) = &claim.agent else {
                out.push(claim);
                continue;
            };
            let Some((other, first)) = followed.get(&agent.key) else {
                followed.insert(agent.key.clone(), (claim.name.clone(), agent.clone()));
                out.push(claim);
                continue;
            };
            if *other == claim.name {
                out.push(claim);
                continue;
            }
            // The stream of the agent followed may have moved on since its
            // claim (a restart): what the record holds counts as well.
            let same_stream = first.stream_id == agent.stream_id
                || self
                    .held
                    .get(other)
                    .is_some_and(|h| *h.ledger.cursor().stream_id == *agent.stream_id);
            if same_stream {
                let told = format!("{STANDS_BY} {other}");
                if self.told.get(&claim.name) != Some(&told) {
                    eprintln!(
                        "routewatch collect: {} is {} (agent {}), already followed at {other}: collected once, through {other}; {} stands by",
                        claim.name, agent.host, agent.key, claim.name
                    );
                    self.told.insert(claim.name.clone(), told);
                }
            } else {
                let told = format!("identity conflict with {other}");
                if self.told.get(&claim.name) != Some(&told) {
                    self.metrics.identity_conflict();
                    let message = format!(
                        "REFUSED {}: its agent ({}, stream {}) claims identity {}, which the agent at {other} ({}, stream {}) already has: two agents claim one identity, and their records are never merged. Give each agent its own --agent-id (machines cloned from one image share /etc/machine-id). {} is not collected until then",
                        claim.name, agent.host, agent.stream_id, agent.key, first.host, first.stream_id, claim.name
                    );
                    eprintln!("routewatch collect: error: {message}");
                    self.told.insert(claim.name.clone(), told);
                }
            }
            self.waiting.push(claim);
        }
        out
    }

    /// Follows `claim`'s target, granted with its stored row and current
    /// versions (loaded in `elapsed` seconds with the others of its
    /// round); true when it was taken from another collector.
    fn grant(
        &mut self,
        claim: Claim,
        row: &TargetRow,
        open: Vec<OpenVersion>,
        elapsed: f64,
    ) -> bool {
        let Claim { name, agent, reply } = claim;
        let name = name.as_str();
        let ledger = Ledger::new(row, open);
        let cursor = ledger.cursor().is_set().then(|| Cursor {
            stream_id: ledger.cursor().stream_id.to_string(),
            seq: ledger.cursor().seq as u64,
        });
        let from = match &cursor {
            Some(c) => format!(
                "from {}:{} ({} current objects loaded in {elapsed:.1}s)",
                c.stream_id,
                c.seq,
                ledger.current_len(),
            ),
            None => "from a snapshot (no record of it yet)".into(),
        };
        let holder = self.holders.remove(name);
        let taken_over = self.told.get(name).map(String::as_str) == Some(HELD_ELSEWHERE);
        // Standing by for another address, or refused, before.
        if !taken_over
            && self
                .told
                .get(name)
                .is_some_and(|t| t.starts_with(STANDS_BY) || t.starts_with("identity conflict"))
        {
            self.told.remove(name);
            eprintln!(
                "routewatch collect: {name}: no other address of its agent's identity is followed now"
            );
        }
        if taken_over {
            self.told.remove(name);
            let holder = holder.unwrap_or_else(|| "another collector".into());
            eprintln!("routewatch collect: following {name} {from}, taken over from {holder}");
            self.taken_over.insert(name.to_owned(), holder);
        } else {
            eprintln!("routewatch collect: following {name} {from}");
        }
        let lost = CancellationToken::new();
        self.held.insert(
            name.to_owned(),
            Held {
                ledger,
                target_id: row.id,
                lost: lost.clone(),
                connected: false,
                agent,
            },
        );
        let _ = reply.send(Granted { cursor, lost });
        taken_over
    }

    async fn prune(&mut self) {
        let Some(retain) = self.settings.retain else {
            return;
        };
        let before = now_unix_nano().saturating_sub(retain.as_nanos() as i64);
        match self.store().prune(before).await {
            Ok(pruned) => {
                let rows = pruned.versions + pruned.events + pruned.gaps;
                self.metrics.pruned(rows);
                if rows > 0 {
                    eprintln!(
                        "routewatch collect: --retain removed {} closed versions, {} log rows and {} gaps older than {}",
                        pruned.versions,
                        pruned.events,
                        pruned.gaps,
                        crate::printer::rfc3339(before)
                    );
                }
            }
            Err(e) => {
                self.metrics.store_error();
                eprintln!(
                    "routewatch collect: pruning {} failed: {e}; trying again in an hour",
                    self.url
                );
            }
        }
    }

    /// Returns the memory a burst left free to the system. A burst's
    /// writes (a snapshot held back until its Sync, up to [`BATCH_EVENTS`]
    /// events a transaction, their rows, the deliveries they came in) are
    /// freed once committed, but glibc gives freed memory back only from
    /// the top of its heaps, so a collector kept its peak for ever.
    /// Measured with a backlog of 150,000 changes (a resync and a
    /// snapshot of 50,000 routes): 72 MB idle before, 44 MB with this,
    /// where a collector started afresh on the same record takes 31 MB.
    /// Asked at most once per [`TRIM_DELAY`] while a burst lasts, and
    /// once after it.
    ///
    /// The binary allocates through mimalloc, which keeps freed pages for
    /// a while and gives them back as it goes on allocating, which an idle
    /// collector does not: `mi_collect(true)` gives them back now. The
    /// same backlog: 145 MB idle without it, 48 MB with it, where a fresh
    /// collector takes 49 MB. SQLite allocates from glibc's heap itself:
    /// malloc_trim for that.
    fn give_back(&mut self) {
        self.trim_at = None;
        self.stored_since_trim = 0;
        // SAFETY: mi_collect has no preconditions; it only frees what
        // mimalloc holds unused (nothing, where it is not the allocator).
        unsafe {
            libmimalloc_sys::mi_collect(true);
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim has no preconditions; it only returns free
        // memory to the system.
        unsafe {
            libc::malloc_trim(0);
        }
    }

    fn count_targets(&self) {
        self.metrics.targets(self.held.len(), self.waiting.len());
    }
}

/// Waits for the commit in flight to end, or for ever when there is none.
async fn landing(in_flight: &mut Option<JoinHandle<Flight>>) -> Result<Flight, JoinError> {
    match in_flight {
        Some(flight) => flight.await,
        None => std::future::pending().await,
    }
}

/// Waits until the store's connection ends, or for ever when it has none.
async fn ended(token: &Option<CancellationToken>) {
    match token {
        Some(token) => token.cancelled().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`, or for ever when there is none.
async fn sleep_until_or_never(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
