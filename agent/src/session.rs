//! One subscriber: its filter, its cursor into the journal and its batcher.
//!
//! Batching is natural: a batch holds everything that is ready when the
//! session looks (up to a cap in events and bytes), so an idle host delivers
//! each change at once and a churning one sends large batches. A batch is
//! the journal's pre-encoded records put side by side: no session encodes a
//! change again, except the deletes a filtered session sends for objects
//! that left its filter (see [`crate::interest`]). A session whose sending
//! blocks falls behind on its own; when the ring overtakes it, it alone gets
//! a resync and a fresh snapshot.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use routewatch_proto::v1::{self as api, event, ResyncCause, SubscribeRequest, SubscribeResponse};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::interest::{Interest, Pass};
use crate::journal::{
    carry_defs, encode_snapshot, now_unix_nano, Entry, Journal, Lagged, StreamInfo,
};
use crate::state::{Action, Change, Previous};
use crate::subscribers::Membership;

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
    /// A digest goes out this often, once the subscriber has caught up
    /// (`None`: only when the request asks).
    pub digest: Option<Duration>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_batch: 1024,
            max_batch_bytes: 1 << 20,
            heartbeat: Duration::from_secs(30),
            digest: Some(Duration::from_secs(60)),
        }
    }
}

pub type ResponseStream = ReceiverStream<Result<SubscribeResponse, Status>>;

/// Compiles the request's filters and starts a session task; returns the
/// stream of its responses, or INVALID_ARGUMENT naming a bad filter value.
/// The session is listed among the journal's subscribers (as from `peer`,
/// "" in process) and holds `slot` (see [`crate::admission`]) for exactly as
/// long as its task runs.
pub fn subscribe(
    journal: Arc<Journal>,
    request: SubscribeRequest,
    config: SessionConfig,
    peer: String,
    slot: Option<OwnedSemaphorePermit>,
    shutdown: CancellationToken,
) -> Result<ResponseStream, Status> {
    let interest = Interest::of(&request, &journal.names())
        .map_err(|e| Status::invalid_argument(format!("invalid filter: {e}")))?;
    let (tx, rx) = mpsc::channel(4);
    let member = journal.subscribers.join(peer, interest.is_some());
    tokio::spawn(async move {
        let _slot = slot;
        let session = Session {
            journal,
            config,
            interest,
            tx,
            member,
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
    Ok(ReceiverStream::new(rx))
}

struct Session {
    journal: Arc<Journal>,
    config: SessionConfig,
    /// The subscriber's filters; `None` sends everything.
    interest: Option<Interest>,
    tx: mpsc::Sender<Result<SubscribeResponse, Status>>,
    member: Membership,
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
        let replay = request.resume_from.is_none()
            && (request.replay_last > 0 || request.replay_since_unix_nano != 0);
        let mut cursor = match resumed {
            Some(seq) => seq,
            None if replay => {
                let start = {
                    let core = self.journal.lock();
                    crate::replay::start(
                        &core,
                        request.replay_last,
                        request.replay_since_unix_nano,
                        now_unix_nano(),
                    )
                };
                tracing::info!(
                    after = start.after,
                    complete = start.complete,
                    reason = %start.reason,
                    "subscriber replays the journal"
                );
                let kind = event::Kind::Replay(api::Replay {
                    complete: start.complete,
                    reason: start.reason,
                });
                self.send_events(vec![info.event(start.after, now_unix_nano(), kind)])
                    .await?;
                start.after
            }
            None if request.snapshot || request.resume_from.is_some() => {
                self.snapshot(&info).await?
            }
            None => self.journal.lock().last_seq(),
        };
        self.member.at(cursor);
        if !request.follow {
            return Ok(());
        }
        let mut wake = self.journal.watch();
        // Heartbeats are due this long after the last response, also while
        // changes flow that a filter drops: they carry the cursor past them.
        let mut last_sent = Instant::now();
        // When the next digest is due: at once when asked for, then every
        // interval (`None`: never).
        let mut digest_due = if request.digest {
            Some(Instant::now())
        } else {
            self.config.digest.map(|every| Instant::now() + every)
        };
        loop {
            let heartbeat_due = last_sent + self.config.heartbeat;
            if digest_due.is_some_and(|due| Instant::now() >= due) && self.digest(cursor).await? {
                digest_due = self.config.digest.map(|every| Instant::now() + every);
                self.member.at(cursor);
                last_sent = Instant::now();
                continue;
            }
            let read = self.read(&info, cursor);
            match read {
                Err(Lagged) => {
                    let reason = "lagged behind the journal: the subscriber read slower than the host changed routes".to_string();
                    self.resync(&info, ResyncCause::Lagged, reason).await?;
                    cursor = self.snapshot(&info).await?;
                }
                Ok(None) => {
                    tokio::select! {
                        changed = wake.changed() => {
                            if changed.is_err() {
                                return Ok(());
                            }
                            continue;
                        }
                        _ = tokio::time::sleep_until(heartbeat_due) => {
                            self.heartbeat(&info, cursor).await?;
                        }
                        _ = sleep_until_or_never(digest_due) => continue,
                        _ = self.tx.closed() => return Err(Gone),
                    }
                }
                Ok(Some((last, response))) => {
                    cursor = last;
                    match response {
                        Some(response) => self.send(response).await?,
                        None if Instant::now() >= heartbeat_due => {
                            self.heartbeat(&info, cursor).await?;
                        }
                        // Catching up through a long stretch the filter
                        // drops must not hold the agent's one thread.
                        None => {
                            tokio::task::yield_now().await;
                            continue;
                        }
                    }
                }
            }
            self.member.at(cursor);
            last_sent = Instant::now();
        }
    }

    /// The next batch after `cursor`: its last seq and what the subscriber
    /// gets of it (`None` when a filter drops it all). An unfiltered
    /// session sends the journal's shared records as they are.
    #[allow(clippy::type_complexity)]
    fn read(
        &self,
        info: &StreamInfo,
        cursor: u64,
    ) -> Result<Option<(u64, Option<SubscribeResponse>)>, Lagged> {
        let (max, max_bytes) = (self.config.max_batch, self.config.max_batch_bytes);
        let core = self.journal.lock();
        let oldest = core.time_after(cursor);
        let observe = |response: &Option<SubscribeResponse>| {
            if let (Some(time), Some(_)) = (oldest, response) {
                let seconds = now_unix_nano().saturating_sub(time) as f64 / 1e9;
                self.journal.subscribers.send_latency.observe(seconds);
            }
        };
        let Some(interest) = &self.interest else {
            let read = core.read_records_after(cursor, max, max_bytes)?;
            drop(core);
            return Ok(read.map(|(last, mut parts)| {
                parts.insert(0, info.stream_record().clone());
                let response = Some(SubscribeResponse::from_records(parts));
                observe(&response);
                (last, response)
            }));
        };
        let entries = core.read_after(cursor, max, max_bytes)?;
        drop(core);
        let Some(last) = entries.last().map(|e| e.seq) else {
            return Ok(None);
        };
        let response = filtered(interest, info, &entries);
        observe(&response);
        Ok(Some((last, response)))
    }

    /// Sends a digest of the state at `cursor` if the journal is there
    /// (the subscriber has caught up); says whether it did. Taken under
    /// the lock that numbers changes, so it is exactly of that position.
    async fn digest(&self, cursor: u64) -> Result<bool, Gone> {
        let event = {
            let core = self.journal.lock();
            if core.last_seq() != cursor {
                return Ok(false);
            }
            core.digest_event()
        };
        self.send_events(vec![event]).await?;
        Ok(true)
    }

    async fn heartbeat(&self, info: &StreamInfo, cursor: u64) -> Result<(), Gone> {
        let beat = event::Kind::Heartbeat(api::Heartbeat {});
        self.send_events(vec![info.event(cursor, now_unix_nano(), beat)])
            .await
    }

    /// Tells the subscriber to drop what it holds; a snapshot must follow.
    async fn resync(
        &self,
        info: &StreamInfo,
        cause: ResyncCause,
        reason: String,
    ) -> Result<(), Gone> {
        tracing::info!(%reason, "subscriber resynchronised");
        self.journal.subscribers.count_resync(cause);
        let seq = self.journal.lock().last_seq();
        let kind = event::Kind::Resync(api::Resync {
            reason,
            cause: cause as i32,
        });
        self.send_events(vec![info.event(seq, now_unix_nano(), kind)])
            .await
    }

    /// Sends every current object that passes the filter as an add, then
    /// the sync marker; returns the sequence number the snapshot is valid
    /// for.
    async fn snapshot(&self, info: &StreamInfo) -> Result<u64, Gone> {
        // A reference to each object, taken under the lock; the encoding
        // happens batch by batch as the subscriber takes them.
        let (parts, seq) = {
            let core = self.journal.lock();
            (core.snapshot(), core.last_seq())
        };
        let time = now_unix_nano();
        let max = self.config.max_batch.max(1);
        for (netns, objects) in parts {
            let mut changes = objects
                .into_iter()
                .map(|(key, object)| Change {
                    action: Action::Add,
                    key,
                    object,
                    previous: Previous::None,
                })
                .peekable();
            let keep = |change: &Change| {
                self.interest
                    .as_ref()
                    .is_none_or(|i| i.keeps(&netns, change))
            };
            while changes.peek().is_some() {
                // Encoded as the journal encodes changes (names included),
                // straight from the shared objects.
                let mut buf = BytesMut::new();
                let sent =
                    encode_snapshot(info, &netns, seq, time, &mut changes, max, keep, &mut buf);
                if sent == 0 {
                    continue;
                }
                self.journal.subscribers.count_snapshot_events(sent);
                let parts = vec![info.stream_record().clone(), buf.freeze()];
                self.send(SubscribeResponse::from_records(parts)).await?;
            }
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

async fn sleep_until_or_never(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What a filtered subscriber gets of `entries`: the shared records of
/// those that pass (with the definitions of their causes), a delete for
/// each object that left the filter, or nothing when the filter drops them
/// all.
fn filtered(
    interest: &Interest,
    info: &StreamInfo,
    entries: &[Entry],
) -> Option<SubscribeResponse> {
    let mut parts = vec![info.stream_record().clone()];
    // The definitions of each batch a passing change came from, once.
    let mut defs: Vec<Bytes> = Vec::new();
    for entry in entries {
        let (Pass::Shared(record) | Pass::Left(record)) = interest.pass(info, entry) else {
            continue;
        };
        parts.push(record);
        // Both refer to the entry's cause, if any.
        carry_defs(&mut defs, entry.defs());
    }
    (parts.len() > 1).then(|| {
        parts.extend(defs);
        SubscribeResponse::from_records(parts)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Key, Object};
    use routewatch_proto::v1::Route;
    use tokio_stream::StreamExt;

    use crate::journal::test_change as change;

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
                    Some(event::Kind::Replay(_)) => "replay",
                    Some(event::Kind::Digest(_)) => "digest",
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
            core.table_mut(&"".into())
                .insert_dumped(crate::decode::Message::NewRoute {
                    route: route.into(),
                    flags: 0,
                });
        }
    }

    fn publish(j: &Journal, n: u32) {
        j.lock()
            .publish((0..n).map(change).collect(), api::Origin::Notification);
        j.wake();
    }

    fn start(j: Arc<Journal>, request: SubscribeRequest, config: SessionConfig) -> ResponseStream {
        subscribe(
            j,
            request,
            config,
            String::new(),
            None,
            CancellationToken::new(),
        )
        .expect("valid request")
    }

    async fn next(stream: &mut ResponseStream) -> Vec<(&'static str, u64)> {
        kinds(stream.next().await.expect("stream open").expect("no error"))
    }

    /// Snapshot, then every change, unfiltered.
    fn follow_all() -> SubscribeRequest {
        SubscribeRequest {
            snapshot: true,
            follow: true,
            ..Default::default()
        }
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
        let request = follow_all();
        let mut stream = start(j.clone(), request, config);
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

    #[tokio::test(start_paused = true)]
    async fn digests_come_when_asked_then_every_interval_at_the_position_reached() {
        let j = journal(100);
        fill(&j, 2);
        // Filled without changes, as a first dump: counted once.
        j.lock().recount("");
        let config = SessionConfig {
            digest: Some(Duration::from_secs(5)),
            ..Default::default()
        };
        let request = SubscribeRequest {
            digest: true,
            ..follow_all()
        };
        let mut stream = start(j.clone(), request, config);
        assert_eq!(next(&mut stream).await, vec![("change", 0), ("change", 0)]);
        assert_eq!(next(&mut stream).await, vec![("sync", 0)]);
        assert_eq!(next(&mut stream).await, vec![("digest", 0)], "asked for");
        publish(&j, 3);
        assert_eq!(
            next(&mut stream).await,
            vec![("change", 1), ("change", 2), ("change", 3)]
        );
        let started = Instant::now();
        let response = stream.next().await.unwrap().unwrap();
        let events = response.into_events().unwrap();
        assert!(
            started.elapsed() >= Duration::from_secs(4),
            "every interval"
        );
        let Some(event::Kind::Digest(d)) = &events[0].kind else {
            panic!("a digest: {events:?}");
        };
        assert_eq!(events[0].seq, 3, "of the state after the last change sent");
        let counted: u64 = d.parts.iter().map(|p| p.count).sum();
        assert_eq!(counted, 2 + 3, "what the table holds");
    }

    /// The replay marker's (seq, complete, reason) and the seqs of the
    /// changes after it, from the first response(s) of `stream`.
    async fn replayed(
        stream: &mut ResponseStream,
        changes: usize,
    ) -> (u64, bool, String, Vec<u64>) {
        let first = stream.next().await.unwrap().unwrap().into_events().unwrap();
        let Some(event::Kind::Replay(r)) = &first[0].kind else {
            panic!("the stream starts with its replay marker: {first:?}");
        };
        let marker = (first[0].seq, r.complete, r.reason.clone());
        let mut seqs: Vec<u64> = first[1..].iter().map(|e| e.seq).collect();
        while seqs.len() < changes {
            let more = stream.next().await.unwrap().unwrap().into_events().unwrap();
            seqs.extend(more.iter().map(|e| e.seq));
        }
        (marker.0, marker.1, marker.2, seqs)
    }

    #[tokio::test]
    async fn a_replay_starts_n_changes_back_and_says_when_the_journal_is_shorter() {
        let j = journal(5);
        publish(&j, 8);
        let replay = |last, since| SubscribeRequest {
            follow: true,
            replay_last: last,
            replay_since_unix_nano: since,
            ..Default::default()
        };
        let mut stream = start(j.clone(), replay(3, 0), SessionConfig::default());
        let (at, complete, reason, seqs) = replayed(&mut stream, 3).await;
        assert_eq!((at, complete, seqs), (5, true, vec![6, 7, 8]), "{reason}");
        // The ring holds 4..=8 only.
        let mut stream = start(j.clone(), replay(7, 0), SessionConfig::default());
        let (at, complete, reason, seqs) = replayed(&mut stream, 5).await;
        assert_eq!((at, complete, seqs), (3, false, vec![4, 5, 6, 7, 8]));
        assert!(reason.contains("holds only the last 5"), "{reason}");
        // Since a time before the oldest change held: incomplete too; since
        // a moment after the last change: nothing yet, complete, then live.
        let mut stream = start(j.clone(), replay(0, 1), SessionConfig::default());
        let (at, complete, reason, _) = replayed(&mut stream, 5).await;
        assert_eq!((at, complete), (3, false), "{reason}");
        let later = now_unix_nano() + 1;
        let mut stream = start(j.clone(), replay(0, later), SessionConfig::default());
        let (at, complete, reason, _) = replayed(&mut stream, 0).await;
        assert_eq!((at, complete), (8, true), "{reason}");
        tokio::time::sleep(Duration::from_millis(2)).await;
        publish(&j, 1);
        assert_eq!(next(&mut stream).await, vec![("change", 9)]);
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
            ..Default::default()
        };
        let mut stream = start(j, request, SessionConfig::default());
        assert_eq!(next(&mut stream).await, vec![("change", 2)]);
        assert_eq!(next(&mut stream).await, vec![("sync", 2)]);
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn an_overtaken_subscriber_gets_resync_and_a_fresh_snapshot() {
        let j = journal(4);
        fill(&j, 1);
        let request = follow_all();
        let mut stream = start(j.clone(), request, SessionConfig::default());
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
        let request = follow_all();
        let mut stream = start(j.clone(), request, config);
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
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_known_cursor_resumes_without_snapshot_or_duplicates() {
        let j = journal(100);
        fill(&j, 2);
        publish(&j, 5);
        let mut stream = start(j.clone(), resume("s1", 3), SessionConfig::default());
        assert_eq!(next(&mut stream).await, vec![("change", 4), ("change", 5)]);
        publish(&j, 1);
        assert_eq!(next(&mut stream).await, vec![("change", 6)]);
    }

    /// Who made each change of `response` (see `test_makers`).
    fn makers(response: SubscribeResponse) -> Vec<(u64, String, String, String)> {
        crate::journal::test_makers(&response.into_events().expect("every cause defined"))
    }

    #[tokio::test]
    async fn every_response_defines_the_causes_of_its_changes_wherever_it_starts() {
        let j = journal(100);
        let by = |comm: &str| {
            Some(crate::cause::Cause::new(
                Some(api::ChangedBy {
                    comm: comm.into(),
                    ..Default::default()
                }),
                String::new(),
            ))
        };
        let (ip, bird) = (by("ip"), by("bird"));
        // One batch: ip, ip, bird, nobody, ip.
        let causes = [(2, ip.clone()), (3, bird), (4, None), (5, ip)];
        j.lock().publish_caused(
            &"".into(),
            (0..5).map(change).collect(),
            &[],
            &causes,
            api::Origin::Notification,
        );
        j.wake();
        let who = |seq: u64, comm: &str| (seq, "s1".into(), comm.to_string(), String::new());
        // The batch split across responses, from its start and from its
        // middle.
        let config = || SessionConfig {
            max_batch: 2,
            ..Default::default()
        };
        let mut stream = start(j.clone(), resume("s1", 0), config());
        for expected in [
            vec![who(1, "ip"), who(2, "ip")],
            vec![who(3, "bird"), who(4, "-")],
            vec![who(5, "ip")],
        ] {
            assert_eq!(makers(stream.next().await.unwrap().unwrap()), expected);
        }
        let mut stream = start(j.clone(), resume("s1", 2), config());
        assert_eq!(
            makers(stream.next().await.unwrap().unwrap()),
            vec![who(3, "bird"), who(4, "-")]
        );
        // Filtered: only some of the batch's changes.
        let request = SubscribeRequest {
            allow: vec![api::Filter {
                changed_by: vec!["ip".into()],
                ..Default::default()
            }],
            ..resume("s1", 1)
        };
        let mut stream = start(j.clone(), request, SessionConfig::default());
        assert_eq!(
            makers(stream.next().await.unwrap().unwrap()),
            vec![who(2, "ip"), who(5, "ip")]
        );
    }

    #[tokio::test]
    async fn a_foreign_or_too_old_cursor_gets_resync_then_snapshot() {
        let j = journal(4);
        fill(&j, 1);
        publish(&j, 10);
        for request in [resume("other", 10), resume("s1", 2)] {
            let mut stream = start(j.clone(), request, SessionConfig::default());
            assert_eq!(next(&mut stream).await, vec![("resync", 10)]);
            assert_eq!(next(&mut stream).await, vec![("change", 10)]);
            assert_eq!(next(&mut stream).await, vec![("sync", 10)]);
        }
    }

    /// A route to 10.0.`n`.0/24 installed by protocol `protocol`.
    fn route(n: u32, protocol: u32) -> Route {
        Route {
            family: 1,
            dst: format!("10.0.{n}.0/24"),
            protocol,
            ..Default::default()
        }
    }

    fn record(n: u32, protocol: u32) -> Object {
        Object::Route(crate::state::Record::new(Key::test(n), &route(n, protocol)))
    }

    fn bgp_only() -> SubscribeRequest {
        SubscribeRequest {
            snapshot: true,
            follow: true,
            allow: vec![api::Filter {
                protocol: vec!["bgp".into()],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// Changes with their keys and protocols, decoded.
    fn changes(r: SubscribeResponse) -> Vec<(&'static str, String, u32)> {
        r.into_events()
            .expect("decodes")
            .into_iter()
            .filter_map(|e| match e.kind {
                Some(event::Kind::Change(c)) => {
                    let action = if c.action == api::Action::Delete as i32 {
                        "delete"
                    } else {
                        "add"
                    };
                    let protocol = match c.object {
                        Some(api::change::Object::Route(r)) => r.protocol,
                        _ => 0,
                    };
                    Some((action, c.key, protocol))
                }
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_filtered_session_sees_its_objects_enter_and_leave() {
        let j = journal(100);
        let mut stream = start(j.clone(), bgp_only(), SessionConfig::default());
        assert_eq!(next(&mut stream).await, vec![("sync", 0)]);
        let add = |n, protocol, previous| Change {
            action: Action::Add,
            key: Key::test(n),
            object: record(n, protocol),
            previous,
        };
        let was = |n, protocol| crate::state::Previous::Was(record(n, protocol));
        j.lock().publish(
            vec![
                add(1, 4, Default::default()),
                add(2, 186, Default::default()),
                // k1 becomes BGP: enters the filter.
                add(1, 186, was(1, 4)),
                // k2 stops being BGP: leaves it, as a delete of its BGP self.
                add(2, 4, was(2, 186)),
                // k3 was never BGP.
                add(3, 4, was(3, 2)),
            ],
            api::Origin::Notification,
        );
        j.wake();
        let got = changes(stream.next().await.unwrap().unwrap());
        assert_eq!(
            got,
            vec![
                ("add", Key::test(2).to_string(), 186),
                ("add", Key::test(1).to_string(), 186),
                ("delete", Key::test(2).to_string(), 186),
            ]
        );
    }

    #[tokio::test]
    async fn a_filtered_snapshot_holds_only_matching_objects() {
        let j = journal(100);
        {
            let mut core = j.lock();
            for (n, protocol) in [(1, 186u8), (2, 4), (3, 186)] {
                let mut r = route(n, 0);
                r.protocol = u32::from(protocol);
                core.table_mut(&"".into())
                    .insert_dumped(crate::decode::Message::NewRoute {
                        route: r.into(),
                        flags: 0,
                    });
            }
        }
        let mut stream = start(j.clone(), bgp_only(), SessionConfig::default());
        let got = changes(stream.next().await.unwrap().unwrap());
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|(a, _, p)| *a == "add" && *p == 186));
        assert_eq!(next(&mut stream).await, vec![("sync", 0)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_filtered_session_gets_heartbeats_through_filtered_churn() {
        let j = journal(1000);
        let config = SessionConfig {
            heartbeat: Duration::from_secs(5),
            ..Default::default()
        };
        let mut stream = start(j.clone(), bgp_only(), config);
        assert_eq!(next(&mut stream).await, vec![("sync", 0)]);
        // A change every second, none of them BGP: the wake-ups never let
        // the stream be quiet, yet the cursor must reach the subscriber.
        let churn = {
            let j = j.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    publish(&j, 3);
                }
            })
        };
        let start = tokio::time::Instant::now();
        let first = next(&mut stream).await;
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].0, "heartbeat");
        assert!(
            first[0].1 >= 12,
            "the heartbeat carries the current seq: {first:?}"
        );
        assert!(start.elapsed() >= Duration::from_secs(5));
        assert!(
            start.elapsed() < Duration::from_secs(7),
            "{:?}",
            start.elapsed()
        );
        let second = next(&mut stream).await;
        assert_eq!(second[0].0, "heartbeat");
        assert!(second[0].1 > first[0].1);
        churn.abort();
    }

    #[tokio::test]
    async fn an_invalid_filter_is_refused_naming_the_field() {
        let j = journal(10);
        let mut request = bgp_only();
        request.deny = vec![api::Filter {
            within: vec!["10.1.2.3/8".into()],
            ..Default::default()
        }];
        let status = subscribe(
            j,
            request,
            SessionConfig::default(),
            String::new(),
            None,
            CancellationToken::new(),
        )
        .expect_err("refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status
                .message()
                .contains(r#"deny[0].within "10.1.2.3/8": host bits set"#),
            "{}",
            status.message()
        );
    }
}
