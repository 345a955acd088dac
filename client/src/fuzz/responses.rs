//! Subscribe responses: the bytes of an agent's response, decoded as the
//! client decodes them (counted, then merged into one vector) and as prost
//! would decode them; both must agree on every input.

use bytes::Bytes;
use proptest::prelude::*;
use prost::Message;
use routewatch_agent::decode::{decode_message, Message as Decoded};
use routewatch_proto::fuzzing::{self, bounded};
use routewatch_proto::v1::{
    change, event, Change, Event, Heartbeat, Resync, SubscribeResponse, Sync,
};

use crate::response_codec::response_events;

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
        netns: if seq % 2 == 0 {
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

proptest! {
    #![proptest_config(fuzzing::config(2000))]

    /// Any response decodes without a panic, within bounds, to what prost
    /// makes of it: the same events, or an error for both.
    #[test]
    fn fuzz_response_decoding(bytes in fuzzing::mutated(seeds(), 512)) {
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
}
