//! Port id → process, once per socket.
//!
//! The first time a port id is seen, the namespace's socket table gives its
//! socket inode; the process whose port id it is (a process's first netlink
//! socket is bound to its pid) is checked for that inode first, then every
//! process's open files. The answer is kept with the process's descriptor
//! and checked again (one readlink) before each batch that uses it, so a
//! socket that went away is never credited to whoever gets its port id
//! next. Nothing is reported of a process that was not seen holding the
//! socket.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use routewatch_proto::v1::{ChangedBy, ChangedByHow};

use super::budget::Budget;
use super::early::Early;
use super::procfs;
use super::sock_diag::SockDiag;
use crate::cause::Cause;

/// Most sockets remembered; beyond it the cache starts afresh.
const CACHE_MAX: usize = 4096;
/// The largest pid Linux gives (PID_MAX_LIMIT, 2^22): autobind's other
/// port ids are negative numbers, above it as u32.
const PID_MAX_LIMIT: u32 = 1 << 22;

/// The port id alone: nothing is said of any process.
fn port_only(port: u32, how: ChangedByHow) -> ChangedBy {
    ChangedBy {
        port_id: port,
        how: how as i32,
        ..Default::default()
    }
}

/// What attribution cost and found (for the metrics), shared by the
/// resolvers of every namespace.
#[derive(Debug, Default)]
pub struct ResolverStats {
    /// Port ids answered from the cache (after the readlink check).
    pub hits: AtomicU64,
    /// Port ids looked up, by how the answer was found.
    pub by_pid: AtomicU64,
    pub by_socket: AtomicU64,
    pub exited: AtomicU64,
    /// Lookups that failed (the socket table could not be read).
    pub failed: AtomicU64,
    /// Time spent in lookups (not cache hits), in nanoseconds.
    pub lookup_nanos: AtomicU64,
    /// Lookups answered by the early reader (by pid, before the process
    /// exited).
    pub early: AtomicU64,
}

struct Held {
    pid: u32,
    fd: u32,
    inode: u64,
    cause: Arc<Cause>,
    /// The socket itself, held by the agent too (see [`procfs::pin`]):
    /// while it is, its port id names no other socket, and the answer
    /// needs no check before each batch.
    pinned: Option<std::os::fd::OwnedFd>,
    /// Whether pinning was tried: once (without CAP_SYS_PTRACE it always
    /// fails, and is not tried again before every batch).
    pin_tried: bool,
}

/// Most sockets pinned at once (each is a descriptor of the agent's).
const PINS_MAX: usize = 256;
/// How often pinned sockets are checked (one readlink each) and let go
/// once their process no longer holds them.
const SWEEP: Duration = Duration::from_secs(1);

/// One namespace's port id → process resolution.
pub struct Resolver {
    diag: Option<SockDiag>,
    cache: HashMap<u32, Held>,
    /// The answers given during the current batch of datagrams.
    batch: Vec<(u32, Arc<Cause>)>,
    stats: Arc<ResolverStats>,
    /// Scans of every process's open files take time in proportion to the
    /// host's open files; the source may spend at most [`SCAN_SHARE`] of
    /// its time on them, so that a flood of new sockets cannot stall it.
    scan_budget: Budget,
    looked: bool,
    last_sweep: Instant,
    /// Sockets pinned, about: counted again at each sweep (entries
    /// dropped between sweeps leave it high, never low).
    pins: usize,
    /// The namespace's registration with the early readers (see
    /// [`super::early`]).
    early: Option<Early>,
}

/// How long a lookup that found the process gone waits for the early
/// reader to come to that port (see [`Early::take`]).
const EARLY_WAIT: Duration = Duration::from_millis(2);

/// The share of the source's time that full `/proc` scans may take.
const SCAN_SHARE: f64 = 0.1;
/// The most scanning time saved up while idle.
const SCAN_BURST: Duration = Duration::from_millis(200);

impl Resolver {
    /// A resolver reading the socket table through `diag` (of the
    /// namespace watched); without one, every change carries its port id
    /// alone.
    pub fn new(
        diag: Option<SockDiag>,
        stats: Arc<ResolverStats>,
        early: Option<Early>,
    ) -> Resolver {
        Resolver {
            early,
            diag,
            cache: HashMap::new(),
            batch: Vec::new(),
            stats,
            scan_budget: Budget::new(SCAN_SHARE, SCAN_BURST),
            looked: false,
            last_sweep: Instant::now(),
            pins: 0,
        }
    }

    /// Whether the early readers read this namespace's new requesters as
    /// the kernel announces them.
    pub fn has_early_reader(&self) -> bool {
        self.early.is_some()
    }

    /// Whether the current batch needed a lookup (not a cached answer).
    pub fn looked_up(&self) -> bool {
        self.looked
    }

    /// Forgets the answers of the previous batch: a cached answer is
    /// checked again before it is used in a new one.
    pub fn begin_batch(&mut self) {
        self.batch.clear();
        self.looked = false;
        if self.last_sweep.elapsed() >= SWEEP {
            self.last_sweep = Instant::now();
            // A pinned socket its process let go of (closed, or the
            // process exited): released, and the port looked up afresh.
            self.cache.retain(|_, held| {
                held.pinned.is_none() || procfs::holds_fd(held.pid, held.fd, held.inode)
            });
            self.pins = self.cache.values().filter(|h| h.pinned.is_some()).count();
        }
    }

    /// Who sent the request behind a notification from `port`.
    pub fn cause(&mut self, port: u32) -> Arc<Cause> {
        if port == 0 {
            return Cause::kernel();
        }
        if let Some((_, cause)) = self.batch.iter().find(|(p, _)| *p == port) {
            return cause.clone();
        }
        let can_pin = self.pins < PINS_MAX;
        let cause = match self.cache.get_mut(&port) {
            Some(held) if held.pinned.is_some() => {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                held.cause.clone()
            }
            Some(held) if procfs::holds_fd(held.pid, held.fd, held.inode) => {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                // Seen again in a later batch: a long-lived requester,
                // worth holding its socket rather than checking it each
                // batch.
                if can_pin && !held.pin_tried {
                    held.pin_tried = true;
                    held.pinned = procfs::pin(held.pid, held.fd, held.inode);
                    self.pins += usize::from(held.pinned.is_some());
                }
                held.cause.clone()
            }
            _ => {
                self.cache.remove(&port);
                self.looked = true;
                let started = Instant::now();
                let cause = self.look_up(port);
                self.stats
                    .lookup_nanos
                    .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                cause
            }
        };
        self.batch.push((port, cause.clone()));
        cause
    }

    fn look_up(&mut self, port: u32) -> Arc<Cause> {
        let mut by = ChangedBy {
            port_id: port,
            ..Default::default()
        };
        // A first socket's port id is its process's pid: a guess, checked
        // against the socket table below. A short-lived requester (`ip
        // route add`) exits right after its request, and the check needs
        // both its descriptors and its socket: they are read first (with
        // its comm), the rest of what the process is after.
        if let Some(cause) = self.early_answer(port, Duration::ZERO) {
            return cause;
        }
        let (guess, comm) = if port <= PID_MAX_LIMIT {
            procfs::first_guess(port)
        } else {
            (Vec::new(), None)
        };
        let inode = match self.diag.as_mut().map(|d| d.inode_of(port)) {
            Some(Ok(Some(inode))) => inode,
            Some(Ok(None)) => {
                if let Some(cause) = self.early_answer(port, EARLY_WAIT) {
                    return cause;
                }
                self.stats.exited.fetch_add(1, Ordering::Relaxed);
                return Cause::new(Some(port_only(port, ChangedByHow::Exited)), String::new());
            }
            Some(Err(e)) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, port, "cannot read the netlink socket table");
                return Cause::new(
                    Some(port_only(port, ChangedByHow::Unspecified)),
                    String::new(),
                );
            }
            None => {
                return Cause::new(
                    Some(port_only(port, ChangedByHow::Unspecified)),
                    String::new(),
                )
            }
        };
        let (pid, fd, how) = match guess.iter().find(|(_, i)| *i == inode) {
            Some(&(fd, _)) => {
                procfs::describe(port, &mut by);
                if by.comm.is_empty() {
                    by.comm = comm.unwrap_or_default();
                }
                (port, fd, ChangedByHow::Pid)
            }
            None => {
                by = ChangedBy {
                    port_id: port,
                    ..Default::default()
                };
                // A process that is exiting has closed its descriptors
                // before the kernel releases its socket: no scan finds it.
                let exiting = port <= PID_MAX_LIMIT && procfs::exiting(port);
                let holder = if exiting || !self.scan_budget.available() {
                    None
                } else {
                    let started = Instant::now();
                    let holder = procfs::find_holder(inode);
                    self.scan_budget.spend(started.elapsed());
                    holder
                };
                match holder {
                    Some((pid, fd)) => {
                        procfs::describe(pid, &mut by);
                        (pid, fd, ChangedByHow::Socket)
                    }
                    // Gone since, or held by a process this agent cannot
                    // see (another pid namespace, no right to read its
                    // files) or did not look for (over the scans' time
                    // budget): only the first is `exited`.
                    None => {
                        // The early reader may have seen it before it
                        // exited (or be reading it now).
                        if let Some(cause) = self.early_answer(port, EARLY_WAIT) {
                            return cause;
                        }
                        let gone = exiting
                            || self
                                .diag
                                .as_mut()
                                .is_some_and(|d| d.inode_of(port).is_ok_and(|i| i != Some(inode)));
                        let how = if gone {
                            self.stats.exited.fetch_add(1, Ordering::Relaxed);
                            ChangedByHow::Exited
                        } else {
                            self.stats.failed.fetch_add(1, Ordering::Relaxed);
                            ChangedByHow::Unspecified
                        };
                        return Cause::new(Some(port_only(port, how)), String::new());
                    }
                }
            }
        };
        match how {
            ChangedByHow::Pid => &self.stats.by_pid,
            _ => &self.stats.by_socket,
        }
        .fetch_add(1, Ordering::Relaxed);
        by.how = how as i32;
        self.found(port, pid, fd, inode, by)
    }

    /// A verified answer, cached with what checks it later.
    fn found(&mut self, port: u32, pid: u32, fd: u32, inode: u64, by: ChangedBy) -> Arc<Cause> {
        let cause = Cause::new(Some(by), String::new());
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(
            port,
            Held {
                pid,
                fd,
                inode,
                cause: cause.clone(),
                pinned: None,
                pin_tried: false,
            },
        );
        cause
    }

    /// What the early reader verified of `port`, waiting up to `wait` if
    /// it is reading it now.
    fn early_answer(&mut self, port: u32, wait: Duration) -> Option<Arc<Cause>> {
        let found = self.early.as_ref()?.take(port, wait)?;
        self.stats.early.fetch_add(1, Ordering::Relaxed);
        Some(self.found(port, found.pid, found.fd, found.inode, found.by))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_sys::{protocols::NETLINK_ROUTE, Socket};

    fn by(cause: &Cause) -> &ChangedBy {
        cause.changed_by.as_ref().expect("attributed")
    }

    #[test]
    fn a_socket_of_this_process_is_found_cached_and_forgotten_when_closed() {
        let stats = Arc::new(ResolverStats::default());
        let mut resolver = Resolver::new(Some(SockDiag::open().unwrap()), stats.clone(), None);
        // A second socket: its port id is not the pid.
        let mut first = Socket::new(NETLINK_ROUTE).unwrap();
        let _ = first.bind_auto().unwrap();
        let mut second = Socket::new(NETLINK_ROUTE).unwrap();
        let port = second.bind_auto().unwrap().port_number();
        resolver.begin_batch();
        let cause = resolver.cause(port);
        let found = by(&cause);
        assert_eq!(found.pid, std::process::id());
        assert_eq!(found.port_id, port);
        let how = if port == std::process::id() {
            ChangedByHow::Pid
        } else {
            ChangedByHow::Socket
        };
        assert_eq!(found.how, how as i32);
        resolver.begin_batch();
        assert_eq!(by(&resolver.cause(port)).pid, std::process::id());
        assert_eq!(stats.hits.load(Ordering::Relaxed), 1);
        // Seen again: the socket is pinned, and answers without a check.
        assert_eq!(resolver.pins, 1, "pinned on its second batch");
        resolver.begin_batch();
        assert_eq!(by(&resolver.cause(port)).pid, std::process::id());
        assert_eq!(stats.hits.load(Ordering::Relaxed), 2);
        drop(second);
        // The next sweep finds the process no longer holding it, lets the
        // pin go, and the socket with it.
        std::thread::sleep(SWEEP + Duration::from_millis(50));
        resolver.begin_batch();
        assert_eq!(resolver.pins, 0, "released by the sweep");
        let gone = resolver.cause(port);
        assert_eq!(by(&gone).pid, 0, "never a process not seen holding it");
        assert_eq!(by(&gone).how, ChangedByHow::Exited as i32);
        assert!(by(&resolver.cause(0)).kernel);
        drop(first);
    }
}
