//! Subscribe responses: the bytes of an agent's response, decoded as the
//! client decodes them (counted, then merged into one vector) and as prost
//! would decode them; both must agree on every input. The events decoded
//! are printed in every format, and the JSON formats must stay JSON
//! whatever the strings hold.

use bytes::Bytes;
use proptest::prelude::*;
use prost::Message;
use routewatch_agent::decode::{decode_message, Message as Decoded};
use routewatch_proto::fuzzing::{self, bounded};
use routewatch_proto::v1::{
    change, event, Change, Event, Heartbeat, Resync, SubscribeResponse, Sync,
};

use crate::cursor::Position;
use crate::printer::{printer, Format, Mode, Origin, Paint};
use crate::response_codec::{response_events, SliceDecoder};

/// Responses as an agent sends them: the routes, nexthop objects and rules
/// of the captured netlink fixtures as changes, and every kind of marker.
fn seeds() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/tests/fixtures");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("fixture dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    paths.sort();
    let event = |seq: u64, kind: event::Kind| Event {
        stream_id: "0123456789abcdef".into(),
        seq,
        time_unix_nano: 1_700_000_000_000_000_000,
        netns: if seq.is_multiple_of(2) {
            String::new()
        } else {
            "blue".into()
        },
        kind: Some(kind),
    };
    let mut events = Vec::new();
    for (seq, path) in (1..).zip(&paths) {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let object = match decode_message(&bytes).map(|d| d.message) {
            Ok(Decoded::NewRoute { route, .. } | Decoded::DelRoute(route)) => {
                change::Object::Route(*route)
            }
            Ok(Decoded::NewRule(rule) | Decoded::DelRule(rule)) => change::Object::Rule(rule),
            _ => continue,
        };
        events.push(event(
            seq,
            event::Kind::Change(Change {
                action: 1 + (seq % 2) as i32,
                origin: 1,
                key: format!("{seq:032x}"),
                object: Some(object),
                ..Default::default()
            }),
        ));
    }
    assert!(events.len() > 30, "fixtures missing in {}", dir.display());
    let markers = [
        event::Kind::Sync(Sync {}),
        event::Kind::Heartbeat(Heartbeat {}),
        event::Kind::Resync(Resync {
            reason: "the journal no longer holds seq 5".into(),
            cause: 1,
        }),
    ];
    let mut out: Vec<Vec<u8>> = events
        .chunks(4)
        .map(|chunk| SubscribeResponse::from_events(chunk.to_vec()).encode_to_vec())
        .collect();
    for (seq, marker) in (1000..).zip(markers) {
        out.push(SubscribeResponse::from_events(vec![event(seq, marker)]).encode_to_vec());
    }
    out
}

/// The first response of a Subscribe call whose body is `message` in
/// gRPC's framing, cut into HTTP/2 data frames at `cuts`, decoded by
/// tonic with the client's decoder (a message split across frames is not
/// one slice: the decoder's other path).
fn through_tonic(message: &[u8], cuts: &[usize]) -> Result<Vec<Event>, tonic::Status> {
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    let framed = Bytes::from(framed);
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (framed.len() + 1)).collect();
    at.push(0);
    at.push(framed.len());
    at.sort_unstable();
    at.dedup();
    let frames: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> = at
        .windows(2)
        .map(|w| Ok(http_body::Frame::data(framed.slice(w[0]..w[1]))))
        .collect();
    let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
    let mut stream =
        tonic::Streaming::new_response(SliceDecoder, body, http::StatusCode::OK, None, None);
    futures::executor::block_on(stream.message())
        .map(|response| response.map(|r| r.events).unwrap_or_default())
}

/// Strings an agent may send in any text field: quotes, escapes, control
/// characters, line separators, non-ASCII.
const STRINGS: &[&str] = &[
    "",
    "\"",
    "\\",
    "\n",
    "\u{0}",
    "\u{1b}[31m",
    "\u{7f}",
    "\u{2028}",
    "é",
    "💥",
    "a b",
    "10.0.0.0/33",
    "/",
    "default",
];

/// Every format and mode prints `events` without a panic; each line of
/// the JSON formats is a JSON value.
fn print_all(events: &[Event]) -> Result<(), String> {
    for format in [Format::Text, Format::Json, Format::Jsonpb, Format::Table] {
        for mode in [Mode::Tail, Mode::Show] {
            let mut p = printer(format, mode, Paint::ANSI);
            let mut out = Vec::new();
            let from = Origin {
                host: "h\"1",
                many: true,
            };
            for e in events {
                p.print(&mut out, &from, e).map_err(|e| e.to_string())?;
            }
            p.finish(&mut out).map_err(|e| e.to_string())?;
            let text = String::from_utf8(out).map_err(|e| format!("{format:?}: not UTF-8: {e}"))?;
            if matches!(format, Format::Json | Format::Jsonpb) {
                for line in text.lines() {
                    serde_json::from_str::<serde_json::Value>(line)
                        .map_err(|e| format!("{format:?} {mode:?} printed {line:?}: {e}"))?;
                }
            }
        }
    }
    Ok(())
}

/// A seed's events with some text fields replaced by [`STRINGS`].
fn odd_events() -> impl Strategy<Value = Vec<Event>> {
    let seeds: Vec<Vec<Event>> = seeds()
        .iter()
        .map(|b| {
            SubscribeResponse::decode(b.as_slice())
                .expect("seed decodes")
                .events
        })
        .collect();
    (
        proptest::sample::select(seeds),
        proptest::collection::vec((0usize..8, proptest::sample::select(STRINGS)), 1..4),
    )
        .prop_map(|(mut events, edits)| {
            let n = events.len().max(1);
            for (i, (field, text)) in edits.into_iter().enumerate() {
                let Some(event) = events.get_mut(i % n) else {
                    break;
                };
                let text = text.to_owned();
                let change = match &mut event.kind {
                    Some(event::Kind::Change(c)) => Some(c),
                    _ => None,
                };
                let route = change.and_then(|c| match &mut c.object {
                    Some(change::Object::Route(r)) => Some(r),
                    _ => None,
                });
                match (field, route) {
                    (0, _) => event.netns = text,
                    (1, _) => event.stream_id = text,
                    (2, Some(r)) => r.dev = text,
                    (3, Some(r)) => r.dst = text,
                    (4, Some(r)) => r.gateway = text,
                    (5, Some(r)) => r.table_name = text,
                    (6, Some(r)) => r.congctl = text,
                    (7, Some(r)) => r.vrf = text,
                    _ => {}
                }
            }
            events
        })
}

proptest! {
    #![proptest_config(fuzzing::config(2000))]

    /// Any response decodes without a panic, within bounds, to what prost
    /// makes of it: the same events, or an error for both.
    #[test]
    fn fuzz_response_decoding(bytes in fuzzing::protobuf_mutated(seeds(), 512)) {
        let ours = bounded(&bytes, || {
            response_events(SubscribeResponse::from_records(vec![Bytes::from(bytes.clone())]))
        });
        let prost = SubscribeResponse::decode(bytes.as_slice()).map(|r| r.events);
        match (ours, prost) {
            (Ok(ours), Ok(prost)) => prop_assert_eq!(ours, prost),
            (Err(_), Err(_)) => {}
            (ours, prost) => prop_assert!(false, "client {:?}, prost {:?}", ours, prost),
        }
    }

    /// A response reaching the client through tonic, in one data frame or
    /// cut into several, decodes as prost decodes it.
    #[test]
    fn fuzz_response_through_tonic(
        bytes in fuzzing::protobuf_mutated(seeds(), 512),
        cuts in proptest::collection::vec(any::<usize>(), 0..4),
    ) {
        let ours = bounded(&bytes, || through_tonic(&bytes, &cuts));
        let prost = SubscribeResponse::decode(bytes.as_slice()).map(|r| r.events);
        match (ours, prost) {
            (Ok(ours), Ok(prost)) => prop_assert_eq!(ours, prost),
            (Err(_), Err(_)) => {}
            (ours, prost) => prop_assert!(false, "client {:?}, prost {:?}", ours, prost),
        }
    }

    /// Whatever a response's events say of their positions, a consumer
    /// resuming from any cursor follows them without a panic.
    #[test]
    fn fuzz_response_positions(
        bytes in fuzzing::protobuf_mutated(seeds(), 512),
        at in any::<proptest::sample::Index>(),
        delta in -1i64..=1,
        filtered in any::<bool>(),
    ) {
        if let Ok(response) = SubscribeResponse::decode(bytes.as_slice()) {
            // Near one of the stream's own positions: where the order
            // checks decide.
            let seq = response.events.get(at.index(response.events.len().max(1))).map_or(0, |e| e.seq);
            let seq = seq.saturating_add_signed(delta);
            let cursor = routewatch_proto::v1::Cursor { stream_id: "0123456789abcdef".into(), seq };
            let mut position = Position::new(Some(cursor));
            if filtered {
                position = position.filtered();
            }
            bounded(&bytes, || {
                for event in &response.events {
                    position.advance(event);
                }
            });
        }
    }

    /// Whatever a decoded response holds prints in every format.
    #[test]
    fn fuzz_response_printing(bytes in fuzzing::protobuf_mutated(seeds(), 512)) {
        if let Ok(response) = SubscribeResponse::decode(bytes.as_slice()) {
            let result = bounded(&bytes, || print_all(&response.events));
            prop_assert!(result.is_ok(), "{}", result.unwrap_err());
        }
    }
}

proptest! {
    #![proptest_config(fuzzing::config(500))]

    /// Odd text in any field keeps the JSON formats JSON.
    #[test]
    fn fuzz_response_printing_odd_text(events in odd_events()) {
        let result = print_all(&events);
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}

#[test]
fn a_heartbeat_at_the_last_seq_is_followed_without_a_panic() {
    // Found by fuzz_response_positions: a Heartbeat at seq u64::MAX of the
    // stream a consumer holds the cursor u64::MAX of; the gap check
    // computed cursor + 1 and overflowed (a panic in a debug build).
    let bytes = [
        0x0a, 0x2f, 0x0a, 0x10, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x61,
        0x62, 0x63, 0x64, 0x65, 0x66, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x01, 0x18, 0x80, 0x80, 0xa8, 0xb1, 0xe3, 0x9f, 0xe7, 0xcb, 0x17, 0x22, 0x04, 0x62, 0x6c,
        0x75, 0x65, 0x6a, 0x00,
    ];
    let events = SubscribeResponse::decode(&bytes[..]).unwrap().events;
    assert!(matches!(events[0].kind, Some(event::Kind::Heartbeat(_))));
    let mut position = Position::new(Some(routewatch_proto::v1::Cursor {
        stream_id: "0123456789abcdef".into(),
        seq: u64::MAX,
    }));
    position.advance(&events[0]);
    assert_eq!(position.cursor().map(|c| c.seq), Some(u64::MAX));
}
