//! JSON written straight into a byte buffer, field by field, with the
//! spelling `serde_json` gives the same values (compact, strings escaped
//! alike, integers in decimal), so a line reads the same as when it was a
//! `serde_json::Map`, without building one per line.
//!
//! An object or array is closed when it is dropped; the borrow checker
//! keeps nesting right (a parent is unusable while a child is open).

use serde_json::{Map, Value};

/// A JSON object being written.
pub struct JsonObject<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

/// A JSON array being written.
pub struct JsonArray<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

/// The place of one JSON value (an object's field or an array's item),
/// filled by exactly one of its methods.
#[must_use = "a key or an array's comma is written: a value must follow"]
pub struct JsonValue<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> JsonObject<'a> {
    /// Opens an object at the end of `out`.
    pub fn open(out: &'a mut Vec<u8>) -> JsonObject<'a> {
        out.push(b'{');
        JsonObject { out, empty: true }
    }

    /// The place of the value of the field `key`.
    pub fn key(&mut self, key: &str) -> JsonValue<'_> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        string(self.out, key);
        self.out.push(b':');
        JsonValue { out: self.out }
    }

    pub fn str(&mut self, key: &str, value: &str) {
        self.key(key).str(value);
    }

    pub fn u64(&mut self, key: &str, value: impl Into<u64>) {
        self.key(key).u64(value.into());
    }

    pub fn null(&mut self, key: &str) {
        self.key(key).null();
    }

    pub fn object(&mut self, key: &str) -> JsonObject<'_> {
        self.key(key).object()
    }

    pub fn array(&mut self, key: &str) -> JsonArray<'_> {
        self.key(key).array()
    }
}

impl Drop for JsonObject<'_> {
    fn drop(&mut self) {
        self.out.push(b'}');
    }
}

impl JsonArray<'_> {
    /// The place of the next item.
    pub fn item(&mut self) -> JsonValue<'_> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        JsonValue { out: self.out }
    }
}

impl Drop for JsonArray<'_> {
    fn drop(&mut self) {
        self.out.push(b']');
    }
}

impl<'a> JsonValue<'a> {
    pub fn str(self, value: &str) {
        string(self.out, value);
    }

    pub fn u64(self, value: impl Into<u64>) {
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value.into()).as_bytes());
    }

    pub fn i64(self, value: i64) {
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    pub fn bool(self, value: bool) {
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    pub fn null(self) {
        self.out.extend_from_slice(b"null");
    }

    pub fn object(self) -> JsonObject<'a> {
        JsonObject::open(self.out)
    }

    pub fn array(self) -> JsonArray<'a> {
        self.out.push(b'[');
        JsonArray {
            out: self.out,
            empty: true,
        }
    }
}

/// `value` as a JSON string. Most strings here (addresses, names, keys)
/// need no escape and are copied as they are; any other goes through
/// `serde_json`, whose escapes the lines have always had.
fn string(out: &mut Vec<u8>, value: &str) {
    if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(value.len() + 2);
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, value);
    }
}

/// The fields `write` puts in an object, as a `serde_json` map: for
/// callers that compare or extend what a printer writes.
pub fn json_map(write: impl FnOnce(&mut JsonObject<'_>)) -> Map<String, Value> {
    let mut buf = Vec::new();
    write(&mut JsonObject::open(&mut buf));
    serde_json::from_slice(&buf).expect("the JSON writer writes valid objects")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(write: impl FnOnce(&mut JsonObject<'_>)) -> String {
        let mut buf = Vec::new();
        write(&mut JsonObject::open(&mut buf));
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn nested_values_close_in_order() {
        let text = written(|o| {
            o.str("a", "x");
            o.u64("n", 7u32);
            o.null("z");
            {
                let mut list = o.array("l");
                list.item().u64(1u8);
                let mut inner = list.item().object();
                inner.key("t").bool(true);
                inner.key("i").i64(-3);
            }
            o.array("empty");
            o.object("none");
        });
        assert_eq!(
            text,
            r#"{"a":"x","n":7,"z":null,"l":[1,{"t":true,"i":-3}],"empty":[],"none":{}}"#
        );
    }

    #[test]
    fn strings_are_spelled_as_serde_json_spells_them() {
        for s in [
            "",
            "plain",
            "quote\"",
            "back\\slash",
            "\n\t\r\u{8}\u{c}",
            "\u{1}\u{1f}\u{7f}",
            "ünï😀/</script>",
        ] {
            let mut buf = Vec::new();
            string(&mut buf, s);
            assert_eq!(
                String::from_utf8(buf).unwrap(),
                serde_json::to_string(s).unwrap()
            );
        }
    }

    #[test]
    fn a_map_holds_the_fields_in_their_order() {
        let m = json_map(|o| {
            o.str("b", "1");
            o.u64("a", u64::MAX);
        });
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"b":"1","a":18446744073709551615}"#
        );
    }
}
