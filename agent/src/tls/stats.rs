//! Counters of the agent's TLS layer, for the operator (and for metrics,
//! under the names given with each field).

use std::sync::atomic::AtomicU64;

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
}
