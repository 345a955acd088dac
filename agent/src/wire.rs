//! Subscribe responses on the wire, without copying the shared records.
//!
//! tonic's encoder writes every response into a buffer of its own before
//! HTTP/2 sends it. The journal's records are already encoded and shared by
//! every session, so that copy (and the fresh pages it touches) was the
//! largest part of what each extra subscriber cost the agent. Here the
//! Subscribe method is served at the HTTP level instead: the request is
//! read with tonic's own decoder (its size limit and request compression
//! still apply), the method itself is the [`RouteWatch`] implementation,
//! and the response body hands HTTP/2 the 5-byte gRPC message header and
//! the shared slices as they are. Every other method goes to tonic's
//! generated service unchanged.
//!
//! zstd responses are shared too: a zstd message may hold several frames,
//! so each shared slice is compressed once into a frame of its own
//! ([`SharedZstd`]) and every zstd subscriber that reads the same slice
//! sends that frame. gzip decoders stop after the first member, so a gzip
//! response is compressed as a whole, per subscriber.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use http_body::Frame;
use routewatch_proto::batch::EVENTS;
use routewatch_proto::v1::route_watch_server::{RouteWatch, RouteWatchServer};
use routewatch_proto::v1::{Event, SubscribeRequest, SubscribeResponse};
use tokio_stream::Stream;
use tonic::body::Body;
use tonic::codec::{Codec, CompressionEncoding, Streaming};
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;
use tonic::{Code, Status};

use crate::session::ResponseStream;
use crate::tls::PeerInfo;

/// The agent pings every connection this often (HTTP/2 keepalive) ...
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// ... and closes one whose peer answers nothing for this long after a
/// ping. A peer that answers pings is never silent this long, so a stream
/// that ends after such a silence ended because its subscriber stalled.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The Subscribe method's path.
const SUBSCRIBE: &str = "/routewatch.v1.RouteWatch/Subscribe";
/// The GetInfo method's path.
const GET_INFO: &str = "/routewatch.v1.RouteWatch/GetInfo";

/// Parts shorter than this are copied together into one buffer with the
/// message header: HTTP/2 would copy them into its own buffer anyway, and
/// one frame costs less than several.
const COPY_BELOW: usize = 4096;

/// Compression levels, as tonic uses them for its own responses.
const GZIP_LEVEL: u32 = 6;
const ZSTD_LEVEL: i32 = 3;

/// The RouteWatch service: Subscribe served by [`Frames`], the other
/// methods by tonic's generated server.
pub struct Routes<T: RouteWatch> {
    service: Arc<T>,
    generated: RouteWatchServer<T>,
    max_request_bytes: usize,
    zstd: Arc<SharedZstd>,
    stats: Arc<WireStats>,
}

impl<T: RouteWatch> Clone for Routes<T> {
    fn clone(&self) -> Self {
        Routes {
            service: self.service.clone(),
            generated: self.generated.clone(),
            max_request_bytes: self.max_request_bytes,
            zstd: self.zstd.clone(),
            stats: self.stats.clone(),
        }
    }
}

impl<T: RouteWatch> NamedService for Routes<T> {
    const NAME: &'static str = <RouteWatchServer<T> as NamedService>::NAME;
}

impl<T> Routes<T>
where
    T: RouteWatch<SubscribeStream = ResponseStream>,
{
    /// Serves `service`, reading requests of at most `max_request_bytes`
    /// and counting the bytes of responses in `stats`. Responses are
    /// compressed with zstd or gzip when the client accepts one (its order
    /// of preference decides), requests may be.
    pub fn new(service: T, max_request_bytes: usize, stats: Arc<WireStats>) -> Routes<T> {
        let service = Arc::new(service);
        let generated = RouteWatchServer::from_arc(service.clone())
            .max_decoding_message_size(max_request_bytes)
            .send_compressed(CompressionEncoding::Zstd)
            .send_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .accept_compressed(CompressionEncoding::Gzip);
        Routes {
            service,
            generated,
            max_request_bytes,
            zstd: Arc::default(),
            stats,
        }
    }
}

impl<T> Service<http::Request<Body>> for Routes<T>
where
    T: RouteWatch<SubscribeStream = ResponseStream>,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() == GET_INFO {
            // GetInfo never fails: INTERNAL can only be tonic's answer to
            // a request it could not read.
            let answer = self.generated.call(request);
            return Box::pin(async move {
                let response = answer.await?;
                Ok(match Status::from_header_map(response.headers()) {
                    Some(status) if status.code() == Code::Internal => {
                        malformed(status).into_http()
                    }
                    _ => response,
                })
            });
        }
        if request.uri().path() != SUBSCRIBE {
            return Box::pin(self.generated.call(request));
        }
        let service = self.service.clone();
        let max = self.max_request_bytes;
        let shared = (self.zstd.clone(), self.stats.clone());
        Box::pin(async move {
            Ok(subscribe(service, request, max, shared)
                .await
                .unwrap_or_else(|status| status.into_http()))
        })
    }
}

async fn subscribe<T>(
    service: Arc<T>,
    request: http::Request<Body>,
    max_request_bytes: usize,
    (zstd, stats): (Arc<SharedZstd>, Arc<WireStats>),
) -> Result<http::Response<Body>, Status>
where
    T: RouteWatch<SubscribeStream = ResponseStream>,
{
    let compressed = request_encoding(request.headers())?;
    let respond = response_encoding(request.headers());
    let peer = request.extensions().get::<PeerInfo>().cloned();
    let (parts, body) = request.into_parts();
    let decoder =
        tonic_prost::ProstCodec::<SubscribeResponse, SubscribeRequest>::default().decoder();
    let mut messages = Streaming::new_request(decoder, body, compressed, Some(max_request_bytes));
    let message = messages
        .message()
        .await
        .map_err(malformed)?
        .ok_or_else(|| malformed(Status::internal("no request message")))?;
    let mut request = tonic::Request::from_http(http::Request::from_parts(parts, message));
    request.extensions_mut().insert(ResponseEncoding(respond));
    let (metadata, responses, _) = service.subscribe(request).await?.into_parts();
    let mut frames = Frames::new(responses, respond, zstd, stats);
    frames.peer = peer;
    let mut response = http::Response::new(Body::new(frames));
    *response.headers_mut() = metadata.into_headers();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    if let Some(encoding) = respond {
        headers.insert("grpc-encoding", HeaderValue::from_static(name(encoding)));
    }
    Ok(response)
}

/// A request that does not read as the method's message is the client's
/// mistake: INVALID_ARGUMENT (as every other bad request), where tonic
/// answers INTERNAL (bad protobuf, a compression flag other than 0 and 1, a
/// compressed message without grpc-encoding or that does not decompress, a
/// message cut short). Errors of the connection itself carry their cause
/// and stay as they are.
fn malformed(status: Status) -> Status {
    use std::error::Error;
    if status.code() != Code::Internal || status.source().is_some() {
        return status;
    }
    let what = status
        .message()
        .trim_end_matches('.')
        .replace(
            "failed to decode Protobuf message",
            "the message does not decode",
        )
        .replace(", while sending request", "");
    Status::invalid_argument(format!(
        "malformed request: {what}; send one message of the method's type (routewatch/v1), in a gRPC frame whose compression flag is 0, or 1 with grpc-encoding gzip or zstd"
    ))
}

/// Bytes of Subscribe responses handed to HTTP/2 (gRPC messages with their
/// headers), by compression, for the metrics.
#[derive(Debug, Default)]
pub struct WireStats {
    pub plain_bytes: AtomicU64,
    pub zstd_bytes: AtomicU64,
    pub gzip_bytes: AtomicU64,
    /// Streams whose connection closed after their subscriber had stopped
    /// reading and answering.
    pub stalled_disconnects: AtomicU64,
}

impl WireStats {
    fn count(&self, encoding: Option<CompressionEncoding>, bytes: usize) {
        let counter = match encoding {
            None => &self.plain_bytes,
            Some(CompressionEncoding::Gzip) => &self.gzip_bytes,
            Some(_) => &self.zstd_bytes,
        };
        counter.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// The compression a Subscribe call's responses use (`None`: plain), in
/// the request's extensions for the method to log.
#[derive(Debug, Clone, Copy)]
pub struct ResponseEncoding(pub Option<CompressionEncoding>);

impl std::fmt::Display for ResponseEncoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.map_or("none", name))
    }
}

fn name(encoding: CompressionEncoding) -> &'static str {
    match encoding {
        CompressionEncoding::Gzip => "gzip",
        _ => "zstd",
    }
}

/// How the request's message is compressed; UNIMPLEMENTED for an encoding
/// the agent does not read (as tonic answers).
fn request_encoding(headers: &HeaderMap) -> Result<Option<CompressionEncoding>, Status> {
    let Some(value) = headers.get("grpc-encoding") else {
        return Ok(None);
    };
    match value.to_str().unwrap_or("").trim() {
        "identity" => Ok(None),
        "gzip" => Ok(Some(CompressionEncoding::Gzip)),
        "zstd" => Ok(Some(CompressionEncoding::Zstd)),
        other => {
            let mut status = Status::unimplemented(format!(
                "Content is compressed with `{other}` which isn't supported"
            ));
            status
                .metadata_mut()
                .insert("grpc-accept-encoding", "zstd,gzip".parse().expect("ascii"));
            Err(status)
        }
    }
}

/// The first encoding in the client's `grpc-accept-encoding` that the
/// agent sends, if any.
fn response_encoding(headers: &HeaderMap) -> Option<CompressionEncoding> {
    let accepted = headers.get("grpc-accept-encoding")?.to_str().ok()?;
    accepted.split(',').find_map(|name| match name.trim() {
        "zstd" => Some(CompressionEncoding::Zstd),
        "gzip" => Some(CompressionEncoding::Gzip),
        _ => None,
    })
}

/// A session's responses as gRPC messages: each one's header, then its
/// records as the shared slices they are, then the trailers.
pub struct Frames {
    responses: ResponseStream,
    compression: Option<Compressor>,
    stats: Arc<WireStats>,
    ready: VecDeque<Bytes>,
    ended: bool,
    /// Who reads the stream (`None` in tests): said, with where the stream
    /// was, if the connection closes because it stalled.
    peer: Option<PeerInfo>,
    /// The last response's records and events, to tell the position of a
    /// stalled stream (decoded only then).
    last: (Vec<Bytes>, Option<u64>),
}

impl Frames {
    /// `responses` as messages compressed with `encoding`; zstd frames of
    /// shared slices come from (and go into) `zstd`; bytes are counted in
    /// `stats`.
    pub fn new(
        responses: ResponseStream,
        encoding: Option<CompressionEncoding>,
        zstd: Arc<SharedZstd>,
        stats: Arc<WireStats>,
    ) -> Frames {
        let compression = encoding.map(|e| match e {
            CompressionEncoding::Gzip => Compressor::Gzip,
            _ => Compressor::Zstd(zstd),
        });
        Frames {
            responses,
            compression,
            stats,
            ready: VecDeque::new(),
            ended: false,
            peer: None,
            last: (Vec::new(), None),
        }
    }

    /// The last seq handed to the connection, if any.
    fn last_seq(&self) -> Option<u64> {
        let (records, event_seq) = &self.last;
        let record_seq = SubscribeResponse::from_records(records.clone())
            .into_events()
            .ok()
            .and_then(|events| events.iter().map(|e| e.seq).max());
        record_seq.max(*event_seq)
    }

    /// Queues `response` as one message.
    fn queue(&mut self, response: SubscribeResponse) -> Result<(), Status> {
        let (records, events) = response.into_parts();
        // The same vector every time: no allocation per response.
        self.last.0.clear();
        self.last.0.extend(records.iter().cloned());
        self.last.1 = events.iter().map(|e| e.seq).max();
        // After the header: the shared slices (or their zstd frames), then
        // the events this session encoded itself (compressed with them).
        let (compressed, parts, events) = match &self.compression {
            None => (false, records, events),
            Some(compressor) => (true, compressor.compress(records, &events)?, Vec::new()),
        };
        let events_len: usize = events.iter().map(event_field_len).sum();
        let len = parts.iter().map(Bytes::len).sum::<usize>() + events_len;
        let mut small = BytesMut::with_capacity(5 + len.min(COPY_BELOW * 2));
        put_header(&mut small, compressed, len)?;
        let encoding = self.compression.as_ref().map(Compressor::encoding);
        self.stats.count(encoding, 5 + len);
        for part in parts {
            if part.len() < COPY_BELOW {
                small.put_slice(&part);
            } else {
                if !small.is_empty() {
                    self.ready.push_back(small.split().freeze());
                }
                self.ready.push_back(part);
            }
        }
        for event in &events {
            prost::encoding::message::encode(EVENTS, event, &mut small);
        }
        if !small.is_empty() {
            self.ready.push_back(small.freeze());
        }
        Ok(())
    }
}

fn event_field_len(event: &Event) -> usize {
    prost::encoding::message::encoded_len(EVENTS, event)
}

/// The gRPC message header: the compressed flag and the length.
fn put_header(buf: &mut BytesMut, compressed: bool, len: usize) -> Result<(), Status> {
    let len = u32::try_from(len).map_err(|_| {
        Status::new(
            Code::ResourceExhausted,
            format!("a response of {len} bytes is over gRPC's 4 GiB limit"),
        )
    })?;
    buf.put_u8(u8::from(compressed));
    buf.put_u32(len);
    Ok(())
}

/// The trailers that end the stream with `status`.
fn trailers(status: &Status) -> HeaderMap {
    let mut map = HeaderMap::new();
    if status.add_header(&mut map).is_err() {
        map.insert("grpc-status", HeaderValue::from_static("13"));
    }
    map
}

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        loop {
            if let Some(bytes) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            let end = match ready!(Pin::new(&mut this.responses).poll_next(cx)) {
                Some(Ok(response)) => match this.queue(response) {
                    Ok(()) => continue,
                    Err(status) => status,
                },
                Some(Err(status)) => status,
                None => Status::ok(""),
            };
            this.ended = true;
            return Poll::Ready(Some(Ok(Frame::trailers(trailers(&end)))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.ready.is_empty()
    }
}

impl Drop for Frames {
    /// A stream dropped before its end: its connection closed. Said once
    /// when the subscriber had stalled, so that an operator learns why a
    /// consumer keeps resyncing or falling behind.
    fn drop(&mut self) {
        let Some(peer) = &self.peer else {
            return;
        };
        let silent = peer.silence.lasted();
        if self.ended || silent < KEEPALIVE_TIMEOUT {
            return;
        }
        self.stats
            .stalled_disconnects
            .fetch_add(1, Ordering::Relaxed);
        let identity = peer
            .identity
            .as_deref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let seq = self
            .last_seq()
            .map_or_else(|| "none".to_string(), |s| s.to_string());
        tracing::warn!(
            peer = %peer.remote_addr,
            %identity,
            seq_sent = %seq,
            silent_secs = silent.as_secs(),
            "stalled subscriber disconnected: it sent nothing for {}s, not even answers to HTTP/2 keepalive pings (a stopped or overloaded client, or a dead path), so its connection was closed; it resumes from its cursor when it reconnects, or resyncs if the journal no longer holds it",
            silent.as_secs()
        );
    }
}

/// How a stream compresses its messages.
enum Compressor {
    /// Each message as one gzip member.
    Gzip,
    /// Each shared slice as its own (shared) zstd frame, the events as one
    /// more.
    Zstd(Arc<SharedZstd>),
}

impl Compressor {
    fn encoding(&self) -> CompressionEncoding {
        match self {
            Compressor::Gzip => CompressionEncoding::Gzip,
            Compressor::Zstd(_) => CompressionEncoding::Zstd,
        }
    }

    /// The message (records, then events) compressed, in parts to send
    /// side by side.
    fn compress(&self, records: Vec<Bytes>, events: &[Event]) -> Result<Vec<Bytes>, Status> {
        let failed = |e: std::io::Error| Status::internal(format!("compressing a response: {e}"));
        let events = (!events.is_empty()).then(|| {
            let mut buf = Vec::new();
            for event in events {
                prost::encoding::message::encode(EVENTS, event, &mut buf);
            }
            buf
        });
        match self {
            Compressor::Gzip => {
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
                for part in records.iter().map(|r| &r[..]).chain(events.as_deref()) {
                    gz.write_all(part).map_err(failed)?;
                }
                Ok(vec![gz.finish().map_err(failed)?.into()])
            }
            Compressor::Zstd(shared) => {
                let mut frames = records
                    .iter()
                    .map(|part| shared.frame_of(part))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(failed)?;
                if let Some(events) = events {
                    frames.push(shared.compress(&events).map_err(failed)?);
                }
                Ok(frames)
            }
        }
    }
}

/// Most zstd frames of shared slices kept, and about the most bytes they
/// and their slices may hold. A hundred subscribers reading the same
/// churn are rarely more than a few hundred batches apart.
const ZSTD_RECENT: usize = 512;
const ZSTD_RECENT_BYTES: usize = 32 << 20;

/// The zstd frames of recently sent shared slices, and the one context
/// that compresses for every stream.
///
/// A frame is found again by its slice's address and length. That is
/// sound because the entry holds the slice: its memory cannot be freed and
/// reused while the entry lives, and the journal's bytes never change.
#[derive(Default)]
pub struct SharedZstd {
    inner: Mutex<ZstdInner>,
}

#[derive(Default)]
struct ZstdInner {
    context: Option<zstd::bulk::Compressor<'static>>,
    recent: VecDeque<(Bytes, Bytes)>,
    held: usize,
}

impl ZstdInner {
    fn compress(&mut self, plain: &[u8]) -> std::io::Result<Bytes> {
        let context = match &mut self.context {
            Some(context) => context,
            none => none.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL)?),
        };
        Ok(context.compress(plain)?.into())
    }
}

impl SharedZstd {
    fn lock(&self) -> std::sync::MutexGuard<'_, ZstdInner> {
        // Only whole entries are ever pushed or popped: a panic elsewhere
        // leaves nothing half done.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `part` as one zstd frame, compressed now only if no stream sent the
    /// same slice recently.
    pub fn frame_of(&self, part: &Bytes) -> std::io::Result<Bytes> {
        let mut inner = self.lock();
        let same = |(sent, _): &&(Bytes, Bytes)| {
            sent.as_ptr() == part.as_ptr() && sent.len() == part.len()
        };
        if let Some((_, frame)) = inner.recent.iter().rev().find(same) {
            return Ok(frame.clone());
        }
        let frame = inner.compress(part)?;
        inner.held += part.len() + frame.len();
        inner.recent.push_back((part.clone(), frame.clone()));
        while inner.recent.len() > ZSTD_RECENT || inner.held > ZSTD_RECENT_BYTES {
            let Some((sent, old)) = inner.recent.pop_front() else {
                break;
            };
            inner.held -= sent.len() + old.len();
        }
        Ok(frame)
    }

    /// `plain` as one zstd frame, not kept.
    pub fn compress(&self, plain: &[u8]) -> std::io::Result<Bytes> {
        self.lock().compress(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use prost::Message;
    use routewatch_proto::v1::{event, Heartbeat};
    use tokio::sync::mpsc;
    use tokio_stream::wrappers::ReceiverStream;

    fn heartbeat(seq: u64) -> Event {
        Event {
            stream_id: "s".into(),
            seq,
            kind: Some(event::Kind::Heartbeat(Heartbeat {})),
            ..Default::default()
        }
    }

    fn record(seq: u64, pad: usize) -> Bytes {
        let mut e = heartbeat(seq);
        e.netns = "n".repeat(pad);
        routewatch_proto::batch::record(&e)
    }

    /// Every message the body sends, decoded, and its trailers.
    async fn collect(
        responses: Vec<Result<SubscribeResponse, Status>>,
        encoding: Option<CompressionEncoding>,
    ) -> (Vec<(bool, Vec<u64>)>, HeaderMap) {
        let (tx, rx) = mpsc::channel(responses.len().max(1));
        for r in responses {
            tx.try_send(r).unwrap();
        }
        drop(tx);
        let collected = Frames::new(
            ReceiverStream::new(rx),
            encoding,
            Arc::default(),
            Arc::default(),
        )
        .collect()
        .await
        .expect("no body error");
        let trailers = collected.trailers().cloned().expect("trailers");
        let mut wire = collected.to_bytes();
        let mut messages = Vec::new();
        while !wire.is_empty() {
            let compressed = wire[0] == 1;
            let len = u32::from_be_bytes(wire[1..5].try_into().unwrap()) as usize;
            let body = wire.slice(5..5 + len);
            wire = wire.slice(5 + len..);
            let plain = match (compressed, encoding) {
                (false, _) => body.to_vec(),
                (true, Some(CompressionEncoding::Gzip)) => {
                    let mut out = Vec::new();
                    std::io::Read::read_to_end(
                        &mut flate2::read::GzDecoder::new(&body[..]),
                        &mut out,
                    )
                    .unwrap();
                    out
                }
                (true, _) => zstd::decode_all(&body[..]).unwrap(),
            };
            let response = SubscribeResponse::decode(Bytes::from(plain)).unwrap();
            let seqs = response
                .into_events()
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect();
            messages.push((compressed, seqs));
        }
        (messages, trailers)
    }

    fn mixed() -> Vec<Result<SubscribeResponse, Status>> {
        vec![
            // Small and large shared parts side by side, then events.
            Ok(SubscribeResponse::from_records(vec![
                record(1, 10),
                record(2, 9000),
                record(3, 10),
                record(4, 10),
                record(5, 5000),
            ])),
            Ok(SubscribeResponse::from_events(vec![
                heartbeat(5),
                heartbeat(5),
            ])),
        ]
    }

    #[tokio::test]
    async fn messages_carry_the_records_and_events_in_order_then_ok() {
        for encoding in [
            None,
            Some(CompressionEncoding::Gzip),
            Some(CompressionEncoding::Zstd),
        ] {
            let (messages, trailers) = collect(mixed(), encoding).await;
            let compressed = encoding.is_some();
            assert_eq!(
                messages,
                vec![(compressed, vec![1, 2, 3, 4, 5]), (compressed, vec![5, 5])],
                "{encoding:?}"
            );
            assert_eq!(trailers["grpc-status"], "0");
        }
    }

    #[tokio::test]
    async fn large_parts_go_out_as_the_shared_bytes() {
        let big = record(2, 9000);
        let (tx, rx) = mpsc::channel(1);
        tx.try_send(Ok(SubscribeResponse::from_records(vec![
            record(1, 10),
            big.clone(),
        ])))
        .unwrap();
        drop(tx);
        let mut frames = Frames::new(
            ReceiverStream::new(rx),
            None,
            Arc::default(),
            Arc::default(),
        );
        let mut data = Vec::new();
        while let Some(frame) = frames.frame().await {
            if let Ok(bytes) = frame.unwrap().into_data() {
                data.push(bytes);
            }
        }
        assert_eq!(
            data.len(),
            2,
            "header with the small part, then the big one"
        );
        assert_eq!(data[1].as_ptr(), big.as_ptr(), "not copied");
        let response = SubscribeResponse::from_records(vec![record(1, 10), big]);
        assert_eq!(data[0].len() - 5 + data[1].len(), response.encoded_len());
    }

    #[tokio::test]
    async fn zstd_streams_share_the_frame_of_a_shared_slice() {
        let shared: Arc<SharedZstd> = Arc::default();
        let big = record(1, 9000);
        let mut sent = Vec::new();
        for _ in 0..2 {
            let (tx, rx) = mpsc::channel(1);
            tx.try_send(Ok(SubscribeResponse::from_records(vec![big.clone()])))
                .unwrap();
            drop(tx);
            let encoding = Some(CompressionEncoding::Zstd);
            let mut frames = Frames::new(
                ReceiverStream::new(rx),
                encoding,
                shared.clone(),
                Arc::default(),
            );
            while let Some(frame) = frames.frame().await {
                if let Ok(bytes) = frame.unwrap().into_data() {
                    sent.push(bytes);
                }
            }
        }
        // Header and frame gathered (the frame is small), for each stream.
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0], sent[1]);
        let frame = shared.frame_of(&big).unwrap();
        assert_eq!(&sent[0][5..], &frame[..]);
        assert_eq!(zstd::decode_all(&frame[..]).unwrap(), big.to_vec());
        // The same bytes at another address are compressed afresh.
        let copy = Bytes::from(big.to_vec());
        assert_ne!(shared.frame_of(&copy).unwrap().as_ptr(), frame.as_ptr());
        assert_eq!(shared.frame_of(&big).unwrap().as_ptr(), frame.as_ptr());
    }

    #[test]
    fn the_shared_zstd_frames_are_bounded() {
        let shared = SharedZstd::default();
        let parts: Vec<Bytes> = (0..ZSTD_RECENT as u64 + 10)
            .map(|i| record(i, 10))
            .collect();
        let first = shared.frame_of(&parts[0]).unwrap();
        for part in &parts[1..] {
            shared.frame_of(part).unwrap();
        }
        assert_eq!(shared.lock().recent.len(), ZSTD_RECENT);
        assert_ne!(
            shared.frame_of(&parts[0]).unwrap().as_ptr(),
            first.as_ptr(),
            "the oldest was dropped"
        );
    }

    #[tokio::test]
    async fn an_error_ends_the_stream_with_its_status() {
        let responses = vec![
            Ok(SubscribeResponse::from_events(vec![heartbeat(1)])),
            Err(Status::unavailable("shutting down")),
        ];
        let (messages, trailers) = collect(responses, None).await;
        assert_eq!(messages, vec![(false, vec![1])]);
        assert_eq!(trailers["grpc-status"], "14");
        assert_eq!(trailers["grpc-message"], "shutting%20down");
    }

    #[test]
    fn the_clients_preference_picks_the_encoding() {
        let mut headers = HeaderMap::new();
        assert_eq!(response_encoding(&headers), None);
        headers.insert("grpc-accept-encoding", "br, gzip,zstd".parse().unwrap());
        assert_eq!(response_encoding(&headers), Some(CompressionEncoding::Gzip));
        headers.insert("grpc-accept-encoding", "identity".parse().unwrap());
        assert_eq!(response_encoding(&headers), None);
        headers.insert("grpc-encoding", "br".parse().unwrap());
        let status = request_encoding(&headers).unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented);
    }
}
