//! The netlink source: one per network namespace, the journal's only writer.
//!
//! It reads notifications and dump replies from one socket, in the kernel's
//! order, applies them to the state table and publishes the changes. Where
//! the kernel may have changed routes without a message -- a netlink overflow
//! (ENOBUFS), a message that did not decode, the silent IPv4 flushes on link
//! down / carrier loss / link deletion / address removal -- it re-dumps
//! links, nexthop objects, rules and routes into a fresh table, keeps applying
//! notifications to both tables while the dump runs, and publishes the
//! differences with origin `reconcile`. Triggers are coalesced: a burst of
//! link events costs one re-dump.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use routewatch_proto::v1::Origin;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::attribution::early::Early;
use crate::attribution::{Budget, Resolver, ResolverStats};
use crate::cause::Cause;
use crate::decode::{decode_datagram, Decoded, Message};
use crate::error::AgentError;
use crate::journal::{now_unix_nano, Core, Journal};
use crate::metrics::Durations;
use crate::persist::StateDir;
use crate::ratelog::RateLimited;
use crate::socket::{DumpKind, NetlinkSocket, Received};
use crate::state::{Recheck, StateTable};
use crate::unknown::UnknownAttributes;

/// Datagram space kept free before each receive; dump replies are at most
/// 32 KiB on current kernels.
const MIN_SPACE: usize = 64 * 1024;
/// Receive buffer for one batch.
const BATCH_BYTES: usize = 1024 * 1024;
/// Most datagrams read before the batch is applied.
const MAX_DATAGRAMS: usize = 1024;
/// Wait after a flush trigger, so that one burst of link events (and the
/// kernel's own work behind them) costs one re-dump.
const COALESCE: Duration = Duration::from_millis(20);

/// How long the source stays awake after a batch whose requester had to be
/// looked up (when it has no early reader: see `attribution::early`), and
/// the share of the time it may spend so.
const STAY_AWAKE: Duration = Duration::from_millis(2);
const STAY_AWAKE_SHARE: f64 = 0.25;

const ENOBUFS: i32 = libc::ENOBUFS;
const EOPNOTSUPP: i32 = libc::EOPNOTSUPP;

/// Counters of everything the sources did to keep the picture exact
/// (shared by the sources of every namespace).
#[derive(Debug, Default)]
pub struct SourceStats {
    pub overflows: AtomicU64,
    pub decode_failures: AtomicU64,
    pub truncated: AtomicU64,
    pub dumps: AtomicU64,
    pub reconcile_changes: AtomicU64,
    /// Attributes received but not decoded.
    pub unknown: UnknownAttributes,
    /// Dumps by the reason that started them.
    dump_reasons: Mutex<BTreeMap<&'static str, u64>>,
    /// How long dumps took.
    pub dump_seconds: DumpDurations,
    /// What finding who made each change cost and found.
    pub attribution: Arc<ResolverStats>,
}

/// [`crate::metrics::DUMP_DURATION`]'s observations.
#[derive(Debug, Clone)]
pub struct DumpDurations(Durations);

impl Default for DumpDurations {
    fn default() -> DumpDurations {
        DumpDurations(Durations::new(Durations::DUMPS))
    }
}

impl std::ops::Deref for DumpDurations {
    type Target = Durations;
    fn deref(&self) -> &Durations {
        &self.0
    }
}

impl SourceStats {
    fn count_dump(&self, reason: &'static str) {
        self.dumps.fetch_add(1, Ordering::Relaxed);
        let mut reasons = self.dump_reasons.lock().expect("source stats lock");
        *reasons.entry(reason).or_default() += 1;
    }

    /// Dumps so far, by the reason that started them.
    pub fn dump_reasons(&self) -> BTreeMap<&'static str, u64> {
        self.dump_reasons.lock().expect("source stats lock").clone()
    }
}

struct Dump {
    seq: u32,
    started: Instant,
    phase: DumpKind,
    fresh: StateTable,
    /// Notifications were lost while this dump ran: its table cannot be
    /// trusted, start over.
    overflowed: bool,
    /// What the reconcile this dump ends in is told of its cause.
    cause: Arc<Cause>,
    /// Something asked for a re-dump while this one ran.
    again: Option<(&'static str, Arc<Cause>)>,
}

pub struct Source {
    socket: NetlinkSocket,
    /// The namespace this source watches, as its events name it.
    netns: Arc<str>,
    journal: Arc<Journal>,
    stats: Arc<SourceStats>,
    dump: Option<Dump>,
    next_seq: u32,
    ready: bool,
    /// The journal continues a stream from the state dir: the first dump
    /// is reconciled against it and the differences published.
    resumed: bool,
    state_dir: Option<Arc<StateDir>>,
    recheck_at: Option<(Instant, &'static str, Arc<Cause>)>,
    /// Finds who asked for each notification's change; `None` with
    /// attribution off.
    resolver: Option<Resolver>,
    /// Bounds the time spent awake after lookups ([`STAY_AWAKE`]).
    awake_budget: Budget,
    /// Turns true when the first dump is complete.
    dumped: watch::Sender<bool>,
}

impl Source {
    /// A source for namespace `netns` (whose socket this is). With
    /// `resumed`, its first dump is compared with the table the journal
    /// holds for `netns` (recovered from the state dir, or empty for a
    /// namespace that appeared while the agent ran) and the differences
    /// published; without, the dump becomes the table silently (nobody
    /// can have seen the stream yet). With `attribution`, each change of
    /// a notification says who asked for it.
    pub fn new(
        mut socket: NetlinkSocket,
        netns: Arc<str>,
        journal: Arc<Journal>,
        stats: Arc<SourceStats>,
        state_dir: Option<Arc<StateDir>>,
        resumed: bool,
        attribution: Option<Arc<ResolverStats>>,
    ) -> Source {
        let early = socket.take_early().and_then(|parts| {
            Early::spawn(parts, &netns)
                .map_err(|e| tracing::warn!(netns = &*netns, error = %e, "no early reader: short-lived requesters may be reported as exited"))
                .ok()
        });
        let resolver = attribution.map(|stats| Resolver::new(socket.take_diag(), stats, early));
        Source {
            resolver,
            awake_budget: Budget::new(STAY_AWAKE_SHARE, Duration::from_millis(100)),
            socket,
            netns,
            journal,
            stats,
            dump: None,
            next_seq: 1,
            ready: false,
            resumed,
            state_dir,
            recheck_at: None,
            dumped: watch::channel(false).0,
        }
    }

    /// Turns true when the first complete dump is in the journal.
    pub fn dumped(&self) -> watch::Receiver<bool> {
        self.dumped.subscribe()
    }

    /// Runs until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), AgentError> {
        let first = if self.resumed {
            "tables read again after a restart"
        } else {
            "initial dump"
        };
        self.start_dump("initial dump", Cause::new(None, first.into()))?;
        let mut buf: Vec<u8> = Vec::with_capacity(BATCH_BYTES);
        // Each datagram's place in `buf`, and when it was read.
        let mut bounds: Vec<(usize, usize, i64)> = Vec::new();
        let mut stay_awake_until: Option<std::time::Instant> = None;
        loop {
            buf.clear();
            bounds.clear();
            let mut overflow = false;
            let mut truncated = false;
            let recheck = self
                .recheck_at
                .as_ref()
                .filter(|_| self.dump.is_none())
                .map(|r| r.0);
            // Just after a requester that had to be looked up, the next
            // may follow within milliseconds and live no longer: a thread
            // woken from idle is often too late to see it, so the source
            // stays awake a little (other tasks still run between polls).
            let mut awake = false;
            if let Some(until) = stay_awake_until.take() {
                while !awake && std::time::Instant::now() < until && !shutdown.is_cancelled() {
                    match self.socket.try_recv(&mut buf) {
                        Ok(None) => tokio::task::yield_now().await,
                        received => {
                            let received = received.map(|r| r.expect("some"));
                            note(received, &mut bounds, &mut overflow, &mut truncated)?;
                            awake = true;
                        }
                    }
                }
                self.awake_budget
                    .refund(until.saturating_duration_since(std::time::Instant::now()));
            }
            if !awake {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = sleep_until(recheck.unwrap_or_else(Instant::now)), if recheck.is_some() => {
                        if let Some((_, reason, cause)) = self.recheck_at.take() {
                            self.start_dump(reason, cause)?;
                        }
                        continue;
                    }
                    received = self.socket.recv(&mut buf) => {
                        note(received, &mut bounds, &mut overflow, &mut truncated)?;
                    }
                }
            }
            // Take whatever else is queued, so one lock covers a whole burst.
            while bounds.len() < MAX_DATAGRAMS && buf.capacity() - buf.len() >= MIN_SPACE {
                match self.socket.try_recv(&mut buf) {
                    Ok(None) => break,
                    received => note(
                        received.map(|r| r.expect("some")),
                        &mut bounds,
                        &mut overflow,
                        &mut truncated,
                    )?,
                }
            }
            if overflow {
                self.stats.overflows.fetch_add(1, Ordering::Relaxed);
                static OVERFLOWS: RateLimited = RateLimited::new();
                if let Some(burst) = OVERFLOWS.check() {
                    tracing::warn!("netlink receive queue overflowed (ENOBUFS): notifications were lost; re-reading the tables{burst}");
                }
                self.request_recheck(
                    "netlink overflow (ENOBUFS)",
                    true,
                    true,
                    Cause::new(None, "kernel notification queue overflowed".into()),
                );
            }
            if truncated {
                self.stats.truncated.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    "a netlink datagram did not fit the receive buffer; re-reading the tables"
                );
                self.request_recheck(
                    "truncated netlink datagram",
                    true,
                    false,
                    Cause::new(
                        None,
                        "a netlink message did not fit the receive buffer".into(),
                    ),
                );
            }
            let decoded: Vec<_> = bounds
                .iter()
                .flat_map(|&(start, len, time)| {
                    decode_datagram(&buf[start..start + len])
                        .into_iter()
                        .map(move |d| (time, d))
                })
                .collect();
            self.process(decoded)?;
            // Only without an early reader: it is woken by the kernel
            // itself, sooner than a source kept awake.
            if self
                .resolver
                .as_ref()
                .is_some_and(|r| r.looked_up() && !r.has_early_reader())
                && self.awake_budget.available()
            {
                let now = std::time::Instant::now();
                self.awake_budget.spend(STAY_AWAKE);
                stay_awake_until = Some(now + STAY_AWAKE);
            }
        }
    }

    /// Applies what a burst of datagrams said; each change is stamped with
    /// the time its datagram was read (a burst read at once may hold
    /// thousands of changes that the kernel sent apart).
    fn process(
        &mut self,
        decoded: Vec<(i64, Result<Decoded, crate::error::DecodeFailure>)>,
    ) -> Result<(), AgentError> {
        // Who asked for what this batch announces: found before the lock
        // is taken, as a lookup may read /proc.
        if let Some(resolver) = self.resolver.as_mut() {
            resolver.begin_batch();
            let own = self.socket.port();
            for d in decoded.iter().filter_map(|(_, d)| d.as_ref().ok()) {
                if d.port != own {
                    resolver.cause(d.port);
                }
            }
        }
        let journal = self.journal.clone();
        let mut core = journal.lock();
        let mut changes = Vec::new();
        // (end, time): the changes before `end` were read at `time`.
        let mut times: Vec<(usize, i64)> = Vec::new();
        // (end, cause): likewise, who asked for them.
        let mut causes: Vec<(usize, Option<Arc<Cause>>)> = Vec::new();
        let mut scratch = Vec::new();
        for (time, item) in decoded {
            let d = match item {
                Ok(d) => d,
                Err(failure) => {
                    self.stats.decode_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(%failure, "netlink message failed to decode; re-reading the tables");
                    self.request_recheck(
                        "message failed to decode",
                        true,
                        false,
                        Cause::new(None, "a netlink message failed to decode".into()),
                    );
                    continue;
                }
            };
            self.stats.unknown.note(&d.message);
            let is_reply = d.port == self.socket.port()
                && self
                    .dump
                    .as_ref()
                    .is_some_and(|dump| dump.seq == d.sequence);
            if is_reply {
                // Keep stream order: what the notifications before this
                // reply changed goes out before any reconcile it completes.
                core.publish_caused(
                    &self.netns,
                    std::mem::take(&mut changes),
                    &std::mem::take(&mut times),
                    &std::mem::take(&mut causes),
                    Origin::Notification,
                );
                self.on_dump_reply(d.message, &mut core)?;
                continue;
            }
            if d.port == self.socket.port() && d.sequence != 0 {
                // A late reply to a dump we abandoned.
                continue;
            }
            let cause = self.resolver.as_mut().map(|r| r.cause(d.port));
            let happened = Happened::of(&d.message);
            // While a dump runs, notifications go to its table as well
            // (nothing is published from it); before the first dump
            // completes, only there.
            let recheck = match (&mut self.dump, self.ready) {
                (Some(dump), true) => {
                    dump.fresh.apply(d.message.clone(), &mut scratch);
                    scratch.clear();
                    core.table_mut(&self.netns).apply(d.message, &mut changes)
                }
                (Some(dump), false) => {
                    let recheck = dump.fresh.apply(d.message, &mut scratch);
                    scratch.clear();
                    recheck
                }
                (None, true) => core.table_mut(&self.netns).apply(d.message, &mut changes),
                (None, false) => Recheck::No,
            };
            let stamped = times.last().map_or(0, |l| l.0);
            if stamped < changes.len() {
                match times.last_mut() {
                    Some((end, t)) if *t == time => *end = changes.len(),
                    _ => times.push((changes.len(), time)),
                }
            }
            let caused = causes.last().map_or(0, |l| l.0);
            if caused < changes.len() {
                match causes.last_mut() {
                    Some((end, c)) if same(c, &cause) => *end = changes.len(),
                    _ => causes.push((changes.len(), cause.clone())),
                }
            }
            if let Recheck::Yes(reason) = recheck {
                tracing::debug!(reason, "kernel may have changed routes silently");
                let words = happened.words(reason);
                let cause = match cause {
                    Some(c) => c.with_reason(words),
                    None => Cause::new(None, words),
                };
                self.request_recheck(reason, false, false, cause);
            }
        }
        core.publish_caused(&self.netns, changes, &times, &causes, Origin::Notification);
        if let Some(dir) = self.state_dir.as_ref().filter(|d| d.wants_compaction()) {
            if let Err(e) = dir.compact(&core) {
                tracing::error!(error = %e, "cannot write the state dir");
            }
        }
        drop(core);
        self.journal.wake();
        Ok(())
    }

    fn on_dump_reply(&mut self, message: Message, core: &mut Core) -> Result<(), AgentError> {
        let Some(dump) = self.dump.as_mut() else {
            return Ok(());
        };
        match message {
            Message::Done => {}
            // A kernel without nexthop objects (or without policy routing)
            // refuses the request; nothing to dump then.
            Message::Error(code)
                if matches!(dump.phase, DumpKind::Nexthops | DumpKind::Rules)
                    && -code == EOPNOTSUPP => {}
            Message::Error(code) => {
                tracing::warn!(errno = -code, phase = ?dump.phase, "dump request failed; retrying");
                let cause = dump.cause.clone();
                self.dump = None;
                self.request_recheck("dump failed", false, false, cause);
                return Ok(());
            }
            other => {
                dump.fresh.insert_dumped(other);
                return Ok(());
            }
        }
        let next = match dump.phase {
            DumpKind::Links => Some(DumpKind::Nexthops),
            DumpKind::Nexthops => Some(DumpKind::Rules),
            DumpKind::Rules => Some(DumpKind::Routes),
            DumpKind::Routes => None,
        };
        if let Some(phase) = next {
            let seq = self.take_seq();
            let dump = self.dump.as_mut().expect("dump in progress");
            dump.phase = phase;
            dump.seq = seq;
            return self.send_dump(phase, seq);
        }
        let dump = self.dump.take().expect("dump in progress");
        if dump.overflowed {
            return self.start_dump(
                "notifications lost during the previous dump",
                Cause::new(None, "kernel notification queue overflowed".into()),
            );
        }
        let table = core.table_mut(&self.netns);
        if self.ready || self.resumed {
            let changes = table.reconcile(dump.fresh);
            if !changes.is_empty() {
                tracing::info!(
                    netns = %self.netns,
                    differences = changes.len(),
                    "reconciled with the kernel's tables"
                );
            }
            self.stats
                .reconcile_changes
                .fetch_add(changes.len() as u64, Ordering::Relaxed);
            core.publish_caused(
                &self.netns,
                changes,
                &[(usize::MAX, now_unix_nano())],
                &[(usize::MAX, Some(dump.cause.clone()))],
                Origin::Reconcile,
            );
        } else {
            *table = dump.fresh;
            table.end_dump();
            // Filled without changes: its digest is counted from it.
            core.recount(&self.netns);
        }
        self.stats
            .dump_seconds
            .observe(dump.started.elapsed().as_secs_f64());
        if !self.ready {
            self.ready = true;
            self.resumed = false;
            let table = core.table_mut(&self.netns);
            tracing::info!(
                netns = %self.netns,
                routes = table.route_count(),
                nexthops = table.nexthop_count(),
                rules = table.rule_count(),
                seq = core.last_seq(),
                "initial dump complete"
            );
            if let Some(dir) = &self.state_dir {
                if let Err(e) = dir.compact(core) {
                    tracing::error!(error = %e, "cannot write the state dir");
                }
            }
            self.dumped.send_replace(true);
        }
        if let Some((reason, cause)) = dump.again {
            self.request_recheck(reason, false, false, cause);
        }
        Ok(())
    }

    /// Asks for a re-dump: at once for overflows and decode failures, after a
    /// short pause for flush triggers.
    /// Triggers that come together make one re-read, whose reconcile names
    /// them all (see [`Cause::and`]).
    fn request_recheck(
        &mut self,
        reason: &'static str,
        now: bool,
        lost_notifications: bool,
        cause: Arc<Cause>,
    ) {
        if let Some(dump) = &mut self.dump {
            dump.overflowed |= lost_notifications;
            // What this dump finds may be this trigger's doing too.
            dump.cause = dump.cause.and(&cause);
            match &mut dump.again {
                Some((_, again)) => *again = again.and(&cause),
                none => *none = Some((reason, cause)),
            }
            return;
        }
        let at = Instant::now() + if now { Duration::ZERO } else { COALESCE };
        match &mut self.recheck_at {
            Some((when, _, first)) => {
                *first = first.and(&cause);
                *when = (*when).min(at);
            }
            slot => *slot = Some((at, reason, cause)),
        }
    }

    fn start_dump(&mut self, reason: &'static str, cause: Arc<Cause>) -> Result<(), AgentError> {
        tracing::debug!(netns = %self.netns, reason, "dumping links, nexthop objects, rules and routes");
        self.stats.count_dump(reason);
        let seq = self.take_seq();
        self.dump = Some(Dump {
            seq,
            started: Instant::now(),
            phase: DumpKind::Links,
            fresh: StateTable::new(),
            overflowed: false,
            cause,
            again: None,
        });
        self.send_dump(DumpKind::Links, seq)
    }

    fn send_dump(&self, kind: DumpKind, seq: u32) -> Result<(), AgentError> {
        self.socket
            .request_dump(kind, seq)
            .map_err(|source| AgentError::Netlink {
                step: "send dump request",
                source,
            })
    }

    fn take_seq(&mut self) -> u32 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1).max(1);
        seq
    }
}

/// Records one receive: a datagram's place in `buf`, or what went wrong.
fn note(
    received: std::io::Result<Received>,
    bounds: &mut Vec<(usize, usize, i64)>,
    overflow: &mut bool,
    truncated: &mut bool,
) -> Result<(), AgentError> {
    match received {
        Ok(Received::Datagram(n)) => {
            let end = bounds.last().map(|b| b.0 + b.1).unwrap_or(0);
            bounds.push((end, n, now_unix_nano()));
            Ok(())
        }
        Ok(Received::Truncated(_)) => {
            *truncated = true;
            Ok(())
        }
        Err(e) if e.raw_os_error() == Some(ENOBUFS) => {
            *overflow = true;
            Ok(())
        }
        Err(source) => Err(AgentError::Netlink {
            step: "receive",
            source,
        }),
    }
}

/// Whether two runs of changes have the same cause.
fn same(a: &Option<Arc<Cause>>, b: &Option<Arc<Cause>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// What a notification that may make the agent re-read the tables said,
/// kept for the reconcile's reason (the message itself goes to the table).
enum Happened {
    Link {
        name: String,
        up: bool,
        carrier: bool,
    },
    LinkDeleted(String),
    AddressRemoved(String),
    NexthopDeleted(u32),
    Other,
}

impl Happened {
    fn of(message: &Message) -> Happened {
        match message {
            Message::NewLink(l) => Happened::Link {
                name: l.name.clone(),
                up: l.up,
                carrier: l.carrier,
            },
            Message::DelLink(l) => Happened::LinkDeleted(l.name.clone()),
            Message::DelAddress(a) => Happened::AddressRemoved(a.clone()),
            Message::DelNexthop(nh) => Happened::NexthopDeleted(nh.id),
            _ => Happened::Other,
        }
    }

    /// The reconcile's reason in an operator's words, from the table's
    /// `reason` for wanting a re-read.
    fn words(&self, reason: &str) -> String {
        match self {
            Happened::Link { name, up, carrier } => match reason {
                "link state changed" if !up => format!("link {name} went down"),
                "link state changed" if !carrier => format!("link {name} lost carrier"),
                "link state changed" => format!("link {name} came up"),
                "link renamed" => format!("link renamed to {name}"),
                "vrf link added" => format!("vrf {name} added"),
                "vrf link changed" => format!("vrf {name} changed"),
                "link named by a rule appeared" => {
                    format!("link {name} appeared (a rule names it)")
                }
                other => format!("link {name}: {other}"),
            },
            Happened::LinkDeleted(name) => format!("link {name} deleted"),
            Happened::AddressRemoved(a) => format!("address {a} removed"),
            Happened::NexthopDeleted(id) => format!("nexthop {id} deleted"),
            Happened::Other => reason.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Happened;

    #[test]
    fn a_reconcile_s_reason_reads_as_an_operator_says_it() {
        let link = |up, carrier| Happened::Link {
            name: "v0".into(),
            up,
            carrier,
        };
        assert_eq!(
            link(false, false).words("link state changed"),
            "link v0 went down"
        );
        assert_eq!(
            link(true, false).words("link state changed"),
            "link v0 lost carrier"
        );
        assert_eq!(
            link(true, true).words("link state changed"),
            "link v0 came up"
        );
        assert_eq!(link(true, true).words("link renamed"), "link renamed to v0");
        assert_eq!(
            Happened::LinkDeleted("v2".into()).words("link deleted"),
            "link v2 deleted"
        );
        assert_eq!(
            Happened::AddressRemoved("198.18.0.1/24".into()).words("address removed"),
            "address 198.18.0.1/24 removed"
        );
        assert_eq!(
            Happened::NexthopDeleted(10).words("nexthop object deleted"),
            "nexthop 10 deleted"
        );
        assert_eq!(
            Happened::Other.words("delete of a route the table does not hold"),
            "delete of a route the table does not hold"
        );
    }
}
