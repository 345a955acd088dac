//! Byte builders shared by the decoders' tests.

/// One netlink attribute, padded to 4 bytes.
pub fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut out = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize((out.len() + 3) & !3, 0);
    out
}

/// `count` deterministic random buffers (xorshift32: no extra dependency)
/// of up to `max_len - 1` bytes. Half of those long enough get a plausible
/// attribute header at `header_at` (length below 24, type below `kinds`),
/// so that a decoder's walk goes deeper than the first length check.
pub fn garbage(
    seed: u32,
    count: usize,
    max_len: u32,
    header_at: usize,
    kinds: u32,
) -> impl Iterator<Item = Vec<u8>> {
    let mut state = seed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    (0..count).map(move |_| {
        let len = (next() % max_len) as usize;
        let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if len >= header_at + 4 && next() % 2 == 0 {
            buf[header_at] = (next() % 24) as u8;
            buf[header_at + 1] = 0;
            buf[header_at + 2] = (next() % kinds) as u8;
        }
        buf
    })
}
