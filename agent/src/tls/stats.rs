//! Counters of the agent's listener and TLS layer, for the operator (and
//! for metrics, under the names given with each field).

use std::sync::atomic::{AtomicU64, Ordering};

/// Shared by the listener, the reloader and the allow-list.
#[derive(Debug, Default)]
pub struct TlsStats {
    /// `routewatch_tls_reloads_total`: new certificate, key or CA
    /// material taken into use without a restart.
    pub reloads: AtomicU64,
    /// `routewatch_tls_reload_failures_total`: changed TLS files that
    /// could not be used (unreadable, not PEM, a key not matching the
    /// certificate); the previous material stayed in use. Alert on it.
    pub reload_errors: AtomicU64,
    /// `routewatch_tls_handshake_failures_total`: connections closed
    /// because their TLS handshake failed (no or untrusted client
    /// certificate, a plaintext client, a broken client).
    pub handshake_failures: AtomicU64,
    /// `routewatch_tls_handshake_timeouts_total`: connections closed
    /// because the handshake did not finish within
    /// --tls-handshake-timeout-secs.
    pub handshake_timeouts: AtomicU64,
    /// `routewatch_clients_denied_total`: calls refused with
    /// PERMISSION_DENIED because the client is not on --allow-client.
    pub clients_denied: AtomicU64,
    /// `routewatch_connections`: connections open now (in their TLS
    /// handshake, waiting for their first request, or serving calls).
    pub connections: AtomicU64,
    /// `routewatch_connections_idle_closed_total`: connections closed
    /// because no request arrived within --first-request-timeout-secs of
    /// their accept.
    pub idle_closed: AtomicU64,
    /// `routewatch_connections_refused_per_peer_total`: connections closed
    /// at once because their address had --max-connections-per-peer open.
    pub refused_per_peer: AtomicU64,
    /// `routewatch_accept_errors_total{reason}`: accept(2) failures.
    pub accept_errors: AcceptErrors,
    /// `routewatch_accept_paused`: 1 while accepting is paused after an
    /// accept(2) failure (the process or the system is out of file
    /// descriptors), else 0.
    pub accept_paused: AtomicU64,
}

/// accept(2) failures by reason.
#[derive(Debug, Default)]
pub struct AcceptErrors {
    /// EMFILE: the process's file-descriptor limit (`ulimit -n`,
    /// LimitNOFILE=).
    pub emfile: AtomicU64,
    /// ENFILE: the system's (fs.file-max).
    pub enfile: AtomicU64,
    /// Anything else (ENOBUFS, ENOMEM, ...).
    pub other: AtomicU64,
}

impl AcceptErrors {
    /// `(reason label, count)` for every reason.
    pub fn counts(&self) -> [(&'static str, u64); 3] {
        [
            ("EMFILE", self.emfile.load(Ordering::Relaxed)),
            ("ENFILE", self.enfile.load(Ordering::Relaxed)),
            ("other", self.other.load(Ordering::Relaxed)),
        ]
    }
}
