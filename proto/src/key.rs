//! An object's key (`Change.key`) in its forms: the 128-bit number the
//! agent computes, the text consumers hold (32 lowercase hex digits, or
//! `nh|` and the id of a nexthop object), and the 16 bytes a change may
//! carry instead of the text (`Change.key_bytes`, most significant first).

/// The high 64 bits of a nexthop object's key (`nh|` in ASCII, then zeros);
/// the low 32 are its id. A route key with this base is a 2^-64 chance.
pub const NEXTHOP_MARK: u64 = 0x6e68_7c00_0000_0000;

/// A key's text, on the stack.
pub struct KeyText {
    buf: [u8; 32],
    len: usize,
}

impl KeyText {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).expect("keys print as ASCII")
    }
}

/// Whether `key` is a nexthop object's, written `nh|ID`; any other key is
/// written as its 32 hex digits, which its 16 bytes carry in half the room.
pub fn is_nexthop(key: u128) -> bool {
    (key >> 64) as u64 == NEXTHOP_MARK && key as u64 <= u64::from(u32::MAX)
}

/// The text of `key`.
pub fn text(key: u128) -> KeyText {
    let mut buf = [0u8; 32];
    if is_nexthop(key) {
        let s = format!("nh|{}", key as u32);
        buf[..s.len()].copy_from_slice(s.as_bytes());
        return KeyText { buf, len: s.len() };
    }
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in buf.iter_mut().enumerate() {
        *b = DIGITS[((key >> (124 - 4 * i)) & 0xf) as usize];
    }
    KeyText { buf, len: 32 }
}

/// Reads a key's text as [`text`] writes it.
pub fn parse(s: &str) -> Option<u128> {
    if let Some(id) = s.strip_prefix("nh|") {
        let id: u32 = id.parse().ok()?;
        return Some((u128::from(NEXTHOP_MARK) << 64) | u128::from(id));
    }
    if s.len() != 32 {
        return None;
    }
    u128::from_str_radix(s, 16).ok()
}

/// The key `Change.key_bytes` carries, if it is 16 bytes.
pub fn from_bytes(bytes: &[u8]) -> Option<u128> {
    Some(u128::from_be_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_bytes_and_number_say_the_same() {
        for key in [
            0u128,
            1,
            u128::MAX,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        ] {
            let t = text(key);
            assert!(!is_nexthop(key));
            assert_eq!(t.as_str().len(), 32);
            assert_eq!(parse(t.as_str()), Some(key));
            assert_eq!(from_bytes(&key.to_be_bytes()), Some(key));
        }
        assert_eq!(text(0xa).as_str(), "0000000000000000000000000000000a");
        let nh = (u128::from(NEXTHOP_MARK) << 64) | 10;
        assert_eq!(text(nh).as_str(), "nh|10");
        assert!(is_nexthop(nh));
        assert_eq!(parse("nh|10"), Some(nh));
        assert_eq!(parse("nh|x"), None);
        assert_eq!(parse("abc"), None);
        assert_eq!(from_bytes(&[0; 15]), None);
    }
}
