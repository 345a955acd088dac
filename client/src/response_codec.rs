//! How the client decodes `SubscribeResponse`s: the Subscribe call's codec
//! (tonic's prost codec, except that a response is decoded from one plain
//! byte slice, into room made for all its events), and [`response_events`]
//! for the in-process pipeline's responses, which carry encoded records.
//!
//! tonic hands a decoder each message as a `Buf` over its receive buffer;
//! prost reading every varint and string through it (a bounds check and a
//! `BytesMut` advance per read) was about a quarter of the client's
//! decoding of a snapshot. The message is contiguous there, so it is read
//! as the slice it is. And an `Event` is about 500 bytes: pushed into a
//! vector that grows as they come, each was copied about twice more; the
//! events are counted first (two varints each). The bytes on the wire are
//! the same.

use bytes::Buf;
use prost::encoding::{self, DecodeContext};
use prost::DecodeError;
use prost::Message;
use routewatch_proto::batch::EVENTS;
use routewatch_proto::v1::{Event, SubscribeRequest, SubscribeResponse};
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::{ProstCodec, ProstEncoder};

/// The path of RouteWatch.Subscribe.
pub const SUBSCRIBE: &str = "/routewatch.v1.RouteWatch/Subscribe";

/// The codec of the Subscribe call (see the module's notes).
#[derive(Debug, Default, Clone, Copy)]
pub struct ResponseCodec;

impl Codec for ResponseCodec {
    type Encode = SubscribeRequest;
    type Decode = SubscribeResponse;
    type Encoder = ProstEncoder<SubscribeRequest>;
    type Decoder = SliceDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<SubscribeRequest, SubscribeResponse>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        SliceDecoder
    }
}

/// Decodes a response from the slice it is in tonic's buffer.
#[derive(Debug, Default, Clone, Copy)]
pub struct SliceDecoder;

impl Decoder for SliceDecoder {
    type Item = SubscribeResponse;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<SubscribeResponse>, Status> {
        let len = buf.remaining();
        let decoded = if buf.chunk().len() == len {
            let decoded = decode(&[buf.chunk()], Vec::new());
            buf.advance(len);
            decoded.map(SubscribeResponse::from_events)
        } else {
            // Not contiguous after all: read it as tonic gives it.
            SubscribeResponse::decode(&mut *buf)
        };
        // As tonic's prost codec maps a bad message.
        decoded
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

/// A response's events in order: a decoded response's as they are, and
/// encoded records (the in-process pipeline sends them) decoded in front of
/// them, as [`SubscribeResponse::into_events`] gives them, without copying
/// each event again.
pub fn response_events(response: SubscribeResponse) -> Result<Vec<Event>, DecodeError> {
    let (records, decoded) = response.into_parts();
    if records.is_empty() {
        return Ok(decoded);
    }
    decode(&records, decoded)
}

/// The events of the encoded responses `parts`, then `after`, in one vector
/// made large enough for all of them before decoding.
fn decode(parts: &[impl AsRef<[u8]>], after: Vec<Event>) -> Result<Vec<Event>, DecodeError> {
    let count: usize = parts.iter().map(|p| count_events(p.as_ref())).sum();
    let mut response = SubscribeResponse::from_events(Vec::with_capacity(count + after.len()));
    for part in parts {
        response.merge(part.as_ref())?;
    }
    response.complete()?;
    response.events.extend(after);
    Ok(response.events)
}

/// How many events the encoded response `buf` holds (as many as can be
/// told before anything malformed, which decoding then reports).
fn count_events(mut buf: &[u8]) -> usize {
    let mut events = 0;
    while !buf.is_empty() {
        let Ok((tag, wire_type)) = encoding::decode_key(&mut buf) else {
            break;
        };
        if encoding::skip_field(wire_type, tag, &mut buf, DecodeContext::default()).is_err() {
            break;
        }
        events += usize::from(tag == EVENTS);
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use routewatch_proto::v1::{event, Sync};

    fn sync(seq: u64) -> Event {
        Event {
            seq,
            stream_id: "s".into(),
            kind: Some(event::Kind::Sync(Sync {})),
            ..Default::default()
        }
    }

    #[test]
    fn every_event_is_counted_and_decoded() {
        let events: Vec<Event> = (0..3).map(sync).collect();
        let bytes = SubscribeResponse::from_events(events.clone()).encode_to_vec();
        assert_eq!(count_events(&bytes), 3);
        assert_eq!(
            count_events(&bytes[..bytes.len() - 1]),
            2,
            "a cut record is not counted"
        );
        assert_eq!(decode(&[&bytes[..]], Vec::new()).unwrap(), events);
        assert!(decode(&[&bytes[..bytes.len() - 1]], Vec::new()).is_err());
    }

    #[test]
    fn records_come_before_decoded_events_as_into_events_gives_them() {
        let records: Vec<Bytes> = [0, 1]
            .map(|seq| routewatch_proto::batch::record(&sync(seq)))
            .to_vec();
        let mut response = SubscribeResponse::from_records(records);
        response.events.push(sync(2));
        assert_eq!(
            response_events(response.clone()).unwrap(),
            response.into_events().unwrap()
        );
    }
}
