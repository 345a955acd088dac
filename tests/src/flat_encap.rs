//! `ip -j -d route show` / `ip -j -d nexthop show` with the encapsulation
//! nested the way routewatch prints it.
//!
//! iproute2 prints an encapsulation's fields flat beside the route's:
//! `"dst":"10.12.0.0/24","encap":"ip","id":5,"src":"0.0.0.0",
//! "dst":"192.0.2.9","ttl":0,"tos":0,"dev":"va"` -- `encap ip` repeats
//! `dst` (a nexthop object repeats `id`), which a JSON object cannot hold.
//! So the text is read keeping every key in order, and the keys after
//! `"encap"` that belong to that type (in the order iproute2 6.1's
//! `lwtunnel_print_*` writes them) move into `"encap":{"type":...}`.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The keys each type prints, in iproute2's order (each optional).
fn encap_keys(kind: &str) -> &'static [&'static str] {
    const OPTS: [&str; 3] = ["geneve_opts", "vxlan_opts", "erspan_opts"];
    match kind {
        "ip" => &[
            "id", "src", "dst", "ttl", "tos", "key", "csum", "seq", OPTS[0], OPTS[1], OPTS[2],
        ],
        "ip6" => &[
            "id", "src", "dst", "hoplimit", "tc", "key", "csum", "seq", OPTS[0], OPTS[1], OPTS[2],
        ],
        "mpls" => &["dst", "ttl"],
        "ila" => &["locator", "csum_mode", "ident_type", "hook_type"],
        "bpf" => &["in", "out", "xmit", "headroom"],
        "seg6" => &["mode", "tunsrc", "segs", "hmac"],
        "seg6local" => &[
            "action", "srh", "table", "vrftable", "nh4", "nh6", "iif", "oif", "endpoint",
            "stats64", "flavors", "lblen", "nflen",
        ],
        "rpl" => &["segs"],
        "ioam6" => &[
            "freqk", "freqn", "mode", "tunsrc", "tundst", "trace", "prealloc", "type", "ns", "size",
        ],
        "xfrm" => &["if_id", "link_dev"],
        _ => &[],
    }
}

/// A JSON value whose objects keep every key, duplicates included, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Ordered {
    Scalar(Value),
    Array(Vec<Ordered>),
    Object(Vec<(String, Ordered)>),
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ordered, D::Error> {
        d.deserialize_any(OrderedVisitor)
    }
}

struct OrderedVisitor;

impl<'de> Visitor<'de> for OrderedVisitor {
    type Value = Ordered;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Ordered, E> {
        Ok(Ordered::Scalar(v.into()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Ordered, E> {
        Ok(Ordered::Scalar(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Ordered, E> {
        Ok(Ordered::Scalar(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Ordered, E> {
        Ok(Ordered::Scalar(v.into()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Ordered, E> {
        Ok(Ordered::Scalar(v.into()))
    }
    fn visit_unit<E>(self) -> Result<Ordered, E> {
        Ok(Ordered::Scalar(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Ordered::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
        let mut out = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Ordered>()? {
            out.push((k, v));
        }
        Ok(Ordered::Object(out))
    }
}

/// Parses `ip -j -d` output, nesting every encapsulation (also those of
/// paths and of `nh_info`).
pub fn parse(text: &str) -> Result<Value, serde_json::Error> {
    let ordered: Ordered = serde_json::from_str(text)?;
    Ok(nest(ordered))
}

/// Turns an [`Ordered`] value into a plain one, nesting encapsulations. A
/// key repeated outside an encapsulation keeps its last value, as plain
/// JSON parsing would.
pub fn nest(v: Ordered) -> Value {
    match v {
        Ordered::Scalar(v) => v,
        Ordered::Array(items) => Value::Array(items.into_iter().map(nest).collect()),
        Ordered::Object(entries) => {
            let mut out = Map::new();
            let mut entries = entries.into_iter().peekable();
            while let Some((key, value)) = entries.next() {
                let kind = match (&*key, &value) {
                    ("encap", Ordered::Scalar(Value::String(kind))) => kind.clone(),
                    _ => {
                        out.insert(key, nest(value));
                        continue;
                    }
                };
                let mut encap = Map::new();
                encap.insert("type".into(), kind.clone().into());
                let mut expected = encap_keys(&kind);
                while let Some(at) = entries
                    .peek()
                    .and_then(|(k, _)| expected.iter().position(|e| e == k))
                {
                    let (k, v) = entries.next().expect("peeked");
                    expected = &expected[at + 1..];
                    // routewatch's nested object uses `type` for the
                    // encapsulation; ioam6's trace type is `trace_type`.
                    let k = if kind == "ioam6" && k == "type" {
                        "trace_type".to_owned()
                    } else {
                        k
                    };
                    encap.insert(k, nest(v));
                }
                out.insert("encap".into(), Value::Object(encap));
            }
            Value::Object(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encap_ip_keeps_both_dsts() {
        // `ip -j -d route show` for
        // ip route add 10.13.0.0/24 encap ip id 6 src 10.1.0.1 dst 192.0.2.9 ttl 64 tos 0x10 key csum seq via 10.1.0.2 dev va
        // (iproute2 6.1, Linux 6.18), with a route tos as well.
        let text = r#"[{"type":"unicast","dst":"10.13.0.0/24","encap":"ip","id":6,"src":"10.1.0.1","dst":"192.0.2.9","ttl":64,"tos":16,"key":true,"csum":true,"seq":true,"tos":"0x10","gateway":"10.1.0.2","dev":"va","table":"main","flags":[]}]"#;
        assert_eq!(
            parse(text).unwrap(),
            json!([{
                "type": "unicast",
                "dst": "10.13.0.0/24",
                "encap": {"type": "ip", "id": 6, "src": "10.1.0.1", "dst": "192.0.2.9",
                          "ttl": 64, "tos": 16, "key": true, "csum": true, "seq": true},
                "tos": "0x10",
                "gateway": "10.1.0.2",
                "dev": "va",
                "table": "main",
                "flags": []
            }])
        );
    }

    #[test]
    fn paths_and_nexthop_objects() {
        let text = r#"[{"dst":"10.14.0.0/24","nexthops":[{"encap":"ip6","id":8,"src":"::","dst":"2001:db8::8","hoplimit":5,"tc":3,"gateway":"10.1.0.3","dev":"va","weight":1,"flags":[]}]},
                       {"id":5,"encap":"ip","id":5,"src":"0.0.0.0","dst":"192.0.2.9","ttl":0,"tos":0,"dev":"va","scope":"host"}]"#;
        assert_eq!(
            parse(text).unwrap(),
            json!([
                {"dst": "10.14.0.0/24", "nexthops": [{
                    "encap": {"type": "ip6", "id": 8, "src": "::", "dst": "2001:db8::8",
                              "hoplimit": 5, "tc": 3},
                    "gateway": "10.1.0.3", "dev": "va", "weight": 1, "flags": []}]},
                {"id": 5,
                 "encap": {"type": "ip", "id": 5, "src": "0.0.0.0", "dst": "192.0.2.9",
                           "ttl": 0, "tos": 0},
                 "dev": "va", "scope": "host"}
            ])
        );
    }

    #[test]
    fn plain_output_is_unchanged() {
        let text = r#"[{"type":"unicast","dst":"10.1.0.0/24","dev":"va","metrics":[{"mtu":1400}],"flags":["onlink"]}]"#;
        assert_eq!(
            parse(text).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }
}
