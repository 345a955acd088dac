//! `--allow-client`: which verified clients may call the agent at all.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tonic::{Request, Status};

use crate::ratelog::RateLimited;
use crate::tls::connection::PeerInfo;
use crate::tls::stats::TlsStats;

/// The identities admitted; empty admits every client the TLS layer let in.
#[derive(Debug, Clone)]
pub struct AllowList {
    ids: Arc<[String]>,
    stats: Arc<TlsStats>,
}

impl AllowList {
    pub fn new(ids: &[String], stats: Arc<TlsStats>) -> AllowList {
        AllowList {
            ids: ids.iter().map(|id| id.trim().to_owned()).collect(),
            stats,
        }
    }

    /// Checks one call; a tonic interceptor, so it guards every service.
    #[allow(clippy::result_large_err)]
    pub fn check(&self, request: Request<()>) -> Result<Request<()>, Status> {
        if self.ids.is_empty() {
            return Ok(request);
        }
        let peer = request.extensions().get::<PeerInfo>();
        let identity = peer.and_then(|p| p.identity.as_deref());
        match identity {
            Some(identity) if self.ids.iter().any(|id| identity.has(id)) => Ok(request),
            _ => {
                self.stats.clients_denied.fetch_add(1, Ordering::Relaxed);
                let who = identity.map_or_else(|| "none".to_owned(), ToString::to_string);
                static DENIED: RateLimited = RateLimited::new();
                if let Some(burst) = DENIED.check() {
                    tracing::warn!(peer = ?peer.map(|p| p.remote_addr), identities = %who, "client not on --allow-client: denied{burst}");
                }
                Err(Status::permission_denied(format!(
                    "this client's certificate ({who}) is not among the identities the agent admits (--allow-client)"
                )))
            }
        }
    }
}
