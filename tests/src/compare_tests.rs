//! Unit tests of the comparison, on literal `ip -j -d` output captured in a
//! namespace (iproute2 6.1, Linux 6.18).

use super::*;
use serde_json::json;

const KERNEL_V4: &str = r#"[{"type":"unicast","dst":"10.2.0.0/24","gateway":"10.1.0.10","dev":"va","table":"1000","protocol":"boot","scope":"global","flags":[],"metrics":[{"mtu":1400,"advmss":1300}]},{"type":"unicast","dst":"10.1.0.0/24","dev":"va","table":"main","protocol":"kernel","scope":"link","prefsrc":"10.1.0.1","flags":[]},{"type":"blackhole","dst":"10.4.0.0/24","table":"main","protocol":"boot","scope":"global","flags":[]},{"type":"unicast","dst":"10.20.0.0/24","gateway":"10.1.0.10","dev":"va","table":"main","protocol":"boot","scope":"global","flags":[]},{"type":"unicast","dst":"10.20.0.0/24","gateway":"10.1.0.11","dev":"va","table":"main","protocol":"boot","scope":"global","flags":[]},{"type":"unicast","dst":"10.30.0.0/24","nhid":10,"table":"main","protocol":"boot","scope":"global","flags":[],"nh_info":{"id":10,"group":[{"id":1},{"id":2,"weight":3}],"scope":"global","protocol":"unspec","flags":[]},"nexthops":[{"gateway":"10.1.0.10","dev":"va","weight":1,"flags":[]},{"gateway":"10.1.0.12","dev":"va","weight":3,"flags":[]}]},{"type":"local","dst":"10.1.0.1","dev":"va","table":"local","protocol":"kernel","scope":"host","prefsrc":"10.1.0.1","flags":[]},{"type":"broadcast","dst":"10.1.0.255","dev":"va","table":"local","protocol":"kernel","scope":"link","prefsrc":"10.1.0.1","flags":[]},{"type":"local","dst":"127.0.0.0/8","dev":"lo","table":"local","protocol":"kernel","scope":"host","prefsrc":"127.0.0.1","flags":[]},{"type":"local","dst":"127.0.0.1","dev":"lo","table":"local","protocol":"kernel","scope":"host","prefsrc":"127.0.0.1","flags":[]},{"type":"broadcast","dst":"127.255.255.255","dev":"lo","table":"local","protocol":"kernel","scope":"link","prefsrc":"127.0.0.1","flags":[]}]"#;

const KERNEL_V6: &str = r#"[{"type":"unicast","dst":"2001:db8:1::/64","dev":"va","table":"main","protocol":"kernel","scope":"global","metric":256,"flags":[],"pref":"medium"},{"type":"unicast","dst":"2001:db8:5::/64","gateway":"2001:db8:1::10","dev":"va","table":"main","protocol":"boot","scope":"global","metric":1024,"flags":[],"expires":98,"pref":"medium"},{"type":"unicast","dst":"2001:db8:7::/64","table":"main","protocol":"boot","scope":"global","metric":1024,"flags":[],"pref":"medium","nexthops":[{"gateway":"2001:db8:1::10","dev":"va","weight":1,"flags":[]},{"gateway":"2001:db8:1::11","dev":"va","weight":1,"flags":[]}]},{"type":"unicast","dst":"fe80::/64","dev":"vb","table":"main","protocol":"kernel","scope":"global","metric":256,"flags":[],"pref":"medium"},{"type":"unicast","dst":"fe80::/64","dev":"va","table":"main","protocol":"kernel","scope":"global","metric":256,"flags":[],"pref":"medium"},{"type":"local","dst":"::1","dev":"lo","table":"local","protocol":"kernel","scope":"global","metric":0,"flags":[],"pref":"medium"},{"type":"local","dst":"2001:db8:1::1","dev":"va","table":"local","protocol":"kernel","scope":"global","metric":0,"flags":[],"pref":"medium"},{"type":"multicast","dst":"ff00::/8","dev":"vb","table":"local","protocol":"kernel","scope":"global","metric":256,"flags":[],"pref":"medium"},{"type":"multicast","dst":"ff00::/8","dev":"va","table":"local","protocol":"kernel","scope":"global","metric":256,"flags":[],"pref":"medium"}]"#;

const KERNEL_NH: &str = r#"[{"id":1,"gateway":"10.1.0.10","dev":"va","scope":"link","protocol":"unspec","flags":[]},{"id":2,"gateway":"10.1.0.12","dev":"va","scope":"link","protocol":"unspec","flags":[]},{"id":10,"group":[{"id":1},{"id":2,"weight":3}],"scope":"global","protocol":"unspec","flags":[]}]"#;

fn parse(s: &str) -> Vec<Value> {
    serde_json::from_str(s).unwrap()
}

fn kernel() -> (Vec<Value>, Vec<Value>) {
    (parse(KERNEL_V4), parse(KERNEL_V6))
}

/// The kernel's routes and nexthops dressed as our lines, plus markers.
fn ours() -> Vec<Value> {
    let (v4, v6) = kernel();
    let mut o = decorate(&v4, "route", "inet", "r4-");
    o.extend(decorate(&v6, "route", "inet6", "r6-"));
    o.extend(decorate(&parse(KERNEL_NH), "nexthop", "inet", "nh-"));
    o.push(json!({"action": "sync", "host": "testhost", "seq": 3}));
    o
}

fn find(ours: &mut [Value], dst: &str) -> usize {
    ours.iter()
        .position(|v| v["dst"] == dst)
        .unwrap_or_else(|| panic!("{dst} not in the fixture"))
}

#[test]
fn kernel_output_as_ours_is_equal() {
    let (v4, v6) = kernel();
    let d = diff_routes(&v4, &v6, &ours());
    assert!(d.is_empty(), "{d}");
    assert_eq!(d.kernel_count, 20);
    assert_eq!(d.ours_count, 20);
    let d = diff_nexthops(&parse(KERNEL_NH), &ours());
    assert!(d.is_empty(), "{d}");
    assert_eq!(d.ours_count, 3);
}

#[test]
fn normalise_drops_exactly_the_metadata() {
    let o = ours();
    let mut v = o[0].clone();
    // As if the route's table were a VRF's.
    v["vrf"] = json!("blue");
    // As if a process had asked for it, through a reconcile.
    v["changed_by"] = json!({"port_id": 4242, "pid": 4242, "comm": "ip", "how": "pid"});
    v["reason"] = json!("link v0 went down");
    let v = &v;
    let n = normalise(v);
    for f in META_FIELDS {
        assert!(v.get(f).is_some(), "fixture has {f}");
        assert!(n.get(f).is_none(), "{f} dropped");
    }
    assert_eq!(n, parse(KERNEL_V4)[0]);
}

#[test]
fn field_order_does_not_matter() {
    let mut o = ours();
    // Rebuild every object with its keys reversed.
    for v in o.iter_mut() {
        let m = v.as_object().unwrap();
        let mut keys: Vec<_> = m.keys().cloned().collect();
        keys.reverse();
        let mut r = Map::new();
        for k in keys {
            r.insert(k.clone(), m[&k].clone());
        }
        *v = Value::Object(r);
    }
    let (v4, v6) = kernel();
    assert!(diff_routes(&v4, &v6, &o).is_empty());
}

#[test]
fn missing_route_is_listed_as_only_in_kernel() {
    let mut o = ours();
    let i = find(&mut o, "10.4.0.0/24");
    o.remove(i);
    let (v4, v6) = kernel();
    let d = diff_routes(&v4, &v6, &o);
    assert!(!d.is_empty());
    assert_eq!(d.only_ours, Vec::<String>::new());
    assert_eq!(d.only_kernel.len(), 1);
    assert!(
        d.only_kernel[0].starts_with("inet {"),
        "{}",
        d.only_kernel[0]
    );
    assert!(d.only_kernel[0].contains("10.4.0.0/24"));
    let text = d.to_string();
    assert!(text.contains("only in the kernel (1)"), "{text}");
    assert!(text.contains("\"blackhole\""), "{text}");
}

#[test]
fn changed_field_is_listed_on_both_sides() {
    let mut o = ours();
    let i = find(&mut o, "10.2.0.0/24");
    o[i]["metrics"] = json!([{"mtu": 1500, "advmss": 1300}]);
    let (v4, v6) = kernel();
    let d = diff_routes(&v4, &v6, &o);
    assert_eq!(d.only_kernel.len(), 1, "{d}");
    assert_eq!(d.only_ours.len(), 1, "{d}");
    assert!(d.only_ours[0].contains("1500"));
}

#[test]
fn nexthop_order_in_multipath_matters() {
    let mut o = ours();
    let i = find(&mut o, "2001:db8:7::/64");
    o[i]["nexthops"].as_array_mut().unwrap().reverse();
    let (v4, v6) = kernel();
    assert!(!diff_routes(&v4, &v6, &o).is_empty());
}

#[test]
fn appended_duplicates_are_a_multiset() {
    // The two 10.20.0.0/24 routes differ only in the gateway; dropping one
    // must be seen, and so must holding one twice.
    let mut o = ours();
    let i = o
        .iter()
        .position(|v| v["dst"] == "10.20.0.0/24" && v["gateway"] == "10.1.0.11")
        .unwrap();
    let j = o
        .iter()
        .position(|v| v["dst"] == "10.20.0.0/24" && v["gateway"] == "10.1.0.10")
        .unwrap();
    o[i] = o[j].clone();
    o[i]["key"] = json!("another-key");
    let (v4, v6) = kernel();
    let d = diff_routes(&v4, &v6, &o);
    assert_eq!(d.only_kernel.len(), 1, "{d}");
    assert!(d.only_kernel[0].contains("10.1.0.11"));
    assert_eq!(d.only_ours.len(), 1, "{d}");
    assert!(d.only_ours[0].contains("10.1.0.10"));
    assert!(d.problems.is_empty(), "{d}");
}

#[test]
fn expires_is_compared_within_tolerance() {
    let (v4, v6) = kernel();
    for (delta, equal) in [
        (0, true),
        (5, true),
        (-5, true),
        (6, false),
        (-6, false),
        (-98, false),
    ] {
        let mut o = ours();
        let i = find(&mut o, "2001:db8:5::/64");
        o[i]["expires"] = json!(98 + delta);
        let d = diff_routes(&v4, &v6, &o);
        assert_eq!(d.is_empty(), equal, "delta {delta}: {d}");
    }
    // Missing expires, or one where the kernel has none, is a difference.
    let mut o = ours();
    let i = find(&mut o, "2001:db8:5::/64");
    o[i].as_object_mut().unwrap().remove("expires");
    assert!(!diff_routes(&v4, &v6, &o).is_empty());
    let mut o = ours();
    let i = find(&mut o, "2001:db8:7::/64");
    o[i]["expires"] = json!(0);
    assert!(!diff_routes(&v4, &v6, &o).is_empty());
}

#[test]
fn family_must_match_the_kernel_side() {
    let mut o = ours();
    let i = find(&mut o, "10.4.0.0/24");
    o[i]["family"] = json!("inet6");
    let (v4, v6) = kernel();
    let d = diff_routes(&v4, &v6, &o);
    assert_eq!(d.only_kernel.len(), 1, "{d}");
    assert_eq!(d.only_ours.len(), 1, "{d}");
    assert!(d.only_ours[0].starts_with("inet6 "));
}

#[test]
fn malformed_metadata_is_reported() {
    let (v4, v6) = kernel();
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("object", Box::new(|v| v["object"] = json!("rout"))),
        ("action", Box::new(|v| v["action"] = json!("delete"))),
        ("key", Box::new(|v| v["key"] = json!(""))),
        ("key", Box::new(|v| v["key"] = json!(5))),
        (
            "family",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("family");
            }),
        ),
        ("host", Box::new(|v| v["host"] = Value::Null)),
        (
            "netns",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("netns");
            }),
        ),
        ("seq", Box::new(|v| v["seq"] = json!(-1))),
        ("seq", Box::new(|v| v["seq"] = json!("7"))),
        ("time", Box::new(|v| v["time"] = json!("yesterday"))),
        ("time", Box::new(|v| v["time"] = json!(1700000000))),
        ("origin", Box::new(|v| v["origin"] = json!("guess"))),
    ];
    for (field, mutate) in cases {
        let mut o = ours();
        mutate(&mut o[0]);
        let d = diff_routes(&v4, &v6, &o);
        assert!(d.problems.iter().any(|p| p.contains(field)), "{field}: {d}");
        assert!(!d.is_empty());
    }
}

#[test]
fn duplicate_keys_are_reported() {
    let mut o = ours();
    let k = o[1]["key"].clone();
    o[0]["key"] = k;
    let (v4, v6) = kernel();
    let d = diff_routes(&v4, &v6, &o);
    assert_eq!(d.problems.len(), 1, "{d}");
    assert!(d.problems[0].contains("held by 2 objects"));
    // A route and a nexthop sharing a key collide too.
    let mut o = ours();
    let n = o.iter().position(|v| v["object"] == "nexthop").unwrap();
    let k = o[n]["key"].clone();
    o[0]["key"] = k;
    assert!(!diff_routes(&v4, &v6, &o).problems.is_empty());
    // The same key on another host is fine.
    let mut o = ours();
    let k = o[1]["key"].clone();
    o[0]["key"] = k;
    o[0]["host"] = json!("otherhost");
    assert!(diff_routes(&v4, &v6, &o).is_empty());
}

#[test]
fn nexthop_objects_are_compared() {
    let kernel = parse(KERNEL_NH);
    let mut o = ours();
    let i = o
        .iter()
        .position(|v| v["object"] == "nexthop" && v["id"] == 10)
        .unwrap();
    o[i]["group"] = json!([{"id": 1}, {"id": 2, "weight": 2}]);
    let d = diff_nexthops(&kernel, &o);
    assert_eq!(d.only_kernel.len(), 1, "{d}");
    assert_eq!(d.only_ours.len(), 1, "{d}");
    o.remove(i);
    let d = diff_nexthops(&kernel, &o);
    assert_eq!((d.only_kernel.len(), d.only_ours.len()), (1, 0), "{d}");
    // Routes are not nexthops and vice versa.
    let (v4, v6) = self::kernel();
    assert!(diff_routes(&v4, &v6, &o).is_empty());
}

#[test]
fn markers_are_ignored_but_unknown_lines_count_as_routes() {
    let (v4, v6) = kernel();
    let mut o = ours();
    o.push(json!({"action": "resync", "reason": "x", "host": "testhost"}));
    o.push(json!({"action": "heartbeat", "host": "testhost"}));
    assert!(diff_routes(&v4, &v6, &o).is_empty());
    o.push(json!({"action": "add", "key": "zzz", "dst": "1.2.3.0/24"}));
    let d = diff_routes(&v4, &v6, &o);
    assert_eq!(d.only_ours.len(), 1, "{d}");
    assert!(!d.problems.is_empty());
}

#[test]
fn rfc3339() {
    for ok in [
        "2026-01-02T03:04:05Z",
        "2026-01-02T03:04:05.1Z",
        "2026-01-02T03:04:05.123456789+02:00",
        "2026-01-02t03:04:05-00:00",
    ] {
        assert!(is_rfc3339(ok), "{ok}");
    }
    for bad in [
        "",
        "2026-01-02",
        "2026-01-02T03:04:05",
        "2026-01-02T03:04:05.Z",
        "2026-01-02T03:04:05+0200",
        "2026/01/02T03:04:05Z",
        "2026-01-02T03:04:05Zjunk",
    ] {
        assert!(!is_rfc3339(bad), "{bad}");
    }
}

#[test]
fn canonical_sorts_nested_keys_and_keeps_array_order() {
    let v = json!({"b": 1, "a": {"d": [3, 1], "c": null}});
    assert_eq!(canonical(&v), r#"{"a":{"c":null,"d":[3,1]},"b":1}"#);
}

#[test]
fn hints_name_fields_present_on_one_side_only() {
    let mut o = ours();
    for v in o.iter_mut() {
        v["unexpected"] = json!("abc");
        v.as_object_mut().unwrap().remove("nh_info");
    }
    let (v4, v6) = kernel();
    let d = diff_routes(&v4, &v6, &o);
    let text = d.to_string();
    assert!(
        text.contains(r#"fields only in our unmatched objects: ["unexpected"]"#),
        "{text}"
    );
    assert!(
        text.contains(r#"fields only in the kernel's unmatched objects: ["nh_info"]"#),
        "{text}"
    );
}

#[test]
fn an_encapsulation_is_compared_field_by_field() {
    // `ip -4 -j -d route show` for `ip route add 10.12.0.0/24 encap ip id 5
    // dst 192.0.2.9 dev va` (iproute2 6.1): flat, `dst` twice.
    let text = r#"[{"type":"unicast","dst":"10.12.0.0/24","encap":"ip","id":5,"src":"0.0.0.0","dst":"192.0.2.9","ttl":0,"tos":0,"dev":"va","table":"main","protocol":"boot","scope":"link","flags":[]}]"#;
    let kernel = as_array(crate::flat_encap::parse(text).unwrap(), "test");
    let same = decorate(&kernel, "route", "inet", "r");
    assert!(diff_routes(&kernel, &[], &same).is_empty());
    for (field, value) in [("id", json!(6)), ("dst", json!("192.0.2.10"))] {
        let mut other = same.clone();
        other[0]["encap"][field] = value;
        let diff = diff_routes(&kernel, &[], &other);
        assert_eq!(
            (diff.only_kernel.len(), diff.only_ours.len()),
            (1, 1),
            "{field}: {diff}"
        );
    }
    // Without the encapsulation, or with it flat, ours differs too.
    let mut none = same.clone();
    none[0].as_object_mut().unwrap().remove("encap");
    assert!(!diff_routes(&kernel, &[], &none).is_empty());
    let flat = decorate(&parse(text), "route", "inet", "r");
    assert!(!diff_routes(&kernel, &[], &flat).is_empty());
}
