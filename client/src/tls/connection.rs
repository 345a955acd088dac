//! One connection to an agent, TLS or plaintext, that remembers why it
//! failed.
//!
//! When a connection dies, hyper tells the waiting call only that it was
//! closed; the reason (a TLS alert from the agent, or TLS bytes where
//! HTTP/2 was expected) stays with the connection. The connection writes
//! it into a [`Verdict`] its caller shares, so the call's error can say it.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

use crate::tls::problem::{describe, NOT_PLAINTEXT};

/// Why the connections of one subscription failed, if they said so, and
/// whether any got as far as a TCP connection.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    why: Arc<Mutex<Option<String>>>,
    reached: Arc<AtomicBool>,
}

impl Verdict {
    pub fn get(&self) -> Option<String> {
        self.why.lock().ok()?.clone()
    }

    fn set(&self, why: String) {
        if let Ok(mut slot) = self.why.lock() {
            *slot = Some(why);
        }
    }

    /// Notes that a TCP connection to the agent's port was made.
    pub fn reached(&self) {
        self.reached.store(true, Ordering::Relaxed);
    }

    /// Whether a TCP connection to the agent's port was made: a later
    /// timeout then means an agent that did not answer, not a host or
    /// port that cannot be reached.
    pub fn was_reached(&self) -> bool {
        self.reached.load(Ordering::Relaxed)
    }
}

/// A connection to an agent.
pub struct Connection {
    io: Either<TcpStream, Box<TlsStream<TcpStream>>>,
    /// The first bytes from the agent were checked already (plaintext).
    looked: bool,
    client_cert: bool,
    verdict: Verdict,
}

impl Connection {
    pub fn plain(tcp: TcpStream, verdict: Verdict) -> Connection {
        Connection {
            io: Either::Left(tcp),
            looked: false,
            client_cert: false,
            verdict,
        }
    }

    pub fn tls(tls: TlsStream<TcpStream>, client_cert: bool, verdict: Verdict) -> Connection {
        Connection {
            io: Either::Right(Box::new(tls)),
            looked: false,
            client_cert,
            verdict,
        }
    }

    /// Notes what an error means before passing it on.
    fn note<T>(&mut self, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        let Poll::Ready(Err(e)) = &result else {
            return result;
        };
        match &mut self.io {
            Either::Right(tls) => {
                let cause = e
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<rustls::Error>())
                    .cloned()
                    .or_else(|| pending_alert(tls));
                if let Some(cause) = cause {
                    self.verdict.set(describe(&cause, None, self.client_cert));
                }
            }
            // A TLS agent answers a plaintext client with an alert and
            // closes; the reset that follows can fail a write before hyper
            // reads anything. The alert may still wait in the receive
            // queue (Linux hands out queued data before the error).
            Either::Left(tcp) if !self.looked => {
                self.looked = true;
                // Straight from the socket (non-blocking): tokio's own
                // try_read would answer from readiness it may not have
                // seen yet.
                let mut first = [0u8; 1024];
                let socket = socket2::SockRef::from(&*tcp);
                if let Ok(n) = std::io::Read::read(&mut &*socket, &mut first) {
                    self.look(&first[..n]);
                }
            }
            Either::Left(_) => {}
        }
        result
    }
}

/// The agent's alert, when a write failed because the agent had already
/// judged this client and closed: with TLS 1.3 its verdict on the client's
/// certificate comes after the client's part of the handshake, and the
/// reset that follows it can fail hyper's first write before anything is
/// read. The alert still waits in the receive queue; it is read straight
/// from the socket (non-blocking) and handed to rustls to decrypt.
fn pending_alert(tls: &mut TlsStream<TcpStream>) -> Option<rustls::Error> {
    let (tcp, session) = tls.get_mut();
    let socket = socket2::SockRef::from(&*tcp);
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = std::io::Read::read(&mut &*socket, &mut buf) {
        let mut unread = &buf[..n];
        while !unread.is_empty() {
            if session.read_tls(&mut unread).is_err() {
                return None;
            }
            if let Err(e) = session.process_new_packets() {
                return Some(e);
            }
        }
    }
    None
}

impl Connection {
    /// Reads the agent's first bytes on a plaintext connection for what
    /// they say about a failure: TLS records (the agent speaks TLS), or a
    /// GOAWAY with a reason (the agent refused the connection, e.g. as
    /// busy).
    fn look(&self, first: &[u8]) {
        if looks_like_tls(first) {
            self.verdict.set(NOT_PLAINTEXT.to_owned());
        } else if let Some(reason) = goaway_reason(first) {
            self.verdict.set(reason);
        }
    }
}

/// The debug data of a GOAWAY frame among the first HTTP/2 frames, when
/// it carries text: an agent that refuses a connection says why there.
fn goaway_reason(mut bytes: &[u8]) -> Option<String> {
    while bytes.len() >= 9 {
        let len = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        let payload = bytes.get(9..9 + len)?;
        if bytes[3] == 0x7 && len > 8 {
            let text = String::from_utf8_lossy(&payload[8..]).trim().to_owned();
            return (!text.is_empty()).then_some(text);
        }
        bytes = &bytes[9 + len..];
    }
    None
}

/// A TLS record header (handshake or alert, version 3.x) where an HTTP/2
/// frame was expected: the agent speaks TLS.
fn looks_like_tls(bytes: &[u8]) -> bool {
    matches!(bytes, [0x15 | 0x16, 0x03, 0x00..=0x04, ..])
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(this.io, Either::Left(_)) && !this.looked && buf.filled().len() > before {
            this.looked = true;
            let first = buf.filled()[before..].to_vec();
            this.look(&first);
        }
        this.note(result)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        this.note(result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.note(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_flush(cx);
        this.note(result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_in_a_goaway_is_read() {
        // What an agent sends a connection beyond --max-connections-per-peer:
        // SETTINGS, then GOAWAY (ENHANCE_YOUR_CALM) with the reason.
        let reason = b"agent busy: 4 connections from 127.0.0.1 are open already (--max-connections-per-peer); close idle ones, or raise the limit";
        let mut bytes = vec![0, 0, 0, 0x4, 0, 0, 0, 0, 0];
        let len = 8 + reason.len();
        bytes.extend_from_slice(&[0, (len >> 8) as u8, len as u8, 0x7, 0, 0, 0, 0, 0]);
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0xb]);
        bytes.extend_from_slice(reason);
        assert_eq!(
            goaway_reason(&bytes).as_deref(),
            Some(std::str::from_utf8(reason).unwrap())
        );
        assert_eq!(goaway_reason(&bytes[..20]), None, "cut short");
        assert_eq!(goaway_reason(&bytes[..9]), None, "SETTINGS alone");
        // A GOAWAY without debug data says nothing of its own.
        assert_eq!(
            goaway_reason(&[0, 0, 8, 0x7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            None
        );
    }

    #[test]
    fn tls_records_are_recognised() {
        // A TLS 1.2 alert (decode_error), as rustls sends it to a
        // plaintext client.
        assert!(looks_like_tls(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]));
        assert!(looks_like_tls(&[0x16, 0x03, 0x01]));
        // An HTTP/2 SETTINGS frame: length 0x000012, type 4.
        assert!(!looks_like_tls(&[0x00, 0x00, 0x12, 0x04, 0x00]));
    }
}
