//! One subscription per target, merged into one stream of labelled events.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use routewatch_agent::{Pipeline, PipelineConfig};
use routewatch_proto::v1::{Cursor, Event, SubscribeRequest, SubscribeResponse};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::busy::retry_busy;
use crate::cli::Compression;
use crate::collect::claims::{Agent, Claims};
use crate::cursor::{Position, Step};
use crate::response_codec::response_events;
use crate::target::Target;
use crate::tls::Security;
use crate::{reconnect, remote, ClientError};

/// What the fan-in delivers about one host.
#[derive(Debug)]
pub enum Delivery {
    /// A batch of events, in stream order. `cursor` is the host's position
    /// once they are applied (remote targets only), to be remembered under
    /// `target` (the address dialled).
    Events {
        host: Arc<str>,
        target: Arc<str>,
        events: Vec<Event>,
        cursor: Option<Cursor>,
    },
    /// Subscribed again (see [`crate::printer::Notice::Connected`]).
    Connected {
        host: Arc<str>,
        target: Arc<str>,
        again: bool,
        resume_from: Option<Cursor>,
    },
    /// The subscription was lost; the next attempt is `retry_in` from now.
    Disconnected {
        host: Arc<str>,
        target: Arc<str>,
        error: String,
        retry_in: Duration,
    },
    /// A `dns:///` target found another host: one more subscription, which
    /// ends with `Ended` or `Failed` like the targets given.
    Added { host: Arc<str> },
    /// The host's stream is over (the last delivery for that host);
    /// `dropped` says why a `dns:///` target stopped following it.
    Ended {
        host: Arc<str>,
        dropped: Option<String>,
    },
    /// The host failed (the last delivery for that host).
    Failed(ClientError),
}

/// How subscriptions behave.
#[derive(Debug, Clone)]
pub struct Options {
    /// Resubscribe to remote targets whenever a subscription is lost, until
    /// shutdown (`tail`), instead of failing (`show`).
    pub reconnect: bool,
    pub compression: Compression,
    pub security: Security,
    /// Where remote targets resume, by address.
    pub resume: HashMap<String, Cursor>,
    /// How often `dns:///` targets are resolved again (`tail` only).
    pub dns_refresh: Duration,
    /// Follow a remote target only while its claim holds, from the cursor
    /// the claim gives (`collect`; `resume` is not used then).
    pub claims: Option<Claims>,
    /// Where the in-process pipeline reads iproute2's names (see
    /// `--iproute2-dir`); `None`: the standard places.
    pub iproute2_dir: Option<std::path::PathBuf>,
    /// Where the consumer asks a remote target's subscription to start
    /// over from a fresh snapshot (a digest mismatch, see
    /// [`crate::restart`]).
    pub restarts: crate::restart::Restarts,
    /// How long connecting to an agent, and then its answer, may take.
    pub connect_timeout: Duration,
    /// `tail`: give a target up after this many failed attempts in a row
    /// (`None`: retry until shutdown).
    pub retries: Option<u32>,
    /// Without `reconnect`: how long to keep asking an agent that answers
    /// busy (`show --retry-for`, see [`crate::busy`]).
    pub busy_retry: Duration,
}

/// Subscribes to every target and merges their streams, each batch labelled
/// with its host. Every target ends with `Ended` or `Failed`, and so does
/// every host a `dns:///` target adds.
pub fn fan_in(
    targets: Vec<Target>,
    request: SubscribeRequest,
    options: Options,
    shutdown: CancellationToken,
) -> mpsc::Receiver<Delivery> {
    let (tx, rx) = mpsc::channel(64);
    for target in targets {
        spawn_target(target, &request, &options, &tx, shutdown.clone(), None);
    }
    rx
}

/// Follows one target in its own task until it ends or `stop` is
/// cancelled; `dropped` says why when the task is stopped by a `dns:///`
/// target rather than by shutdown.
fn spawn_target(
    target: Target,
    request: &SubscribeRequest,
    options: &Options,
    tx: &mpsc::Sender<Delivery>,
    stop: CancellationToken,
    dropped: Option<Arc<std::sync::Mutex<Option<String>>>>,
) {
    let tx = tx.clone();
    let request = request.clone();
    let options = options.clone();
    tokio::spawn(async move {
        let mut host: Arc<str> = target.label().into();
        let result = tokio::select! {
            r = follow(&target, &mut host, request, options, &tx, stop.clone()) => r,
            _ = stop.cancelled() => Ok(()),
        };
        let last = match result {
            Ok(()) => Delivery::Ended {
                host,
                dropped: dropped.and_then(|d| d.lock().ok().and_then(|mut d| d.take())),
            },
            Err(e) => Delivery::Failed(e),
        };
        let _ = tx.send(last).await;
    });
}

async fn follow(
    target: &Target,
    host: &mut Arc<str>,
    request: SubscribeRequest,
    options: Options,
    tx: &mpsc::Sender<Delivery>,
    shutdown: CancellationToken,
) -> Result<(), ClientError> {
    match target {
        Target::Local => {
            let config = PipelineConfig {
                iproute2_dir: options.iproute2_dir.clone(),
                ..PipelineConfig::default()
            };
            let mut pipeline = Pipeline::start(config, shutdown.child_token())?;
            pipeline.ready().await?;
            let stream_err = |status| ClientError::Stream {
                target: target.to_string(),
                status,
            };
            let stream = pipeline.subscribe(request).map_err(stream_err)?;
            let stream = stream.map(move |r| r.map_err(stream_err));
            let result = forward(stream, &*host, &*host, None, tx).await.result();
            let _ = pipeline.stop().await;
            result
        }
        Target::Remote(addr) if options.reconnect => {
            let filtered = !request.allow.is_empty() || !request.deny.is_empty();
            let position = |cursor| {
                let position = Position::new(cursor);
                if filtered {
                    position.filtered()
                } else {
                    position
                }
            };
            let compression = options.compression;
            let security = &options.security;
            let timeout = options.connect_timeout;
            let subscribe =
                |request| remote::subscribe(addr, request, compression, security, timeout);
            let target: Arc<str> = addr.as_str().into();
            let Some(claims) = &options.claims else {
                let from = position(options.resume.get(addr).cloned());
                return reconnect::follow_with(
                    host,
                    &target,
                    request,
                    from,
                    tx,
                    subscribe,
                    options.retries,
                    Some(options.restarts.handle(addr)),
                )
                .await;
            };
            // Followed only while this collector holds the target's
            // record (found by the identity of the agent that answers at
            // the address), from the cursor stored for it.
            loop {
                let Some(connection) = claims.connection(addr).await else {
                    return Ok(());
                };
                let Some(agent) = identify(addr, &options, host, &target, tx).await else {
                    return Ok(());
                };
                let Some(held) = claims.claim(connection, addr, agent.clone()).await else {
                    return Ok(());
                };
                let from = position(held.granted.cursor.clone());
                // Every connection must reach the agent the record was
                // claimed for: an address now answered by another agent
                // never adds to this record.
                let expected = agent.map(|a| a.key);
                let subscribe = |request| {
                    let expected = expected.clone();
                    async move {
                        let subscribed = subscribe(request).await?;
                        match (expected, &subscribed.identity) {
                            (Some(expected), found) if found.as_ref() != Some(&expected) => {
                                Err(ClientError::IdentityChanged {
                                    target: addr.clone(),
                                    expected,
                                    found: found
                                        .clone()
                                        .unwrap_or_else(|| "an agent without identity".into()),
                                })
                            }
                            _ => Ok(subscribed),
                        }
                    }
                };
                let follow = reconnect::follow_with(
                    host,
                    &target,
                    request.clone(),
                    from,
                    tx,
                    subscribe,
                    None,
                    Some(options.restarts.handle(addr)),
                );
                tokio::select! {
                    ended = follow => match ended {
                        Err(e @ ClientError::IdentityChanged { .. }) => {
                            let changed = Delivery::Disconnected {
                                host: host.clone(),
                                target: target.clone(),
                                error: e.to_string(),
                                retry_in: Duration::ZERO,
                            };
                            if tx.send(changed).await.is_err() {
                                return Ok(());
                            }
                        }
                        ended => return ended,
                    },
                    () = held.granted.lost.cancelled() => {}
                }
                // Released before the next claim is asked for.
                drop(held);
            }
        }
        Target::Remote(addr) => {
            let request = SubscribeRequest {
                resume_from: options.resume.get(addr).cloned(),
                ..request
            };
            let subscribed = retry_busy(options.busy_retry, || {
                remote::subscribe(
                    addr,
                    request.clone(),
                    options.compression,
                    &options.security,
                    options.connect_timeout,
                )
            })
            .await?;
            if let Some(name) = subscribed.hostname {
                *host = name.into();
            }
            let target: Arc<str> = addr.as_str().into();
            forward(subscribed.responses, host, &target, None, tx)
                .await
                .result()
        }
        Target::Dns { name, port } => {
            follow_dns(target, name, *port, host, request, options, tx, shutdown).await
        }
    }
}

/// Asks the agent at `addr` who it is (GetInfo), until it answers: each
/// failure is reported as `Disconnected` and retried with backoff. `None`
/// when the reader is gone; `Some(None)` from an agent that reports no
/// identity. `host` becomes the agent's host name.
async fn identify(
    addr: &str,
    options: &Options,
    host: &mut Arc<str>,
    target: &Arc<str>,
    tx: &mpsc::Sender<Delivery>,
) -> Option<Option<Agent>> {
    let mut backoff = crate::backoff::Backoff::default();
    loop {
        match remote::get_info(addr, &options.security, options.connect_timeout).await {
            Ok(info) => {
                if !info.hostname.is_empty() {
                    *host = info.hostname.as_str().into();
                }
                let agent = (!info.agent_id.is_empty()).then(|| Agent {
                    key: format!("{}/{}", info.agent_id, info.agent_netns),
                    host: info.hostname.clone(),
                    stream_id: info.cursor.map(|c| c.stream_id).unwrap_or_default(),
                });
                return Some(agent);
            }
            Err(e) => {
                let retry_in = backoff.next_delay();
                let disconnected = Delivery::Disconnected {
                    host: host.clone(),
                    target: target.clone(),
                    error: e.cause(),
                    retry_in,
                };
                tx.send(disconnected).await.ok()?;
                tokio::time::sleep(retry_in).await;
            }
        }
    }
}

/// Follows every address `name` resolves to, each as its own target;
/// with `options.reconnect`, resolves again every `dns_refresh` and adds
/// and drops hosts as the answer changes, until shutdown. Without it, one
/// answer is followed and this target's own task ends at once.
#[allow(clippy::too_many_arguments)]
async fn follow_dns(
    target: &Target,
    name: &str,
    port: u16,
    host: &Arc<str>,
    request: SubscribeRequest,
    options: Options,
    tx: &mpsc::Sender<Delivery>,
    shutdown: CancellationToken,
) -> Result<(), ClientError> {
    type Why = Arc<std::sync::Mutex<Option<String>>>;
    let mut following: HashMap<SocketAddr, (CancellationToken, Why)> = HashMap::new();
    let mut last_problem: Option<String> = None;
    loop {
        match resolve(name, port).await {
            Ok(addrs) => {
                last_problem = None;
                for addr in &addrs {
                    if following.contains_key(addr) {
                        continue;
                    }
                    let stop = shutdown.child_token();
                    let why: Why = Arc::default();
                    let found = Target::Remote(addr.to_string());
                    if tx
                        .send(Delivery::Added {
                            host: found.label().into(),
                        })
                        .await
                        .is_err()
                    {
                        return Ok(());
                    }
                    spawn_target(
                        found,
                        &request,
                        &options,
                        tx,
                        stop.clone(),
                        Some(why.clone()),
                    );
                    following.insert(*addr, (stop, why));
                }
                following.retain(|addr, (stop, why)| {
                    if addrs.contains(addr) {
                        return true;
                    }
                    if let Ok(mut why) = why.lock() {
                        *why = Some(format!("{addr} is no longer in the DNS answer for {name}"));
                    }
                    stop.cancel();
                    false
                });
            }
            Err(problem) if !options.reconnect => {
                return Err(ClientError::Resolve {
                    target: target.to_string(),
                    problem,
                });
            }
            Err(problem) => {
                // Said once per new problem; the hosts already found stay.
                if last_problem.as_ref() != Some(&problem) {
                    let lost = Delivery::Disconnected {
                        host: host.clone(),
                        target: target.to_string().into(),
                        error: format!("cannot resolve {name}: {problem}"),
                        retry_in: options.dns_refresh,
                    };
                    if tx.send(lost).await.is_err() {
                        return Ok(());
                    }
                    last_problem = Some(problem);
                }
            }
        }
        if !options.reconnect {
            return Ok(());
        }
        tokio::time::sleep(options.dns_refresh).await;
    }
}

/// Every address `name` has (A and AAAA records, or the hosts file), at
/// `port`, without duplicates.
pub(crate) async fn resolve(name: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let found = tokio::net::lookup_host((name, port))
        .await
        .map_err(|e| e.to_string())?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for addr in found {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err("no addresses".into());
    }
    Ok(addrs)
}

/// How a forwarded stream went.
#[derive(Debug)]
pub struct Forwarded {
    /// At least one response arrived.
    pub delivered: bool,
    pub end: End,
}

/// Why forwarding stopped.
#[derive(Debug)]
pub enum End {
    /// The agent ended the stream.
    Finished,
    /// Nobody listens any more.
    Closed,
    /// The stream failed.
    Failed(ClientError),
}

impl Forwarded {
    /// The outcome for a subscription that is not retried.
    fn result(self) -> Result<(), ClientError> {
        match self.end {
            End::Failed(e) => Err(e),
            End::Finished | End::Closed => Ok(()),
        }
    }
}

/// Passes the stream's batches on, labelled `host`, until it ends. With a
/// `position`, every event is noted there and replayed changes are dropped.
pub async fn forward(
    stream: impl Stream<Item = Result<SubscribeResponse, ClientError>>,
    host: &Arc<str>,
    target: &Arc<str>,
    mut position: Option<&mut Position>,
    tx: &mpsc::Sender<Delivery>,
) -> Forwarded {
    futures::pin_mut!(stream);
    let mut delivered = false;
    let end = loop {
        let events = match stream.next().await {
            None => break End::Finished,
            Some(Err(e)) => break End::Failed(e),
            Some(Ok(response)) => match response_events(response) {
                Ok(events) => events,
                Err(e) => break End::Failed(ClientError::Decode(e.to_string())),
            },
        };
        delivered = true;
        let mut events = events;
        let cursor = match position.as_deref_mut() {
            Some(position) => {
                events.retain(|e| position.advance(e) == Step::Apply);
                position.cursor().cloned()
            }
            None => None,
        };
        let delivery = Delivery::Events {
            host: host.clone(),
            target: target.clone(),
            events,
            cursor,
        };
        if tx.send(delivery).await.is_err() {
            break End::Closed;
        }
    };
    Forwarded { delivered, end }
}
