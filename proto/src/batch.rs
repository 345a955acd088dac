//! `SubscribeResponse`, written by hand so that the agent encodes each event
//! once and shares the bytes among every subscriber that receives it.
//!
//! On the wire a `SubscribeResponse` is its events as field-1 records, one
//! after another, and what its changes share: the stream id (field 2) and
//! the causes they refer to by id (field 3), each once. The agent keeps
//! each change's record in its journal; a session's batch is those records
//! side by side with the stream id and the causes, so a hundred subscribers
//! cost one encoding; the agent hands the slices to HTTP/2 as they are
//! ([`SubscribeResponse::into_parts`]).
//!
//! A decoded response (the client side) holds ordinary [`Event`]s, complete:
//! decoding fills in each change's stream id and cause, in whatever order
//! the fields come, and its key's text where it came as bytes. A change
//! whose cause the response does not define is an error, never a change
//! without its cause.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};

use crate::v1::{event, Cause, Event};

/// The field number of `SubscribeResponse.events`: each record is one.
pub const EVENTS: u32 = 1;
/// The field number of `SubscribeResponse.stream_id`.
pub const STREAM_ID: u32 = 2;
/// The field number of `SubscribeResponse.causes`.
pub const CAUSES: u32 = 3;

/// A batch of events, in stream order (see `routewatch.proto`).
#[derive(Clone, Default, PartialEq)]
pub struct SubscribeResponse {
    /// Decoded events, or the events a response was made from.
    pub events: Vec<Event>,
    /// Already-encoded records (events, the stream id, causes), sent before
    /// `events`: shared slices of the agent's journal.
    records: Vec<Bytes>,
    /// Decoding: the response's stream id and causes, as far as read.
    stream_id: String,
    causes: Vec<Cause>,
    /// Decoding: changes read whose cause is not defined yet.
    pending: usize,
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
            ..Default::default()
        }
    }

    /// A response carrying pre-encoded records (see [`record`],
    /// [`stream_record`], [`cause_record`]), each part one or more whole
    /// records side by side.
    pub fn from_records(parts: Vec<Bytes>) -> SubscribeResponse {
        SubscribeResponse {
            records: parts,
            ..Default::default()
        }
    }

    /// The pre-encoded records and the events, in the order they are
    /// encoded: what a sender writes without encoding the records again.
    pub fn into_parts(self) -> (Vec<Bytes>, Vec<Event>) {
        (self.records, self.events)
    }

    /// Every event, decoding the pre-encoded records first (all of them as
    /// one response: a change and its cause may be in different parts).
    pub fn into_events(self) -> Result<Vec<Event>, DecodeError> {
        let mut decoded = SubscribeResponse::default();
        for part in self.records {
            decoded.merge(part)?;
        }
        decoded.complete()?;
        decoded.events.extend(self.events);
        Ok(decoded.events)
    }

    /// After merging a whole response: an error if a change refers to a
    /// cause the response does not define.
    pub fn complete(&self) -> Result<(), DecodeError> {
        if self.pending == 0 {
            return Ok(());
        }
        let ids: Vec<String> = self
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                Some(event::Kind::Change(c)) if c.cause != 0 => Some(c.cause.to_string()),
                _ => None,
            })
            .collect();
        Err(invalid(format!(
            "a change refers to cause {} that its response does not define",
            ids.join(", ")
        )))
    }

    fn records_len(&self) -> usize {
        self.records.iter().map(Bytes::len).sum()
    }

    /// Fills in `event` from what the response has said so far, and its
    /// key's text from its bytes.
    fn fill(&mut self, index: usize) -> Result<(), DecodeError> {
        let event = &mut self.events[index];
        if event.stream_id.is_empty() {
            event.stream_id.clone_from(&self.stream_id);
        }
        if let Some(event::Kind::Change(change)) = &mut event.kind {
            if !change.key_bytes.is_empty() {
                let key = crate::key::from_bytes(&change.key_bytes).ok_or_else(|| {
                    invalid(format!(
                        "a change's key_bytes is {} bytes, not 16",
                        change.key_bytes.len()
                    ))
                })?;
                change.key = crate::key::text(key).as_str().to_owned();
                change.key_bytes = Vec::new();
            }
            if change.cause != 0 {
                match self.causes.iter().find(|c| c.id == change.cause) {
                    Some(cause) => apply(cause, change),
                    None => self.pending += 1,
                }
            }
        }
        Ok(())
    }

    fn define(&mut self, cause: Cause) -> Result<(), DecodeError> {
        if cause.id == 0 {
            return Err(invalid("a cause with id 0".into()));
        }
        if let Some(known) = self.causes.iter().find(|c| c.id == cause.id) {
            if *known != cause {
                return Err(invalid(format!(
                    "cause {} is defined twice, differently",
                    cause.id
                )));
            }
            return Ok(());
        }
        if self.pending > 0 {
            for event in &mut self.events {
                if let Some(event::Kind::Change(change)) = &mut event.kind {
                    if change.cause == cause.id {
                        apply(&cause, change);
                        self.pending -= 1;
                    }
                }
            }
        }
        self.causes.push(cause);
        Ok(())
    }
}

/// A response that is well-formed protobuf but not a whole response.
// prost has no other way to say why a message does not decode; the
// function is hidden and deprecated, not gone.
#[allow(deprecated)]
fn invalid(why: String) -> DecodeError {
    DecodeError::new(why)
}

/// `change` with the fields of `cause`, as if it carried them itself.
fn apply(cause: &Cause, change: &mut crate::v1::Change) {
    change.changed_by.clone_from(&cause.changed_by);
    change.reason.clone_from(&cause.reason);
    change.cause = 0;
}

/// `event` encoded as one field-1 record of a `SubscribeResponse`.
pub fn record(event: &Event) -> Bytes {
    let mut buf = BytesMut::with_capacity(encoding::message::encoded_len(EVENTS, event));
    encoding::message::encode(EVENTS, event, &mut buf);
    buf.freeze()
}

/// `stream_id` as the field-2 record of a `SubscribeResponse`.
pub fn stream_record(stream_id: &str) -> Bytes {
    let len = stream_id.len() as u64;
    let mut buf = BytesMut::with_capacity(
        encoding::key_len(STREAM_ID) + encoding::encoded_len_varint(len) + stream_id.len(),
    );
    encoding::encode_key(STREAM_ID, WireType::LengthDelimited, &mut buf);
    encoding::encode_varint(len, &mut buf);
    buf.put_slice(stream_id.as_bytes());
    buf.freeze()
}

/// `cause` as one field-3 record of a `SubscribeResponse`.
pub fn cause_record(cause: &Cause) -> Bytes {
    let mut buf = BytesMut::with_capacity(encoding::message::encoded_len(CAUSES, cause));
    encoding::message::encode(CAUSES, cause, &mut buf);
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
        match tag {
            EVENTS => {
                let mut event = Event::default();
                encoding::message::merge(wire_type, &mut event, buf, ctx)?;
                self.events.push(event);
                self.fill(self.events.len() - 1)
            }
            STREAM_ID => {
                encoding::string::merge(wire_type, &mut self.stream_id, buf, ctx)?;
                for event in &mut self.events {
                    if event.stream_id.is_empty() {
                        event.stream_id.clone_from(&self.stream_id);
                    }
                }
                Ok(())
            }
            CAUSES => {
                let mut cause = Cause::default();
                encoding::message::merge(wire_type, &mut cause, buf, ctx)?;
                self.define(cause)
            }
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        self.records_len() + encoding::message::encoded_len_repeated(EVENTS, &self.events)
    }

    fn clear(&mut self) {
        *self = SubscribeResponse::default();
    }

    /// As prost decodes, and then checks that every change's cause is
    /// defined ([`SubscribeResponse::complete`]).
    fn decode(buf: impl Buf) -> Result<Self, DecodeError> {
        let mut response = SubscribeResponse::default();
        response.merge(buf)?;
        response.complete()?;
        Ok(response)
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

    fn change(seq: u64, cause: u64) -> Event {
        Event {
            seq,
            kind: Some(event::Kind::Change(crate::v1::Change {
                cause,
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    fn cause(id: u64, comm: &str) -> Bytes {
        cause_record(&Cause {
            id,
            changed_by: Some(crate::v1::ChangedBy {
                comm: comm.into(),
                ..Default::default()
            }),
            reason: format!("{comm} asked"),
        })
    }

    fn decoded(parts: &[Bytes]) -> Result<Vec<Event>, DecodeError> {
        let bytes: Vec<u8> = parts.iter().flat_map(|p| p.to_vec()).collect();
        SubscribeResponse::decode(&bytes[..]).map(|r| r.events)
    }

    #[test]
    fn the_stream_id_and_causes_are_filled_in_whatever_their_order() {
        let events = [
            record(&change(1, 5)),
            record(&change(2, 0)),
            record(&change(3, 6)),
        ];
        let shared = [stream_record("s"), cause(5, "ip"), cause(6, "bird")];
        let orders: [[usize; 6]; 3] = [[3, 4, 5, 0, 1, 2], [0, 1, 2, 3, 4, 5], [0, 3, 1, 4, 2, 5]];
        for order in orders {
            let all: Vec<Bytes> = events.iter().chain(&shared).cloned().collect();
            let parts: Vec<Bytes> = order.iter().map(|&i| all[i].clone()).collect();
            let got = decoded(&parts).unwrap();
            let who: Vec<(u64, &str, Option<&str>, &str, u64)> = got
                .iter()
                .map(|e| {
                    let Some(event::Kind::Change(c)) = &e.kind else {
                        panic!("a change");
                    };
                    let comm = c.changed_by.as_ref().map(|b| b.comm.as_str());
                    (
                        e.seq,
                        e.stream_id.as_str(),
                        comm,
                        c.reason.as_str(),
                        c.cause,
                    )
                })
                .collect();
            assert_eq!(
                who,
                vec![
                    (1, "s", Some("ip"), "ip asked", 0),
                    (2, "s", None, "", 0),
                    (3, "s", Some("bird"), "bird asked", 0),
                ],
                "order {order:?}"
            );
        }
        // An event that names its stream keeps it.
        let own = Event {
            stream_id: "t".into(),
            ..change(4, 0)
        };
        let got = decoded(&[stream_record("s"), record(&own)]).unwrap();
        assert_eq!(got[0].stream_id, "t");
    }

    #[test]
    fn a_cause_not_defined_or_defined_two_ways_does_not_decode() {
        let err = decoded(&[record(&change(1, 5)), cause(6, "ip")]).unwrap_err();
        assert!(err.to_string().contains("cause 5"), "{err}");
        // Defined twice alike: fine.
        let twice = [record(&change(1, 5)), cause(5, "ip"), cause(5, "ip")];
        assert_eq!(decoded(&twice).unwrap().len(), 1);
        let err = decoded(&[record(&change(1, 5)), cause(5, "ip"), cause(5, "bird")]).unwrap_err();
        assert!(err.to_string().contains("defined twice"), "{err}");
        let err = decoded(&[cause(0, "ip")]).unwrap_err();
        assert!(err.to_string().contains("id 0"), "{err}");
        // Merged part by part, the check comes at the end.
        let mut response = SubscribeResponse::default();
        response.merge(&record(&change(1, 5))[..]).unwrap();
        assert!(response.complete().is_err());
        response.merge(&cause(5, "ip")[..]).unwrap();
        response.complete().unwrap();
    }

    #[test]
    fn a_key_sent_as_bytes_is_read_as_its_text() {
        let with_key = |key: &str, key_bytes: Vec<u8>| Event {
            kind: Some(event::Kind::Change(crate::v1::Change {
                key: key.into(),
                key_bytes,
                ..Default::default()
            })),
            ..Default::default()
        };
        let keys = |events: Vec<Event>| -> Vec<(String, usize)> {
            events
                .into_iter()
                .map(|e| match e.kind {
                    Some(event::Kind::Change(c)) => (c.key, c.key_bytes.len()),
                    _ => panic!("a change"),
                })
                .collect()
        };
        let key = 0x0123_4567_89ab_cdef_0000_0000_0000_000au128;
        let got = decoded(&[
            record(&with_key("", key.to_be_bytes().to_vec())),
            record(&with_key("nh|10", Vec::new())),
        ])
        .unwrap();
        assert_eq!(
            keys(got),
            vec![
                ("0123456789abcdef000000000000000a".to_string(), 0),
                ("nh|10".to_string(), 0)
            ]
        );
        let err = decoded(&[record(&with_key("", vec![1; 15]))]).unwrap_err();
        assert!(err.to_string().contains("15 bytes, not 16"), "{err}");
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
