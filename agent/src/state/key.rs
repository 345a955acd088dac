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

use std::fmt::Write;

use routewatch_proto::v1::{Family, Route};

const PROTOCOL_RA: u32 = 9;

/// (family, table, dst, src, tos, metric): what `ip route replace` matches.
pub fn base_key(r: &Route) -> String {
    let family = if r.family == Family::Inet6 as i32 {
        "6"
    } else {
        "4"
    };
    format!(
        "{family}|{}|{}|{}|{}|{}",
        r.table, r.dst, r.src, r.tos, r.metric
    )
}

/// The stable key a consumer uses to upsert and delete.
pub fn route_key(r: &Route) -> String {
    let mut key = base_key(r);
    key.push('|');
    if r.family == Family::Inet6 as i32 {
        if r.nhid != 0 {
            let _ = write!(key, "nh{}", r.nhid);
        } else if is_ecmp_capable(r) {
            key.push_str("ecmp");
        } else if !r.gateway.is_empty() {
            let _ = write!(key, "via {}%{}", r.gateway, r.ifindex);
        } else {
            let _ = write!(key, "t{} dev{}", r.r#type, r.ifindex);
        }
    } else {
        let _ = write!(
            key,
            "t{} p{} s{} {}|",
            r.r#type, r.protocol, r.scope, r.prefsrc
        );
        push_paths(&mut key, r);
    }
    key
}

/// IPv6 routes the kernel merges into one multipath route (rt6_qualify_for_ecmp).
pub fn is_ecmp_capable(r: &Route) -> bool {
    r.nhid == 0 && r.protocol != PROTOCOL_RA && (!r.gateway.is_empty() || !r.nexthops.is_empty())
}

fn push_paths(key: &mut String, r: &Route) {
    if r.nhid != 0 {
        let _ = write!(key, "nh{}", r.nhid);
    } else if r.nexthops.is_empty() {
        let _ = write!(key, "{}%{}", r.gateway, r.ifindex);
    } else {
        for (i, hop) in r.nexthops.iter().enumerate() {
            if i > 0 {
                key.push(',');
            }
            let _ = write!(key, "{}%{}*{}", hop.gateway, hop.ifindex, hop.weight);
        }
    }
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
