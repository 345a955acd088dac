//! The listener's stream of ready connections: TCP accepts, then (with TLS)
//! handshakes, several at once, each with a deadline.
//!
//! Handshakes run inside this stream, not in tasks of their own: tonic polls
//! it for the next connection, and dropping it at shutdown drops every
//! handshake still in flight, so nothing outlives the server.

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
use tokio_rustls::TlsAcceptor;

use crate::tls::connection::Connection;
use crate::tls::stats::TlsStats;

/// Handshakes in flight at most; further connections wait in the kernel's
/// accept queue, so a flood of clients that never finish costs bounded
/// memory.
const MAX_HANDSHAKES: usize = 256;

/// Idle time before TCP keepalive probes: a peer that vanished without a
/// FIN is noticed even when HTTP/2 pings are not answered for other reasons.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// How TLS connections are accepted.
pub struct Handshaker {
    /// The configuration new connections get; the reloader replaces it.
    pub config: watch::Receiver<Arc<ServerConfig>>,
    pub timeout: Duration,
    pub stats: Arc<TlsStats>,
}

/// Connections ready for HTTP/2.
pub struct Incoming {
    listener: TcpListener,
    tls: Option<Handshaker>,
    handshakes: FuturesUnordered<BoxFuture<'static, Option<Connection>>>,
}

impl Incoming {
    /// Plaintext connections when `tls` is `None`.
    pub fn new(listener: TcpListener, tls: Option<Handshaker>) -> Incoming {
        Incoming {
            listener,
            tls,
            handshakes: FuturesUnordered::new(),
        }
    }

    fn accepted(&mut self, tcp: TcpStream, addr: SocketAddr) -> Option<Connection> {
        let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
        if let Err(e) = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive) {
            tracing::debug!(peer = %addr, error = %e, "cannot set TCP keepalive");
        }
        let Some(tls) = &self.tls else {
            return Some(Connection::plain(tcp, addr));
        };
        // Each connection takes the configuration current at its accept:
        // a rotation applies to new connections, open ones keep theirs.
        let acceptor = TlsAcceptor::from(tls.config.borrow().clone());
        let timeout = tls.timeout;
        let stats = tls.stats.clone();
        self.handshakes.push(Box::pin(async move {
            match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => Some(Connection::tls(stream, addr)),
                Ok(Err(e)) => {
                    stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(peer = %addr, "TLS handshake failed: {}", handshake_problem(&e));
                    None
                }
                Err(_) => {
                    stats.handshake_timeouts.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(peer = %addr, "TLS handshake not finished within {}s: connection closed", timeout.as_secs());
                    None
                }
            }
        }));
        None
    }
}

impl Stream for Incoming {
    type Item = io::Result<Connection>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            let mut progressed = false;
            if this.handshakes.len() < MAX_HANDSHAKES {
                match this.listener.poll_accept(cx) {
                    Poll::Ready(Ok((tcp, addr))) => {
                        progressed = true;
                        if let Some(conn) = this.accepted(tcp, addr) {
                            return Poll::Ready(Some(Ok(conn)));
                        }
                    }
                    // tonic logs it and asks again (EMFILE and the like).
                    Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
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
