//! Hand-made agent streams for the tests of the ledger and of the
//! backends (the `test-support` feature makes them public for the
//! workspace's test crate).

use routewatch_proto::v1::{change, event, Action, Change, Event, Origin, Resync, Route, Sync};

use super::plan::StoredCursor;

/// A unicast route in the main table (IPv6 when `dst` has a colon).
pub fn route(dst: &str, metric: u32) -> Route {
    Route {
        family: if dst.contains(':') { 2 } else { 1 },
        table: 254,
        dst: dst.into(),
        metric,
        r#type: 1,
        ..Default::default()
    }
}

/// A change of route `r`, known as `key`, in the default namespace.
pub fn change(
    stream: &str,
    seq: u64,
    time: i64,
    action: Action,
    origin: Origin,
    key: &str,
    r: Route,
) -> Event {
    Event {
        stream_id: stream.into(),
        seq,
        time_unix_nano: time,
        netns: String::new(),
        kind: Some(event::Kind::Change(Change {
            action: action as i32,
            origin: origin as i32,
            key: key.into(),
            object: Some(change::Object::Route(r)),
        })),
    }
}

/// A Sync, Resync or Heartbeat.
pub fn marker(stream: &str, seq: u64, time: i64, kind: event::Kind) -> Event {
    Event {
        stream_id: stream.into(),
        seq,
        time_unix_nano: time,
        netns: String::new(),
        kind: Some(kind),
    }
}

/// A notification that adds (or replaces) route `r` on stream `s`.
pub fn add(seq: u64, time: i64, key: &str, r: Route) -> Event {
    change("s", seq, time, Action::Add, Origin::Notification, key, r)
}

/// A notification that deletes route `r` on stream `s`.
pub fn delete(seq: u64, time: i64, key: &str, r: Route) -> Event {
    change("s", seq, time, Action::Delete, Origin::Notification, key, r)
}

/// A complete snapshot of `routes` (key, route) ending with its Sync at
/// `seq`, after a Resync when `resync` gives its reason.
pub fn snapshot(
    stream: &str,
    seq: u64,
    time: i64,
    resync: Option<&str>,
    routes: &[(&str, Route)],
) -> Vec<Event> {
    let resync = resync.map(|reason| {
        let kind = event::Kind::Resync(Resync {
            reason: reason.into(),
            cause: 1,
        });
        marker(stream, seq, time, kind)
    });
    let dump = routes
        .iter()
        .map(|(key, r)| change(stream, seq, time, Action::Add, Origin::Dump, key, r.clone()));
    let sync = marker(stream, seq, time + 1, event::Kind::Sync(Sync {}));
    resync.into_iter().chain(dump).chain([sync]).collect()
}

pub fn cursor(stream: &str, seq: i64) -> StoredCursor {
    StoredCursor {
        stream_id: stream.into(),
        seq,
    }
}
