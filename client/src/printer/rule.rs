//! A policy rule in iproute2's words: the line `ip rule show` prints and
//! the fields of `ip -j -d rule show`.
//!
//! One deliberate difference: `ip -j` names a rule's type (blackhole,
//! unreachable, prohibit) `action`, which our lines use for add/delete;
//! ours calls it `type`, as a route's type is called.

use std::fmt::Write as _;

use super::json::realm;
use super::json_writer::JsonObject;
use super::unknown::{unknown_json, unknown_text};
use routewatch_proto::names::{self, PROTOCOLS, ROUTE_TYPES, TABLES};
use routewatch_proto::v1::{PortRange, Rule};

/// FR_ACT_*: what a rule does with a packet it matches.
const FR_ACT_TO_TBL: u32 = 1;
const FR_ACT_GOTO: u32 = 2;
const FR_ACT_NOP: u32 = 3;
/// FIB_RULE_UNRESOLVED: a `goto` whose target priority has no rule.
const FIB_RULE_UNRESOLVED: u32 = 0x4;
const RTPROT_UNSPEC: u32 = 0;
const RTPROT_KERNEL: u32 = 2;

/// IP protocol numbers as `ip rule` names them (from the system's
/// protocols database; others print as `ipproto-N`).
const IP_PROTOCOLS: &[(u32, &str)] = &[
    (0, "ip"),
    (1, "icmp"),
    (2, "igmp"),
    (4, "ipencap"),
    (6, "tcp"),
    (17, "udp"),
    (33, "dccp"),
    (41, "ipv6"),
    (46, "rsvp"),
    (47, "gre"),
    (50, "esp"),
    (51, "ah"),
    (58, "ipv6-icmp"),
    (88, "eigrp"),
    (89, "ospf"),
    (94, "ipip"),
    (103, "pim"),
    (108, "ipcomp"),
    (112, "vrrp"),
    (115, "l2tp"),
    (132, "sctp"),
    (136, "udplite"),
    (137, "mpls-in-ip"),
];

/// One rule as `ip rule show` prints it: `100:` and a tab, then the selector
/// and the action (`from 10.0.0.0/8 lookup 100`).
pub fn rule_line(r: &Rule, s: &mut String) {
    let _ = write!(s, "{}:\t", r.priority);
    if r.invert {
        s.push_str("not ");
    }
    let _ = write!(s, "from {}", prefix(&r.src).unwrap_or("all".into()));
    if let Some(dst) = prefix(&r.dst) {
        let _ = write!(s, " to {dst}");
    }
    if r.tos != 0 {
        let _ = write!(s, " tos {}", tos(r.tos));
    }
    if let Some((mark, mask)) = fwmark(r) {
        let _ = match mask {
            Some(mask) => write!(s, " fwmark {mark}/{mask}"),
            None => write!(s, " fwmark {mark}"),
        };
    }
    for (word, dev, detached) in [
        ("iif", &r.iif, r.iif_detached),
        ("oif", &r.oif, r.oif_detached),
    ] {
        if !dev.is_empty() {
            let _ = write!(s, " {word} {dev}");
            if detached {
                s.push_str(" [detached]");
            }
        }
    }
    if r.l3mdev {
        s.push_str(" lookup [l3mdev-table]");
    }
    if let Some(u) = &r.uidrange {
        let _ = write!(s, " uidrange {}-{}", u.start, u.end);
    }
    if r.ipproto != 0 {
        let _ = write!(s, " ipproto {}", ipproto(r.ipproto));
    }
    for (word, range, mask) in ports(r) {
        if let Some(p) = range {
            let _ = write!(s, " {word} {}", port_range(p));
            if let Some(mask) = mask {
                let _ = write!(s, "/{mask:#x}");
            }
        }
    }
    if let Some(label) = r.flowlabel {
        let _ = write!(s, " flowlabel {label:#x}");
        if let Some(mask) = r.flowlabel_mask {
            let _ = write!(s, "/{mask:#x}");
        }
    }
    if let Some(dscp) = r.dscp {
        let _ = write!(s, " dscp {dscp}");
        if let Some(mask) = dscp_mask(r) {
            let _ = write!(s, "/{mask:#x}");
        }
    }
    if r.tun_id != 0 {
        let _ = write!(s, " tun_id {}", r.tun_id);
    }
    if r.table != 0 {
        let _ = write!(
            s,
            " lookup {}",
            names::given_or(&r.table_name, TABLES, r.table)
        );
        if let Some(len) = suppress(r.suppress_prefixlen) {
            let _ = write!(s, " suppress_prefixlength {len}");
        }
        if let Some(group) = suppress(r.suppress_ifgroup) {
            let _ = write!(s, " suppress_ifgroup {}", ifgroup(group));
        }
    }
    if r.realms != 0 {
        let (from, to) = (r.realms >> 16, r.realms & 0xffff);
        let _ = if from != 0 {
            write!(s, " realms {}/{}", realm(from), realm(to))
        } else {
            write!(s, " realms {}", realm(to))
        };
    }
    match r.action {
        FR_ACT_TO_TBL => {}
        FR_ACT_GOTO => {
            let _ = write!(s, " goto {}", r.goto);
            if r.flags & FIB_RULE_UNRESOLVED != 0 {
                s.push_str(" [unresolved]");
            }
        }
        FR_ACT_NOP => s.push_str(" nop"),
        other => {
            let _ = write!(s, " {}", names::name(ROUTE_TYPES, other));
        }
    }
    // `ip rule show` names the protocol unless it is unspec or kernel
    // (the default rules'); `-d` and JSON always do.
    if r.protocol != RTPROT_UNSPEC && r.protocol != RTPROT_KERNEL {
        let _ = write!(
            s,
            " proto {}",
            names::given_or(&r.protocol_name, PROTOCOLS, r.protocol)
        );
    }
    unknown_text(&r.other, s);
}

/// The fields `ip -j -d rule show` prints for `r` (its `action` as `type`).
pub fn rule_fields(r: &Rule, o: &mut JsonObject<'_>) {
    o.u64("priority", r.priority);
    if r.invert {
        o.null("not");
    }
    match r.src.split_once('/') {
        Some((addr, len)) => {
            o.str("src", addr);
            if !is_host_len(addr, len) {
                o.u64("srclen", len.parse::<u32>().unwrap_or(0));
            }
        }
        None => o.str("src", "all"),
    }
    if let Some((addr, len)) = r.dst.split_once('/') {
        o.str("dst", addr);
        if !is_host_len(addr, len) {
            o.u64("dstlen", len.parse::<u32>().unwrap_or(0));
        }
    }
    if r.tos != 0 {
        o.str("tos", &tos(r.tos));
    }
    if let Some((mark, mask)) = fwmark(r) {
        o.str("fwmark", &mark);
        if let Some(mask) = mask {
            o.str("fwmask", &mask);
        }
    }
    for (word, dev, detached) in [
        ("iif", &r.iif, r.iif_detached),
        ("oif", &r.oif, r.oif_detached),
    ] {
        if !dev.is_empty() {
            o.str(word, dev);
            if detached {
                o.null(&format!("{word}_detached"));
            }
        }
    }
    if r.l3mdev {
        o.null("l3mdev");
    }
    if let Some(u) = &r.uidrange {
        o.u64("uid_start", u.start);
        o.u64("uid_end", u.end);
    }
    if r.ipproto != 0 {
        o.str("ipproto", &ipproto(r.ipproto));
    }
    for (word, range, mask) in ports(r) {
        if let Some(p) = range {
            if p.start == p.end {
                o.u64(word, p.start);
            } else {
                o.u64(&format!("{word}_start"), p.start);
                o.u64(&format!("{word}_end"), p.end);
            }
            if let Some(mask) = mask {
                o.str(&format!("{word}_mask"), &format!("{mask:#x}"));
            }
        }
    }
    if let Some(label) = r.flowlabel {
        o.str("flowlabel", &format!("{label:#x}"));
        if let Some(mask) = r.flowlabel_mask {
            o.str("flowlabel_mask", &format!("{mask:#x}"));
        }
    }
    if let Some(dscp) = r.dscp {
        o.str("dscp", itoa::Buffer::new().format(dscp));
        if let Some(mask) = dscp_mask(r) {
            o.str("dscp_mask", &format!("{mask:#x}"));
        }
    }
    if r.tun_id != 0 {
        o.u64("tun_id", r.tun_id);
    }
    if r.table != 0 {
        o.str("table", &names::given_or(&r.table_name, TABLES, r.table));
        if let Some(len) = suppress(r.suppress_prefixlen) {
            o.u64("suppress_prefixlen", len);
        }
        if let Some(group) = suppress(r.suppress_ifgroup) {
            o.str("suppress_ifgroup", &ifgroup(group));
        }
    }
    if r.realms != 0 {
        let (from, to) = (r.realms >> 16, r.realms & 0xffff);
        if from != 0 {
            o.str("flow_from", &realm(from));
        }
        o.str("flow_to", &realm(to));
    }
    match r.action {
        FR_ACT_TO_TBL => {}
        FR_ACT_GOTO => {
            o.u64("goto", r.goto);
            if r.flags & FIB_RULE_UNRESOLVED != 0 {
                o.null("unresolved");
            }
        }
        FR_ACT_NOP => o.null("nop"),
        other => o.str("type", &names::name(ROUTE_TYPES, other)),
    }
    o.str(
        "protocol",
        &names::given_or(&r.protocol_name, PROTOCOLS, r.protocol),
    );
    unknown_json(&r.other, o);
}

/// A selector prefix as `ip rule` writes it: the address alone for a host
/// prefix, nothing for "all".
fn prefix(p: &str) -> Option<std::borrow::Cow<'_, str>> {
    let (addr, len) = p.split_once('/')?;
    Some(if is_host_len(addr, len) {
        addr.into()
    } else {
        p.into()
    })
}

fn is_host_len(addr: &str, len: &str) -> bool {
    len == if addr.contains(':') { "128" } else { "32" }
}

/// `ip` prints a DS field it has no name for as two hex digits.
fn tos(tos: u32) -> String {
    format!("{tos:#04x}")
}

/// The mark and, unless it is all ones, the mask: the kernel sends
/// neither for a rule that does not match on marks.
fn fwmark(r: &Rule) -> Option<(String, Option<String>)> {
    if r.fwmark == 0 && r.fwmask == 0 {
        return None;
    }
    let mask = (r.fwmask != u32::MAX).then(|| format!("{:#x}", r.fwmask));
    Some((format!("{:#x}", r.fwmark), mask))
}

/// The kernel reports "not set" as all ones.
fn suppress(value: Option<u32>) -> Option<u32> {
    value.filter(|v| *v != u32::MAX)
}

fn ifgroup(group: u32) -> String {
    if group == 0 {
        "default".into()
    } else {
        group.to_string()
    }
}

fn ipproto(n: u32) -> String {
    match IP_PROTOCOLS.iter().find(|(p, _)| *p == n) {
        Some((_, name)) => (*name).into(),
        None => format!("ipproto-{n}"),
    }
}

/// The port matches with their masks, a full mask (what the kernel sends
/// for a plain port) left out as `ip` leaves it.
fn ports(r: &Rule) -> [(&'static str, Option<&PortRange>, Option<u32>); 2] {
    let partial = |mask: Option<u32>| mask.filter(|m| *m != 0xffff);
    [
        ("sport", r.sport.as_ref(), partial(r.sport_mask)),
        ("dport", r.dport.as_ref(), partial(r.dport_mask)),
    ]
}

/// A DSCP mask other than all six bits.
fn dscp_mask(r: &Rule) -> Option<u32> {
    r.dscp_mask.filter(|m| *m != 0x3f)
}

fn port_range(p: &PortRange) -> String {
    if p.start == p.end {
        p.start.to_string()
    } else {
        format!("{}-{}", p.start, p.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::printer::json_writer::json_map;
    use routewatch_proto::v1::Family;
    use serde_json::Value;

    fn rule() -> Rule {
        Rule {
            family: Family::Inet as i32,
            priority: 100,
            action: FR_ACT_TO_TBL,
            table: 100,
            ..Default::default()
        }
    }

    fn line(r: &Rule) -> String {
        let mut s = String::new();
        rule_line(r, &mut s);
        s
    }

    fn fields(r: &Rule) -> Value {
        Value::Object(json_map(|o| rule_fields(r, o)))
    }

    #[test]
    fn a_lookup_rule() {
        let r = Rule {
            src: "10.0.0.0/8".into(),
            ..rule()
        };
        assert_eq!(line(&r), "100:\tfrom 10.0.0.0/8 lookup 100");
        assert_eq!(
            fields(&r),
            serde_json::json!({"priority":100,"src":"10.0.0.0","srclen":8,"table":"100","protocol":"unspec"})
        );
    }

    #[test]
    fn refusing_rules_name_their_type_and_never_our_action() {
        let r = Rule {
            action: 6,
            table: 0,
            src: "1.2.3.4/32".into(),
            protocol: 4,
            ..rule()
        };
        assert_eq!(line(&r), "100:\tfrom 1.2.3.4 blackhole proto static");
        let v = fields(&r);
        assert_eq!(v["type"], "blackhole");
        assert!(v.get("action").is_none(), "{v}");
        assert!(
            v.get("srclen").is_none(),
            "a host prefix has no length: {v}"
        );
    }

    #[test]
    fn state_bits_and_masks() {
        let r = Rule {
            action: FR_ACT_GOTO,
            goto: 350,
            table: 0,
            flags: FIB_RULE_UNRESOLVED,
            iif: "eth9".into(),
            iif_detached: true,
            dport: Some(PortRange { start: 80, end: 80 }),
            dport_mask: Some(0xffff),
            sport: Some(PortRange {
                start: 0x1000,
                end: 0x1000,
            }),
            sport_mask: Some(0xf000),
            fwmark: 0x10,
            fwmask: u32::MAX,
            ..rule()
        };
        assert_eq!(
            line(&r),
            "100:\tfrom all fwmark 0x10 iif eth9 [detached] sport 4096/0xf000 dport 80 goto 350 [unresolved]"
        );
        let v = fields(&r);
        assert!(v["unresolved"].is_null() && v.get("unresolved").is_some());
        assert!(v.get("iif_detached").is_some());
        assert_eq!(v["sport_mask"], "0xf000");
        assert!(
            v.get("dport_mask").is_none(),
            "a full mask is left out: {v}"
        );
        assert!(
            v.get("fwmask").is_none(),
            "an all-ones mask is left out: {v}"
        );
    }

    #[test]
    fn undecoded_attributes_are_shown() {
        let r = Rule {
            other: vec![routewatch_proto::v1::RawAttribute {
                kind: 200,
                value: vec![1, 2, 3, 4],
            }],
            ..rule()
        };
        assert_eq!(line(&r), "100:\tfrom all lookup 100 unknown 200:01020304");
        assert_eq!(
            fields(&r)["unknown"],
            serde_json::json!([{"type": 200, "hex": "01020304"}])
        );
    }
}
