//! RTM_NEWRULE / RTM_DELRULE into the API's [`Rule`].
//!
//! Interface names need no resolving: a rule names its `iif`/`oif` by name
//! (FRA_IIFNAME/FRA_OIFNAME), and the kernel keeps the name when the device
//! goes away, marking the rule detached in the header's flags.

use std::net::IpAddr;

use netlink_packet_core::Nla;
use netlink_packet_route::rule::{RuleAttribute, RuleFlags, RuleMessage};
use netlink_packet_route::AddressFamily;
use routewatch_proto::v1::{Family, PortRange, Rule};

use super::route::raw;

/// FRA_* attributes newer than netlink-packet-route 0.34 decodes.
const FRA_DSCP: u16 = 25;
const FRA_FLOWLABEL: u16 = 26;
const FRA_FLOWLABEL_MASK: u16 = 27;

/// Decodes one rule message, or `None` for families that are not IPv4 or
/// IPv6 routing rules (the multicast routing families, `ip mrule`).
pub fn decode_rule(msg: &RuleMessage) -> Option<Rule> {
    let header = &msg.header;
    let family = match header.family {
        AddressFamily::Inet => Family::Inet,
        AddressFamily::Inet6 => Family::Inet6,
        _ => return None,
    };
    let mut rule = Rule {
        family: family as i32,
        invert: header.flags.contains(RuleFlags::Invert),
        tos: u32::from(header.tos),
        action: u32::from(u8::from(header.action)),
        // The header's table is a u8; FRA_TABLE below carries the full id.
        table: u32::from(header.table),
        iif_detached: header.flags.contains(RuleFlags::IifDetached),
        oif_detached: header.flags.contains(RuleFlags::OifDetached),
        flags: header.flags.bits(),
        ..Default::default()
    };
    let mut src = None;
    let mut dst = None;
    for attr in &msg.attributes {
        match attr {
            RuleAttribute::Destination(a) => dst = Some(*a),
            RuleAttribute::Source(a) => src = Some(*a),
            RuleAttribute::Iifname(name) => rule.iif = name.clone(),
            RuleAttribute::Oifname(name) => rule.oif = name.clone(),
            RuleAttribute::Goto(target) => rule.goto = *target,
            RuleAttribute::Priority(p) => rule.priority = *p,
            RuleAttribute::FwMark(m) => rule.fwmark = *m,
            RuleAttribute::FwMask(m) => rule.fwmask = *m,
            RuleAttribute::Realm(realm) => {
                rule.realms = (u32::from(realm.source) << 16) | u32::from(realm.destination)
            }
            RuleAttribute::TunId(id) => rule.tun_id = *id,
            RuleAttribute::SuppressIfGroup(g) => rule.suppress_ifgroup = Some(*g),
            RuleAttribute::SuppressPrefixLen(l) => rule.suppress_prefixlen = Some(*l),
            RuleAttribute::Table(t) => rule.table = *t,
            RuleAttribute::L3MDev(on) => rule.l3mdev = *on,
            RuleAttribute::UidRange(r) => {
                rule.uidrange = Some(PortRange {
                    start: r.start,
                    end: r.end,
                })
            }
            RuleAttribute::Protocol(p) => rule.protocol = u32::from(u8::from(*p)),
            RuleAttribute::IpProtocol(p) => rule.ipproto = u32::from(u8::from(*p)),
            RuleAttribute::SourcePortRange(r) => rule.sport = Some(ports(r.start, r.end)),
            RuleAttribute::DestinationPortRange(r) => rule.dport = Some(ports(r.start, r.end)),
            RuleAttribute::Other(nla) => match (nla.kind(), u32_value(nla)) {
                (FRA_DSCP, _) if nla.value_len() == 1 => rule.dscp = Some(u32::from(byte(nla))),
                (FRA_FLOWLABEL, Some(v)) => rule.flowlabel = Some(u32::from_be(v)),
                (FRA_FLOWLABEL_MASK, Some(v)) => rule.flowlabel_mask = Some(u32::from_be(v)),
                _ => rule.other.push(raw(nla)),
            },
            // Every variant netlink-packet-route adds later is kept as it
            // came, never dropped.
            other => rule.other.push(raw(other)),
        }
    }
    rule.src = prefix(src, header.src_len);
    rule.dst = prefix(dst, header.dst_len);
    Some(rule)
}

fn ports(start: u16, end: u16) -> PortRange {
    PortRange {
        start: u32::from(start),
        end: u32::from(end),
    }
}

/// "addr/len", or empty for "all" (no address and no length).
fn prefix(addr: Option<IpAddr>, len: u8) -> String {
    match addr {
        Some(a) => format!("{a}/{len}"),
        None if len == 0 => String::new(),
        // A length without an address: `ip` prints it as "0/len".
        None => format!("0/{len}"),
    }
}

fn byte(nla: &impl Nla) -> u8 {
    raw(nla).value[0]
}

/// A 4-byte attribute's bytes as a native-order u32 (flow labels are sent
/// in network order: callers convert).
fn u32_value(nla: &impl Nla) -> Option<u32> {
    let bytes: [u8; 4] = raw(nla).value.try_into().ok()?;
    Some(u32::from_ne_bytes(bytes))
}
