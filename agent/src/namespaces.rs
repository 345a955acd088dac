//! The namespaces a pipeline watches: one source per network namespace,
//! all writing into one journal (one stream), each naming its events with
//! its namespace.
//!
//! With `--netns all` (or `--netns NAME`) the named namespaces are
//! followed as they come and go: the directory is watched with inotify and
//! scanned every second as well (`ip netns add` creates the file first and
//! mounts the namespace on it a moment later, which inotify does not
//! report). A namespace that appears is dumped and its objects published
//! as adds (origin reconcile); one that disappears is dropped, its objects
//! published as deletes. A name that now names another namespace counts as
//! both. Consumers applying the stream therefore hold every namespace's
//! tables exactly, with the same single cursor.
//!
//! A name is only a handle: the agent's socket keeps a namespace alive
//! after `ip netns del`, so deletion is noticed by the name going away,
//! never by the namespace ending.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::config::NetnsSelection;
use crate::dirwatch::DirWatch;
use crate::error::AgentError;
use crate::journal::Journal;
use crate::netns::{self, Namespace, NsId};
use crate::persist::StateDir;
use crate::socket::NetlinkSocket;
use crate::source::{Source, SourceStats};
use crate::unwatched::{in_use, Unwatched};

/// Periodic scan of the namespace directory.
const SCAN_EVERY: Duration = Duration::from_secs(1);
/// Scan interval while a file waits for its namespace to be mounted.
const SCAN_SOON: Duration = Duration::from_millis(50);
/// How long after an inotify event a half-made namespace is waited for
/// at [`SCAN_SOON`].
const SOON_FOR: Duration = Duration::from_secs(2);

/// How often namespaces in use are compared with those watched
/// (`--netns all`, see [`crate::unwatched`]).
const CENSUS_EVERY: Duration = Duration::from_secs(10);

/// How many namespaces are watched, how many could not be, and how many in
/// use are not watched.
#[derive(Debug, Default)]
pub struct NamespaceStats {
    pub watched: AtomicU64,
    pub failures: AtomicU64,
    /// Namespaces in use on the host that `--netns all` does not see.
    pub unwatched: AtomicU64,
}

/// Everything a new source needs.
pub(crate) struct Shared {
    pub journal: Arc<Journal>,
    pub stats: Arc<SourceStats>,
    pub state_dir: Option<Arc<StateDir>>,
    pub rcvbuf: usize,
    /// Attribution's counters; `None` with attribution off.
    pub attribution: Option<Arc<crate::attribution::ResolverStats>>,
}

pub(crate) struct Namespaces {
    selection: NetnsSelection,
    dir: PathBuf,
    shared: Shared,
    counts: Arc<NamespaceStats>,
    /// The agent's own namespace, watched as "" with `--netns all`.
    own: Option<NsId>,
    running: HashMap<Arc<str>, Running>,
    /// Named namespaces that could not be watched: not tried again while
    /// the name names the same namespace.
    failed: HashSet<(String, NsId)>,
    /// Names that refer to a namespace already watched under another name.
    aliases: HashSet<(String, NsId)>,
    generation: u64,
    ended_tx: mpsc::UnboundedSender<(Arc<str>, u64)>,
    ended_rx: mpsc::UnboundedReceiver<(Arc<str>, u64)>,
    /// First dumps of the namespaces watched from the start.
    initial: Vec<watch::Receiver<bool>>,
    shutdown: CancellationToken,
}

struct Running {
    id: Option<NsId>,
    generation: u64,
    stop: CancellationToken,
    task: JoinHandle<Result<(), AgentError>>,
}

impl Namespaces {
    /// Opens the sockets of the namespaces to watch now and starts their
    /// sources. With `resumed` (a stream recovered from the state dir) their
    /// first dumps are published as differences; namespaces the state dir
    /// held that are not watched any more are dropped.
    pub fn start(
        selection: NetnsSelection,
        dir: PathBuf,
        shared: Shared,
        counts: Arc<NamespaceStats>,
        resumed: bool,
        shutdown: CancellationToken,
    ) -> Result<Namespaces, AgentError> {
        let (ended_tx, ended_rx) = mpsc::unbounded_channel();
        let mut ns = Namespaces {
            selection: selection.clone(),
            dir,
            shared,
            counts,
            own: None,
            running: HashMap::new(),
            failed: HashSet::new(),
            aliases: HashSet::new(),
            generation: 0,
            ended_tx,
            ended_rx,
            initial: Vec::new(),
            shutdown,
        };
        match &selection {
            NetnsSelection::Own => {
                let socket =
                    NetlinkSocket::open(ns.shared.rcvbuf, ns.shared.attribution.is_some())?;
                ns.spawn("".into(), None, socket, resumed, true);
            }
            NetnsSelection::Named(name) => {
                let named =
                    Namespace::open(&ns.dir, name).map_err(|source| AgentError::NoNetns {
                        name: name.clone(),
                        dir: ns.dir.clone(),
                        source,
                    })?;
                let socket = NetlinkSocket::open_in(
                    &named,
                    ns.shared.rcvbuf,
                    ns.shared.attribution.is_some(),
                )?;
                ns.spawn(
                    name.as_str().into(),
                    Some(named.id()),
                    socket,
                    resumed,
                    true,
                );
            }
            NetnsSelection::All => {
                ns.own = netns::own_id().ok();
                let socket =
                    NetlinkSocket::open(ns.shared.rcvbuf, ns.shared.attribution.is_some())?;
                ns.spawn("".into(), None, socket, resumed, true);
                for (name, _) in netns::scan(&ns.dir).found {
                    ns.add(&name, resumed, true);
                }
            }
        }
        let journal = ns.shared.journal.clone();
        {
            let mut core = journal.lock();
            let stale: Vec<Arc<str>> = core
                .tables()
                .map(|(name, _)| name.clone())
                .filter(|name| !ns.running.contains_key(name))
                .collect();
            for name in stale {
                let objects = core.drop_namespace(&name);
                tracing::info!(netns = %name, objects, "the state dir held a namespace that is not watched now; its objects are deleted");
            }
        }
        journal.wake();
        Ok(ns)
    }

    /// Follows the namespaces until `shutdown` or a fatal failure; the
    /// journal turns ready once the first dumps of the namespaces watched
    /// from the start are complete. Returns after every source stopped.
    pub async fn run(mut self) -> Result<(), AgentError> {
        let follow = !matches!(self.selection, NetnsSelection::Own);
        let mut dir_watch = follow.then(|| DirWatch::new(&self.dir));
        let ready = first_dumps(std::mem::take(&mut self.initial));
        tokio::pin!(ready);
        let mut ready_seen = false;
        let mut next_scan = Instant::now() + SCAN_EVERY;
        let mut soon_until = Instant::now();
        let census = self.selection == NetnsSelection::All;
        let mut unwatched = Unwatched::default();
        let mut next_census = Instant::now();
        let shutdown = self.shutdown.clone();
        let result = loop {
            tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                all = &mut ready, if !ready_seen => {
                    ready_seen = true;
                    // A namespace that failed before its first dump is
                    // reported by its end (fatal unless --netns all).
                    if all || self.selection == NetnsSelection::All {
                        self.shared.journal.set_ready();
                    }
                }
                Some((name, generation)) = self.ended_rx.recv() => {
                    if let Err(e) = self.ended(name, generation).await {
                        break Err(e);
                    }
                }
                _ = changed(&mut dir_watch) => {
                    next_scan = Instant::now();
                    soon_until = Instant::now() + SOON_FOR;
                }
                _ = sleep_until(next_census), if census => {
                    self.census(&mut unwatched).await;
                    next_census = Instant::now() + CENSUS_EVERY;
                }
                _ = sleep_until(next_scan), if follow => {
                    let unmounted = self.rescan().await;
                    if let Some(w) = dir_watch.as_mut() {
                        w.retry();
                    }
                    let now = Instant::now();
                    next_scan = now + if unmounted > 0 && now < soon_until { SCAN_SOON } else { SCAN_EVERY };
                }
            }
        };
        for (_, running) in self.running.drain() {
            running.stop.cancel();
            let _ = running.task.await;
        }
        if result.is_ok() {
            // Written once, after every source stopped.
            if let Some(dir) = &self.shared.state_dir {
                if let Err(e) = dir.compact(&self.shared.journal.lock()) {
                    tracing::error!(error = %e, "cannot write the state dir");
                }
            }
        }
        result
    }

    /// Compares the namespaces in use with those watched (or known to have
    /// failed, already reported); says and counts the others.
    async fn census(&mut self, unwatched: &mut Unwatched) {
        let mut known: HashSet<u64> = self
            .running
            .values()
            .filter_map(|r| r.id)
            .chain(self.own)
            .chain(self.failed.iter().map(|(_, id)| *id))
            .chain(self.aliases.iter().map(|(_, id)| *id))
            .map(|id| id.ino())
            .collect();
        if let Ok(own) = netns::own_id() {
            known.insert(own.ino());
        }
        // Reading every process's links takes a while on a busy host.
        let in_use = tokio::task::spawn_blocking(|| in_use(std::path::Path::new("/proc")))
            .await
            .unwrap_or_default();
        let n = unwatched.check(&in_use, std::path::Path::new("/proc"), &known, &self.dir);
        self.counts.unwatched.store(n as u64, Ordering::Relaxed);
    }

    /// Compares the directory with what is watched: drops what went away,
    /// adds what appeared. Returns how many files are not namespaces yet.
    async fn rescan(&mut self) -> usize {
        let scan = netns::scan(&self.dir);
        let wanted: HashMap<&str, NsId> = scan
            .found
            .iter()
            .filter(|(name, _)| match &self.selection {
                NetnsSelection::Named(only) => name == only,
                _ => true,
            })
            .map(|(name, id)| (name.as_str(), *id))
            .collect();
        let gone: Vec<Arc<str>> = self
            .running
            .iter()
            .filter(|(name, running)| {
                running.id.is_some() && wanted.get(&***name) != running.id.as_ref()
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            self.remove(&name).await;
        }
        self.failed
            .retain(|(name, id)| wanted.get(name.as_str()) == Some(id));
        self.aliases
            .retain(|(name, id)| wanted.get(name.as_str()) == Some(id));
        let new: Vec<String> = wanted
            .keys()
            .filter(|name| !self.running.contains_key(**name))
            .map(|name| name.to_string())
            .collect();
        for name in new {
            self.add(&name, true, false);
        }
        scan.unmounted
    }

    /// Starts watching named namespace `name`, unless it is the agent's own
    /// or already watched under another name, or failed before.
    fn add(&mut self, name: &str, resumed: bool, initial: bool) {
        let named = match Namespace::open(&self.dir, name) {
            Ok(n) => n,
            // Gone again, or not mounted yet: the next scan sees.
            Err(e) => {
                tracing::debug!(netns = name, error = %e, "cannot open the namespace yet");
                return;
            }
        };
        let id = named.id();
        let key = (name.to_string(), id);
        if self.failed.contains(&key) || self.aliases.contains(&key) {
            return;
        }
        if Some(id) == self.own || self.running.values().any(|r| r.id == Some(id)) {
            tracing::info!(
                netns = name,
                "the name refers to a namespace already watched; not watching it twice"
            );
            self.aliases.insert(key);
            return;
        }
        match NetlinkSocket::open_in(
            &named,
            self.shared.rcvbuf,
            self.shared.attribution.is_some(),
        ) {
            Ok(socket) => self.spawn(name.into(), Some(id), socket, resumed, initial),
            Err(e) => {
                tracing::error!(error = %e, "network namespace left out: its routes are NOT watched");
                self.counts.failures.fetch_add(1, Ordering::Relaxed);
                self.failed.insert(key);
            }
        }
    }

    fn spawn(
        &mut self,
        name: Arc<str>,
        id: Option<NsId>,
        socket: NetlinkSocket,
        resumed: bool,
        initial: bool,
    ) {
        let source = Source::new(
            socket,
            name.clone(),
            self.shared.journal.clone(),
            self.shared.stats.clone(),
            self.shared.state_dir.clone(),
            resumed,
            self.shared.attribution.clone(),
        );
        if initial {
            self.initial.push(source.dumped());
        }
        self.generation += 1;
        let generation = self.generation;
        let stop = self.shutdown.child_token();
        let ended = self.ended_tx.clone();
        let task = tokio::spawn({
            let stop = stop.clone();
            let name = name.clone();
            async move {
                let result = source.run(stop).await;
                let _ = ended.send((name, generation));
                result
            }
        });
        if id.is_some() {
            tracing::info!(netns = %name, "watching network namespace");
        }
        self.running.insert(
            name,
            Running {
                id,
                generation,
                stop,
                task,
            },
        );
        self.counts
            .watched
            .store(self.running.len() as u64, Ordering::Relaxed);
    }

    /// Stops watching `name` and publishes a delete for each of its objects.
    async fn remove(&mut self, name: &Arc<str>) {
        let Some(running) = self.running.remove(name) else {
            return;
        };
        running.stop.cancel();
        // Nothing of the namespace may be published after its deletes.
        let _ = running.task.await;
        self.drop_tables(name);
        tracing::info!(netns = %name, "network namespace deleted; stopped watching it");
    }

    fn drop_tables(&self, name: &str) {
        let objects = self.shared.journal.lock().drop_namespace(name);
        self.shared.journal.wake();
        self.counts
            .watched
            .store(self.running.len() as u64, Ordering::Relaxed);
        tracing::debug!(netns = name, objects, "deleted the namespace's objects");
    }

    /// A source ended on its own. Fatal for the agent's own namespace and
    /// for the one `--netns NAME` names; with `--netns all` a named
    /// namespace that fails is dropped and left out.
    async fn ended(&mut self, name: Arc<str>, generation: u64) -> Result<(), AgentError> {
        match self.running.get(&name) {
            Some(r) if r.generation == generation => {}
            _ => return Ok(()),
        }
        let running = self.running.remove(&name).expect("present");
        let error = match running.task.await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(e) => AgentError::Netlink {
                step: "run the source",
                source: std::io::Error::other(e.to_string()),
            },
        };
        let survivable = self.selection == NetnsSelection::All && running.id.is_some();
        if !survivable {
            return Err(error);
        }
        tracing::error!(netns = %name, error = %error, "network namespace left out after a failure: its routes are NOT watched");
        self.counts.failures.fetch_add(1, Ordering::Relaxed);
        if let Some(id) = running.id {
            self.failed.insert((name.to_string(), id));
        }
        self.drop_tables(&name);
        Ok(())
    }
}

/// Waits for every first dump; false if a source ended before its own.
async fn first_dumps(initial: Vec<watch::Receiver<bool>>) -> bool {
    let mut all = true;
    for mut rx in initial {
        all &= rx.wait_for(|dumped| *dumped).await.is_ok();
    }
    all
}

async fn changed(watch: &mut Option<DirWatch>) {
    match watch {
        Some(w) => w.changed().await,
        None => std::future::pending().await,
    }
}
