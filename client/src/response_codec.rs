//! The Subscribe call's codec: tonic's prost codec, except that a response
//! is decoded from one plain byte slice.
//!
//! tonic hands a decoder each message as a `Buf` over its receive buffer;
//! prost reading every varint and string through it (a bounds check and a
//! `BytesMut` advance per read) was about a quarter of the client's
//! decoding of a snapshot. The message is contiguous there, so it is read
//! as the slice it is. The bytes on the wire are the same.

use bytes::Buf;
use prost::Message;
use routewatch_proto::v1::{SubscribeRequest, SubscribeResponse};
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::{ProstCodec, ProstEncoder};

/// The path of RouteWatch.Subscribe.
pub const SUBSCRIBE: &str = "/routewatch.v1.RouteWatch/Subscribe";

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

#[derive(Debug, Default, Clone, Copy)]
pub struct SliceDecoder;

impl Decoder for SliceDecoder {
    type Item = SubscribeResponse;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<SubscribeResponse>, Status> {
        let len = buf.remaining();
        let decoded = if buf.chunk().len() == len {
            let decoded = SubscribeResponse::decode(buf.chunk());
            buf.advance(len);
            decoded
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
