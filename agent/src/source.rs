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
    /// Something asked for a re-dump while this one ran.
    again: Option<&'static str>,
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
    recheck_at: Option<(Instant, &'static str)>,
    /// Turns true when the first dump is complete.
    dumped: watch::Sender<bool>,
}

impl Source {
    /// A source for namespace `netns` (whose socket this is). With
    /// `resumed`, its first dump is compared with the table the journal
    /// holds for `netns` (recovered from the state dir, or empty for a
    /// namespace that appeared while the agent ran) and the differences
    /// published; without, the dump becomes the table silently (nobody
    /// can have seen the stream yet).
    pub fn new(
        socket: NetlinkSocket,
        netns: Arc<str>,
        journal: Arc<Journal>,
        stats: Arc<SourceStats>,
        state_dir: Option<Arc<StateDir>>,
        resumed: bool,
    ) -> Source {
        Source {
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
        self.start_dump("initial dump")?;
        let mut buf: Vec<u8> = Vec::with_capacity(BATCH_BYTES);
        // Each datagram's place in `buf`, and when it was read.
        let mut bounds: Vec<(usize, usize, i64)> = Vec::new();
        loop {
            buf.clear();
            bounds.clear();
            let mut overflow = false;
            let mut truncated = false;
            let recheck = self.recheck_at.filter(|_| self.dump.is_none());
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = sleep_until(recheck.map(|r| r.0).unwrap_or_else(Instant::now)), if recheck.is_some() => {
                    self.recheck_at = None;
                    self.start_dump(recheck.map(|r| r.1).unwrap_or("recheck"))?;
                    continue;
                }
                received = self.socket.recv(&mut buf) => {
                    note(received, &mut bounds, &mut overflow, &mut truncated)?;
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
                self.request_recheck("netlink overflow (ENOBUFS)", true, true);
            }
            if truncated {
                self.stats.truncated.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    "a netlink datagram did not fit the receive buffer; re-reading the tables"
                );
                self.request_recheck("truncated netlink datagram", true, false);
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
        }
    }

    /// Applies what a burst of datagrams said; each change is stamped with
    /// the time its datagram was read (a burst read at once may hold
    /// thousands of changes that the kernel sent apart).
    fn process(
        &mut self,
        decoded: Vec<(i64, Result<Decoded, crate::error::DecodeFailure>)>,
    ) -> Result<(), AgentError> {
        let journal = self.journal.clone();
        let mut core = journal.lock();
        let mut changes = Vec::new();
        // (end, time): the changes before `end` were read at `time`.
        let mut times: Vec<(usize, i64)> = Vec::new();
        let mut scratch = Vec::new();
        for (time, item) in decoded {
            let d = match item {
                Ok(d) => d,
                Err(failure) => {
                    self.stats.decode_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(%failure, "netlink message failed to decode; re-reading the tables");
                    self.request_recheck("message failed to decode", true, false);
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
                core.publish_observed(
                    &self.netns,
                    std::mem::take(&mut changes),
                    &std::mem::take(&mut times),
                    Origin::Notification,
                );
                self.on_dump_reply(d.message, &mut core)?;
                continue;
            }
            if d.port == self.socket.port() && d.sequence != 0 {
                // A late reply to a dump we abandoned.
                continue;
            }
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
            if let Recheck::Yes(reason) = recheck {
                tracing::debug!(reason, "kernel may have changed routes silently");
                self.request_recheck(reason, false, false);
            }
        }
        core.publish_observed(&self.netns, changes, &times, Origin::Notification);
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
                self.dump = None;
                self.request_recheck("dump failed", false, false);
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
            return self.start_dump("notifications lost during the previous dump");
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
            core.publish_in(&self.netns, changes, Origin::Reconcile);
        } else {
            *table = dump.fresh;
            table.end_dump();
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
        if let Some(reason) = dump.again {
            self.request_recheck(reason, false, false);
        }
        Ok(())
    }

    /// Asks for a re-dump: at once for overflows and decode failures, after a
    /// short pause for flush triggers.
    fn request_recheck(&mut self, reason: &'static str, now: bool, lost_notifications: bool) {
        if let Some(dump) = &mut self.dump {
            dump.overflowed |= lost_notifications;
            dump.again.get_or_insert(reason);
            return;
        }
        let at = Instant::now() + if now { Duration::ZERO } else { COALESCE };
        match &mut self.recheck_at {
            Some((when, _)) if *when <= at => {}
            slot => *slot = Some((at, reason)),
        }
    }

    fn start_dump(&mut self, reason: &'static str) -> Result<(), AgentError> {
        tracing::debug!(netns = %self.netns, reason, "dumping links, nexthop objects, rules and routes");
        self.stats.count_dump(reason);
        let seq = self.take_seq();
        self.dump = Some(Dump {
            seq,
            started: Instant::now(),
            phase: DumpKind::Links,
            fresh: StateTable::new(),
            overflowed: false,
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
