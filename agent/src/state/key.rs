//! Route identity: which kernel route a message is about.
//!
//! The kernel identifies a route by (table, dst, tos, metric) -- the *base*
//! -- and then by rules that differ per family (measured on 6.18):
//!
//! - IPv4: `ip route append` creates a second route with the same base, and a
//!   delete names the exact one by its attributes. The kernel treats type and
//!   every fib_info field (protocol, scope, prefsrc, nexthops) as part of the
//!   route's identity, so the key carries them.
//! - IPv6: routes with a gateway, no nexthop object and not learned from a
//!   router advertisement are ECMP siblings: the kernel merges them into one
//!   multipath route, appends and single-path deletes change its nexthop set.
//!   They share the base as key. Other IPv6 routes with the same base (a
//!   device route beside a gateway route, two RA default routes) are
//!   separate and keyed by what tells them apart.
//!
//! A route whose nexthops live in a nexthop object is keyed by the object id,
//! so that a change of the object (which the kernel does not announce per
//! route) keeps the route's key.
//!
//! Lightweight-tunnel encapsulations (measured on 6.18): an IPv4 route
//! differing from another only by its encapsulation is a separate route
//! (fib_info compares lwtstate), so the IPv4 key carries each path's
//! encapsulation. IPv6 ECMP siblings merge regardless of encapsulation --
//! even two paths through the same gateway and device, which then differ only
//! by it -- so the ECMP key does not; other IPv6 routes (`dev` routes
//! differing only by encapsulation are two routes) do.

//!
//! Keys are 128-bit numbers printed as 32 hex digits: cheap to build on
//! every event, cheap to look up, opaque to the consumer, who only compares
//! them. A route's key is its base hash (xxh3, a fixed and specified
//! function, so keys survive restarts) in the high 64 bits and a hash of
//! what tells it from other routes of that base in the low 64, so that the
//! table finds a route's siblings by the key alone. A rule's key is a hash of
//! the rule; a nexthop object's key is `nh|` and its id.

use std::fmt;

use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

use prost::Message;
use routewatch_proto::key::{KeyText, NEXTHOP_MARK};
use routewatch_proto::v1::{encap, Encap, Family, Route, Rule};

const PROTOCOL_RA: u32 = 9;

/// Hash of (family, table, dst, src, tos, metric): what `ip route replace`
/// matches.
pub fn base_key(r: &Route) -> u64 {
    base(r).digest()
}

/// The identity of a route, rule or nexthop object: the stable key a
/// consumer uses to upsert and delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Key(u128);

impl Key {
    /// The key of nexthop object `id`.
    pub fn nexthop(id: u32) -> Key {
        Key((u128::from(NEXTHOP_MARK) << 64) | u128::from(id))
    }

    /// A key for tests: `n` as base and as the rest.
    #[cfg(test)]
    pub fn test(n: u32) -> Key {
        Key((u128::from(n) << 64) | u128::from(n))
    }

    /// Whether this is a nexthop object's key (written `nh|ID`, never as
    /// bytes on the wire).
    pub fn is_nexthop(self) -> bool {
        routewatch_proto::key::is_nexthop(self.0)
    }

    /// The base hash of a route key (see [`base_key`]).
    pub fn base(self) -> u64 {
        (self.0 >> 64) as u64
    }

    pub fn to_le_bytes(self) -> [u8; 16] {
        self.0.to_le_bytes()
    }

    pub fn from_le_bytes(bytes: [u8; 16]) -> Key {
        Key(u128::from_le_bytes(bytes))
    }

    /// The key as `Change.key_bytes` carries it.
    pub fn to_be_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// Reads a key as [`fmt::Display`] writes it (as consumers and the
    /// state dir hold it).
    pub fn parse(s: &str) -> Option<Key> {
        routewatch_proto::key::parse(s).map(Key)
    }

    /// The printed form, on the stack: 32 hex digits, or `nh|` and an id.
    pub fn text(self) -> KeyText {
        routewatch_proto::key::text(self.0)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text().as_str())
    }
}

/// The stable key a consumer uses to upsert and delete.
pub fn route_key(r: &Route) -> Key {
    let base_hash = base_key(r);
    let mut h = base(r);
    if r.family == Family::Inet6 as i32 {
        if r.nhid != 0 {
            h.update(b"nh");
            h.update(&r.nhid.to_le_bytes());
        } else if is_ecmp_capable(r) {
            h.update(b"ecmp");
        } else if !r.gateway.is_empty() {
            h.update(b"via");
            field(&mut h, &r.gateway);
            h.update(&r.ifindex.to_le_bytes());
            encap(&mut h, r.encap.as_deref());
        } else {
            h.update(b"dev");
            h.update(&r.r#type.to_le_bytes());
            h.update(&r.ifindex.to_le_bytes());
            encap(&mut h, r.encap.as_deref());
        }
    } else {
        for n in [r.r#type, r.protocol, r.scope] {
            h.update(&n.to_le_bytes());
        }
        field(&mut h, &r.prefsrc);
        if r.nhid != 0 {
            h.update(b"nh");
            h.update(&r.nhid.to_le_bytes());
        } else if r.nexthops.is_empty() {
            field(&mut h, &r.gateway);
            h.update(&r.ifindex.to_le_bytes());
            encap(&mut h, r.encap.as_deref());
        } else {
            for hop in &r.nexthops {
                field(&mut h, &hop.gateway);
                h.update(&hop.ifindex.to_le_bytes());
                h.update(&hop.weight.to_le_bytes());
                encap(&mut h, hop.encap.as_deref());
            }
        }
    }
    Key((u128::from(base_hash) << 64) | u128::from(h.digest()))
}

/// FIB_RULE_UNRESOLVED, FIB_RULE_IIF_DETACHED, FIB_RULE_OIF_DETACHED: state
/// the kernel changes on its own, not part of what the rule is.
const RULE_STATE_FLAGS: u32 = 0x4 | 0x8 | 0x10;

/// The key of a policy rule: every attribute but its state bits. The
/// kernel deletes the rule whose attributes all match the request, and
/// announces the deletion with the rule's full attributes, so a delete
/// names the key the add did.
pub fn rule_key(r: &Rule) -> Key {
    let identity = Rule {
        flags: r.flags & !RULE_STATE_FLAGS,
        iif_detached: false,
        oif_detached: false,
        table_name: String::new(),
        protocol_name: String::new(),
        ..r.clone()
    };
    let mut bytes = b"rule".to_vec();
    identity.encode(&mut bytes).expect("a Vec grows");
    Key(xxh3_128(&bytes))
}

/// A key distinct from `key`, for the n-th dumped route it cannot tell apart.
/// It keeps the base, so that the route stays among its siblings.
pub fn nth_key(key: Key, n: u32) -> Key {
    let mut bytes = [0u8; 20];
    bytes[..16].copy_from_slice(&key.to_le_bytes());
    bytes[16..].copy_from_slice(&n.to_le_bytes());
    Key((u128::from(key.base()) << 64) | u128::from(xxh3_64(&bytes)))
}

/// IPv6 routes the kernel merges into one multipath route (rt6_qualify_for_ecmp).
pub fn is_ecmp_capable(r: &Route) -> bool {
    r.nhid == 0 && r.protocol != PROTOCOL_RA && (!r.gateway.is_empty() || !r.nexthops.is_empty())
}

fn base(r: &Route) -> Fields {
    let mut h = Fields::default();
    let family: u8 = if r.family == Family::Inet6 as i32 {
        6
    } else {
        4
    };
    h.update(&[family]);
    h.update(&r.table.to_le_bytes());
    field(&mut h, &r.dst);
    field(&mut h, &r.src);
    h.update(&r.tos.to_le_bytes());
    h.update(&r.metric.to_le_bytes());
    h
}

/// The bytes a key hashes, gathered on the stack and hashed in one pass
/// (xxh3's one-shot and streaming digests are equal; one pass is quicker
/// than many small updates).
struct Fields {
    stack: [u8; 192],
    len: usize,
    /// Where the fields go once they outgrow `stack` (an encapsulation).
    heap: Vec<u8>,
}

impl Default for Fields {
    fn default() -> Fields {
        Fields {
            stack: [0; 192],
            len: 0,
            heap: Vec::new(),
        }
    }
}

impl Fields {
    fn update(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if self.heap.is_empty() && end <= self.stack.len() {
            self.stack[self.len..end].copy_from_slice(bytes);
        } else {
            if self.heap.is_empty() {
                self.heap.extend_from_slice(&self.stack[..self.len]);
            }
            self.heap.extend_from_slice(bytes);
        }
        self.len = end;
    }

    fn digest(&self) -> u64 {
        if self.heap.is_empty() {
            xxh3_64(&self.stack[..self.len])
        } else {
            xxh3_64(&self.heap)
        }
    }
}

/// A string field, length-prefixed so that adjacent fields cannot blur.
fn field(h: &mut Fields, s: &str) {
    h.update(&(s.len() as u32).to_le_bytes());
    h.update(s.as_bytes());
}

/// An encapsulation by its attributes (protobuf encoding, deterministic for
/// one version), without the interface names the agent fills in: a renamed
/// link does not make it another route. Nothing is hashed for none, so keys
/// of routes without encapsulation are what they always were.
fn encap(h: &mut Fields, e: Option<&Encap>) {
    let Some(e) = e else { return };
    let mut e = e.clone();
    match e.kind.as_mut() {
        Some(encap::Kind::Seg6local(s)) => {
            s.iif_dev.clear();
            s.oif_dev.clear();
        }
        Some(encap::Kind::Xfrm(x)) => x.link_dev.clear(),
        _ => {}
    }
    let bytes = e.encode_to_vec();
    h.update(b"encap");
    h.update(&(bytes.len() as u32).to_le_bytes());
    h.update(&bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use routewatch_proto::v1::NextHop;

    fn v4(dst: &str, gw: &str) -> Route {
        Route {
            family: Family::Inet as i32,
            table: 254,
            dst: dst.into(),
            gateway: gw.into(),
            ifindex: 2,
            r#type: 1,
            protocol: 3,
            ..Default::default()
        }
    }

    #[test]
    fn keys_print_as_32_hex_digits_and_read_back() {
        let route = v4("10.0.0.0/24", "10.1.0.2");
        let key = route_key(&route);
        let text = key.to_string();
        assert_eq!(text.len(), 32);
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(Key::parse(&text), Some(key));
        assert_eq!(key.base(), base_key(&route));
        assert_eq!(
            Key(0x0123_4567_89ab_cdef_0011_2233_4455_6677).to_string(),
            "0123456789abcdef0011223344556677"
        );
        assert_eq!(Key::nexthop(17).to_string(), "nh|17");
        assert_eq!(Key::parse("nh|17"), Some(Key::nexthop(17)));
        assert_eq!(Key::parse("nh|x"), None);
        assert_eq!(Key::parse("k1"), None);
    }

    #[test]
    fn fields_beyond_the_stack_buffer_count() {
        let hops = |last: &str| Route {
            nexthops: (0..12)
                .map(|i| NextHop {
                    gateway: if i == 11 {
                        last.into()
                    } else {
                        format!("10.1.0.{i}")
                    },
                    ifindex: 2,
                    weight: 1,
                    ..Default::default()
                })
                .collect(),
            ..v4("10.0.0.0/24", "")
        };
        assert_eq!(route_key(&hops("10.1.0.99")), route_key(&hops("10.1.0.99")));
        assert_ne!(route_key(&hops("10.1.0.99")), route_key(&hops("10.1.0.98")));
    }

    #[test]
    fn a_numbered_variant_stays_among_its_siblings() {
        let key = route_key(&v4("10.0.0.0/24", "10.1.0.2"));
        let second = nth_key(key, 2);
        assert_ne!(second, key);
        assert_eq!(second.base(), key.base());
        assert_ne!(nth_key(key, 3), second);
    }

    #[test]
    fn ipv4_appended_routes_have_distinct_keys() {
        let a = v4("10.13.0.0/24", "10.1.0.2");
        let b = v4("10.13.0.0/24", "10.1.0.3");
        assert_eq!(base_key(&a), base_key(&b));
        assert_ne!(route_key(&a), route_key(&b));
    }

    #[test]
    fn ipv6_ecmp_siblings_share_one_key() {
        let mut single = v4("2001:db8:5::/64", "2001:db8:1::2");
        single.family = Family::Inet6 as i32;
        let mut multi = single.clone();
        multi.gateway.clear();
        multi.nexthops = vec![
            NextHop {
                gateway: "2001:db8:1::2".into(),
                ifindex: 2,
                weight: 1,
                ..Default::default()
            },
            NextHop {
                gateway: "2001:db8:1::3".into(),
                ifindex: 2,
                weight: 1,
                ..Default::default()
            },
        ];
        assert_eq!(route_key(&single), route_key(&multi));
    }

    fn encap(id: u64, link_dev: &str) -> Option<Box<Encap>> {
        Some(Box::new(Encap {
            r#type: 10,
            kind: Some(encap::Kind::Xfrm(routewatch_proto::v1::EncapXfrm {
                if_id: id as u32,
                link: 2,
                link_dev: link_dev.into(),
            })),
            unknown: vec![],
        }))
    }

    #[test]
    fn encapsulation_in_keys_follows_the_kernel() {
        // IPv4: a separate route; also per path.
        let plain = v4("10.12.0.0/24", "");
        let with = Route {
            encap: encap(5, "vb"),
            ..plain.clone()
        };
        assert_ne!(route_key(&plain), route_key(&with));
        assert_eq!(base_key(&plain), base_key(&with));
        let hop = |e| NextHop {
            gateway: "10.1.0.2".into(),
            ifindex: 2,
            weight: 1,
            encap: e,
            ..Default::default()
        };
        let multi = |e| Route {
            nexthops: vec![hop(e), hop(None)],
            ..plain.clone()
        };
        assert_ne!(route_key(&multi(None)), route_key(&multi(encap(5, "vb"))));
        // The interface names the agent fills in are not identity.
        let renamed = Route {
            encap: encap(5, "renamed"),
            ..plain.clone()
        };
        assert_eq!(route_key(&with), route_key(&renamed));

        // IPv6: ECMP siblings merge whatever their encapsulation; device
        // routes do not.
        let mut gw = v4("2001:db8:5::/64", "2001:db8:1::2");
        gw.family = Family::Inet6 as i32;
        let gw_with = Route {
            encap: encap(5, "vb"),
            ..gw.clone()
        };
        assert_eq!(route_key(&gw), route_key(&gw_with));
        let mut dev = v4("2001:db8:6::/64", "");
        dev.family = Family::Inet6 as i32;
        let dev_with = Route {
            encap: encap(5, "vb"),
            ..dev.clone()
        };
        assert_ne!(route_key(&dev), route_key(&dev_with));
    }

    #[test]
    fn ipv6_ra_default_routes_are_separate() {
        let mut a = v4("::/0", "fe80::1");
        a.family = Family::Inet6 as i32;
        a.protocol = PROTOCOL_RA;
        let mut b = a.clone();
        b.gateway = "fe80::2".into();
        assert_ne!(route_key(&a), route_key(&b));
    }
}
