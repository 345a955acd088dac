//! The agent's data path in one piece: a netlink source and state table
//! per network namespace watched, and the journal they share. The agent
//! serves it over gRPC; the CLI runs it in process when given no target.

use std::sync::Arc;

use routewatch_proto::v1::{AgentInfo, SubscribeRequest};
use routewatch_proto::Names;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::config::{NetnsSelection, PipelineConfig};
use crate::error::AgentError;
use crate::info::agent_info;
use crate::journal::{now_unix_nano, Journal};
use crate::namespaces::{NamespaceStats, Namespaces, Shared};
use crate::persist::{StateDir, StateDirStats};
use crate::session::{subscribe, ResponseStream, SessionConfig};
use crate::source::SourceStats;

pub struct Pipeline {
    pub journal: Arc<Journal>,
    pub stats: Arc<SourceStats>,
    pub namespaces: Arc<NamespaceStats>,
    /// What the state dir discarded (all zero without `--state-dir`).
    pub state_dir: Arc<StateDirStats>,
    start_time_unix_nano: i64,
    config: PipelineConfig,
    shutdown: CancellationToken,
    /// Cancelled when the pipeline stopped on its own (a source failed).
    failed: CancellationToken,
    task: Option<JoinHandle<Result<(), AgentError>>>,
}

impl Pipeline {
    /// Opens the netlink sockets and starts the sources; the first dumps
    /// begin at once.
    pub fn start(
        config: PipelineConfig,
        shutdown: CancellationToken,
    ) -> Result<Pipeline, AgentError> {
        let selection = config.netns_selection();
        let home = match &selection {
            NetnsSelection::Named(name) => name.clone(),
            NetnsSelection::Own | NetnsSelection::All => String::new(),
        };
        let (names, warnings) = Names::load(config.iproute2_dir.as_deref())?;
        for warning in warnings {
            tracing::warn!("iproute2 names: {warning}");
        }
        let mut state_dir_stats = Arc::default();
        let (journal, state_dir, resumed) = match &config.state_dir {
            None => {
                let journal = Journal::new(stream_id(), home, config.ring());
                (journal, None, false)
            }
            Some(dir) => {
                let (state_dir, recovered) = StateDir::open(dir, &home)?;
                state_dir_stats = state_dir.stats();
                let resumed = recovered.is_some();
                let journal = match recovered {
                    Some(r) => {
                        let routes: usize = r.tables.values().map(|t| t.route_count()).sum();
                        tracing::info!(stream = %r.info.stream_id, seq = r.last_seq, routes, "continuing the stream kept in the state dir");
                        Journal::resume(r.info, r.last_seq, r.tables, r.recent, config.ring())
                    }
                    None => Journal::new(stream_id(), home, config.ring()),
                };
                journal.lock().set_sink(state_dir.sink());
                (journal, Some(Arc::new(state_dir)), resumed)
            }
        };
        let journal = Arc::new(journal.with_names(Arc::new(names)));
        let stats = Arc::new(SourceStats::default());
        let attribution = stats.attribution.clone();
        let namespaces = Arc::new(NamespaceStats::default());
        let shared = Shared {
            journal: journal.clone(),
            stats: stats.clone(),
            state_dir,
            rcvbuf: config.netlink_rcvbuf,
            attribution: (!config.no_changed_by).then(|| attribution.clone()),
        };
        let watcher = Namespaces::start(
            selection,
            config.netns_dir.clone(),
            shared,
            namespaces.clone(),
            resumed,
            shutdown.clone(),
        )?;
        tokio::spawn(crate::trim::after_bursts(
            journal.clone(),
            stats.clone(),
            shutdown.clone(),
        ));
        let failed = CancellationToken::new();
        let task = tokio::spawn({
            let failed = failed.clone();
            async move {
                let result = watcher.run().await;
                if result.is_err() {
                    failed.cancel();
                }
                result
            }
        });
        Ok(Pipeline {
            journal,
            stats,
            namespaces,
            state_dir: state_dir_stats,
            start_time_unix_nano: now_unix_nano(),
            config,
            shutdown,
            failed,
            task: Some(task),
        })
    }

    /// Waits for the first complete dump, or the pipeline's failure.
    pub async fn ready(&mut self) -> Result<(), AgentError> {
        let Some(task) = self.task.as_mut() else {
            return Err(AgentError::NotReady);
        };
        tokio::select! {
            _ = self.journal.wait_ready() => Ok(()),
            ended = task => {
                self.task = None;
                match ended {
                    Ok(Err(e)) => Err(e),
                    _ => Err(AgentError::NotReady),
                }
            }
        }
    }

    /// Cancelled when the pipeline stops on its own, after a failure that
    /// [`Pipeline::stop`] then returns.
    pub fn failed(&self) -> CancellationToken {
        self.failed.clone()
    }

    /// A subscription served from this pipeline (in process: no peer).
    pub fn subscribe(&self, request: SubscribeRequest) -> Result<ResponseStream, Status> {
        self.subscriber().subscribe(request, String::new(), None)
    }

    /// A handle that opens subscriptions, for the server's handlers.
    pub fn subscriber(&self) -> Subscriber {
        Subscriber {
            journal: self.journal.clone(),
            config: self.config.session(),
            start_time_unix_nano: self.start_time_unix_nano,
            shutdown: self.shutdown.clone(),
        }
    }

    /// Stops the sources and waits for them.
    pub async fn stop(mut self) -> Result<(), AgentError> {
        self.shutdown.cancel();
        match self.task.take() {
            Some(task) => task.await.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

/// Opens subscriptions on a pipeline's journal.
#[derive(Clone)]
pub struct Subscriber {
    journal: Arc<Journal>,
    config: SessionConfig,
    start_time_unix_nano: i64,
    shutdown: CancellationToken,
}

impl Subscriber {
    /// Starts a session for `peer` ("" in process), holding `slot` (see
    /// [`crate::admission`]) while it runs, or refuses a request whose
    /// filters do not compile (INVALID_ARGUMENT).
    pub fn subscribe(
        &self,
        request: SubscribeRequest,
        peer: String,
        slot: Option<OwnedSemaphorePermit>,
    ) -> Result<ResponseStream, Status> {
        subscribe(
            self.journal.clone(),
            request,
            self.config.clone(),
            peer,
            slot,
            self.shutdown.clone(),
        )
    }

    /// What the agent says about itself, as `hostname`.
    pub fn info(&self, hostname: &str) -> AgentInfo {
        agent_info(&self.journal, hostname, self.start_time_unix_nano)
    }
}

/// A fresh stream id: 64 random bits in hex. A restarted agent starts a new
/// stream, so old cursors are recognised as foreign.
fn stream_id() -> String {
    let mut bytes = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        let nanos = crate::journal::now_unix_nano() as u64;
        bytes = (nanos ^ u64::from(std::process::id()) << 32).to_ne_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
