//! Netlink datagrams into the decoders: every fixture, mutated.
//!
//! Besides byte-level mutations, the edits know netlink's framing: they
//! find every attribute header (nested ones too, and the attributes after
//! each `struct rtnexthop` of RTA_MULTIPATH), then corrupt one length or
//! type, drop an attribute or repeat it, keeping the enclosing lengths
//! right so that the decoders' deeper paths are reached; `nlmsg_len` is
//! usually set to the result's length for the same reason.

use netlink_packet_core::NetlinkMessage;
use netlink_packet_route::RouteNetlinkMessage;
use proptest::prelude::*;
use proptest::sample::Index;
use routewatch_proto::fuzzing::{self, bounded, edge, Mutation};

use crate::decode::{decode_datagram, decode_message, Message};

const NLMSG_HEADER_LEN: usize = 16;

/// The family header after `nlmsghdr` for a message type: where the
/// attributes begin.
fn family_header_len(kind: u16) -> usize {
    match kind {
        16..=19 => 16,  // RTM_*LINK: struct ifinfomsg
        20..=23 => 8,   // RTM_*ADDR: struct ifaddrmsg
        24..=27 => 12,  // RTM_*ROUTE: struct rtmsg
        32..=34 => 12,  // RTM_*RULE: struct fib_rule_hdr
        104..=106 => 8, // RTM_*NEXTHOP: struct nhmsg
        _ => 0,
    }
}

/// One attribute header found in a message.
#[derive(Debug, Clone)]
struct Attr {
    /// Offset of its header.
    at: usize,
    /// Offsets of the headers enclosing it (the message's first).
    parents: Vec<usize>,
}

fn u16_at(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_ne_bytes([b[at], b[at + 1]]))
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// Whether `b[start..end]` is a stream of whole attributes.
fn tiles(b: &[u8], start: usize, end: usize) -> bool {
    let mut at = start;
    while at + 4 <= end {
        let len = u16_at(b, at);
        if len < 4 || at + len > end {
            return false;
        }
        at += align(len);
    }
    at >= end && end > start
}

/// The attributes of `b[start..end]`, and of those nested in them.
fn walk(b: &[u8], start: usize, end: usize, parents: &[usize], out: &mut Vec<Attr>) {
    let mut at = start;
    while at + 4 <= end {
        let len = u16_at(b, at);
        if len < 4 || at + len > end {
            return;
        }
        out.push(Attr {
            at,
            parents: parents.to_vec(),
        });
        let mut inner = parents.to_vec();
        inner.push(at);
        // Nested attributes right after the header, or after the 8-byte
        // struct rtnexthop whose own length comes first (RTA_MULTIPATH).
        for skip in [4, 8] {
            if tiles(b, at + skip, at + len) {
                walk(b, at + skip, at + len, &inner, out);
                break;
            }
        }
        at += align(len);
    }
}

/// Every attribute header of the message `b`; the nlmsghdr's length
/// (offset 0) is the outermost parent.
fn attributes(b: &[u8]) -> Vec<Attr> {
    if b.len() < NLMSG_HEADER_LEN {
        return Vec::new();
    }
    let start = NLMSG_HEADER_LEN + family_header_len(u16_at(b, 4) as u16);
    let mut out = Vec::new();
    walk(b, start, b.len(), &[], &mut out);
    out
}

/// An edit that knows netlink's framing.
#[derive(Debug, Clone)]
enum Edit {
    /// Set an attribute's length to a value near its own or an edge.
    Length(Index, i8, Option<u32>),
    /// Set an attribute's type (the NLA_F_NESTED bit included).
    Kind(Index, u16),
    /// Remove an attribute, fixing the enclosing lengths.
    Drop(Index),
    /// Repeat an attribute right after itself, fixing the enclosing
    /// lengths.
    Repeat(Index),
    /// Set one byte of the family header (`struct rtmsg`, ...): prefix
    /// lengths, family, table, type, flags.
    Header(Index, u8),
    /// A byte-level mutation.
    Bytes(Mutation),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<Index>(), -5i8..6, proptest::option::weighted(0.3, edge()))
            .prop_map(|(i, d, v)| Edit::Length(i, d, v)),
        2 => (any::<Index>(), prop_oneof![0u16..40, any::<u16>()]).prop_map(|(i, k)| Edit::Kind(i, k)),
        1 => any::<Index>().prop_map(Edit::Drop),
        1 => any::<Index>().prop_map(Edit::Repeat),
        2 => (any::<Index>(), edge()).prop_map(|(i, v)| Edit::Header(i, v as u8)),
        3 => fuzzing::mutation().prop_map(Edit::Bytes),
    ]
}

fn write_u16(b: &mut [u8], at: usize, v: usize) {
    b[at..at + 2].copy_from_slice(&(v as u16).to_ne_bytes());
}

/// Adds `delta` to the lengths of `parents` (attribute headers), keeping
/// them within u16 as the kernel's would be.
fn grow(b: &mut [u8], parents: &[usize], delta: isize) {
    for &p in parents {
        let len = u16_at(b, p) as isize + delta;
        write_u16(b, p, len.clamp(0, 0xffff) as usize);
    }
}

fn apply(b: &mut Vec<u8>, edit: &Edit, seeds: &[Vec<u8>]) {
    let attrs = attributes(b);
    let pick = |i: &Index| (!attrs.is_empty()).then(|| attrs[i.index(attrs.len())].clone());
    match edit {
        Edit::Length(i, delta, value) => {
            if let Some(a) = pick(i) {
                let len = u16_at(b, a.at) as i64;
                let v = value.map_or(len + i64::from(*delta), i64::from);
                write_u16(b, a.at, v.clamp(0, 0xffff) as usize);
            }
        }
        Edit::Kind(i, kind) => {
            if let Some(a) = pick(i) {
                b[a.at + 2..a.at + 4].copy_from_slice(&kind.to_ne_bytes());
            }
        }
        Edit::Drop(i) => {
            if let Some(a) = pick(i) {
                let len = align(u16_at(b, a.at)).min(b.len() - a.at);
                b.drain(a.at..a.at + len);
                grow(b, &a.parents, -(len as isize));
            }
        }
        Edit::Repeat(i) => {
            if let Some(a) = pick(i) {
                let len = align(u16_at(b, a.at)).min(b.len() - a.at);
                let copy = b[a.at..a.at + len].to_vec();
                b.splice(a.at + len..a.at + len, copy);
                grow(b, &a.parents, len as isize);
            }
        }
        Edit::Header(i, value) => {
            if b.len() >= NLMSG_HEADER_LEN + 4 {
                let len = family_header_len(u16_at(b, 4) as u16).max(4);
                let at = NLMSG_HEADER_LEN + i.index(len);
                if let Some(byte) = b.get_mut(at) {
                    *byte = *value;
                }
            }
        }
        Edit::Bytes(m) => fuzzing::apply(b, m, seeds),
    }
}

/// One message: a fixture with a few edits, `nlmsg_len` set to its length
/// unless the edits are to reach the header's own checks.
pub(super) fn message(seeds: std::sync::Arc<Vec<Vec<u8>>>) -> impl Strategy<Value = Vec<u8>> {
    (
        any::<Index>(),
        proptest::collection::vec(edit(), 0..5),
        proptest::bool::weighted(0.85),
    )
        .prop_map(move |(seed, edits, fix_len)| {
            let mut b = seeds[seed.index(seeds.len())].clone();
            for e in &edits {
                apply(&mut b, e, &seeds);
            }
            if fix_len && b.len() >= 4 {
                let len = b.len() as u32;
                b[..4].copy_from_slice(&len.to_ne_bytes());
            }
            b
        })
}

/// A datagram of one to three messages, each padded to 4 bytes as the
/// kernel sends them; or random bytes now and then.
fn datagram() -> impl Strategy<Value = Vec<u8>> {
    let seeds = std::sync::Arc::new(super::fixtures());
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..128),
        9 => proptest::collection::vec(message(seeds), 1..4).prop_map(|messages| {
            let mut out = Vec::new();
            for m in messages {
                out.extend_from_slice(&m);
                out.resize(align(out.len()), 0);
            }
            out
        }),
    ]
}

/// What `decode_message` gives, to compare two decodings of one message.
fn outcome(bytes: &[u8]) -> Option<String> {
    decode_message(bytes)
        .ok()
        .map(|d| format!("{:?}", d.message))
}

/// A message as netlink-packet-route parsed it, emitted again: the same
/// route, rule or link in the library's own encoding. `None` where the
/// library cannot: its emitter (which the agent never uses) panics on some
/// unknown attributes inside an encapsulation (0.34: `RouteIpTunnel`
/// emitting an `Other` of another length than it counted).
fn reemitted(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).ok()?;
    std::panic::catch_unwind(move || {
        parsed.finalize();
        let mut out = vec![0; parsed.buffer_len()];
        parsed.serialize(&mut out);
        out
    })
    .ok()
}

proptest! {
    #![proptest_config(fuzzing::config(2000))]

    /// Any datagram decodes without a panic, within bounds; a message that
    /// fails carries its bytes for the log; a datagram yields no more
    /// messages than it has room for.
    #[test]
    fn fuzz_netlink_datagrams(datagram in datagram()) {
        let out = bounded(&datagram, || decode_datagram(&datagram));
        prop_assert!(out.len() <= datagram.len() / NLMSG_HEADER_LEN);
        for result in &out {
            if let Err(failure) = result {
                let carried = datagram.windows(failure.bytes.len().max(1)).any(|w| w == failure.bytes.as_slice());
                prop_assert!(carried, "{} without its bytes", failure.reason);
            }
        }
    }

    /// What the agent reads of a route, rule or link is what
    /// netlink-packet-route holds of it: decoding the library's own
    /// encoding of the parsed message gives the same result, so nothing
    /// that was read depends on bytes the library drops.
    #[test]
    fn fuzz_netlink_decoding_is_stable(message in message(std::sync::Arc::new(super::fixtures()))) {
        let first = bounded(&message, || outcome(&message));
        if let (Some(first), Some(again)) = (first, reemitted(&message)) {
            prop_assert_eq!(Some(first), outcome(&again), "re-emitted as {:02x?}", again);
        }
    }
}

/// Whether `text` is an address (`prefix: false`) or a prefix of `family`,
/// as the API spells them; empty counts when `optional`.
fn well_formed(text: &str, family: i32, prefix: bool, optional: bool) -> bool {
    if text.is_empty() {
        return optional;
    }
    let v6 = family == routewatch_proto::v1::Family::Inet6 as i32;
    if prefix {
        text.parse::<ipnet::IpNet>()
            .is_ok_and(|n| matches!(n, ipnet::IpNet::V6(_)) == v6)
    } else {
        text.parse::<std::net::IpAddr>().is_ok()
    }
}

proptest! {
    #![proptest_config(fuzzing::config(2000))]

    /// A route the decoder accepts is one the API can carry: its
    /// destination and source are prefixes of its own family, its
    /// addresses are addresses.
    #[test]
    fn fuzz_netlink_routes_are_well_formed(message in message(std::sync::Arc::new(super::fixtures()))) {
        if let Ok(Message::NewRoute { route, .. } | Message::DelRoute(route)) = decode_message(&message).map(|d| d.message) {
            prop_assert!(well_formed(&route.dst, route.family, true, false), "dst {:?} of {:?}", route.dst, route);
            prop_assert!(well_formed(&route.src, route.family, true, true), "src {:?}", route.src);
            prop_assert!(well_formed(&route.gateway, route.family, false, true), "gateway {:?}", route.gateway);
            prop_assert!(well_formed(&route.prefsrc, route.family, false, true), "prefsrc {:?}", route.prefsrc);
        }
        if let Ok(Message::NewRule(rule) | Message::DelRule(rule)) = decode_message(&message).map(|d| d.message) {
            // `ip` prints a length without an address as "0/len".
            let v6 = rule.family == routewatch_proto::v1::Family::Inet6 as i32;
            for p in [&rule.src, &rule.dst] {
                let any = if v6 { "::" } else { "0.0.0.0" };
                let p = p.strip_prefix("0/").map_or(p.clone(), |len| format!("{any}/{len}"));
                let family = rule.family;
                prop_assert!(well_formed(&p, family, true, true), "{:?} of {:?}", p, rule);
            }
        }
    }
}

proptest! {
    #![proptest_config(fuzzing::config(2000))]

    /// A message cut inside an attribute or its header (its length field
    /// saying where it now ends) is a decode failure, never a shorter
    /// object taken for the whole one.
    #[test]
    fn fuzz_netlink_cut_messages_fail(seed in any::<Index>(), cut in any::<Index>()) {
        let seeds = super::fixtures();
        let full = &seeds[seed.index(seeds.len())];
        let attrs_start = NLMSG_HEADER_LEN + family_header_len(u16_at(full, 4) as u16);
        let top: Vec<Attr> = attributes(full).into_iter().filter(|a| a.parents.is_empty()).collect();
        let mut clean = vec![attrs_start];
        for a in &top {
            let len = u16_at(full, a.at);
            clean.extend(a.at + len..=a.at + align(len));
        }
        let at = NLMSG_HEADER_LEN + cut.index(full.len() - NLMSG_HEADER_LEN);
        if !clean.contains(&at) {
            let mut bytes = full[..at].to_vec();
            bytes[..4].copy_from_slice(&(at as u32).to_ne_bytes());
            let decoded = decode_message(&bytes);
            prop_assert!(decoded.is_err(), "cut at {} of {:02x?}: {:?}", at, full, decoded.map(|d| d.message));
        }
    }
}
