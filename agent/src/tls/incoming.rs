//! The listener's stream of ready connections: TCP accepts, then (with TLS)
//! handshakes, several at once, each with a deadline.
//!
//! Handshakes run inside this stream, not in tasks of their own: tonic polls
//! it for the next connection, and dropping it at shutdown drops every
//! handshake still in flight, so nothing outlives the server.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, Stream, StreamExt};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;

use crate::ratelog::RateLimited;
use crate::tls::connection::{Accepted, Connection};
use crate::tls::first_request::FirstRequest;
use crate::tls::peers::Peers;
use crate::tls::stats::TlsStats;

/// Handshakes in flight at most; further connections wait in the kernel's
/// accept queue, so a flood of clients that never finish costs bounded
/// memory.
const MAX_HANDSHAKES: usize = 256;

/// Idle time before TCP keepalive probes: a peer that vanished without a
/// FIN is noticed even when HTTP/2 pings are not answered for other reasons.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// The first pause after accept(2) failed, and the longest. Out of file
/// descriptors, accept fails at once for as long as the connection waits
/// in the queue: without a pause the loop would spin a core. The pause
/// doubles while the failures go on; open connections are served
/// meanwhile, and new ones wait in the kernel's queue.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// How TLS connections are accepted.
pub struct Handshaker {
    /// The configuration new connections get; the reloader replaces it.
    pub config: watch::Receiver<Arc<ServerConfig>>,
    pub timeout: Duration,
    pub stats: Arc<TlsStats>,
}

/// What every connection, TLS or plaintext, is held to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// --first-request-timeout-secs.
    pub first_request: Duration,
    /// --max-connections-per-peer.
    pub per_peer: usize,
}

/// Connections ready for HTTP/2.
pub struct Incoming {
    listener: TcpListener,
    tls: Option<Handshaker>,
    handshakes: FuturesUnordered<BoxFuture<'static, Option<Connection>>>,
    peers: Peers,
    first_request: Duration,
    stats: Arc<TlsStats>,
    /// While accept(2) keeps failing: when to try again.
    pause: Option<Pin<Box<Sleep>>>,
    next_pause: Duration,
}

impl Incoming {
    /// Plaintext connections when `tls` is `None`.
    pub fn new(
        listener: TcpListener,
        tls: Option<Handshaker>,
        limits: Limits,
        stats: Arc<TlsStats>,
    ) -> Incoming {
        Incoming {
            listener,
            tls,
            handshakes: FuturesUnordered::new(),
            peers: Peers::new(limits.per_peer, stats.clone()),
            first_request: limits.first_request,
            stats,
            pause: None,
            next_pause: FIRST_PAUSE,
        }
    }

    fn accepted(&mut self, tcp: TcpStream, addr: SocketAddr) -> Option<Connection> {
        let Some(slot) = self.peers.admit(addr.ip()) else {
            self.stats.refused_per_peer.fetch_add(1, Ordering::Relaxed);
            static REFUSED: RateLimited = RateLimited::new();
            if let Some(burst) = REFUSED.check() {
                tracing::warn!(
                    peer = %addr,
                    "connection refused: its address has {} connections open already (--max-connections-per-peer){burst}",
                    self.peers.limit()
                );
            }
            if self.tls.is_none() {
                say_busy(&tcp, addr, self.peers.limit());
            }
            return None;
        };
        let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
        if let Err(e) = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive) {
            tracing::debug!(peer = %addr, error = %e, "cannot set TCP keepalive");
        }
        let accepted = Accepted {
            remote_addr: addr,
            first: FirstRequest::new(Instant::now(), self.first_request, self.stats.clone()),
            slot,
        };
        let Some(tls) = &self.tls else {
            return Some(Connection::plain(tcp, accepted));
        };
        // Each connection takes the configuration current at its accept:
        // a rotation applies to new connections, open ones keep theirs.
        let acceptor = TlsAcceptor::from(tls.config.borrow().clone());
        // The handshake is part of the time before the first request.
        let timeout = tls.timeout.min(self.first_request);
        let stats = tls.stats.clone();
        self.handshakes.push(Box::pin(async move {
            match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => Some(Connection::tls(stream, accepted)),
                // Each failure is logged: their reasons differ, and the
                // one an operator looks for must not be left out.
                Ok(Err(e)) => {
                    stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(peer = %addr, "TLS handshake failed: {}", handshake_problem(&e));
                    None
                }
                // Idle clients, though, would log a line each.
                Err(_) => {
                    stats.handshake_timeouts.fetch_add(1, Ordering::Relaxed);
                    static SLOW: RateLimited = RateLimited::new();
                    if let Some(burst) = SLOW.check() {
                        tracing::info!(peer = %addr, "TLS handshake not finished within {}s: connection closed{burst}", timeout.as_secs());
                    }
                    None
                }
            }
        }));
        None
    }

    /// accept(2) failed: a connection's own trouble is passed over, a lack
    /// of resources pauses accepting (see [`FIRST_PAUSE`]).
    fn accept_failed(&mut self, e: io::Error) {
        use io::ErrorKind as K;
        if matches!(
            e.kind(),
            K::ConnectionAborted | K::ConnectionReset | K::Interrupted | K::WouldBlock
        ) {
            return;
        }
        let errors = &self.stats.accept_errors;
        let what = match e.raw_os_error() {
            Some(libc::EMFILE) => {
                errors.emfile.fetch_add(1, Ordering::Relaxed);
                "the agent has as many files open as it may (EMFILE): raise its limit (ulimit -n, LimitNOFILE=), or look for clients holding many connections"
            }
            Some(libc::ENFILE) => {
                errors.enfile.fetch_add(1, Ordering::Relaxed);
                "the system has as many files open as it may (ENFILE, fs.file-max)"
            }
            _ => {
                errors.other.fetch_add(1, Ordering::Relaxed);
                "accept failed"
            }
        };
        let pause = self.next_pause;
        self.next_pause = (pause * 2).min(MAX_PAUSE);
        self.pause = Some(Box::pin(tokio::time::sleep(pause)));
        self.stats.accept_paused.store(1, Ordering::Relaxed);
        static FAILED: RateLimited = RateLimited::new();
        if let Some(burst) = FAILED.check() {
            tracing::error!(
                error = %e,
                "cannot accept connections: {what}; accepting again in {} ms, open connections are still served{burst}",
                pause.as_millis()
            );
        }
    }
}

impl Stream for Incoming {
    type Item = io::Result<Connection>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            let mut progressed = false;
            if let Some(pause) = &mut this.pause {
                if pause.as_mut().poll(cx).is_ready() {
                    this.pause = None;
                }
            }
            if this.pause.is_none() && this.handshakes.len() < MAX_HANDSHAKES {
                match this.listener.poll_accept(cx) {
                    Poll::Ready(Ok((tcp, addr))) => {
                        progressed = true;
                        if this.next_pause != FIRST_PAUSE {
                            this.next_pause = FIRST_PAUSE;
                            this.stats.accept_paused.store(0, Ordering::Relaxed);
                            tracing::info!("accepting connections again");
                        }
                        if let Some(conn) = this.accepted(tcp, addr) {
                            return Poll::Ready(Some(Ok(conn)));
                        }
                    }
                    Poll::Ready(Err(e)) => {
                        progressed = true;
                        this.accept_failed(e);
                    }
                    Poll::Pending => {}
                }
            }
            match this.handshakes.poll_next_unpin(cx) {
                Poll::Ready(Some(Some(conn))) => return Poll::Ready(Some(Ok(conn))),
                Poll::Ready(Some(None)) => progressed = true,
                Poll::Ready(None) | Poll::Pending => {}
            }
            if !progressed {
                return Poll::Pending;
            }
        }
    }
}

/// Tells a plaintext client whose connection is refused why, in HTTP/2:
/// the server's SETTINGS, then GOAWAY with ENHANCE_YOUR_CALM and the reason
/// as debug data, which the client reports. Best effort: one non-blocking
/// write into an empty send buffer. What the client sent already is read
/// first, so that closing sends a FIN rather than a reset that could
/// overtake the answer. (With TLS the connection is simply closed: a
/// handshake would cost what the limit is there to save.)
fn say_busy(tcp: &TcpStream, addr: SocketAddr, limit: usize) {
    let mut sink = [0u8; 1024];
    while matches!(tcp.try_read(&mut sink), Ok(1..)) {}
    let reason = format!(
        "agent busy: {limit} connections from {} are open already (--max-connections-per-peer); close idle ones, or raise the limit",
        addr.ip()
    );
    let _ = tcp.try_write(&goaway(reason.as_bytes()));
}

/// An empty SETTINGS frame and a GOAWAY frame (RFC 9113 sections 6.5 and
/// 6.8: last stream 0, error ENHANCE_YOUR_CALM) carrying `debug`.
fn goaway(debug: &[u8]) -> Vec<u8> {
    const SETTINGS: u8 = 0x4;
    const GOAWAY: u8 = 0x7;
    const ENHANCE_YOUR_CALM: u32 = 0xb;
    let len = 8 + debug.len();
    let mut out = vec![0, 0, 0, SETTINGS, 0, 0, 0, 0, 0];
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[GOAWAY, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&ENHANCE_YOUR_CALM.to_be_bytes());
    out.extend_from_slice(debug);
    out
}

/// Why a client's handshake failed, in the operator's words.
fn handshake_problem(e: &io::Error) -> String {
    use rustls::{CertificateError as C, Error as E};
    let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<E>()) else {
        return match e.kind() {
            io::ErrorKind::UnexpectedEof => {
                "the client closed the connection during the handshake (it may not trust this agent's certificate)".to_owned()
            }
            _ => e.to_string(),
        };
    };
    match tls {
        E::NoCertificatesPresented => {
            "the client presented no certificate, and --client-ca requires one".to_owned()
        }
        E::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            "the client's certificate is not issued by --client-ca".to_owned()
        }
        E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "the client's certificate has expired".to_owned()
        }
        E::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "the client's certificate is not valid yet (check the clocks)".to_owned()
        }
        E::InvalidMessage(_) => {
            "the client is not speaking TLS (a plaintext client: it needs the agent's CA, not --insecure)".to_owned()
        }
        E::AlertReceived(alert) => format!(
            "the client refused the agent's certificate ({alert:?}): give the client the CA that issued --tls-cert"
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_settings_then_goaway_with_the_reason() {
        let bytes = goaway(b"agent busy: x");
        assert_eq!(&bytes[..9], &[0, 0, 0, 4, 0, 0, 0, 0, 0], "empty SETTINGS");
        let frame = &bytes[9..];
        assert_eq!(&frame[..3], &[0, 0, 8 + 13], "payload length");
        assert_eq!(frame[3], 7, "GOAWAY");
        assert_eq!(&frame[5..9], &[0, 0, 0, 0], "on stream 0");
        assert_eq!(&frame[9..13], &[0, 0, 0, 0], "last stream 0");
        assert_eq!(&frame[13..17], &[0, 0, 0, 0xb], "ENHANCE_YOUR_CALM");
        assert_eq!(&frame[17..], b"agent busy: x");
    }
}
