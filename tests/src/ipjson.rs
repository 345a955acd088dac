//! Reading `ip -j -d route show` and `ip -j -d nexthop show` objects, so
//! that tests can say which of the kernel's objects a filter keeps without
//! using routewatch's own filter code.

use std::net::IpAddr;

use serde_json::Value;

/// A prefix as (address bits, length, IPv6).
pub type Prefix = (u128, u8, bool);

/// `10.0.0.0/8`, `2001:db8::/32`, an address (a host prefix), or
/// "default" in `family` ("inet" or "inet6").
pub fn prefix(text: &str, family: &str) -> Prefix {
    if text == "default" {
        return (0, 0, family == "inet6");
    }
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u8>().expect("prefix length"))),
        None => (text, None),
    };
    match addr.parse::<IpAddr>().expect("address") {
        IpAddr::V4(a) => (u128::from(u32::from(a)), len.unwrap_or(32), false),
        IpAddr::V6(a) => (u128::from(a), len.unwrap_or(128), true),
    }
}

/// `inner` lies within `outer` (equal or more specific).
pub fn is_within(inner: Prefix, outer: Prefix) -> bool {
    let bits = if inner.2 { 128 } else { 32 };
    inner.2 == outer.2 && inner.1 >= outer.1 && {
        let shift = bits - u32::from(outer.1);
        let keep = |a: u128| if shift >= 128 { 0 } else { a >> shift };
        keep(inner.0) == keep(outer.0)
    }
}

/// The route's destination.
pub fn dst(route: &Value, family: &str) -> Prefix {
    prefix(route["dst"].as_str().expect("dst"), family)
}

/// Every gateway the object names (its own and its paths').
pub fn gateways(object: &Value) -> Vec<String> {
    every(object, "gateway")
}

/// Every device the object names (its own and its paths').
pub fn devs(object: &Value) -> Vec<String> {
    every(object, "dev")
}

fn every(object: &Value, field: &str) -> Vec<String> {
    let mut out: Vec<String> = object[field]
        .as_str()
        .map(str::to_owned)
        .into_iter()
        .collect();
    for hop in object["nexthops"].as_array().into_iter().flatten() {
        out.extend(hop[field].as_str().map(str::to_owned));
    }
    out
}

/// The route's metric (`ip -j` leaves out an IPv4 metric of 0).
pub fn metric(route: &Value) -> u64 {
    route["metric"].as_u64().unwrap_or(0)
}

/// A string field ("" when absent).
pub fn field<'a>(object: &'a Value, name: &str) -> &'a str {
    object[name].as_str().unwrap_or("")
}

/// Some gateway of the object lies within `outer`.
pub fn gateway_within(object: &Value, outer: &str) -> bool {
    let outer = prefix(outer, "inet");
    gateways(object)
        .iter()
        .any(|g| is_within(prefix(g, "inet"), outer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_containment() {
        let p = |s| prefix(s, "inet");
        assert!(is_within(p("10.50.1.0/24"), p("10.50.0.0/16")));
        assert!(is_within(p("10.50.0.0/16"), p("10.50.0.0/16")));
        assert!(!is_within(p("10.0.0.0/8"), p("10.50.0.0/16")));
        assert!(is_within(p("10.50.1.7"), p("default")));
        assert!(!is_within(p("10.51.0.0/16"), p("10.50.0.0/16")));
        let v6 = |s| prefix(s, "inet6");
        assert!(is_within(v6("2001:db8:50:1::/64"), v6("2001:db8:50::/48")));
        assert!(!is_within(v6("2001:db8:51::/64"), v6("2001:db8:50::/48")));
        assert!(!is_within(v6("::/0"), p("default")), "families differ");
        let route: Value = serde_json::json!({
            "dst": "10.80.0.0/16",
            "nexthops": [{"gateway": "10.1.0.10", "dev": "va"}, {"gateway": "10.2.0.10", "dev": "vb"}]
        });
        assert_eq!(devs(&route), vec!["va", "vb"]);
        assert!(gateway_within(&route, "10.2.0.0/24"));
        assert!(!gateway_within(&route, "10.3.0.0/24"));
    }
}
