//! Hand-made events and a store filled through the ledger, as `collect`
//! fills it: for the ledger's tests, `query`'s, and the backends' in the
//! workspace's test crate (which the `test-support` feature makes them
//! public for).

use routewatch_proto::v1::{
    change, event, Action, Change, Event, Nexthop, Origin, Resync, Route, Rule, Sync,
};

use super::plan::StoredCursor;
use super::{Ledger, Outcome, Store};

/// A unicast route in the main table.
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

/// What a change may carry.
pub trait Object {
    fn object(self) -> change::Object;
}

impl Object for Route {
    fn object(self) -> change::Object {
        change::Object::Route(self)
    }
}

impl Object for Nexthop {
    fn object(self) -> change::Object {
        change::Object::Nexthop(self)
    }
}

impl Object for Rule {
    fn object(self) -> change::Object {
        change::Object::Rule(self)
    }
}

/// A change of `key` in the agent's own namespace.
pub fn change(
    stream: &str,
    seq: u64,
    time: i64,
    action: Action,
    origin: Origin,
    key: &str,
    object: impl Object,
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
            object: Some(object.object()),
            ..Default::default()
        })),
    }
}

/// A marker: sync, resync or heartbeat.
pub fn marker(stream: &str, seq: u64, time: i64, kind: event::Kind) -> Event {
    Event {
        stream_id: stream.into(),
        seq,
        time_unix_nano: time,
        netns: String::new(),
        kind: Some(kind),
    }
}

/// A notification that adds (or replaces) `key`, on stream `s`.
pub fn add(seq: u64, time: i64, key: &str, object: impl Object) -> Event {
    change(
        "s",
        seq,
        time,
        Action::Add,
        Origin::Notification,
        key,
        object,
    )
}

/// A notification that deletes `key`, on stream `s`.
pub fn delete(seq: u64, time: i64, key: &str, object: impl Object) -> Event {
    change(
        "s",
        seq,
        time,
        Action::Delete,
        Origin::Notification,
        key,
        object,
    )
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

/// Stores `events` of the target dialled as `name`, which reports `host`,
/// the way `collect` does: claim the target, feed its ledger, commit.
pub async fn record(store: &mut Store, name: &str, host: &str, events: &[Event]) {
    let (target, open) = store.claim(name).await.unwrap().expect("claimed");
    let mut ledger = Ledger::new(&target, open);
    ledger.set_host(host);
    ledger.apply(events);
    if let Some(write) = ledger.take() {
        let outcomes = store.commit(&[write]).await.unwrap();
        assert_eq!(outcomes, [Outcome::Committed]);
    }
}
