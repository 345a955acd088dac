//! The ops port (`--ops-listen`): plain HTTP for the machines that run the
//! agent (or the collector), not for subscribers.
//!
//! - `/metrics`: every metric, in OpenMetrics text (the agent's are in
//!   [`crate::metrics`]).
//! - `/healthz`: 200 while the process runs (a liveness probe).
//! - `/readyz`: 200 once ready, 503 with the reason before (a readiness
//!   probe). The agent is ready once the first complete dump of the routing
//!   tables is in memory (the gRPC port opens then too).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::AgentError;
use crate::journal::Journal;
use crate::metrics::Metrics;

/// The OpenMetrics text format's content type.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the ops port shows.
pub trait Exposition: Send + Sync + 'static {
    /// The OpenMetrics text exposition (ends with `# EOF`).
    fn metrics_text(&self) -> String;
    /// `Ok` when ready, else why not (one line).
    fn readiness(&self) -> Result<(), String>;
}

/// The agent's exposition: its metrics, ready with its journal.
pub struct AgentOps {
    pub metrics: Arc<Metrics>,
    pub journal: Arc<Journal>,
}

impl Exposition for AgentOps {
    fn metrics_text(&self) -> String {
        self.metrics.encode()
    }

    fn readiness(&self) -> Result<(), String> {
        if self.journal.is_ready() {
            Ok(())
        } else {
            Err("the first dump of the routing tables is not complete".into())
        }
    }
}

type Ops = Arc<dyn Exposition>;

/// The ops server, running until its token is cancelled.
pub struct OpsServer {
    stop: CancellationToken,
    task: JoinHandle<Result<(), AgentError>>,
}

/// Binds the ops port (before anything else starts, so that a taken port
/// fails the agent at once).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, AgentError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AgentError::OpsListen { addr, source })
}

/// Serves the ops endpoints on `listener` until `shutdown`.
pub fn serve(
    listener: TcpListener,
    ops: Arc<dyn Exposition>,
    shutdown: CancellationToken,
) -> OpsServer {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(ops);
    let stop = shutdown.child_token();
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    }
    let task = tokio::spawn({
        let stop = stop.clone();
        async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .map_err(AgentError::OpsServe)
        }
    });
    OpsServer { stop, task }
}

impl OpsServer {
    /// Stops serving and waits for the server to finish.
    pub async fn stop(self) -> Result<(), AgentError> {
        self.stop.cancel();
        self.task.await.unwrap_or(Ok(()))
    }
}

async fn metrics_text(State(ops): State<Ops>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, OPENMETRICS)], ops.metrics_text())
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(ops): State<Ops>) -> (StatusCode, String) {
    match ops.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::RingLimits;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        conn.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn readyz_turns_ready_with_the_journal_and_metrics_are_openmetrics() {
        let limits = RingLimits {
            changes: 10,
            bytes: 1 << 20,
        };
        let journal = Arc::new(Journal::new("s".into(), String::new(), limits));
        let metrics = Arc::new(Metrics::of(
            journal.clone(),
            Default::default(),
            Default::default(),
            Default::default(),
            Default::default(),
            Default::default(),
            Default::default(),
        ));
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ops = Arc::new(AgentOps {
            metrics,
            journal: journal.clone(),
        });
        let server = serve(listener, ops, CancellationToken::new());

        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.0 200"));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.0 503"));
        let text = get(addr, "/metrics").await;
        assert!(text.contains(OPENMETRICS), "{text}");
        assert!(text.contains("\nroutewatch_ready 0\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");

        journal.set_ready();
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.0 200"));
        assert!(get(addr, "/metrics")
            .await
            .contains("\nroutewatch_ready 1\n"));
        assert!(get(addr, "/nothing").await.starts_with("HTTP/1.0 404"));
        server.stop().await.unwrap();
    }
}
