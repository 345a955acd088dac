//! The agent's data path in one piece: netlink source, state table and
//! journal for this network namespace. The agent serves it over gRPC; the
//! CLI runs it in process when given no target.

use std::sync::Arc;

use routewatch_proto::v1::SubscribeRequest;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::PipelineConfig;
use crate::error::AgentError;
use crate::journal::Journal;
use crate::persist::StateDir;
use crate::session::{subscribe, subscribe_admitted, ResponseStream, SessionConfig};
use crate::socket::NetlinkSocket;
use crate::source::{Source, SourceStats};

pub struct Pipeline {
    pub journal: Arc<Journal>,
    pub stats: Arc<SourceStats>,
    config: PipelineConfig,
    shutdown: CancellationToken,
    source: Option<JoinHandle<Result<(), AgentError>>>,
}

impl Pipeline {
    /// Opens the netlink socket and starts the source; the first dump
    /// begins at once.
    pub fn start(
        config: PipelineConfig,
        shutdown: CancellationToken,
    ) -> Result<Pipeline, AgentError> {
        let socket = NetlinkSocket::open(config.netlink_rcvbuf)?;
        tracing::debug!(rcvbuf = socket.rcvbuf(), "rtnetlink socket open");
        let (journal, state_dir, resumed) = match &config.state_dir {
            None => {
                let journal = Journal::new(stream_id(), String::new(), config.ring());
                (journal, None, false)
            }
            Some(dir) => {
                let (state_dir, recovered) = StateDir::open(dir, "")?;
                let resumed = recovered.is_some();
                let journal = match recovered {
                    Some(r) => {
                        tracing::info!(stream = %r.info.stream_id, seq = r.last_seq, routes = r.table.route_count(), "continuing the stream kept in the state dir");
                        Journal::resume(r.info, r.last_seq, r.table, r.recent, config.ring())
                    }
                    None => Journal::new(stream_id(), String::new(), config.ring()),
                };
                journal.lock().set_sink(state_dir.sink());
                (journal, Some(Arc::new(state_dir)), resumed)
            }
        };
        let journal = Arc::new(journal);
        let stats = Arc::new(SourceStats::default());
        let source = Source::new(socket, journal.clone(), stats.clone(), state_dir, resumed);
        let task = tokio::spawn(source.run(shutdown.clone()));
        Ok(Pipeline {
            journal,
            stats,
            config,
            shutdown,
            source: Some(task),
        })
    }

    /// Waits for the first complete dump, or the source's failure.
    pub async fn ready(&mut self) -> Result<(), AgentError> {
        let Some(task) = self.source.as_mut() else {
            return Err(AgentError::NotReady);
        };
        tokio::select! {
            _ = self.journal.wait_ready() => Ok(()),
            ended = task => {
                self.source = None;
                match ended {
                    Ok(Err(e)) => Err(e),
                    _ => Err(AgentError::NotReady),
                }
            }
        }
    }

    /// A subscription served from this pipeline.
    pub fn subscribe(&self, request: SubscribeRequest) -> ResponseStream {
        self.subscriber().subscribe(request)
    }

    /// A handle that opens subscriptions, for the server's handlers.
    pub fn subscriber(&self) -> Subscriber {
        Subscriber {
            journal: self.journal.clone(),
            config: self.config.session(),
            shutdown: self.shutdown.clone(),
        }
    }

    /// Stops the source and waits for it.
    pub async fn stop(mut self) -> Result<(), AgentError> {
        self.shutdown.cancel();
        match self.source.take() {
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
    shutdown: CancellationToken,
}

impl Subscriber {
    pub fn subscribe(&self, request: SubscribeRequest) -> ResponseStream {
        subscribe(
            self.journal.clone(),
            request,
            self.config.clone(),
            self.shutdown.clone(),
        )
    }

    /// A subscription whose session holds `slot` while it runs.
    pub fn subscribe_admitted(
        &self,
        request: SubscribeRequest,
        slot: OwnedSemaphorePermit,
    ) -> ResponseStream {
        subscribe_admitted(
            self.journal.clone(),
            request,
            self.config.clone(),
            self.shutdown.clone(),
            Some(slot),
        )
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
