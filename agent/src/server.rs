//! The gRPC service: each Subscribe call becomes a session.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use routewatch_proto::v1::route_watch_server::{RouteWatch, RouteWatchServer};
use routewatch_proto::v1::{AgentInfo, GetInfoRequest, SubscribeRequest};
use routewatch_proto::HOSTNAME_HEADER;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use crate::config::AgentConfig;
use crate::error::AgentError;
use crate::info::kernel_hostname;
use crate::metrics::Metrics;
use crate::ops;
use crate::pipeline::{Pipeline, Subscriber};
use crate::session::ResponseStream;

struct Service {
    subscriber: Subscriber,
    /// --hostname; `None`: the kernel's, read at each call.
    hostname: Option<String>,
}

impl Service {
    fn hostname(&self) -> String {
        self.hostname.clone().unwrap_or_else(kernel_hostname)
    }
}

#[tonic::async_trait]
impl RouteWatch for Service {
    type SubscribeStream = ResponseStream;

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let peer = request.remote_addr();
        let request = request.into_inner();
        tracing::info!(
            ?peer,
            snapshot = request.snapshot,
            follow = request.follow,
            allow = request.allow.len(),
            deny = request.deny.len(),
            "subscriber connected"
        );
        let peer = peer.map(|p| p.to_string()).unwrap_or_default();
        let stream = self
            .subscriber
            .subscribe(request, peer)
            .inspect_err(|status| {
                tracing::info!(error = status.message(), "subscription refused");
            })?;
        let mut response = Response::new(stream);
        if let Ok(value) = MetadataValue::try_from(self.hostname()) {
            response.metadata_mut().insert(HOSTNAME_HEADER, value);
        }
        Ok(response)
    }

    async fn get_info(
        &self,
        _request: Request<GetInfoRequest>,
    ) -> Result<Response<AgentInfo>, Status> {
        Ok(Response::new(self.subscriber.info(&self.hostname())))
    }
}

/// Runs the agent until `shutdown` resolves (or the pipeline fails): the
/// ops port at once, the first complete dump, then gRPC. Returns after
/// every task has finished.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    if !config.insecure {
        return Err(AgentError::TlsRequired);
    }
    if !config.listen.ip().is_loopback() {
        tracing::warn!(
            addr = %config.listen,
            "serving PLAINTEXT on a non-loopback address: anyone who can reach it can read this host's routing tables"
        );
    }
    let ops_listener = match config.ops_listen {
        Some(addr) => Some(ops::bind(addr).await?),
        None => None,
    };
    let token = CancellationToken::new();
    let mut pipeline = Pipeline::start(config.pipeline.clone(), token.clone())?;
    let metrics = Arc::new(Metrics::new(&pipeline));
    let ops = ops_listener
        .map(|l| ops::serve(l, metrics.clone(), pipeline.journal.clone(), token.clone()));
    let stop_ops = |ops: Option<ops::OpsServer>| async move {
        match ops {
            Some(ops) => ops.stop().await,
            None => Ok(()),
        }
    };
    tokio::pin!(shutdown);
    tokio::select! {
        ready = pipeline.ready() => if let Err(e) = ready {
            stop_ops(ops).await?;
            return Err(e);
        },
        _ = &mut shutdown => {
            stop_ops(ops).await?;
            return pipeline.stop().await;
        }
    }
    let listener = bind(config.listen).await?;
    tracing::info!(addr = %config.listen, "serving");
    // Compression is the client's choice: gzip and zstd are offered, and a
    // client that accepts neither gets plain messages.
    let service = RouteWatchServer::new(Service {
        subscriber: pipeline.subscriber(),
        hostname: config.hostname.clone(),
    })
    .send_compressed(CompressionEncoding::Zstd)
    .send_compressed(CompressionEncoding::Gzip)
    .accept_compressed(CompressionEncoding::Zstd)
    .accept_compressed(CompressionEncoding::Gzip);
    let stop = token.clone();
    let failed = pipeline.failed();
    // Keepalives find subscribers whose path died, so their sessions end
    // instead of waiting for TCP to give up.
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .add_service(service)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            tokio::select! {
                _ = shutdown => tracing::info!("shutting down"),
                _ = failed.cancelled() => tracing::error!("the netlink pipeline failed; shutting down"),
            }
            stop.cancel();
        })
        .await?;
    token.cancel();
    let ops = stop_ops(ops).await;
    // Waits for the sources; the state dir is written on the way out.
    pipeline.stop().await.and(ops)
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, AgentError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AgentError::Listen { addr, source })
}
