//! The gRPC service: each Subscribe call becomes a session, whose
//! responses go out as the journal's shared bytes ([`crate::wire`]).
//! Alongside it the agent serves the standard health service and server
//! reflection, so that stock tools (grpcurl, Kubernetes probes through a
//! TLS-aware sidecar) can find and describe it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use routewatch_proto::v1::route_watch_server::{RouteWatch, RouteWatchServer};
use routewatch_proto::v1::{AgentInfo, GetInfoRequest, SubscribeRequest, FILE_DESCRIPTOR_SET};
use routewatch_proto::{HOSTNAME_HEADER, IDENTITY_HEADER};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use crate::admission::Admission;
use crate::config::AgentConfig;
use crate::error::AgentError;
use crate::identity::Identity;
use crate::info::kernel_hostname;
use crate::metrics::Metrics;
use crate::ops;
use crate::pipeline::{Pipeline, Subscriber};
use crate::request::{self, MAX_REQUEST_BYTES};
use crate::session::ResponseStream;
use crate::tls::{AllowList, Handshaker, Incoming, Limits, PeerInfo, Reloader, TlsStats};
use crate::wire::{ResponseEncoding, Routes, WireStats, KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT};

/// Largest block of request headers (gRPC metadata) the agent reads.
const MAX_HEADER_BYTES: u32 = 16 << 10;

struct Service {
    subscriber: Subscriber,
    admission: Admission,
    /// --hostname; `None`: the kernel's, read at each call.
    hostname: Option<String>,
    /// Machine id (or --agent-id) and namespace, found at start.
    identity: Identity,
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
        let peer = request.extensions().get::<PeerInfo>().cloned();
        let compression = request.extensions().get::<ResponseEncoding>().copied();
        let request = request.into_inner();
        request::validate(&request)?;
        let slot = self.admission.admit(request.follow)?;
        tracing::info!(
            peer = ?peer.as_ref().map(|p| p.remote_addr),
            identity = %peer.as_ref().and_then(|p| p.identity.as_deref()).map(ToString::to_string).unwrap_or_default(),
            snapshot = request.snapshot,
            follow = request.follow,
            allow = request.allow.len(),
            deny = request.deny.len(),
            compression = %compression.map(|c| c.to_string()).unwrap_or_default(),
            subscribers = self.admission.in_use(),
            "subscriber connected"
        );
        let peer = peer
            .map(|p| match p.identity.as_deref() {
                Some(id) => format!("{} ({id})", p.remote_addr),
                None => p.remote_addr.to_string(),
            })
            .unwrap_or_default();
        let stream = self
            .subscriber
            .subscribe(request, peer, Some(slot))
            .inspect_err(|status| {
                tracing::info!(error = status.message(), "subscription refused");
            })?;
        let mut response = Response::new(stream);
        if let Ok(value) = MetadataValue::try_from(self.hostname()) {
            response.metadata_mut().insert(HOSTNAME_HEADER, value);
        }
        if let Some(value) = self
            .identity
            .key()
            .and_then(|key| MetadataValue::try_from(key).ok())
        {
            response.metadata_mut().insert(IDENTITY_HEADER, value);
        }
        Ok(response)
    }

    async fn get_info(
        &self,
        _request: Request<GetInfoRequest>,
    ) -> Result<Response<AgentInfo>, Status> {
        let mut info = self.subscriber.info(&self.hostname());
        info.agent_id = self.identity.agent_id.clone();
        info.agent_netns = self.identity.netns.clone();
        Ok(Response::new(info))
    }
}

/// Runs the agent until `shutdown` resolves (or the pipeline fails): the
/// ops port at once, the first complete dump, then gRPC. Returns after
/// every task has finished.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    // TLS material is checked before anything else: a typo in a path
    // fails at once, not after the first dump.
    let tls_stats = Arc::new(TlsStats::default());
    let tls = match config.tls.files(config.insecure)? {
        Some(files) => Some(Reloader::load(files, tls_stats.clone())?),
        None => None,
    };
    if tls.is_none() && !config.listen.ip().is_loopback() {
        tracing::warn!(
            addr = %config.listen,
            "serving PLAINTEXT on a non-loopback address: anyone who can reach it can read this host's routing tables"
        );
    }
    let ops_listener = match config.ops_listen {
        Some(addr) => Some(ops::bind(addr).await?),
        None => None,
    };
    let identity = Identity::of_this_agent(
        config.agent_id.as_deref(),
        &config.pipeline.netns_selection(),
        &config.pipeline.netns_dir,
    );
    tracing::info!(agent_id = %identity.agent_id, netns = %identity.netns, "identity");
    let token = CancellationToken::new();
    let mut pipeline = Pipeline::start(config.pipeline.clone(), token.clone())?;
    let admission = Admission::new(config.max_subscribers, config.max_snapshots);
    let wire_stats = Arc::new(WireStats::default());
    let metrics = Arc::new(Metrics::new(
        &pipeline,
        tls_stats.clone(),
        admission.rejected.clone(),
        wire_stats.clone(),
    ));
    let exposition = Arc::new(ops::AgentOps {
        metrics: metrics.clone(),
        journal: pipeline.journal.clone(),
    });
    let ops = ops_listener.map(|l| ops::serve(l, exposition, token.clone()));
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
    let (reloader, handshaker) = match tls {
        Some((reloader, current)) => {
            let task = tokio::spawn(reloader.run(config.tls.reload_interval(), token.clone()));
            let handshaker = Handshaker {
                config: current,
                timeout: config.tls.handshake_timeout(),
                stats: tls_stats.clone(),
            };
            (Some(task), Some(handshaker))
        }
        None => (None, None),
    };
    tracing::info!(addr = %config.listen, tls = handshaker.is_some(), mutual = config.tls.client_ca.is_some(), "serving");
    // Compression is the client's choice: gzip and zstd are offered, and a
    // client that accepts neither gets plain messages. Subscribe responses
    // go out as the journal's shared bytes (see crate::wire).
    let service = Routes::new(
        Service {
            subscriber: pipeline.subscriber(),
            admission,
            hostname: config.hostname.clone(),
            identity,
        },
        MAX_REQUEST_BYTES,
        wire_stats,
    );
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<RouteWatchServer<Service>>().await;
    // grpcurl still speaks the v1alpha reflection protocol; newer tools v1.
    // Each knows every service, both reflection versions included.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .include_reflection_service(false)
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            )
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|e| AgentError::Reflection(e.to_string()))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| AgentError::Reflection(e.to_string()))?;
    let incoming = Incoming::new(
        listener,
        handshaker,
        Limits {
            first_request: Duration::from_secs(config.first_request_timeout_secs.max(1)),
            per_peer: config.max_connections_per_peer,
        },
        tls_stats.clone(),
    );
    let allow = AllowList::new(&config.tls.allow_clients, tls_stats);
    let stop = token.clone();
    let failed = pipeline.failed();
    // Keepalives find subscribers whose path died, so their sessions end
    // instead of waiting for TCP to give up.
    let served = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .http2_max_header_list_size(MAX_HEADER_BYTES)
        .layer(tonic::service::InterceptorLayer::new(move |r| {
            allow.check(r)
        }))
        .add_service(service)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming, async move {
            tokio::select! {
                _ = shutdown => tracing::info!("shutting down"),
                _ = failed.cancelled() => tracing::error!("the netlink pipeline failed; shutting down"),
            }
            health.set_not_serving::<RouteWatchServer<Service>>().await;
            stop.cancel();
        })
        .await;
    token.cancel();
    if let Some(task) = reloader {
        let _ = task.await;
    }
    let ops = stop_ops(ops).await;
    served?;
    // Waits for the sources; the state dir is written on the way out.
    pipeline.stop().await.and(ops)
}

/// Connections the kernel completes for the agent before it accepts them
/// (capped by net.core.somaxconn). The default of 128 overflows when a
/// few hundred clients connect at once, and the kernel then drops their
/// handshakes, to be retried a second or more later.
const LISTEN_BACKLOG: u32 = 1024;

async fn bind(addr: SocketAddr) -> Result<TcpListener, AgentError> {
    let listen = || {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().map_err(|source| AgentError::Listen { addr, source })
}
