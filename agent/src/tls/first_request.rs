//! `--first-request-timeout-secs`: a connection must send its first request
//! within a bounded time of its accept, or it is closed.
//!
//! HTTP/2 has no such limit of its own: a client that connects and never
//! sends a request (or not even the connection preface) answers the
//! server's pings, or is simply never asked, and holds its connection
//! forever. The watch reads what the client sends, as HTTP/2 frames, until
//! the first HEADERS frame (the start of a call); after that it costs
//! nothing.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::ratelog::RateLimited;
use crate::tls::stats::TlsStats;

/// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, which every HTTP/2 client sends first.
const PREFACE_LEN: usize = 24;
/// Length (3 bytes), type, flags, stream id (4 bytes).
const FRAME_HEADER_LEN: usize = 9;
/// RFC 9113 section 6.2.
const HEADERS: u8 = 0x1;

/// Finds the first HEADERS frame in a client's byte stream, fed in pieces
/// as they are read.
#[derive(Debug, Clone)]
pub struct FrameScan {
    /// Bytes still to pass over: the rest of the preface or of a frame's
    /// payload.
    skip: usize,
    header: [u8; FRAME_HEADER_LEN],
    have: usize,
}

impl Default for FrameScan {
    fn default() -> Self {
        FrameScan {
            skip: PREFACE_LEN,
            header: [0; FRAME_HEADER_LEN],
            have: 0,
        }
    }
}

impl FrameScan {
    /// Reads the next bytes; true once a HEADERS frame has begun.
    pub fn feed(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (FRAME_HEADER_LEN - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == FRAME_HEADER_LEN {
                if self.header[3] == HEADERS {
                    return true;
                }
                let h = &self.header;
                self.skip = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                self.have = 0;
            }
        }
        false
    }
}

/// The deadline of a connection that has not sent a request yet.
#[derive(Debug)]
pub struct FirstRequest {
    scan: FrameScan,
    deadline: Pin<Box<Sleep>>,
    /// --first-request-timeout-secs, for the log.
    timeout: Duration,
    stats: Arc<TlsStats>,
}

impl FirstRequest {
    /// A connection accepted at `accepted` has `timeout` to start a call.
    pub fn new(accepted: Instant, timeout: Duration, stats: Arc<TlsStats>) -> FirstRequest {
        FirstRequest {
            scan: FrameScan::default(),
            deadline: Box::pin(tokio::time::sleep_until(accepted + timeout)),
            timeout,
            stats,
        }
    }

    /// Notes bytes the client sent; true once its first request began.
    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        self.scan.feed(bytes)
    }

    /// Ready once the deadline has passed (and wakes the task then), with
    /// the error that closes the connection; counted and logged.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>, peer: SocketAddr) -> Poll<io::Error> {
        if self.deadline.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.stats.idle_closed.fetch_add(1, Ordering::Relaxed);
        static IDLE: RateLimited = RateLimited::new();
        if let Some(burst) = IDLE.check() {
            tracing::info!(
                peer = %peer,
                "connection closed: no request within {}s of its accept (--first-request-timeout-secs){burst}",
                self.timeout.as_secs()
            );
        }
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            "no request within --first-request-timeout-secs",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first bytes of `grpcurl -plaintext 127.0.0.1:50051 list`
    /// (tonic's client sends the same frames): the preface, SETTINGS,
    /// WINDOW_UPDATE, then the HEADERS of the call.
    fn preface_settings_window_update() -> Vec<u8> {
        let mut b = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        // SETTINGS, 12 bytes: ENABLE_PUSH 0, INITIAL_WINDOW_SIZE 4194304.
        b.extend_from_slice(&[0, 0, 12, 0x4, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&[0, 2, 0, 0, 0, 0, 0, 4, 0, 0, 0x40, 0]);
        // WINDOW_UPDATE on stream 0, 4 bytes.
        b.extend_from_slice(&[0, 0, 4, 0x8, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&[0, 0x3e, 0, 1]);
        b
    }

    fn headers_frame() -> Vec<u8> {
        // HEADERS, END_HEADERS, stream 1, 3 bytes of HPACK.
        vec![0, 0, 3, 0x1, 0x4, 0, 0, 0, 1, 0x83, 0x86, 0x84]
    }

    #[test]
    fn a_request_is_seen_at_its_headers_frame() {
        let mut bytes = preface_settings_window_update();
        let mut scan = FrameScan::default();
        assert!(
            !scan.feed(&bytes),
            "preface, SETTINGS and WINDOW_UPDATE are no request"
        );
        assert!(scan.feed(&headers_frame()));
        bytes.extend_from_slice(&headers_frame());
        assert!(FrameScan::default().feed(&bytes), "all in one read");
    }

    #[test]
    fn frames_split_anywhere_are_read_the_same() {
        let mut bytes = preface_settings_window_update();
        bytes.extend_from_slice(&headers_frame());
        for cut in 1..bytes.len() {
            let mut scan = FrameScan::default();
            let early = scan.feed(&bytes[..cut]);
            let late = scan.feed(&bytes[cut..]);
            assert!(early || late, "cut at {cut}");
            // The HEADERS frame's header ends at byte len - 3.
            assert_eq!(early, cut >= bytes.len() - 3, "cut at {cut}");
        }
        let mut scan = FrameScan::default();
        let seen: Vec<bool> = bytes.iter().map(|b| scan.feed(&[*b])).collect();
        assert_eq!(seen.iter().position(|s| *s), Some(bytes.len() - 4));
    }

    #[test]
    fn a_payload_that_looks_like_headers_is_passed_over() {
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        // PING whose 8 payload bytes would read as a HEADERS frame header.
        bytes.extend_from_slice(&[0, 0, 8, 0x6, 0, 0, 0, 0, 0]);
        bytes.extend_from_slice(&[0, 0, 3, 0x1, 0x4, 0, 0, 0]);
        assert!(!FrameScan::default().feed(&bytes));
    }

    #[test]
    fn nothing_and_garbage_are_no_request() {
        let mut scan = FrameScan::default();
        assert!(!scan.feed(b""));
        assert!(!scan.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_expires_in_paused_time_and_is_counted() {
        let stats = Arc::new(TlsStats::default());
        let mut first = FirstRequest::new(Instant::now(), Duration::from_secs(10), stats.clone());
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(first.poll_expired(&mut cx, peer).is_pending());
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(first.poll_expired(&mut cx, peer).is_pending());
        assert_eq!(stats.idle_closed.load(Ordering::Relaxed), 0);
        tokio::time::advance(Duration::from_secs(2)).await;
        match first.poll_expired(&mut cx, peer) {
            Poll::Ready(e) => assert_eq!(e.kind(), io::ErrorKind::TimedOut),
            Poll::Pending => panic!("the deadline passed"),
        }
        assert_eq!(stats.idle_closed.load(Ordering::Relaxed), 1);
    }
}
