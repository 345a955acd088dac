//! RTM_NEWRULE / RTM_DELRULE into the API's [`Rule`].
//!
//! Interface names need no resolving: a rule names its `iif`/`oif` by name
//! (FRA_IIFNAME/FRA_OIFNAME), and the kernel keeps the name when the device
//! goes away, marking the rule detached in the header's flags.

use std::net::IpAddr;

use netlink_packet_core::Nla;
use netlink_packet_route::rule::{RuleAttribute, RuleFlags, RuleMessage};
use routewatch_proto::v1::{Family, PortRange, Rule};

use super::route::raw;
use super::{check_prefix_lengths, ip_family};

/// FRA_* attributes newer than netlink-packet-route 0.34 decodes.
const FRA_DSCP: u16 = 25;
const FRA_FLOWLABEL: u16 = 26;
const FRA_FLOWLABEL_MASK: u16 = 27;
const FRA_SPORT_MASK: u16 = 28;
const FRA_DPORT_MASK: u16 = 29;
const FRA_DSCP_MASK: u16 = 30;

/// Decodes one rule message, or `None` for families that are not IPv4 or
/// IPv6 routing rules (the multicast routing families, `ip mrule`). A
/// prefix length the family cannot have is an error, as for routes.
pub fn decode_rule(msg: &RuleMessage) -> Result<Option<Rule>, String> {
    let header = &msg.header;
    let Some((family, name, longest)) = ip_family(header.family) else {
        return Ok(None);
    };
    check_prefix_lengths(
        name,
        longest,
        [("dst_len", header.dst_len), ("src_len", header.src_len)],
    )?;
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
            RuleAttribute::Other(nla) => {
                let value = raw(nla);
                let slot = match (nla.kind(), value.value.as_slice()) {
                    (FRA_DSCP, &[v]) => Some((&mut rule.dscp, u32::from(v))),
                    (FRA_DSCP_MASK, &[v]) => Some((&mut rule.dscp_mask, u32::from(v))),
                    (FRA_SPORT_MASK, &[a, b]) => {
                        Some((&mut rule.sport_mask, u32::from(u16::from_ne_bytes([a, b]))))
                    }
                    (FRA_DPORT_MASK, &[a, b]) => {
                        Some((&mut rule.dport_mask, u32::from(u16::from_ne_bytes([a, b]))))
                    }
                    // Flow labels travel in network byte order.
                    (FRA_FLOWLABEL, &[a, b, c, d]) => {
                        Some((&mut rule.flowlabel, u32::from_be_bytes([a, b, c, d])))
                    }
                    (FRA_FLOWLABEL_MASK, &[a, b, c, d]) => {
                        Some((&mut rule.flowlabel_mask, u32::from_be_bytes([a, b, c, d])))
                    }
                    _ => None,
                };
                match slot {
                    Some((field, v)) => *field = Some(v),
                    None => rule.other.push(value),
                }
            }
            // Every variant netlink-packet-route adds later is kept as it
            // came, never dropped.
            other => rule.other.push(raw(other)),
        }
    }
    // netlink-packet-route reads FRA_SRC/FRA_DST by their length; the
    // kernel sends them in the rule's family only.
    for (field, addr) in [("FRA_SRC", src), ("FRA_DST", dst)] {
        if let Some(a) = addr.filter(|a| a.is_ipv6() != (family == Family::Inet6)) {
            return Err(format!("{field} {a} is not an {name} address"));
        }
    }
    rule.src = prefix(src, header.src_len);
    rule.dst = prefix(dst, header.dst_len);
    Ok(Some(rule))
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

#[cfg(test)]
mod tests {
    //! Rule messages the kernel sent for real `ip rule` commands (setup S
    //! of `agent/tests/fixtures/README.md`).

    use routewatch_proto::v1::{Family, PortRange, Rule};

    use crate::decode::{decode_message, Message};

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!("../../tests/fixtures/", $name))
        };
    }

    fn new_rule(bytes: &[u8]) -> Rule {
        match decode_message(bytes).expect("decodes").message {
            Message::NewRule(rule) => rule,
            other => panic!("expected RTM_NEWRULE, got {other:?}"),
        }
    }

    #[test]
    fn source_prefix_and_table() {
        // ip rule add from 10.0.0.0/8 lookup 100 pref 100
        let r = new_rule(fixture!("rule_v4_from_lookup.bin"));
        assert_eq!(r.family, Family::Inet as i32);
        assert_eq!(
            (
                r.priority,
                r.src.as_str(),
                r.dst.as_str(),
                r.table,
                r.action
            ),
            (100, "10.0.0.0/8", "", 100, 1)
        );
        assert!(!r.invert);
        assert!(r.other.is_empty(), "{:?}", r.other);
    }

    #[test]
    fn inverted_selector_with_mark_and_input_device() {
        // ip rule add not to 192.168.0.0/16 fwmark 0x10/0xff iif va lookup 200 pref 200
        let r = new_rule(fixture!("rule_v4_not_fwmark_iif.bin"));
        assert!(r.invert);
        assert_eq!((r.src.as_str(), r.dst.as_str()), ("", "192.168.0.0/16"));
        assert_eq!((r.fwmark, r.fwmask), (0x10, 0xff));
        assert_eq!((r.iif.as_str(), r.iif_detached), ("va", false));
        assert_eq!(r.table, 200);
    }

    #[test]
    fn unresolved_goto() {
        // ip rule add pref 300 oif vb tos 0x10 goto 350 (no rule has 350)
        let r = new_rule(fixture!("rule_v4_goto_unresolved.bin"));
        assert_eq!((r.action, r.goto, r.table), (2, 350, 0));
        assert_eq!(r.flags & 0x4, 0x4, "FIB_RULE_UNRESOLVED");
        assert_eq!((r.oif.as_str(), r.tos), ("vb", 0x10));
    }

    #[test]
    fn blackhole_from_a_host() {
        // ip rule add pref 500 from 1.2.3.4 blackhole
        let r = new_rule(fixture!("rule_v4_blackhole.bin"));
        assert_eq!((r.action, r.src.as_str()), (6, "1.2.3.4/32"));
    }

    #[test]
    fn every_other_selector() {
        // ip rule add pref 1100 uidrange 100-200 sport 1000-2000 dport 80 ipproto tcp
        //   realms 3/4 tun_id 55 lookup 100000 suppress_prefixlength 0 proto bgp
        let r = new_rule(fixture!("rule_v4_selectors.bin"));
        assert_eq!(
            r.uidrange,
            Some(PortRange {
                start: 100,
                end: 200
            })
        );
        assert_eq!(
            r.sport,
            Some(PortRange {
                start: 1000,
                end: 2000
            })
        );
        assert_eq!(r.dport, Some(PortRange { start: 80, end: 80 }));
        assert_eq!((r.ipproto, r.realms, r.tun_id), (6, (3 << 16) | 4, 55));
        assert_eq!((r.table, r.suppress_prefixlen), (100000, Some(0)));
        assert_eq!(r.protocol, 186);
        // 6.18 sends FRA_DPORT_MASK with a single port.
        assert_eq!((r.sport_mask, r.dport_mask), (None, Some(0xffff)));
        assert!(r.other.is_empty(), "{:?}", r.other);
    }

    #[test]
    fn l3mdev_rule_has_no_table() {
        // ip rule add pref 1400 l3mdev
        let r = new_rule(fixture!("rule_v4_l3mdev.bin"));
        assert!(r.l3mdev);
        assert_eq!((r.table, r.action), (0, 1));
    }

    #[test]
    fn rule_on_a_missing_device_is_detached() {
        // ip rule add pref 1500 iif nosuch lookup 9
        let r = new_rule(fixture!("rule_v4_iif_detached.bin"));
        assert_eq!((r.iif.as_str(), r.iif_detached), ("nosuch", true));
    }

    #[test]
    fn ipv6_source_prefix() {
        // ip -6 rule add from 2001:db8::/32 lookup 100 pref 100
        let r = new_rule(fixture!("rule_v6_from.bin"));
        assert_eq!(r.family, Family::Inet6 as i32);
        assert_eq!((r.src.as_str(), r.table), ("2001:db8::/32", 100));
    }

    #[test]
    fn delete_names_the_rule_the_add_did() {
        // ip rule del from 10.0.0.0/8 lookup 100 pref 100
        let gone = match decode_message(fixture!("rule_v4_del.bin"))
            .expect("decodes")
            .message
        {
            Message::DelRule(rule) => rule,
            other => panic!("expected RTM_DELRULE, got {other:?}"),
        };
        let added = new_rule(fixture!("rule_v4_from_lookup.bin"));
        assert_eq!(
            crate::state::rule_key(&gone),
            crate::state::rule_key(&added)
        );
    }

    #[test]
    fn newer_attributes_are_decoded_or_kept() {
        // Built from the uapi (linux/fib_rules.h): the IPv4 rule of
        // rule_v4_from_lookup.bin plus FRA_DSCP (25) = 46 and an attribute
        // number no kernel defines yet (200), as a newer kernel could send.
        let mut bytes = fixture!("rule_v4_from_lookup.bin").to_vec();
        bytes.extend_from_slice(&[5, 0, 25, 0, 46, 0, 0, 0]);
        bytes.extend_from_slice(&[8, 0, 200, 0, 1, 2, 3, 4]);
        let len = bytes.len() as u32;
        bytes[0..4].copy_from_slice(&len.to_ne_bytes());
        let r = new_rule(&bytes);
        assert_eq!(r.dscp, Some(46));
        assert_eq!(r.other.len(), 1);
        assert_eq!(
            (r.other[0].kind, r.other[0].value.as_slice()),
            (200, &[1, 2, 3, 4][..])
        );
    }
}
