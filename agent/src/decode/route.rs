//! RTM_NEWROUTE / RTM_DELROUTE into the API's [`Route`].
//!
//! Interface names are not filled in here: the state table resolves them from
//! its own link table at the time of the event, because the consumer is on
//! another host and cannot.

use std::net::IpAddr;

use netlink_packet_core::{Nla, NLA_TYPE_MASK};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteMetric, RouteNextHop,
};
use routewatch_proto::v1::{Family, NextHop, RawAttribute, Route, RouteMetric as ApiMetric};

use super::{check_prefix_lengths, encap, ip_family};

/// The kernel's ticks for RTA_CACHEINFO's expiry (USER_HZ).
const CENTISECONDS_PER_SECOND: u32 = 100;

/// Decodes one route message, or `None` for what is not routing state:
/// cloned/cached routes (RTM_F_CLONED, omitted by `ip route show` too) and
/// families other than IPv4 and IPv6. A prefix length the family cannot
/// have is an error.
pub fn decode_route(msg: &RouteMessage) -> Result<Option<Route>, String> {
    let header = &msg.header;
    if header.flags.contains(RouteFlags::Cloned) {
        return Ok(None);
    }
    let Some((family, name, longest)) = ip_family(header.address_family) else {
        return Ok(None);
    };
    check_prefix_lengths(
        name,
        longest,
        [
            ("rtm_dst_len", header.destination_prefix_length),
            ("rtm_src_len", header.source_prefix_length),
        ],
    )?;
    let mut route = Route {
        family: family as i32,
        // RouteHeader.table is a u8; RTA_TABLE below carries the full id.
        table: u32::from(header.table),
        tos: u32::from(header.tos),
        r#type: u32::from(u8::from(header.kind)),
        protocol: u32::from(u8::from(header.protocol)),
        scope: u32::from(u8::from(header.scope)),
        // The low byte of rtm_flags holds the RTNH_F_* flags `ip` prints.
        flags: header.flags.bits() & 0xff,
        ..Default::default()
    };
    let mut dst = None;
    let mut src = None;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Table(t) => route.table = *t,
            RouteAttribute::Destination(a) => dst = ip(a),
            RouteAttribute::Source(a) => src = ip(a),
            RouteAttribute::Gateway(a) => route.gateway = ip_string(a),
            RouteAttribute::PrefSource(a) => route.prefsrc = ip_string(a),
            RouteAttribute::Oif(i) => route.ifindex = *i,
            RouteAttribute::Priority(p) => route.metric = *p,
            RouteAttribute::NhId(id) => route.nhid = *id,
            RouteAttribute::MultiPath(hops) => route.nexthops = hops.iter().map(next_hop).collect(),
            RouteAttribute::Metrics(metrics) => {
                route.metrics = metrics.iter().filter_map(metric).collect();
                route.congctl = metrics
                    .iter()
                    .find_map(|m| match m {
                        RouteMetric::CcAlgo(name) => Some(name.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
            }
            RouteAttribute::Realm(realm) => {
                route.realms = (u32::from(realm.source) << 16) | u32::from(realm.destination)
            }
            RouteAttribute::Preference(p) => route.pref = Some(u32::from(u8::from(*p))),
            RouteAttribute::CacheInfo(ci) => route.expires = ci.expires / CENTISECONDS_PER_SECOND,
            RouteAttribute::Other(nla) => route.other.push(raw(nla)),
            // Decoded by netlink-packet-route but without a field in the
            // API: kept raw, so that routes differing by them (an IPv4
            // route via an IPv6 gateway, an MPLS label swap, ...) never
            // look the same.
            RouteAttribute::Via(_)
            | RouteAttribute::NewDestination(_)
            | RouteAttribute::NewDestinationAddress(_)
            | RouteAttribute::TtlPropagate(_)
            | RouteAttribute::Iif(_)
            | RouteAttribute::Mark(_)
            | RouteAttribute::Uid(_)
            | RouteAttribute::IpProto(_)
            | RouteAttribute::Sport(_)
            | RouteAttribute::Dport(_)
            | RouteAttribute::Flowlabel(_)
            | RouteAttribute::Expires(_) => route.other.push(raw(attr)),
            // Read by `encap::from_attributes` below.
            RouteAttribute::Encap(_) | RouteAttribute::EncapType(_) => {}
            // Source/destination are read above; RTA_CACHEINFO's other
            // fields and multicast statistics are counters and timers, not
            // routing state.
            _ => {}
        }
    }
    route.encap = encap::from_attributes(&msg.attributes).map(Box::new);
    route.dst = prefix(family, dst, header.destination_prefix_length);
    if src.is_some() || header.source_prefix_length > 0 {
        route.src = prefix(family, src, header.source_prefix_length);
    }
    Ok(Some(route))
}

fn next_hop(hop: &RouteNextHop) -> NextHop {
    let mut out = NextHop {
        ifindex: hop.interface_index,
        // rtnh_hops is weight - 1.
        weight: u32::from(hop.hops) + 1,
        flags: u32::from(hop.flags.bits()),
        ..Default::default()
    };
    for attr in &hop.attributes {
        if let RouteAttribute::Gateway(a) = attr {
            out.gateway = ip_string(a);
        }
    }
    out.encap = encap::from_attributes(&hop.attributes).map(Box::new);
    out
}

fn metric(m: &RouteMetric) -> Option<ApiMetric> {
    let value = match m {
        RouteMetric::Lock(v)
        | RouteMetric::Mtu(v)
        | RouteMetric::Window(v)
        | RouteMetric::Rtt(v)
        | RouteMetric::RttVar(v)
        | RouteMetric::SsThresh(v)
        | RouteMetric::Cwnd(v)
        | RouteMetric::Advmss(v)
        | RouteMetric::Reordering(v)
        | RouteMetric::Hoplimit(v)
        | RouteMetric::InitCwnd(v)
        | RouteMetric::Features(v)
        | RouteMetric::RtoMin(v)
        | RouteMetric::InitRwnd(v)
        | RouteMetric::QuickAck(v)
        | RouteMetric::FastopenNoCookie(v) => *v,
        // The congestion control name and unknown metrics have no number.
        _ => return None,
    };
    Some(ApiMetric {
        kind: u32::from(m.kind()),
        value,
    })
}

/// The attribute as it came, its type without the NLA_F_NESTED and
/// NLA_F_NET_BYTEORDER bits (as nexthop objects and encapsulations keep
/// theirs), so that `unknown 30:...` names the kernel's RTA_* number.
pub(super) fn raw(nla: &impl Nla) -> RawAttribute {
    let mut value = vec![0; nla.value_len()];
    nla.emit_value(&mut value);
    RawAttribute {
        kind: u32::from(nla.kind() & NLA_TYPE_MASK),
        value,
    }
}

fn ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn ip_string(a: &RouteAddress) -> String {
    let mut out = String::new();
    if let Some(ip) = ip(a) {
        push_ip(&mut out, ip);
    }
    out
}

fn prefix(family: Family, addr: Option<IpAddr>, len: u8) -> String {
    let addr = addr.unwrap_or(match family {
        Family::Inet6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    });
    let mut out = String::with_capacity(20);
    push_ip(&mut out, addr);
    out.push('/');
    push_decimal(&mut out, len);
    out
}

/// `ip` as `Display` writes it; IPv4 (most of a full table) without the
/// formatting machinery, which cost more than the rest of decoding.
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_decimal(out, octet);
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

fn push_decimal(out: &mut String, n: u8) {
    if n >= 100 {
        out.push(char::from(b'0' + n / 100));
    }
    if n >= 10 {
        out.push(char::from(b'0' + n / 10 % 10));
    }
    out.push(char::from(b'0' + n % 10));
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn addresses_and_prefixes_print_as_display_does() {
        for octets in [[0, 0, 0, 0], [10, 1, 20, 255], [192, 168, 100, 9], [255; 4]] {
            let ip = IpAddr::V4(Ipv4Addr::from(octets));
            let mut out = String::new();
            push_ip(&mut out, ip);
            assert_eq!(out, ip.to_string());
            for len in [0, 8, 32] {
                assert_eq!(prefix(Family::Inet, Some(ip), len), format!("{ip}/{len}"));
            }
        }
        let v6 = IpAddr::V6("2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(prefix(Family::Inet6, Some(v6), 128), "2001:db8::1/128");
        assert_eq!(prefix(Family::Inet6, None, 0), "::/0");
        assert_eq!(prefix(Family::Inet, None, 0), "0.0.0.0/0");
    }
}
