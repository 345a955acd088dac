//! One subscription per target, merged into one stream of labelled events.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use routewatch_agent::{Pipeline, PipelineConfig};
use routewatch_proto::v1::{Cursor, Event, SubscribeRequest, SubscribeResponse};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::Compression;
use crate::cursor::{Position, Step};
use crate::target::Target;
use crate::tls::Security;
use crate::{reconnect, remote, ClientError};

/// What the fan-in delivers about one host.
#[derive(Debug)]
pub enum Delivery {
    /// A batch of events, in stream order. `cursor` is the host's position
    /// once they are applied (remote targets only).
    Events {
        host: Arc<str>,
        events: Vec<Event>,
        cursor: Option<Cursor>,
    },
    /// Subscribed again (see [`crate::printer::Notice::Connected`]).
    Connected {
        host: Arc<str>,
        again: bool,
        resume_from: Option<Cursor>,
    },
    /// The subscription was lost; the next attempt is `retry_in` from now.
    Disconnected {
        host: Arc<str>,
        error: String,
        retry_in: Duration,
    },
    /// The host's stream is over (the last delivery for that host).
    Ended { host: Arc<str> },
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
}

/// Subscribes to every target and merges their streams, each batch labelled
/// with its host. Every target ends with `Ended` or `Failed`.
pub fn fan_in(
    targets: Vec<Target>,
    request: SubscribeRequest,
    options: Options,
    shutdown: CancellationToken,
) -> mpsc::Receiver<Delivery> {
    let (tx, rx) = mpsc::channel(64);
    for target in targets {
        let tx = tx.clone();
        let request = request.clone();
        let options = options.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let host: Arc<str> = target.label().into();
            let result = tokio::select! {
                r = follow(&target, host.clone(), request, options, &tx, shutdown.clone()) => r,
                _ = shutdown.cancelled() => Ok(()),
            };
            let last = match result {
                Ok(()) => Delivery::Ended { host },
                Err(e) => Delivery::Failed(e),
            };
            let _ = tx.send(last).await;
        });
    }
    rx
}

async fn follow(
    target: &Target,
    host: Arc<str>,
    request: SubscribeRequest,
    options: Options,
    tx: &mpsc::Sender<Delivery>,
    shutdown: CancellationToken,
) -> Result<(), ClientError> {
    match target {
        Target::Local => {
            let mut pipeline = Pipeline::start(PipelineConfig::default(), shutdown.child_token())?;
            pipeline.ready().await?;
            let stream = pipeline.subscribe(request).map(|r| {
                r.map_err(|status| ClientError::Stream {
                    target: target.to_string(),
                    status,
                })
            });
            let result = forward(stream, &host, None, tx).await.result();
            let _ = pipeline.stop().await;
            result
        }
        Target::Remote(addr) if options.reconnect => {
            let position = Position::new(options.resume.get(addr).cloned());
            let compression = options.compression;
            let security = &options.security;
            let subscribe = |request| remote::subscribe(addr, request, compression, security);
            reconnect::follow(host, request, position, tx, subscribe).await;
            Ok(())
        }
        Target::Remote(addr) => {
            let request = SubscribeRequest {
                resume_from: options.resume.get(addr).cloned(),
                ..request
            };
            let stream =
                remote::subscribe(addr, request, options.compression, &options.security).await?;
            forward(stream, &host, None, tx).await.result()
        }
    }
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

/// Passes the stream's batches on until it ends. With a `position`, every
/// event is noted there and replayed changes are dropped.
pub async fn forward(
    stream: impl Stream<Item = Result<SubscribeResponse, ClientError>>,
    host: &Arc<str>,
    mut position: Option<&mut Position>,
    tx: &mpsc::Sender<Delivery>,
) -> Forwarded {
    futures::pin_mut!(stream);
    let mut delivered = false;
    let end = loop {
        let events = match stream.next().await {
            None => break End::Finished,
            Some(Err(e)) => break End::Failed(e),
            Some(Ok(response)) => match response.into_events() {
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
            events,
            cursor,
        };
        if tx.send(delivery).await.is_err() {
            break End::Closed;
        }
    };
    Forwarded { delivered, end }
}
