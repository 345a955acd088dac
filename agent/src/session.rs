//! One subscriber: its cursor into the journal and its batcher.
//!
//! Batching is natural: a batch holds everything that is ready when the
//! session looks (up to a cap in events and bytes), so an idle host delivers
//! each change at once and a churning one sends large batches. A batch is
//! the journal's pre-encoded records put side by side: no session encodes a
//! change again. A session whose sending blocks falls behind on its own;
//! when the ring overtakes it, it alone gets a resync and a fresh snapshot.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use routewatch_proto::v1::{self as api, event, ResyncCause, SubscribeRequest, SubscribeResponse};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::journal::{change_kind, now_unix_nano, Entry, Journal, Lagged, StreamInfo};

/// How a session batches and keeps quiet streams alive.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Most events in one response.
    pub max_batch: usize,
    /// Most bytes of events in one response (a single larger event still
    /// goes out alone).
    pub max_batch_bytes: usize,
    /// A heartbeat goes out after this long without any event.
    pub heartbeat: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_batch: 1024,
            max_batch_bytes: 1 << 20,
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
    subscribe_admitted(journal, request, config, shutdown, None)
}

/// Like [`subscribe`], holding `slot` (see [`crate::admission`]) for exactly
/// as long as the session's task runs.
pub fn subscribe_admitted(
    journal: Arc<Journal>,
    request: SubscribeRequest,
    config: SessionConfig,
    shutdown: CancellationToken,
    slot: Option<OwnedSemaphorePermit>,
) -> ResponseStream {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let _slot = slot;
        let session = Session {
            journal,
            config,
            tx,
        };
        let tx = session.tx.clone();
        tokio::select! {
            _ = session.run(request) => {}
            _ = shutdown.cancelled() => {
                // Not a normal end of stream: the client should reconnect.
                let _ = tx.try_send(Err(Status::unavailable("routewatch-agent is shutting down")));
            }
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
        let resumed = match &request.resume_from {
            None => None,
            Some(cursor) => {
                let position = self.journal.lock().position(cursor);
                match position {
                    Ok(seq) => Some(seq),
                    Err(cause) => {
                        let last = self.journal.lock().last_seq();
                        let reason = match cause {
                            ResyncCause::UnknownStream if cursor.stream_id == info.stream_id => format!(
                                "cursor {}:{} is ahead of this stream's last change {last} (the agent lost changes it had sent)",
                                cursor.stream_id, cursor.seq
                            ),
                            ResyncCause::UnknownStream => format!(
                                "cursor {}:{} is not from this agent's stream {} (the agent restarted without its state, or the cursor is another host's)",
                                cursor.stream_id, cursor.seq, info.stream_id
                            ),
                            _ => format!(
                                "cursor {}:{} is older than the journal holds",
                                cursor.stream_id, cursor.seq
                            ),
                        };
                        self.resync(&info, cause, reason).await?;
                        None
                    }
                }
            }
        };
        let mut cursor = match resumed {
            Some(seq) => seq,
            None if request.snapshot || request.resume_from.is_some() => {
                self.snapshot(&info).await?
            }
            None => self.journal.lock().last_seq(),
        };
        if !request.follow {
            return Ok(());
        }
        let mut wake = self.journal.watch();
        loop {
            let read = self.journal.lock().read_after(
                cursor,
                self.config.max_batch,
                self.config.max_batch_bytes,
            );
            match read {
                Err(Lagged) => {
                    let reason = "lagged behind the journal: the subscriber read slower than the host changed routes".to_string();
                    self.resync(&info, ResyncCause::Lagged, reason).await?;
                    cursor = self.snapshot(&info).await?;
                }
                Ok(entries) if entries.is_empty() => {
                    tokio::select! {
                        changed = wake.changed() => {
                            if changed.is_err() {
                                return Ok(());
                            }
                        }
                        _ = tokio::time::sleep(self.config.heartbeat) => {
                            let beat = event::Kind::Heartbeat(api::Heartbeat {});
                            self.send_events(vec![info.event(cursor, now_unix_nano(), beat)]).await?;
                        }
                        _ = self.tx.closed() => return Err(Gone),
                    }
                }
                Ok(entries) => {
                    cursor = entries.last().map(|e| e.seq).unwrap_or(cursor);
                    self.send(records(&entries)).await?;
                }
            }
        }
    }

    /// Tells the subscriber to drop what it holds; a snapshot must follow.
    async fn resync(
        &self,
        info: &StreamInfo,
        cause: ResyncCause,
        reason: String,
    ) -> Result<(), Gone> {
        tracing::info!(%reason, "subscriber resynchronised");
        let seq = self.journal.lock().last_seq();
        let kind = event::Kind::Resync(api::Resync {
            reason,
            cause: cause as i32,
        });
        self.send_events(vec![info.event(seq, now_unix_nano(), kind)])
            .await
    }

    /// Sends every current object as an add, then the sync marker; returns
    /// the sequence number the snapshot is valid for.
    async fn snapshot(&self, info: &StreamInfo) -> Result<u64, Gone> {
        let (changes, seq) = {
            let core = self.journal.lock();
            (core.snapshot(), core.last_seq())
        };
        let time = now_unix_nano();
        for chunk in changes.chunks(self.config.max_batch.max(1)) {
            let events = chunk
                .iter()
                .map(|c| info.event(seq, time, change_kind(c, api::Origin::Dump)))
                .collect();
            self.send_events(events).await?;
        }
        let sync = event::Kind::Sync(api::Sync {});
        self.send_events(vec![info.event(seq, time, sync)]).await?;
        Ok(seq)
    }

    async fn send_events(&self, events: Vec<api::Event>) -> Result<(), Gone> {
        self.send(SubscribeResponse::from_events(events)).await
    }

    async fn send(&self, response: SubscribeResponse) -> Result<(), Gone> {
        self.tx.send(Ok(response)).await.map_err(|_| Gone)
    }
}

/// The entries' shared records side by side: one response, no re-encoding.
fn records(entries: &[Entry]) -> SubscribeResponse {
    let len = entries.iter().map(|e| e.record.len()).sum();
    let mut buf = BytesMut::with_capacity(len);
    for entry in entries {
        buf.extend_from_slice(&entry.record);
    }
    SubscribeResponse::from_records(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Action, Change, Object};
    use routewatch_proto::v1::Route;
    use tokio_stream::StreamExt;

    fn change(n: u32) -> Change {
        Change {
            action: Action::Add,
            key: format!("k{n}").into(),
            object: Object::Route(Arc::new(Route {
                metric: n,
                ..Default::default()
            })),
        }
    }

    fn journal(capacity: usize) -> Arc<Journal> {
        let limits = crate::journal::RingLimits {
            changes: capacity,
            bytes: usize::MAX,
        };
        let j = Arc::new(Journal::new("s1".into(), String::new(), limits));
        j.set_ready();
        j
    }

    fn kinds(r: SubscribeResponse) -> Vec<(&'static str, u64)> {
        r.into_events()
            .expect("decodes")
            .iter()
            .map(|e| {
                let k = match e.kind {
                    Some(event::Kind::Change(_)) => "change",
                    Some(event::Kind::Sync(_)) => "sync",
                    Some(event::Kind::Resync(_)) => "resync",
                    Some(event::Kind::Heartbeat(_)) => "heartbeat",
                    None => "none",
                };
                (k, e.seq)
            })
            .collect()
    }

    fn fill(j: &Journal, n: u32) {
        let mut core = j.lock();
        for i in 0..n {
            let route = Route {
                family: 1,
                dst: format!("10.0.{i}.0/24"),
                ..Default::default()
            };
            core.state
                .insert_dumped(&crate::decode::Message::NewRoute { route, flags: 0 });
        }
    }

    fn publish(j: &Journal, n: u32) {
        j.lock()
            .publish((0..n).map(change).collect(), api::Origin::Notification);
        j.wake();
    }

    async fn next(stream: &mut ResponseStream) -> Vec<(&'static str, u64)> {
        kinds(stream.next().await.expect("stream open").expect("no error"))
    }

    #[tokio::test]
    async fn snapshot_then_sync_then_live_in_natural_batches() {
        let j = journal(100);
        fill(&j, 3);
        let config = SessionConfig {
            max_batch: 2,
            heartbeat: Duration::from_secs(30),
            ..Default::default()
        };
        let request = SubscribeRequest {
            snapshot: true,
            follow: true,
            resume_from: None,
        };
        let mut stream = subscribe(j.clone(), request, config, CancellationToken::new());
        assert_eq!(next(&mut stream).await, vec![("change", 0), ("change", 0)]);
        assert_eq!(next(&mut stream).await, vec![("change", 0)]);
        assert_eq!(next(&mut stream).await, vec![("sync", 0)]);
        publish(&j, 5);
        assert_eq!(next(&mut stream).await, vec![("change", 1), ("change", 2)]);
        assert_eq!(next(&mut stream).await, vec![("change", 3), ("change", 4)]);
        assert_eq!(next(&mut stream).await, vec![("change", 5)]);
        publish(&j, 1);
        assert_eq!(
            next(&mut stream).await,
            vec![("change", 6)],
            "an idle stream sends at once"
        );
    }

    #[tokio::test]
    async fn without_follow_the_stream_ends_after_sync() {
        let j = journal(100);
        fill(&j, 1);
        publish(&j, 2);
        let request = SubscribeRequest {
            snapshot: true,
            follow: false,
            resume_from: None,
        };
        let mut stream = subscribe(
            j,
            request,
            SessionConfig::default(),
            CancellationToken::new(),
        );
        assert_eq!(next(&mut stream).await, vec![("change", 2)]);
        assert_eq!(next(&mut stream).await, vec![("sync", 2)]);
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn an_overtaken_subscriber_gets_resync_and_a_fresh_snapshot() {
        let j = journal(4);
        fill(&j, 1);
        let request = SubscribeRequest {
            snapshot: true,
            follow: true,
            resume_from: None,
        };
        let mut stream = subscribe(
            j.clone(),
            request,
            SessionConfig::default(),
            CancellationToken::new(),
        );
        assert_eq!(next(&mut stream).await, vec![("change", 0)]);
        assert_eq!(next(&mut stream).await, vec![("sync", 0)]);
        // Ten changes before the session reads: the ring keeps only four.
        publish(&j, 10);
        assert_eq!(next(&mut stream).await, vec![("resync", 10)]);
        assert_eq!(next(&mut stream).await, vec![("change", 10)]);
        assert_eq!(next(&mut stream).await, vec![("sync", 10)]);
        publish(&j, 1);
        assert_eq!(next(&mut stream).await, vec![("change", 11)]);
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_streams_get_heartbeats_with_the_cursor() {
        let j = journal(100);
        publish(&j, 3);
        let config = SessionConfig {
            max_batch: 10,
            heartbeat: Duration::from_secs(5),
            ..Default::default()
        };
        let request = SubscribeRequest {
            snapshot: true,
            follow: true,
            resume_from: None,
        };
        let mut stream = subscribe(j.clone(), request, config, CancellationToken::new());
        assert_eq!(next(&mut stream).await, vec![("sync", 3)]);
        let before = tokio::time::Instant::now();
        assert_eq!(next(&mut stream).await, vec![("heartbeat", 3)]);
        assert!(before.elapsed() >= Duration::from_secs(5));
    }

    fn resume(stream_id: &str, seq: u64) -> SubscribeRequest {
        SubscribeRequest {
            snapshot: true,
            follow: true,
            resume_from: Some(api::Cursor {
                stream_id: stream_id.into(),
                seq,
            }),
        }
    }

    #[tokio::test]
    async fn a_known_cursor_resumes_without_snapshot_or_duplicates() {
        let j = journal(100);
        fill(&j, 2);
        publish(&j, 5);
        let mut stream = subscribe(
            j.clone(),
            resume("s1", 3),
            SessionConfig::default(),
            CancellationToken::new(),
        );
        assert_eq!(next(&mut stream).await, vec![("change", 4), ("change", 5)]);
        publish(&j, 1);
        assert_eq!(next(&mut stream).await, vec![("change", 6)]);
    }

    #[tokio::test]
    async fn a_foreign_or_too_old_cursor_gets_resync_then_snapshot() {
        let j = journal(4);
        fill(&j, 1);
        publish(&j, 10);
        for request in [resume("other", 10), resume("s1", 2)] {
            let mut stream = subscribe(
                j.clone(),
                request,
                SessionConfig::default(),
                CancellationToken::new(),
            );
            assert_eq!(next(&mut stream).await, vec![("resync", 10)]);
            assert_eq!(next(&mut stream).await, vec![("change", 10)]);
            assert_eq!(next(&mut stream).await, vec![("sync", 10)]);
        }
    }
}
