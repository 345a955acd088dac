//! Attributes the agent kept undecoded (`Route.other`, `Nexthop.other`,
//! `Encap.unknown`, and any other object's raw attributes): never left out
//! of the output, so that two objects that differ never print the same.
//!
//! Text: ` unknown TYPE:HEX` per attribute; JSON: `"unknown":[{"type":TYPE,
//! "hex":"HEX"}]`, in the order the kernel sent them.

use std::fmt::Write as _;

use routewatch_proto::v1::RawAttribute;
use serde_json::{json, Map, Value};

/// Appends ` unknown TYPE:HEX` for each attribute.
pub fn unknown_text(attrs: &[RawAttribute], s: &mut String) {
    for a in attrs {
        let _ = write!(s, " unknown {}:{}", a.kind, hex(&a.value));
    }
}

/// Inserts `"unknown":[{"type":TYPE,"hex":"HEX"},...]` into `m` when there
/// is any.
pub fn unknown_json(attrs: &[RawAttribute], m: &mut Map<String, Value>) {
    if attrs.is_empty() {
        return;
    }
    let list: Vec<Value> = attrs
        .iter()
        .map(|a| json!({ "type": a.kind, "hex": hex(&a.value) }))
        .collect();
    m.insert("unknown".into(), list.into());
}

/// Lowercase hex digits, two per byte.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs() -> Vec<RawAttribute> {
        vec![
            RawAttribute {
                kind: 30,
                value: vec![0x01, 0xab],
            },
            RawAttribute {
                kind: 99,
                value: vec![],
            },
        ]
    }

    #[test]
    fn text_names_every_attribute_in_order() {
        let mut s = String::from("10.0.0.0/24 dev va");
        unknown_text(&attrs(), &mut s);
        assert_eq!(s, "10.0.0.0/24 dev va unknown 30:01ab unknown 99:");
    }

    #[test]
    fn json_lists_them_and_says_nothing_when_there_are_none() {
        let mut m = Map::new();
        unknown_json(&[], &mut m);
        assert!(m.is_empty());
        unknown_json(&attrs(), &mut m);
        assert_eq!(
            Value::Object(m),
            json!({"unknown": [{"type": 30, "hex": "01ab"}, {"type": 99, "hex": ""}]})
        );
    }
}
