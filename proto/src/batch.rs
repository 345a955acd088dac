//! `SubscribeResponse`, written by hand so that the agent encodes each event
//! once and shares the bytes among every subscriber that receives it.
//!
//! On the wire a `SubscribeResponse` is its events as field-1 records, one
//! after another. The agent keeps each change's record in its journal; a
//! session's batch is those records side by side, so a hundred subscribers
//! cost one encoding; the agent hands the slices to HTTP/2 as they are
//! ([`SubscribeResponse::into_parts`]). A decoded response (the client side)
//! holds ordinary [`Event`]s. Both forms encode to the same bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};

use crate::v1::Event;

/// The field number of `SubscribeResponse.events`: each record is one.
pub const EVENTS: u32 = 1;

/// A batch of events, in stream order (see `routewatch.proto`).
#[derive(Clone, Default, PartialEq)]
pub struct SubscribeResponse {
    /// Decoded events, or events added with [`SubscribeResponse::push`].
    pub events: Vec<Event>,
    /// Already-encoded field-1 records, sent before `events`: shared
    /// slices of the agent's journal.
    records: Vec<Bytes>,
}

impl std::fmt::Debug for SubscribeResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscribeResponse")
            .field("events", &self.events)
            .field("record_bytes", &self.records_len())
            .finish()
    }
}

impl SubscribeResponse {
    /// A response carrying these events.
    pub fn from_events(events: Vec<Event>) -> SubscribeResponse {
        SubscribeResponse {
            events,
            records: Vec::new(),
        }
    }

    /// A response carrying pre-encoded records (see [`record`]), each part
    /// one or more whole records side by side.
    pub fn from_records(parts: Vec<Bytes>) -> SubscribeResponse {
        SubscribeResponse {
            events: Vec::new(),
            records: parts,
        }
    }

    /// The pre-encoded records and the events, in the order they are
    /// encoded: what a sender writes without encoding the records again.
    pub fn into_parts(self) -> (Vec<Bytes>, Vec<Event>) {
        (self.records, self.events)
    }

    /// Every event, decoding the pre-encoded records first.
    pub fn into_events(self) -> Result<Vec<Event>, DecodeError> {
        let mut events = Vec::new();
        for part in self.records {
            events.extend(SubscribeResponse::decode(part)?.events);
        }
        events.extend(self.events);
        Ok(events)
    }

    fn records_len(&self) -> usize {
        self.records.iter().map(Bytes::len).sum()
    }
}

/// `event` encoded as one field-1 record of a `SubscribeResponse`.
pub fn record(event: &Event) -> Bytes {
    let mut buf = BytesMut::with_capacity(encoding::message::encoded_len(EVENTS, event));
    encoding::message::encode(EVENTS, event, &mut buf);
    buf.freeze()
}

impl Message for SubscribeResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for part in &self.records {
            buf.put_slice(part);
        }
        for event in &self.events {
            encoding::message::encode(EVENTS, event, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        if tag == EVENTS {
            encoding::message::merge_repeated(wire_type, &mut self.events, buf, ctx)
        } else {
            encoding::skip_field(wire_type, tag, buf, ctx)
        }
    }

    fn encoded_len(&self) -> usize {
        self.records_len() + encoding::message::encoded_len_repeated(EVENTS, &self.events)
    }

    fn clear(&mut self) {
        self.events.clear();
        self.records.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{event, Sync};

    fn ev(seq: u64) -> Event {
        Event {
            stream_id: "s".into(),
            seq,
            kind: Some(event::Kind::Sync(Sync {})),
            ..Default::default()
        }
    }

    #[test]
    fn records_and_events_encode_alike() {
        let decoded = SubscribeResponse::from_events(vec![ev(1), ev(2)]);
        let mut first = BytesMut::new();
        first.extend_from_slice(&record(&ev(1)));
        let shared = SubscribeResponse::from_records(vec![first.freeze(), record(&ev(2))]);
        assert_eq!(decoded.encode_to_vec(), shared.encode_to_vec());
        assert_eq!(shared.encoded_len(), decoded.encoded_len());
        let back = SubscribeResponse::decode(shared.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back.into_events().unwrap(), vec![ev(1), ev(2)]);
        assert_eq!(shared.into_events().unwrap(), vec![ev(1), ev(2)]);
    }
}
