//! One subscriber: its cursor into the journal and its batcher.
//!
//! Batching is natural: a batch holds everything that is ready when the
//! session looks (up to a cap), so an idle host delivers each change at once
//! and a churning one sends large batches. A session whose sending blocks
//! falls behind on its own; when the ring overtakes it, it alone gets a
//! resync and a fresh snapshot.

use std::sync::Arc;
use std::time::Duration;

use routewatch_proto::v1::{self as api, event, SubscribeRequest, SubscribeResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::journal::{change_kind, now_unix_nano, Journal, Lagged, StreamInfo};

/// How a session batches and keeps quiet streams alive.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Most events in one response.
    pub max_batch: usize,
    /// A heartbeat goes out after this long without any event.
    pub heartbeat: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_batch: 1024,
            heartbeat: Duration::from_secs(30),
        }
    }
}

pub type ResponseStream = ReceiverStream<Result<SubscribeResponse, Status>>;

/// Starts a session task and returns the stream of its responses.
pub fn subscribe(
    journal: Arc<Journal>,
    request: SubscribeRequest,
    config: SessionConfig,
    shutdown: CancellationToken,
) -> ResponseStream {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let session = Session { journal, config, tx };
        tokio::select! {
            _ = session.run(request) => {}
            _ = shutdown.cancelled() => {}
        }
    });
    ReceiverStream::new(rx)
}

struct Session {
    journal: Arc<Journal>,
    config: SessionConfig,
    tx: mpsc::Sender<Result<SubscribeResponse, Status>>,
}

/// The subscriber went away.
struct Gone;

impl Session {
    async fn run(self, request: SubscribeRequest) -> Result<(), Gone> {
        self.journal.wait_ready().await;
        let info = self.journal.lock().info().clone();
        let mut cursor = if request.snapshot {
            self.snapshot(&info).await?
        } else {
            self.journal.lock().last_seq()
        };
        if !request.follow {
            return Ok(());
        }
        let mut wake = self.journal.watch();
        loop {
            let read = self.journal.lock().read_after(cursor, self.config.max_batch);
            match read {
                Err(Lagged) => {
                    let resync = event::Kind::Resync(api::Resync {
                        reason: "lagged behind the journal: the subscriber read slower than the kernel changed routes".into(),
                    });
                    self.send(vec![info.event(cursor, now_unix_nano(), resync)]).await?;
                    cursor = self.snapshot(&info).await?;
                }
                Ok(events) if events.is_empty() => {
                    tokio::select! {
                        changed = wake.changed() => {
                            if changed.is_err() {
                                return Ok(());
                            }
                        }
                        _ = tokio::time::sleep(self.config.heartbeat) => {
                            let beat = event::Kind::Heartbeat(api::Heartbeat {});
                            self.send(vec![info.event(cursor, now_unix_nano(), beat)]).await?;
                        }
                        _ = self.tx.closed() => return Err(Gone),
                    }
                }
                Ok(events) => {
                    cursor = events.last().map(|e| e.seq).unwrap_or(cursor);
                    self.send(events.iter().map(|e| (**e).clone()).collect()).await?;
                }
            }
        }
    }

    /// Sends every current object as an add, then the sync marker; returns
    /// the sequence number the snapshot is valid for.
    async fn snapshot(&self, info: &StreamInfo) -> Result<u64, Gone> {
        let (changes, seq) = {
            let core = self.journal.lock();
            (core.snapshot(), core.last_seq())
        };
        let time = now_unix_nano();
        for chunk in changes.chunks(self.config.max_batch) {
            let events = chunk
                .iter()
                .map(|c| info.event(seq, time, change_kind(c, api::Origin::Dump)))
                .collect();
            self.send(events).await?;
        }
        let sync = event::Kind::Sync(api::Sync {});
        self.send(vec![info.event(seq, time, sync)]).await?;
        Ok(seq)
    }

    async fn send(&self, events: Vec<api::Event>) -> Result<(), Gone> {
        self.tx
            .send(Ok(SubscribeResponse { events }))
            .await
            .map_err(|_| Gone)
    }
}
