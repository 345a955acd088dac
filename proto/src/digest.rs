//! Anti-entropy digests: what a picture holds, summed up per part.
//!
//! A part is one (netns, kind, table): routes per routing table, nexthop
//! objects and rules per namespace (table 0). Each part keeps a count and
//! the sum, modulo 2^128, of its objects' 128-bit hashes. A sum does not
//! depend on the order objects came in, and an add, a replace (remove the
//! old hash, add the new) or a delete updates it in constant time: the
//! agent keeps it on every change, a consumer keeps its own the same way,
//! and two pictures that hold the same objects have equal parts.
//!
//! An object's hash is taken over the form both sides have: the API's
//! message as a consumer decodes it from a change, with iproute2's names
//! (written beside the numbers by the agent, as its host spells them)
//! cleared, encoded by the generated code (see [`object_hash`]). The agent
//! hashes the bytes it sends, which are exactly that encoding followed by
//! the names ([`hash_bytes`]).
//!
//! A route's remaining lifetime (`expires`, field 19) is left out of its
//! hash: it counts down on its own, and a re-read of the tables takes the
//! kernel's current value without a change to send, so the two sides'
//! values may differ with nothing wrong.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use prost::Message;

use crate::v1::{change, Digest, DigestPart, Nexthop, Route};

/// The kind of object a part holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Route,
    Nexthop,
    Rule,
}

impl Kind {
    /// The spelling of `DigestPart.kind` (and of `Filter.object`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Route => "route",
            Kind::Nexthop => "nexthop",
            Kind::Rule => "rule",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "route" => Some(Kind::Route),
            "nexthop" => Some(Kind::Nexthop),
            "rule" => Some(Kind::Rule),
            _ => None,
        }
    }
}

/// One part's count and sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Part {
    pub count: u64,
    pub sum: u128,
}

impl Part {
    pub fn add(&mut self, hash: u128) {
        self.count = self.count.wrapping_add(1);
        self.sum = self.sum.wrapping_add(hash);
    }

    pub fn remove(&mut self, hash: u128) {
        self.count = self.count.wrapping_sub(1);
        self.sum = self.sum.wrapping_sub(hash);
    }

    fn is_empty(&self) -> bool {
        self.count == 0 && self.sum == 0
    }
}

/// The part of an object within its namespace: its kind and table.
pub type Slot = (Kind, u32);

/// Every part of a picture, by namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digests {
    parts: HashMap<Arc<str>, HashMap<Slot, Part>>,
}

impl Digests {
    /// Counts an object in: `hash` is its [`object_hash`].
    pub fn add(&mut self, netns: &str, slot: Slot, hash: u128) {
        self.update(netns, slot, |p| p.add(hash));
    }

    /// Counts an object out (the same `hash` it was counted in with).
    pub fn remove(&mut self, netns: &str, slot: Slot, hash: u128) {
        self.update(netns, slot, |p| p.remove(hash));
    }

    fn update(&mut self, netns: &str, slot: Slot, f: impl FnOnce(&mut Part)) {
        if !self.parts.contains_key(netns) {
            self.parts.insert(netns.into(), HashMap::new());
        }
        let parts = self.parts.get_mut(netns).expect("inserted above");
        let part = parts.entry(slot).or_default();
        f(part);
        // An empty part is no part: equal pictures have equal maps.
        if part.is_empty() {
            parts.remove(&slot);
            if parts.is_empty() {
                self.parts.remove(netns);
            }
        }
    }

    /// Forgets namespace `netns`.
    pub fn drop_namespace(&mut self, netns: &str) {
        self.parts.remove(netns);
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.parts.clear();
    }

    /// Every non-empty part, sorted by (netns, kind, table).
    pub fn sorted(&self) -> BTreeMap<(Arc<str>, Slot), Part> {
        self.parts
            .iter()
            .flat_map(|(netns, parts)| {
                parts
                    .iter()
                    .filter(|(_, p)| !p.is_empty())
                    .map(move |(slot, part)| ((netns.clone(), *slot), *part))
            })
            .collect()
    }

    /// The API's `Digest` of this picture.
    pub fn to_message(&self) -> Digest {
        Digest {
            parts: self
                .sorted()
                .into_iter()
                .map(|((netns, (kind, table)), part)| DigestPart {
                    netns: netns.to_string(),
                    kind: kind.as_str().to_owned(),
                    table,
                    count: part.count,
                    digest: part.sum.to_be_bytes().to_vec(),
                })
                .collect(),
        }
    }

    /// Where this picture differs from the agent's `digest`: every part
    /// either side holds whose count or sum differ, sorted.
    pub fn compare(&self, digest: &Digest) -> Vec<Mismatch> {
        let mut theirs: BTreeMap<(Arc<str>, Slot), Part> = BTreeMap::new();
        for p in &digest.parts {
            // A part of a kind this version does not know cannot be
            // compared: it is left out rather than reported.
            let Some(kind) = Kind::parse(&p.kind) else {
                continue;
            };
            let mut sum = [0u8; 16];
            let n = p.digest.len().min(16);
            sum[16 - n..].copy_from_slice(&p.digest[p.digest.len() - n..]);
            theirs.insert(
                (p.netns.as_str().into(), (kind, p.table)),
                Part {
                    count: p.count,
                    sum: u128::from_be_bytes(sum),
                },
            );
        }
        let ours = self.sorted();
        let mut keys: Vec<&(Arc<str>, Slot)> = ours.keys().chain(theirs.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter_map(|key| {
                let mine = ours.get(key).copied().unwrap_or_default();
                let agent = theirs.get(key).copied().unwrap_or_default();
                (mine != agent).then(|| Mismatch {
                    netns: key.0.to_string(),
                    kind: key.1 .0,
                    table: key.1 .1,
                    ours: mine,
                    agent,
                })
            })
            .collect()
    }
}

/// A part where a consumer's picture differs from the agent's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub netns: String,
    pub kind: Kind,
    pub table: u32,
    pub ours: Part,
    pub agent: Part,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let netns = if self.netns.is_empty() {
            "(own)"
        } else {
            &self.netns
        };
        write!(f, "netns {netns} {}", self.kind.as_str())?;
        if self.kind == Kind::Route {
            write!(f, " table {}", self.table)?;
        }
        write!(
            f,
            ": {} objects here, {} on the agent",
            self.ours.count, self.agent.count
        )?;
        if self.ours.count == self.agent.count {
            f.write_str(" (same count, different contents)")?;
        }
        Ok(())
    }
}

/// The hash of an object's encoding without its names (see the module).
/// A route's encoding is hashed without its `expires` field.
pub fn hash_bytes(kind: Kind, unlabelled: &[u8]) -> u128 {
    if kind == Kind::Route {
        if let Some(field) = field_range(unlabelled, ROUTE_EXPIRES) {
            let mut h = xxhash_rust::xxh3::Xxh3Default::new();
            h.update(&unlabelled[..field.start]);
            h.update(&unlabelled[field.end..]);
            return h.digest128();
        }
    }
    xxhash_rust::xxh3::xxh3_128(unlabelled)
}

/// `Route.expires`.
const ROUTE_EXPIRES: u32 = 19;
/// `Route.table`.
const ROUTE_TABLE: u32 = 2;

/// Where top-level field `tag` (key and value) lies in the encoded message
/// `buf`, if it is there (once: the generated code writes each scalar at
/// most once).
fn field_range(buf: &[u8], tag: u32) -> Option<std::ops::Range<usize>> {
    use prost::encoding::{decode_key, skip_field, DecodeContext};
    let mut rest = buf;
    while !rest.is_empty() {
        let start = buf.len() - rest.len();
        let (field, wire_type) = decode_key(&mut rest).ok()?;
        skip_field(wire_type, field, &mut rest, DecodeContext::default()).ok()?;
        if field == tag {
            return Some(start..buf.len() - rest.len());
        }
    }
    None
}

/// An object's part within its namespace and its hash, as a consumer
/// computes them from a change's object; `buf` is scratch space (kept
/// between calls, so that hashing allocates nothing once it is large
/// enough). The object is encoded with its names cleared; the names
/// themselves are put back before this returns.
pub fn object_hash(object: &mut change::Object, buf: &mut Vec<u8>) -> (Slot, u128) {
    buf.clear();
    let slot = match object {
        change::Object::Route(r) => {
            let names = take_route_names(r);
            let expires = std::mem::take(&mut r.expires);
            r.encode_raw(buf);
            r.expires = expires;
            put_route_names(r, names);
            (Kind::Route, r.table)
        }
        change::Object::Nexthop(n) => {
            let names = take_nexthop_names(n);
            n.encode_raw(buf);
            put_nexthop_names(n, names);
            (Kind::Nexthop, 0)
        }
        change::Object::Rule(r) => {
            let names = (
                std::mem::take(&mut r.table_name),
                std::mem::take(&mut r.protocol_name),
            );
            r.encode_raw(buf);
            (r.table_name, r.protocol_name) = names;
            (Kind::Rule, 0)
        }
    };
    (slot, hash_bytes(slot.0, buf))
}

/// Fields of `Route`, `Nexthop` and `Rule` an object's hash leaves out
/// (the names, and a route's lifetime), and `Route.nh_info`, whose own
/// names are left out too.
const ROUTE_SKIPPED: [u32; 5] = [ROUTE_EXPIRES, 25, 26, 27, 28];
const ROUTE_NH_INFO: u32 = 21;
const NEXTHOP_SKIPPED: [u32; 2] = [14, 15];
const RULE_SKIPPED: [u32; 2] = [31, 32];

/// The hash of an object from its whole encoding (names included, as a
/// store keeps it and the generated code writes it): the same as
/// [`object_hash`] of the decoded object, without decoding it. `buf` is
/// scratch space.
pub fn encoded_hash(kind: Kind, encoded: &[u8], buf: &mut Vec<u8>) -> u128 {
    buf.clear();
    let kept = match kind {
        Kind::Route => without(encoded, &ROUTE_SKIPPED, Some(ROUTE_NH_INFO), buf),
        Kind::Nexthop => without(encoded, &NEXTHOP_SKIPPED, None, buf),
        Kind::Rule => without(encoded, &RULE_SKIPPED, None, buf),
    };
    if kept.is_none() {
        // Not a message this version reads: its bytes as they are.
        buf.clear();
        buf.extend_from_slice(encoded);
    }
    xxhash_rust::xxh3::xxh3_128(buf)
}

/// Appends `encoded` to `out` without its top-level fields `skipped`, and
/// with field `nested` (a `Nexthop`) without the nexthop's names; None when
/// the bytes do not parse.
fn without(encoded: &[u8], skipped: &[u32], nested: Option<u32>, out: &mut Vec<u8>) -> Option<()> {
    use prost::encoding::{decode_key, decode_varint, encode_key, encode_varint, skip_field};
    use prost::encoding::{DecodeContext, WireType};
    let mut rest = encoded;
    while !rest.is_empty() {
        let start = encoded.len() - rest.len();
        let (field, wire_type) = decode_key(&mut rest).ok()?;
        if Some(field) == nested && wire_type == WireType::LengthDelimited {
            let len = decode_varint(&mut rest).ok()? as usize;
            let inner = rest.get(..len)?;
            rest = &rest[len..];
            encode_key(field, wire_type, out);
            encode_varint(kept_len(inner, &NEXTHOP_SKIPPED)? as u64, out);
            without(inner, &NEXTHOP_SKIPPED, None, out)?;
            continue;
        }
        skip_field(wire_type, field, &mut rest, DecodeContext::default()).ok()?;
        if !skipped.contains(&field) {
            out.extend_from_slice(&encoded[start..encoded.len() - rest.len()]);
        }
    }
    Some(())
}

/// How many bytes [`without`] keeps of `encoded` (no nested field).
fn kept_len(encoded: &[u8], skipped: &[u32]) -> Option<usize> {
    use prost::encoding::{decode_key, skip_field, DecodeContext};
    let mut rest = encoded;
    let mut kept = 0;
    while !rest.is_empty() {
        let before = rest.len();
        let (field, wire_type) = decode_key(&mut rest).ok()?;
        skip_field(wire_type, field, &mut rest, DecodeContext::default()).ok()?;
        if !skipped.contains(&field) {
            kept += before - rest.len();
        }
    }
    Some(kept)
}

/// The part of its namespace an object counts in.
pub fn slot_of(object: &change::Object) -> Slot {
    match object {
        change::Object::Route(r) => (Kind::Route, r.table),
        change::Object::Nexthop(_) => (Kind::Nexthop, 0),
        change::Object::Rule(_) => (Kind::Rule, 0),
    }
}

/// An object's part and hash from its stored encoding (the message itself,
/// names included): what a store keeps.
pub fn stored_hash(
    kind: Kind,
    stored: &[u8],
    buf: &mut Vec<u8>,
) -> Result<(Slot, u128), prost::DecodeError> {
    use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};
    // Every field must parse; a route's table (field 2) is read on the way.
    let mut table = 0;
    let mut rest = stored;
    while !rest.is_empty() {
        let (field, wire_type) = decode_key(&mut rest)?;
        if kind == Kind::Route && field == ROUTE_TABLE && wire_type == WireType::Varint {
            table = decode_varint(&mut rest)? as u32;
        } else {
            skip_field(wire_type, field, &mut rest, DecodeContext::default())?;
        }
    }
    Ok(((kind, table), encoded_hash(kind, stored, buf)))
}

type RouteNames = [String; 4];

fn take_route_names(r: &mut Route) -> (RouteNames, Option<(String, String)>) {
    let names = [
        std::mem::take(&mut r.table_name),
        std::mem::take(&mut r.protocol_name),
        std::mem::take(&mut r.type_name),
        std::mem::take(&mut r.scope_name),
    ];
    (names, r.nh_info.as_deref_mut().map(take_nexthop_names))
}

fn put_route_names(r: &mut Route, (names, nh): (RouteNames, Option<(String, String)>)) {
    [r.table_name, r.protocol_name, r.type_name, r.scope_name] = names;
    if let (Some(n), Some(names)) = (r.nh_info.as_deref_mut(), nh) {
        put_nexthop_names(n, names);
    }
}

fn take_nexthop_names(n: &mut Nexthop) -> (String, String) {
    (
        std::mem::take(&mut n.protocol_name),
        std::mem::take(&mut n.scope_name),
    )
}

fn put_nexthop_names(n: &mut Nexthop, (protocol, scope): (String, String)) {
    n.protocol_name = protocol;
    n.scope_name = scope;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::Rule;

    fn route(dst: &str, table: u32) -> change::Object {
        change::Object::Route(Route {
            family: 1,
            table,
            dst: dst.into(),
            table_name: "main".into(),
            protocol_name: "static".into(),
            ..Default::default()
        })
    }

    fn hashed(mut o: change::Object) -> (Slot, u128) {
        object_hash(&mut o, &mut Vec::new())
    }

    #[test]
    fn order_of_adds_does_not_matter() {
        let objects: Vec<_> = (0..50)
            .map(|i| hashed(route(&format!("10.0.{i}.0/24"), 254 + i % 2)))
            .collect();
        let mut a = Digests::default();
        let mut b = Digests::default();
        for (slot, h) in &objects {
            a.add("", *slot, *h);
        }
        for (slot, h) in objects.iter().rev() {
            b.add("", *slot, *h);
        }
        assert_eq!(a.sorted(), b.sorted());
        assert!(a.compare(&b.to_message()).is_empty());
        assert_eq!(a.sorted().len(), 2, "one part per table");
    }

    #[test]
    fn add_then_remove_leaves_nothing_and_replace_equals_fresh() {
        let (s1, h1) = hashed(route("10.0.0.0/24", 254));
        let (s2, h2) = hashed(route("10.0.1.0/24", 254));
        let mut d = Digests::default();
        d.add("a", s1, h1);
        d.add("a", s2, h2);
        d.remove("a", s1, h1);
        d.remove("a", s2, h2);
        assert_eq!(d, Digests::default(), "empty parts are dropped");
        // Replace: remove the old version, add the new.
        let mut replaced = Digests::default();
        replaced.add("", s1, h1);
        let mut changed = route("10.0.0.0/24", 254);
        if let change::Object::Route(r) = &mut changed {
            r.metric = 7;
        }
        let (s3, h3) = hashed(changed);
        replaced.remove("", s1, h1);
        replaced.add("", s3, h3);
        let mut fresh = Digests::default();
        fresh.add("", s3, h3);
        assert_eq!(replaced, fresh);
        assert_ne!(h1, h3);
    }

    /// A route's remaining lifetime is not part of its hash, on the
    /// encoding the agent hashes (with `expires` among the fields, and the
    /// fields after it) as on the object a consumer hashes.
    #[test]
    fn a_route_s_lifetime_is_left_out_of_its_hash() {
        let with = |expires: u32| {
            change::Object::Route(Route {
                family: 2,
                table: 254,
                dst: "2001:db8::/64".into(),
                gateway: "fe80::1".into(),
                pref: Some(1),
                expires,
                other: vec![crate::v1::RawAttribute {
                    kind: 99,
                    value: vec![1, 2],
                }],
                ..Default::default()
            })
        };
        let (slot, consumer) = hashed(with(1800));
        assert_eq!((slot, consumer), hashed(with(17)));
        assert_eq!(consumer, hashed(with(0)).1);
        let change::Object::Route(r) = with(1800) else {
            unreachable!()
        };
        let encoded = r.encode_to_vec();
        assert!(field_range(&encoded, ROUTE_EXPIRES).is_some());
        assert_eq!(
            hash_bytes(Kind::Route, &encoded),
            consumer,
            "the agent's side"
        );
        // Other kinds are hashed whole.
        assert_eq!(
            hash_bytes(Kind::Rule, &encoded),
            xxhash_rust::xxh3::xxh3_128(&encoded)
        );
        assert_ne!(hashed(with(5)).1, {
            let mut other = with(5);
            if let change::Object::Route(r) = &mut other {
                r.metric = 1;
            }
            hashed(other).1
        });
    }

    /// The hash of a whole encoding (names and lifetime included) equals
    /// the hash of the decoded object, for every kind, with and without a
    /// route's nexthop object details.
    #[test]
    fn an_encoding_hashes_as_its_object() {
        use crate::v1::{Encap, EncapIp, NextHop};
        let nh = Nexthop {
            id: 7,
            family: 1,
            gateway: "192.0.2.1".into(),
            dev: "eth0".into(),
            protocol: 4,
            protocol_name: "static".into(),
            scope_name: "link".into(),
            ..Default::default()
        };
        let objects = [
            route("10.0.0.0/24", 254),
            change::Object::Route(Route {
                family: 2,
                table: 100,
                dst: "2001:db8::/48".into(),
                expires: 300,
                nhid: 7,
                nh_info: Some(Box::new(nh.clone())),
                nexthops: vec![NextHop {
                    gateway: "fe80::1".into(),
                    encap: Some(Box::new(Encap {
                        r#type: 2,
                        kind: Some(crate::v1::encap::Kind::Ip(EncapIp {
                            id: 5,
                            ..Default::default()
                        })),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                table_name: "100".into(),
                type_name: "unicast".into(),
                scope_name: "global".into(),
                vrf: "blue".into(),
                ..Default::default()
            }),
            change::Object::Nexthop(nh),
            change::Object::Rule(Rule {
                family: 1,
                priority: 100,
                table: 30,
                table_name: "thirty".into(),
                protocol_name: "boot".into(),
                ..Default::default()
            }),
        ];
        let mut buf = Vec::new();
        for object in objects {
            let encoded = match &object {
                change::Object::Route(r) => r.encode_to_vec(),
                change::Object::Nexthop(n) => n.encode_to_vec(),
                change::Object::Rule(r) => r.encode_to_vec(),
            };
            let (slot, hash) = hashed(object.clone());
            assert_eq!(slot, slot_of(&object));
            assert_eq!(encoded_hash(slot.0, &encoded, &mut buf), hash, "{object:?}");
            assert_eq!(
                stored_hash(slot.0, &encoded, &mut buf).unwrap(),
                (slot, hash)
            );
        }
        // Bytes that do not parse hash as they are.
        assert_eq!(
            encoded_hash(Kind::Route, &[0xff], &mut buf),
            xxhash_rust::xxh3::xxh3_128(&[0xff])
        );
    }

    #[test]
    fn sums_wrap_and_a_removal_before_its_add_cancels_out() {
        let mut d = Digests::default();
        let slot = (Kind::Rule, 0);
        d.add("", slot, u128::MAX);
        d.add("", slot, 2);
        assert_eq!(d.sorted().values().next().unwrap().sum, 1);
        let mut e = Digests::default();
        e.remove("", slot, 5);
        e.add("", slot, 5);
        assert_eq!(e, Digests::default());
    }

    #[test]
    fn names_do_not_count_and_are_put_back() {
        let mut a = route("10.0.0.0/24", 254);
        let mut b = route("10.0.0.0/24", 254);
        if let change::Object::Route(r) = &mut b {
            r.table_name = "254".into();
            r.nh_info = Some(Box::new(Nexthop {
                id: 1,
                protocol_name: "x".into(),
                ..Default::default()
            }));
        }
        let mut c = b.clone();
        if let change::Object::Route(r) = &mut c {
            r.nh_info.as_mut().unwrap().protocol_name.clear();
        }
        let mut buf = Vec::new();
        let ha = object_hash(&mut a, &mut buf);
        let hb = object_hash(&mut b, &mut buf);
        let hc = object_hash(&mut c, &mut buf);
        assert_ne!(ha, hb, "nh_info is content");
        assert_eq!(hb, hc, "its names are not");
        match &b {
            change::Object::Route(r) => {
                assert_eq!(r.table_name, "254");
                assert_eq!(r.nh_info.as_ref().unwrap().protocol_name, "x");
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn compare_names_each_differing_part() {
        let (s, h) = hashed(route("10.0.0.0/24", 254));
        let mut ours = Digests::default();
        ours.add("", s, h);
        ours.add("ns1", (Kind::Nexthop, 0), 9);
        let mut agent = Digests::default();
        agent.add("", s, h.wrapping_add(1));
        agent.add("ns2", (Kind::Rule, 0), 3);
        let m = ours.compare(&agent.to_message());
        let names: Vec<String> = m.iter().map(|m| m.to_string()).collect();
        assert_eq!(
            names,
            [
                "netns (own) route table 254: 1 objects here, 1 on the agent (same count, different contents)",
                "netns ns1 nexthop: 1 objects here, 0 on the agent",
                "netns ns2 rule: 0 objects here, 1 on the agent",
            ]
        );
    }
}
