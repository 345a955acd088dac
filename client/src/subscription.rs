//! One subscription per target, merged into one stream of labelled events.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use routewatch_agent::{Pipeline, PipelineConfig};
use routewatch_proto::v1::route_watch_client::RouteWatchClient;
use routewatch_proto::v1::{Event, SubscribeRequest};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::target::Target;
use crate::ClientError;

/// Largest response the client accepts; batches are far smaller.
const MAX_MESSAGE: usize = 64 << 20;

/// What the fan-in delivers: a batch of events from one host, or that
/// host's failure.
pub enum Delivery {
    Events { host: Arc<str>, events: Vec<Event> },
    Ended { host: Arc<str> },
    Failed(ClientError),
}

/// Subscribes to every target and merges their streams, each batch labelled
/// with its host. Every target ends with `Ended` or `Failed`.
pub fn fan_in(
    targets: Vec<Target>,
    request: SubscribeRequest,
    shutdown: CancellationToken,
) -> mpsc::Receiver<Delivery> {
    let (tx, rx) = mpsc::channel(64);
    for target in targets {
        let tx = tx.clone();
        let request = request.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let host: Arc<str> = target.label().into();
            let result = tokio::select! {
                r = follow(&target, host.clone(), request, &tx, shutdown.clone()) => r,
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
            let result = forward(stream, host, tx).await;
            let _ = pipeline.stop().await;
            result
        }
        Target::Remote(addr) => {
            let connect_err = |source| ClientError::Connect {
                target: addr.clone(),
                source,
            };
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .map_err(connect_err)?
                .connect()
                .await
                .map_err(connect_err)?;
            let mut client = RouteWatchClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
            let stream = client
                .subscribe(request)
                .await
                .map_err(|status| ClientError::Stream {
                    target: addr.clone(),
                    status,
                })?
                .into_inner()
                .map(|r| {
                    r.map_err(|status| ClientError::Stream {
                        target: addr.clone(),
                        status,
                    })
                });
            forward(stream, host, tx).await
        }
    }
}

async fn forward(
    stream: impl Stream<Item = Result<routewatch_proto::v1::SubscribeResponse, ClientError>>,
    host: Arc<str>,
    tx: &mpsc::Sender<Delivery>,
) -> Result<(), ClientError> {
    futures::pin_mut!(stream);
    while let Some(response) = stream.next().await {
        let events = response?.into_events().map_err(|e| ClientError::Decode(e.to_string()))?;
        if tx
            .send(Delivery::Events {
                host: host.clone(),
                events,
            })
            .await
            .is_err()
        {
            break;
        }
    }
    Ok(())
}
