//! Attributes the agent kept undecoded (`Route.other`, `Nexthop.other`,
//! `Encap.unknown`, and any other object's raw attributes): never left out
//! of the output, so that two objects that differ never print the same.
//!
//! Text: ` unknown TYPE:HEX` per attribute; JSON: `"unknown":[{"type":TYPE,
//! "hex":"HEX"}]`, in the order the kernel sent them.

use routewatch_proto::v1::RawAttribute;

use super::json_writer::JsonObject;

/// Appends ` unknown TYPE:HEX` for each attribute.
pub fn unknown_text(attrs: &[RawAttribute], s: &mut String) {
    for a in attrs {
        s.push_str(" unknown ");
        s.push_str(itoa::Buffer::new().format(a.kind));
        s.push(':');
        push_hex(&a.value, s);
    }
}

/// Writes `"unknown":[{"type":TYPE,"hex":"HEX"},...]` when there is any.
pub fn unknown_json(attrs: &[RawAttribute], o: &mut JsonObject<'_>) {
    if attrs.is_empty() {
        return;
    }
    let mut list = o.array("unknown");
    let mut digits = String::new();
    for a in attrs {
        let mut attr = list.item().object();
        attr.u64("type", a.kind);
        digits.clear();
        push_hex(&a.value, &mut digits);
        attr.str("hex", &digits);
    }
}

/// Lowercase hex digits, two per byte.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(bytes, &mut out);
    out
}

fn push_hex(bytes: &[u8], s: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::printer::json_writer::json_map;
    use serde_json::{json, Value};

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
        assert!(json_map(|o| unknown_json(&[], o)).is_empty());
        assert_eq!(
            Value::Object(json_map(|o| unknown_json(&attrs(), o))),
            json!({"unknown": [{"type": 30, "hex": "01ab"}, {"type": 99, "hex": ""}]})
        );
    }
}
