//! The agent's anti-entropy digests: per (netns, kind, table), the count
//! and the sum of the hashes of the objects it holds (see
//! [`routewatch_proto::digest`]), kept by the journal on every change it
//! numbers and sent to subscribers as `Digest` events.
//!
//! The hash of an object is taken over the bytes a change carries it in,
//! up to the names written beside it ([`crate::labelled`]): the journal
//! hashes the record it has just encoded (no second encoding, no
//! allocation). An object that leaves (a delete, or the version a replace
//! supersedes) is encoded again into scratch space to be hashed out.

use bytes::BytesMut;
use routewatch_proto::digest::{hash_bytes, Digests, Kind, Slot};
use routewatch_proto::Names;

use crate::labelled::Labelled;
use crate::state::{Action, Change, Object, Previous, StateTable};

/// The part of the namespace `object` counts in.
pub fn slot(object: &Object) -> Slot {
    match object {
        Object::Route(record) => (Kind::Route, record.numbers().table),
        Object::Nexthop(_) => (Kind::Nexthop, 0),
        Object::Rule(_) => (Kind::Rule, 0),
    }
}

/// The hash of `object`, encoded into `scratch` as a change carries it
/// (a route's record holds that encoding already: it is hashed as it is).
pub fn hash(object: &Object, names: &Names, scratch: &mut BytesMut) -> u128 {
    if let Object::Route(record) = object {
        return record.with_body(|body| hash_bytes(Kind::Route, body));
    }
    scratch.clear();
    let range = Labelled::new(object, names).encode(scratch);
    hash_bytes(slot(object).0, &scratch[range])
}

/// Notes a change that was just encoded: `encoded` is the hash of its
/// object, taken from its record.
pub fn note(
    digests: &mut Digests,
    netns: &str,
    change: &Change,
    encoded: u128,
    names: &Names,
    scratch: &mut BytesMut,
) {
    let slot = slot(&change.object);
    match change.action {
        // A delete carries the version the table held.
        Action::Delete => digests.remove(netns, slot, encoded),
        Action::Add => {
            if let Previous::Was(old) = &change.previous {
                digests.remove(netns, self::slot(old), hash(old, names, scratch));
            }
            digests.add(netns, slot, encoded);
        }
    }
}

/// Counts every object of `table` afresh into `digests` (whatever it held
/// for `netns` is forgotten): for a table that was filled without changes
/// (the first dump, the state dir's restore).
pub fn recount(
    digests: &mut Digests,
    netns: &str,
    table: &StateTable,
    names: &Names,
    scratch: &mut BytesMut,
) {
    digests.drop_namespace(netns);
    for (_, object) in table.objects() {
        digests.add(netns, slot(&object), hash(&object, names, scratch));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use prost::Message as _;
    use routewatch_proto::digest::{object_hash, Digests};
    use routewatch_proto::v1::{self as api, Route, SubscribeResponse};

    use crate::decode::Message;
    use crate::journal::{Journal, RingLimits};

    fn route(dst: &str, table: u32, metric: u32) -> Box<Route> {
        Box::new(Route {
            family: 1,
            table,
            dst: dst.into(),
            metric,
            r#type: 6,
            protocol: 4,
            ..Default::default()
        })
    }

    const NLM_F_REPLACE: u16 = 0x100;

    /// Adds, replaces and deletes applied to a table and published: the
    /// digests kept on every change equal a count of the table afresh, and
    /// a consumer's digests of the events it received.
    #[test]
    fn digests_kept_on_every_change_equal_a_recount_and_a_consumers() {
        let limits = RingLimits {
            changes: 1 << 16,
            bytes: usize::MAX,
        };
        let journal = Journal::new("s".into(), String::new(), limits);
        let ns: Arc<str> = "".into();
        let mut core = journal.lock();
        let messages = (0..40)
            .map(|i| Message::NewRoute {
                route: route(&format!("10.0.{i}.0/24"), 254 + i % 3, 0),
                flags: 0,
            })
            .chain((0..10).map(|i| Message::NewRoute {
                route: route(&format!("10.0.{i}.0/24"), 254 + i % 3, 0),
                flags: NLM_F_REPLACE,
            }))
            .chain(
                (5..15)
                    .map(|i| Message::DelRoute(route(&format!("10.0.{i}.0/24"), 254 + i % 3, 0))),
            )
            .chain((20..25).map(|i| Message::NewRoute {
                route: Box::new(Route {
                    gateway: String::new(),
                    r#type: 7,
                    ..*route(&format!("10.0.{i}.0/24"), 254 + i % 3, 0)
                }),
                flags: NLM_F_REPLACE,
            }));
        for m in messages {
            let mut changes = Vec::new();
            core.table_mut(&ns).apply(m, &mut changes);
            core.publish_in(&ns, changes, api::Origin::Notification);
        }
        let kept = core.digests().clone();
        assert!(kept.sorted().len() == 3, "one part per table: {kept:?}");
        core.recount("");
        assert_eq!(
            &kept,
            core.digests(),
            "kept on every change = counted afresh"
        );

        // A consumer applying the stream: add upserts by key, delete removes.
        let mut held = std::collections::HashMap::new();
        for entry in core.recent() {
            let response = SubscribeResponse::decode(entry.record()).unwrap();
            for event in response.into_events().unwrap() {
                let Some(api::event::Kind::Change(c)) = event.kind else {
                    continue;
                };
                if c.action == api::Action::Delete as i32 {
                    held.remove(&c.key);
                } else {
                    held.insert(c.key, c.object.unwrap());
                }
            }
        }
        let mut theirs = Digests::default();
        let mut buf = Vec::new();
        for object in held.values_mut() {
            let (slot, hash) = object_hash(object, &mut buf);
            theirs.add("", slot, hash);
        }
        assert_eq!(kept.to_message(), theirs.to_message());
        let Some(api::event::Kind::Digest(sent)) = core.digest_event().kind else {
            panic!("a digest event");
        };
        assert!(theirs.compare(&sent).is_empty());
    }
}
