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

/// The hash of `object`, encoded into `scratch` as a change carries it.
pub fn hash(object: &Object, names: &Names, scratch: &mut BytesMut) -> u128 {
    scratch.clear();
    let range = Labelled::new(object, names).encode(scratch);
    hash_bytes(&scratch[range])
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
