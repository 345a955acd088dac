//! One accepted connection, TLS or plaintext, with what the handlers may
//! know about its peer.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;
use tonic::transport::server::Connected;

use crate::silence::Silence;
use crate::tls::first_request::FirstRequest;
use crate::tls::identity::ClientIdentity;
use crate::tls::peers::PeerSlot;

/// What a handler learns about the peer: tonic puts it into every request's
/// extensions.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub remote_addr: SocketAddr,
    /// The verified client certificate's identities (mutual TLS only).
    pub identity: Option<Arc<ClientIdentity>>,
    /// When the peer last sent anything.
    pub silence: Silence,
}

/// An accepted connection.
pub struct Connection {
    io: Either<TcpStream, Box<TlsStream<TcpStream>>>,
    info: PeerInfo,
    /// Until the client's first request: its deadline.
    first: Option<FirstRequest>,
    /// The deadline passed: every read fails from then on.
    expired: bool,
    /// Its place among its address's connections.
    _slot: PeerSlot,
}

/// What every accepted connection carries besides its stream.
pub struct Accepted {
    pub remote_addr: SocketAddr,
    pub first: FirstRequest,
    pub slot: PeerSlot,
}

impl Connection {
    pub fn plain(tcp: TcpStream, accepted: Accepted) -> Connection {
        Connection {
            io: Either::Left(tcp),
            info: PeerInfo {
                remote_addr: accepted.remote_addr,
                identity: None,
                silence: Silence::default(),
            },
            first: Some(accepted.first),
            expired: false,
            _slot: accepted.slot,
        }
    }

    /// A connection whose handshake is complete.
    pub fn tls(tls: TlsStream<TcpStream>, accepted: Accepted) -> Connection {
        // rustls verified the chain; only the end-entity certificate names
        // the client.
        let identity = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|cert| Arc::new(ClientIdentity::from_der(cert)));
        Connection {
            io: Either::Right(Box::new(tls)),
            info: PeerInfo {
                remote_addr: accepted.remote_addr,
                identity,
                silence: Silence::default(),
            },
            first: Some(accepted.first),
            expired: false,
            _slot: accepted.slot,
        }
    }
}

impl Connected for Connection {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
        }
        if let Some(first) = &mut this.first {
            if let Poll::Ready(e) = first.poll_expired(cx, this.info.remote_addr) {
                this.first = None;
                this.expired = true;
                return Poll::Ready(Err(e));
            }
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.info.silence.heard();
            if let Some(first) = &mut this.first {
                if first.feed(&buf.filled()[before..]) {
                    this.first = None;
                }
            }
        }
        read
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
