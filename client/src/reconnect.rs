//! `tail`'s subscription to an agent: resubscribes after every loss, from
//! the last cursor, until shutdown (or until `--retries` attempts in a row
//! have failed).

use std::future::Future;
use std::sync::Arc;

use routewatch_proto::v1::SubscribeRequest;
use tokio::sync::mpsc;

use crate::backoff::Backoff;
use crate::cursor::Position;
use crate::remote::Subscribed;
use crate::subscription::{forward, Delivery, End};
use crate::ClientError;

/// Follows an agent from `position` until the receiver goes away (or the
/// caller drops this future at shutdown); `subscribe` makes one attempt
/// (see [`crate::remote::subscribe`]). Every failure is reported as
/// `Disconnected` and retried, except the agent's refusal of the request
/// itself (a filter naming what its host does not know): asking again
/// cannot help, so that is returned. Lines are labelled `host`, which
/// becomes the host name the agent reports; cursors are noted under
/// `target`.
pub async fn follow<S, F>(
    host: &mut Arc<str>,
    target: &Arc<str>,
    request: SubscribeRequest,
    position: Position,
    tx: &mpsc::Sender<Delivery>,
    subscribe: S,
) -> Result<(), ClientError>
where
    S: FnMut(SubscribeRequest) -> F,
    F: Future<Output = Result<Subscribed, ClientError>>,
{
    follow_with(host, target, request, position, tx, subscribe, None, None).await
}

/// [`follow`], giving up after `retries` attempts in a row that deliver
/// nothing (`None`: never): the last failure is returned as
/// [`ClientError::GaveUp`]. When `restart` is notified, the subscription
/// is dropped, a Resync delivered and the target subscribed again from a
/// fresh snapshot (see [`crate::restart`]).
#[allow(clippy::too_many_arguments)]
pub async fn follow_with<S, F>(
    host: &mut Arc<str>,
    target: &Arc<str>,
    request: SubscribeRequest,
    mut position: Position,
    tx: &mpsc::Sender<Delivery>,
    mut subscribe: S,
    retries: Option<u32>,
    restart: Option<Arc<tokio::sync::Notify>>,
) -> Result<(), ClientError>
where
    S: FnMut(SubscribeRequest) -> F,
    F: Future<Output = Result<Subscribed, ClientError>>,
{
    let mut backoff = Backoff::default();
    // Attempts in a row that delivered nothing.
    let mut fruitless: u32 = 0;
    // Whether anything of the target's stream was delivered in this run.
    let mut followed = false;
    // Whether a subscription of this run worked before.
    let mut again = false;
    // Whether the reader was told of a failure (and waits for the news).
    let mut failed = false;
    // Whether the subscription was restarted (see `restart`).
    let mut restarted = false;
    loop {
        let resume_from = position.cursor().cloned();
        let request = SubscribeRequest {
            resume_from: resume_from.clone(),
            // Starting over (the first time, or after a restart) needs the
            // snapshot whatever the caller asked.
            snapshot: request.snapshot || (restarted && resume_from.is_none()),
            ..request.clone()
        };
        let mut delivered = false;
        let failure = match subscribe(request).await {
            Err(e) if e.is_refused_request() => return Err(e),
            Err(e @ ClientError::IdentityChanged { .. }) => return Err(e),
            Err(e) => e,
            Ok(subscribed) => {
                if let Some(name) = subscribed.hostname {
                    *host = name.into();
                }
                // A first plain subscription needs no word: its snapshot
                // says it all. Any other tells the reader where it continues.
                if failed || resume_from.is_some() {
                    let connected = Delivery::Connected {
                        host: host.clone(),
                        target: target.clone(),
                        again,
                        resume_from,
                    };
                    if tx.send(connected).await.is_err() {
                        return Ok(());
                    }
                }
                again = true;
                let forwarding =
                    forward(subscribed.responses, host, target, Some(&mut position), tx);
                let forwarded = match &restart {
                    None => Some(forwarding.await),
                    Some(restart) => tokio::select! {
                        forwarded = forwarding => Some(forwarded),
                        () = restart.notified() => None,
                    },
                };
                let Some(forwarded) = forwarded else {
                    // Everything the old connection delivered is before
                    // this Resync; the picture is started over after it.
                    let (stream, seq) = position
                        .cursor()
                        .map_or((String::new(), 0), |c| (c.stream_id.clone(), c.seq));
                    let resync = crate::restart::resync_event(&stream, seq);
                    position.advance(&resync);
                    position.forget();
                    restarted = true;
                    let delivery = Delivery::Events {
                        host: host.clone(),
                        target: target.clone(),
                        events: vec![resync],
                        cursor: None,
                    };
                    if tx.send(delivery).await.is_err() {
                        return Ok(());
                    }
                    continue;
                };
                if forwarded.delivered {
                    backoff.reset();
                    fruitless = 0;
                    followed = true;
                    delivered = true;
                }
                match forwarded.end {
                    End::Closed => return Ok(()),
                    End::Finished => ClientError::Stream {
                        target: target.to_string(),
                        status: tonic::Status::unavailable("the agent ended the stream"),
                    },
                    End::Failed(e) => e,
                }
            }
        };
        let error = failure.cause();
        // A subscription that delivered and was then lost is not a failed
        // attempt: the count is of the attempts after it.
        if !delivered {
            fruitless += 1;
        }
        if retries.is_some_and(|retries| fruitless > retries) {
            return Err(ClientError::GaveUp {
                target: target.to_string(),
                attempts: fruitless,
                lost: followed,
                last: Box::new(failure),
            });
        }
        let retry_in = backoff.next_delay();
        let disconnected = Delivery::Disconnected {
            host: host.clone(),
            target: target.clone(),
            error,
            retry_in,
        };
        if tx.send(disconnected).await.is_err() {
            return Ok(());
        }
        failed = true;
        tokio::time::sleep(retry_in).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::time::Duration;

    use futures::StreamExt;
    use routewatch_proto::v1::{event, Change, Cursor, Event, Origin, SubscribeResponse, Sync};
    use tokio::time::Instant;

    use crate::backoff;

    fn change(seq: u64, origin: Origin) -> Event {
        let change = Change {
            action: 1,
            origin: origin as i32,
            key: format!("k{seq}"),
            object: None,
            ..Default::default()
        };
        Event {
            stream_id: "s".into(),
            seq,
            kind: Some(event::Kind::Change(change)),
            ..Default::default()
        }
    }

    fn sync(seq: u64) -> Event {
        Event {
            stream_id: "s".into(),
            seq,
            kind: Some(event::Kind::Sync(Sync {})),
            ..Default::default()
        }
    }

    fn lost() -> ClientError {
        ClientError::Stream {
            target: "h:1".into(),
            status: tonic::Status::unavailable("connection reset"),
        }
    }

    /// What one subscription attempt yields: a failure to subscribe, or a
    /// stream of batches and how it ends.
    enum Attempt {
        Refused,
        /// The agent refuses the request itself (INVALID_ARGUMENT).
        Invalid,
        Stream(Vec<Vec<Event>>, Option<ClientError>),
    }

    /// Plays `attempts` in order, recording each request; past the end,
    /// attempts never complete.
    fn scripted(
        attempts: Vec<Attempt>,
        requests: Arc<Mutex<Vec<SubscribeRequest>>>,
    ) -> impl FnMut(
        SubscribeRequest,
    ) -> futures::future::BoxFuture<'static, Result<Subscribed, ClientError>> {
        let mut attempts = VecDeque::from(attempts);
        move |request| {
            requests.lock().unwrap().push(request);
            let attempt = attempts.pop_front();
            Box::pin(async move {
                match attempt {
                    None => std::future::pending().await,
                    Some(Attempt::Refused) => Err(ClientError::Decode("refused".into())),
                    Some(Attempt::Invalid) => Err(ClientError::Stream {
                        target: "h:1".into(),
                        status: tonic::Status::invalid_argument("invalid filter: table \"bleu\""),
                    }),
                    Some(Attempt::Stream(batches, end)) => {
                        let items = batches
                            .into_iter()
                            .map(|b| Ok(SubscribeResponse::from_events(b)))
                            .chain(end.map(Err));
                        Ok(Subscribed {
                            hostname: Some("agent1".into()),
                            identity: None,
                            responses: futures::stream::iter(items).boxed(),
                        })
                    }
                }
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_the_agent_refuses_is_not_sent_again() {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = scripted(
            vec![Attempt::Refused, Attempt::Invalid, Attempt::Refused],
            requests.clone(),
        );
        let (tx, mut rx) = mpsc::channel(64);
        let (mut host, target) = ("h:1".into(), "h:1".into());
        let ended = follow(
            &mut host,
            &target,
            SubscribeRequest::default(),
            Position::default(),
            &tx,
            script,
        )
        .await;
        let e = ended.expect_err("refused");
        assert!(e.to_string().contains("bleu"), "{e}");
        assert_eq!(
            requests.lock().unwrap().len(),
            2,
            "no attempt after the refusal"
        );
        assert!(matches!(
            rx.recv().await,
            Some(Delivery::Disconnected { .. })
        ));
    }

    /// Runs `follow_with` on `attempts` with `retries`, draining what it
    /// delivers; returns its end and the number of attempts made.
    async fn give_up(attempts: Vec<Attempt>, retries: u32) -> (ClientError, usize) {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = scripted(attempts, requests.clone());
        let (tx, mut rx) = mpsc::channel(64);
        let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let (mut host, target) = ("h:1".into(), "h:1".into());
        let ended = follow_with(
            &mut host,
            &target,
            SubscribeRequest::default(),
            Position::default(),
            &tx,
            script,
            Some(retries),
            None,
        )
        .await;
        drop(tx);
        drain.await.unwrap();
        let made = requests.lock().unwrap().len();
        (ended.expect_err("gave up"), made)
    }

    #[tokio::test(start_paused = true)]
    async fn retries_end_a_target_that_is_never_reached_or_lost() {
        let unreachable = || Attempt::Stream(Vec::new(), Some(lost()));
        let (e, made) = give_up(
            vec![Attempt::Refused, Attempt::Refused, Attempt::Refused],
            2,
        )
        .await;
        assert_eq!(made, 3, "the first attempt and two retries");
        assert!(
            matches!(
                e,
                ClientError::GaveUp {
                    attempts: 3,
                    lost: false,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.exit_code(),
            crate::error::exit::FAILURE,
            "a decode failure"
        );
        let (e, _) = give_up(vec![unreachable()], 0).await;
        assert_eq!(e.exit_code(), crate::error::exit::UNREACHABLE, "{e}");
        // Followed, then lost for good: its output stops at a gap.
        let (e, made) = give_up(
            vec![
                Attempt::Stream(vec![vec![sync(5)]], Some(lost())),
                Attempt::Refused,
                unreachable(),
            ],
            1,
        )
        .await;
        assert_eq!(made, 3, "the count starts again after a delivery");
        assert!(matches!(e, ClientError::GaveUp { lost: true, .. }), "{e:?}");
        assert_eq!(e.exit_code(), crate::error::exit::LOST);
        assert!(e.to_string().contains("--retries"), "{e}");
    }

    fn seqs(events: &[Event]) -> Vec<u64> {
        events.iter().map(|e| e.seq).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn resubscribes_from_the_last_cursor_with_backoff() {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = scripted(
            vec![
                Attempt::Refused,
                Attempt::Refused,
                // Lost mid-snapshot: the cursor must not move.
                Attempt::Stream(vec![vec![change(5, Origin::Dump)]], Some(lost())),
                Attempt::Stream(
                    vec![
                        vec![change(5, Origin::Dump), change(5, Origin::Dump)],
                        vec![sync(5)],
                        vec![change(6, Origin::Notification)],
                    ],
                    Some(lost()),
                ),
                // The agent replays 6 by mistake: dropped.
                Attempt::Stream(
                    vec![vec![
                        change(6, Origin::Notification),
                        change(7, Origin::Notification),
                    ]],
                    None,
                ),
            ],
            requests.clone(),
        );
        let base = SubscribeRequest {
            snapshot: true,
            follow: true,
            resume_from: None,
            ..Default::default()
        };
        let (tx, mut rx) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            let (mut host, target) = ("h:1".into(), "h:1".into());
            let _ = follow(&mut host, &target, base, Position::default(), &tx, script).await;
        });

        let start = Instant::now();
        let mut slept = Duration::ZERO;
        let disconnected = |d: Option<Delivery>, slept: &mut Duration| match d {
            Some(Delivery::Disconnected {
                error, retry_in, ..
            }) => {
                *slept += retry_in;
                (error, retry_in)
            }
            other => panic!("expected a disconnect, got {other:?}"),
        };
        let (error, first) = disconnected(rx.recv().await, &mut slept);
        assert_eq!(error, "cannot decode a response: refused");
        assert!(first <= backoff::INITIAL);
        let (_, second) = disconnected(rx.recv().await, &mut slept);
        assert!(second <= backoff::INITIAL * 2, "{second:?}");

        // Third attempt: a plain subscription (nothing held yet), the first
        // that works.
        match rx.recv().await {
            Some(Delivery::Connected {
                again: false,
                resume_from: None,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        match rx.recv().await {
            Some(Delivery::Events {
                cursor: None,
                host,
                target,
                ..
            }) => {
                assert_eq!(&*host, "agent1", "labelled with the agent's host name");
                assert_eq!(&*target, "h:1", "noted under the address dialled");
            }
            other => panic!("{other:?}"),
        }
        let (error, third) = disconnected(rx.recv().await, &mut slept);
        assert_eq!(error, "connection reset");
        assert!(
            third <= backoff::INITIAL,
            "reset after a stream that delivered"
        );

        // Fourth: snapshot, sync, a change; then lost.
        assert!(matches!(
            rx.recv().await,
            Some(Delivery::Connected {
                again: true,
                resume_from: None,
                ..
            })
        ));
        let mut cursors = Vec::new();
        for _ in 0..3 {
            match rx.recv().await {
                Some(Delivery::Events { cursor, .. }) => cursors.push(cursor.map(|c| c.seq)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(cursors, vec![None, Some(5), Some(6)]);
        disconnected(rx.recv().await, &mut slept);

        // Fifth: resumed after 6; the replayed 6 is dropped.
        let expected = Cursor {
            stream_id: "s".into(),
            seq: 6,
        };
        match rx.recv().await {
            Some(Delivery::Connected {
                again: true,
                resume_from: Some(c),
                ..
            }) => assert_eq!(c, expected),
            other => panic!("{other:?}"),
        }
        match rx.recv().await {
            Some(Delivery::Events { events, cursor, .. }) => {
                assert_eq!(seqs(&events), vec![7]);
                assert_eq!(cursor.map(|c| c.seq), Some(7));
            }
            other => panic!("{other:?}"),
        }
        let (error, _) = disconnected(rx.recv().await, &mut slept);
        assert_eq!(error, "the agent ended the stream");

        // Each attempt came after its announced delay, no sooner.
        tokio::time::sleep(Duration::from_secs(11)).await;
        let requests = requests.lock().unwrap().clone();
        assert_eq!(requests.len(), 6);
        let resumed: Vec<Option<u64>> = requests
            .iter()
            .map(|r| r.resume_from.as_ref().map(|c| c.seq))
            .collect();
        assert_eq!(resumed, vec![None, None, None, None, Some(6), Some(7)]);
        assert!(requests.iter().all(|r| r.snapshot && r.follow));
        assert!(start.elapsed() >= slept);
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_stored_cursor_is_announced_on_the_first_connection() {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = scripted(
            vec![Attempt::Stream(
                vec![vec![change(9, Origin::Notification)]],
                None,
            )],
            requests.clone(),
        );
        let stored = Cursor {
            stream_id: "s".into(),
            seq: 8,
        };
        let (tx, mut rx) = mpsc::channel(64);
        let position = Position::new(Some(stored.clone()));
        let task = tokio::spawn(async move {
            let (mut host, target) = ("h:1".into(), "h:1".into());
            let request = SubscribeRequest::default();
            let _ = follow(&mut host, &target, request, position, &tx, script).await;
        });
        match rx.recv().await {
            Some(Delivery::Connected {
                again: false,
                resume_from: Some(c),
                ..
            }) => assert_eq!(c, stored),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            requests.lock().unwrap()[0].resume_from.as_ref(),
            Some(&stored)
        );
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_target_that_stays_down_is_retried_at_most_every_cap() {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = scripted(
            (0..40).map(|_| Attempt::Refused).collect(),
            requests.clone(),
        );
        let (tx, mut rx) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            let (mut host, target) = ("h:1".into(), "h:1".into());
            let request = SubscribeRequest::default();
            let _ = follow(
                &mut host,
                &target,
                request,
                Position::default(),
                &tx,
                script,
            )
            .await;
        });
        let mut delays = Vec::new();
        for _ in 0..40 {
            match rx.recv().await {
                Some(Delivery::Disconnected { retry_in, .. }) => delays.push(retry_in),
                other => panic!("{other:?}"),
            }
        }
        assert!(delays.iter().all(|d| *d <= backoff::MAX), "{delays:?}");
        let late: Duration = delays[20..].iter().sum();
        assert!(
            late > backoff::MAX * 5,
            "capped at 10 s, not at the first ceiling: {delays:?}"
        );
        task.abort();
    }
}
