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

    /// The place of the value of the field `key`. Keys are the program's
    /// own words (iproute2's field names), which need no escape.
    pub fn key(&mut self, key: &str) -> JsonValue<'_> {
        debug_assert!(!needs_escape(key.as_bytes()), "{key:?}");
        self.out.reserve(key.len() + 4);
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
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
    if !needs_escape(value.as_bytes()) {
        out.reserve(value.len() + 2);
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, value);
    }
}

/// Whether JSON needs any byte of `s` escaped: a control character, `"`
/// or `\`. Eight bytes at a time, as this runs for every string of every
/// line.
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // Some byte of `x` is below `n` (n <= 0x80), exactly.
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH != 0;
    let has = |x: u64, b: u8| below(x ^ (ONES * u64::from(b)), 1);
    let special = |x: u64| below(x, 0x20) || has(x, b'"') || has(x, b'\\');
    let word = |at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().expect("eight bytes"));
    if s.len() < 8 {
        return s.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
    }
    // Whole words, the last one overlapping the one before if need be.
    (0..s.len() - 7).step_by(8).any(|at| special(word(at))) || special(word(s.len() - 8))
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
    fn every_byte_that_needs_an_escape_is_found_at_every_offset() {
        let plain = |b: u8| b >= 0x20 && b != b'"' && b != b'\\';
        for len in 0..20 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut s = vec![b'a'; len];
                    s[at] = b;
                    assert_eq!(needs_escape(&s), !plain(b), "{b:#x} at {at} of {len}");
                }
            }
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
