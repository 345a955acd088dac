//! What the crates' fuzzing harnesses share (feature `fuzzing`): how many
//! cases a run tries, mutators that turn real inputs into broken ones, and
//! the bound every decoder must stay within on any input.
//!
//! The harnesses are proptest properties that run under `cargo test` on
//! stable Rust. Each is seeded from real inputs (netlink messages captured
//! from `ip`, files and responses written by the project's own writers) and
//! mostly mutates them: a decoder rejects random bytes at its first length
//! check, so nearly-valid input is what reaches its deeper paths. A few
//! hundred cases each by default keep the whole set to seconds in CI;
//! [`CASES_VAR`] asks for a longer run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;

/// The environment variable that sets every harness's case count, e.g.
/// `ROUTEWATCH_FUZZ_CASES=200000 cargo test -p routewatch-agent --lib fuzz`.
pub const CASES_VAR: &str = "ROUTEWATCH_FUZZ_CASES";

/// The proptest configuration of one harness: `default` cases unless
/// [`CASES_VAR`] gives a number. Failures are not persisted to files: a
/// minimised input that failed becomes a unit test beside its decoder.
pub fn config(default: u32) -> Config {
    let cases = match std::env::var(CASES_VAR) {
        Ok(v) => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|&n| n > 0)
            .unwrap_or_else(|| {
                panic!("{CASES_VAR}={v:?}: expected a positive number of cases per harness")
            }),
        Err(_) => default,
    };
    Config {
        cases,
        failure_persistence: None,
        // Shrinking a failure to its smallest form is worth a while, not
        // forever.
        max_shrink_iters: 4096,
        ..Config::default()
    }
}

/// Values that sit on the edges decoders check: lengths around a header,
/// sign and width boundaries.
const EDGES: &[u32] = &[
    0,
    1,
    2,
    3,
    4,
    5,
    7,
    8,
    12,
    16,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
];

/// Varints on the edges of protobuf's decoding: the largest of each width,
/// a length far beyond any buffer, and an over-long encoding.
const VARINTS: &[&[u8]] = &[
    &[0x00],
    &[0x7f],
    &[0x80, 0x01],
    &[0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    &[
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
    ],
];

/// A number that is usually one of [`EDGES`].
pub fn edge() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => proptest::sample::select(EDGES),
        1 => any::<u32>(),
    ]
}

/// One change to a byte string.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Flip one bit of a byte.
    Flip(Index, u8),
    /// Write a 1-, 2- or 4-byte value (native endian, as netlink lengths
    /// and types are) at a position.
    Write(Index, u32, u8),
    /// Cut the input at a position.
    Truncate(Index),
    /// Remove the bytes between two positions.
    Remove(Index, Index),
    /// Insert bytes at a position.
    Insert(Index, Vec<u8>),
    /// Insert a copy of the bytes between two positions at a third.
    Duplicate(Index, Index, Index),
    /// Replace the tail after a position with another seed's tail.
    Splice(Index, Index, Index),
}

/// Any [`Mutation`].
pub fn mutation() -> impl Strategy<Value = Mutation> {
    let inserted = prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 1..16),
        1 => proptest::sample::select(VARINTS).prop_map(<[u8]>::to_vec),
    ];
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, bit)| Mutation::Flip(i, bit)),
        3 => (any::<Index>(), edge(), proptest::sample::select(&[1u8, 2, 4][..]))
            .prop_map(|(i, v, w)| Mutation::Write(i, v, w)),
        2 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Remove(a, b)),
        2 => (any::<Index>(), inserted).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(a, b, c)| Mutation::Duplicate(a, b, c)),
        1 => (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(a, s, b)| Mutation::Splice(a, s, b)),
    ]
}

/// A position within `0..=len`.
fn at(i: &Index, len: usize) -> usize {
    i.index(len + 1)
}

/// `input` changed by `mutation`; `seeds` are the other inputs a splice
/// may take a tail from.
pub fn apply(input: &mut Vec<u8>, mutation: &Mutation, seeds: &[Vec<u8>]) {
    let len = input.len();
    match mutation {
        Mutation::Flip(i, bit) => {
            if len > 0 {
                input[i.index(len)] ^= 1 << bit;
            }
        }
        Mutation::Write(i, value, width) => {
            let bytes = value.to_ne_bytes();
            let bytes: &[u8] = match width {
                1 => &[*value as u8],
                2 => &(*value as u16).to_ne_bytes(),
                _ => &bytes,
            };
            let start = at(i, len);
            for (k, b) in bytes.iter().enumerate() {
                if let Some(slot) = input.get_mut(start + k) {
                    *slot = *b;
                }
            }
        }
        Mutation::Truncate(i) => input.truncate(at(i, len)),
        Mutation::Remove(a, b) => {
            let (a, b) = (at(a, len), at(b, len));
            input.drain(a.min(b)..a.max(b));
        }
        Mutation::Insert(i, bytes) => {
            let start = at(i, len);
            input.splice(start..start, bytes.iter().copied());
        }
        Mutation::Duplicate(a, b, to) => {
            let (a, b) = (at(a, len), at(b, len));
            let copy = input[a.min(b)..a.max(b)].to_vec();
            let to = at(to, len);
            input.splice(to..to, copy);
        }
        Mutation::Splice(a, seed, b) => {
            if seeds.is_empty() {
                return;
            }
            let other = &seeds[seed.index(seeds.len())];
            input.truncate(at(a, len));
            input.extend_from_slice(&other[at(b, other.len())..]);
        }
    }
}

/// Inputs for a decoder: mostly one of `seeds` with a few mutations, now
/// and then a seed as it is or plain random bytes (up to `random_len`).
pub fn mutated(seeds: Vec<Vec<u8>>, random_len: usize) -> impl Strategy<Value = Vec<u8>> {
    assert!(!seeds.is_empty(), "a mutating harness needs seeds");
    let seeds = Arc::new(seeds);
    let pick = seeds.clone();
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..random_len),
        8 => (any::<Index>(), proptest::collection::vec(mutation(), 0..5)).prop_map(
            move |(seed, mutations)| {
                let mut input = pick[seed.index(pick.len())].clone();
                for m in &mutations {
                    apply(&mut input, m, &pick);
                }
                input
            }
        ),
    ]
}

/// The time a decoder may take on one fuzzed input: far beyond any real
/// work on a few kilobytes, so only a loop or a blow-up exceeds it.
pub const TIME_BOUND: Duration = Duration::from_secs(5);

/// The memory a decoder may allocate for one input of `len` bytes: its
/// output is a few times the input (an `Event` of ~500 bytes from a record
/// of a few bytes), never an amount a length field asks for.
pub fn memory_bound(len: usize) -> usize {
    (4 << 20) + len * 2048
}

/// Runs `f` on the fuzzed `input` and fails unless it stayed within
/// [`TIME_BOUND`] and [`memory_bound`] (counted by [`CountingAllocator`],
/// which must be the test binary's global allocator).
pub fn bounded<R>(input: &[u8], f: impl FnOnce() -> R) -> R {
    let before = ALLOCATED.with(Cell::get);
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    let allocated = ALLOCATED.with(Cell::get) - before;
    assert!(
        COUNTING.load(Ordering::Relaxed),
        "fuzzing::CountingAllocator is not this test binary's #[global_allocator]"
    );
    assert!(
        took <= TIME_BOUND,
        "took {took:?} on {} bytes: {input:02x?}",
        input.len()
    );
    assert!(
        allocated <= memory_bound(input.len()),
        "allocated {allocated} bytes for {} bytes of input: {input:02x?}",
        input.len()
    );
    out
}

thread_local! {
    /// Bytes this thread asked the allocator for, ever.
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}
static COUNTING: AtomicBool = AtomicBool::new(false);

/// The system allocator, counting what each thread asks of it so that
/// [`bounded`] can tell a decoder that allocates what a corrupt length
/// field says. Declare it in a test binary:
/// `#[global_allocator] static A: CountingAllocator = CountingAllocator;`
pub struct CountingAllocator;

impl CountingAllocator {
    fn count(size: usize) {
        // try_with: a thread's last allocations may come after its
        // thread-locals are gone.
        let _ = ALLOCATED.try_with(|a| a.set(a.get().wrapping_add(size)));
    }
}

// SAFETY: every call is passed to `System` unchanged; counting touches only
// a thread-local `Cell` and an atomic, neither of which allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::count(layout.size());
        COUNTING.store(true, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::count(layout.size());
        COUNTING.store(true, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::count(new_size.saturating_sub(layout.size()));
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

/// One field of a protobuf message as found on the wire; a
/// length-delimited value that parses as fields is taken for a nested
/// message.
#[derive(Debug, Clone)]
enum Field {
    // (field number, value)
    Varint(u32, u64),
    Fixed64(u32, [u8; 8]),
    Fixed32(u32, [u8; 4]),
    Bytes(u32, Vec<u8>),
    Message(u32, Vec<Field>),
}

fn read_varint(buf: &mut &[u8]) -> Option<u64> {
    prost::encoding::decode_varint(buf).ok()
}

/// The fields of `buf`, or `None` when it is not a whole message.
fn fields(mut buf: &[u8], depth: usize) -> Option<Vec<Field>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = read_varint(&mut buf)?;
        let tag = u32::try_from(key >> 3).ok().filter(|&t| t > 0)?;
        out.push(match key & 7 {
            0 => Field::Varint(tag, read_varint(&mut buf)?),
            1 => {
                let (v, rest) = buf.split_first_chunk::<8>()?;
                buf = rest;
                Field::Fixed64(tag, *v)
            }
            2 => {
                let len = usize::try_from(read_varint(&mut buf)?).ok()?;
                let value = buf.get(..len)?;
                buf = &buf[len..];
                match fields(value, depth + 1).filter(|f| depth < 8 && !f.is_empty()) {
                    Some(nested) => Field::Message(tag, nested),
                    None => Field::Bytes(tag, value.to_vec()),
                }
            }
            5 => {
                let (v, rest) = buf.split_first_chunk::<4>()?;
                buf = rest;
                Field::Fixed32(tag, *v)
            }
            _ => return None,
        });
    }
    Some(out)
}

fn encode(fields: &[Field], out: &mut Vec<u8>) {
    use prost::encoding::encode_varint;
    for f in fields {
        let (tag, wire) = match f {
            Field::Varint(t, _) => (t, 0),
            Field::Fixed64(t, _) => (t, 1),
            Field::Bytes(t, _) | Field::Message(t, _) => (t, 2),
            Field::Fixed32(t, _) => (t, 5),
        };
        encode_varint((u64::from(*tag) << 3) | wire, out);
        match f {
            Field::Varint(_, v) => encode_varint(*v, out),
            Field::Fixed64(_, v) => out.extend_from_slice(v),
            Field::Fixed32(_, v) => out.extend_from_slice(v),
            Field::Bytes(_, v) => {
                encode_varint(v.len() as u64, out);
                out.extend_from_slice(v);
            }
            Field::Message(_, nested) => {
                let mut inner = Vec::new();
                encode(nested, &mut inner);
                encode_varint(inner.len() as u64, out);
                out.extend_from_slice(&inner);
            }
        }
    }
}

/// A change to one field of a protobuf message, the enclosing lengths
/// kept right.
#[derive(Debug, Clone)]
pub enum FieldEdit {
    /// Set a varint field (or a fixed one) to a value on an edge.
    Value(Index, u64),
    /// Give a field another number.
    Tag(Index, u32),
    /// Replace a length-delimited value with other bytes.
    Text(Index, Vec<u8>),
    /// Remove a field.
    Drop(Index),
    /// Repeat a field right after itself.
    Repeat(Index),
}

/// Values on the edges of protobuf's integer types.
const VALUES: &[u64] = &[
    0,
    1,
    2,
    127,
    128,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    i64::MAX as u64,
    u64::MAX - 1,
    u64::MAX,
];

/// Any [`FieldEdit`].
pub fn field_edit() -> impl Strategy<Value = FieldEdit> {
    let text = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..12),
        proptest::sample::select(&["\"", "\\", "\u{0}", "\u{2028}", "é", "", "::/0"][..])
            .prop_map(|s| s.as_bytes().to_vec()),
    ];
    prop_oneof![
        4 => (any::<Index>(), prop_oneof![3 => proptest::sample::select(VALUES), 1 => any::<u64>()])
            .prop_map(|(i, v)| FieldEdit::Value(i, v)),
        1 => (any::<Index>(), prop_oneof![1u32..20, Just(536_870_911)])
            .prop_map(|(i, t)| FieldEdit::Tag(i, t)),
        2 => (any::<Index>(), text).prop_map(|(i, t)| FieldEdit::Text(i, t)),
        1 => any::<Index>().prop_map(FieldEdit::Drop),
        1 => any::<Index>().prop_map(FieldEdit::Repeat),
    ]
}

fn count(fields: &[Field]) -> usize {
    fields
        .iter()
        .map(|f| match f {
            Field::Message(_, nested) => 1 + count(nested),
            _ => 1,
        })
        .sum()
}

/// Applies `edit` to the `n`th field in pre-order; returns how many
/// fields were passed over when it is not among these.
fn edit_nth(fields: &mut Vec<Field>, mut n: usize, edit: &FieldEdit) -> Result<(), usize> {
    let mut i = 0;
    while i < fields.len() {
        if n == 0 {
            match edit {
                FieldEdit::Value(_, v) => match &mut fields[i] {
                    Field::Varint(_, x) => *x = *v,
                    Field::Fixed64(_, x) => *x = v.to_le_bytes(),
                    Field::Fixed32(_, x) => *x = (*v as u32).to_le_bytes(),
                    _ => {}
                },
                FieldEdit::Tag(_, t) => match &mut fields[i] {
                    Field::Varint(x, _)
                    | Field::Fixed64(x, _)
                    | Field::Fixed32(x, _)
                    | Field::Bytes(x, _)
                    | Field::Message(x, _) => *x = *t,
                },
                FieldEdit::Text(_, bytes) => {
                    if let Field::Bytes(t, _) | Field::Message(t, _) = fields[i] {
                        fields[i] = Field::Bytes(t, bytes.clone());
                    }
                }
                FieldEdit::Drop(_) => {
                    fields.remove(i);
                }
                FieldEdit::Repeat(_) => {
                    let copy = fields[i].clone();
                    fields.insert(i + 1, copy);
                }
            }
            return Ok(());
        }
        n -= 1;
        if let Field::Message(_, nested) = &mut fields[i] {
            match edit_nth(nested, n, edit) {
                Ok(()) => return Ok(()),
                Err(passed) => n -= passed,
            }
        }
        i += 1;
    }
    Err(fields.len())
}

/// `input` with `edits` applied to its fields, re-encoded; `input` as it
/// is when it is not a protobuf message.
pub fn apply_field_edits(input: &[u8], edits: &[FieldEdit]) -> Vec<u8> {
    let Some(mut parsed) = fields(input, 0) else {
        return input.to_vec();
    };
    for edit in edits {
        let total = count(&parsed);
        if total == 0 {
            break;
        }
        let (FieldEdit::Value(i, _)
        | FieldEdit::Tag(i, _)
        | FieldEdit::Text(i, _)
        | FieldEdit::Drop(i)
        | FieldEdit::Repeat(i)) = edit;
        let _ = edit_nth(&mut parsed, i.index(total), edit);
    }
    let mut out = Vec::new();
    encode(&parsed, &mut out);
    out
}

/// Inputs for a protobuf decoder: [`mutated`] bytes, or one of `seeds`
/// with edits of its fields (values, numbers, texts, dropped or repeated
/// fields) that keep its framing whole, so that decoding goes past the
/// lengths into the values.
pub fn protobuf_mutated(seeds: Vec<Vec<u8>>, random_len: usize) -> impl Strategy<Value = Vec<u8>> {
    let pick = Arc::new(seeds.clone());
    prop_oneof![
        1 => mutated(seeds, random_len),
        1 => (any::<Index>(), proptest::collection::vec(field_edit(), 1..4)).prop_map(
            move |(seed, edits)| apply_field_edits(&pick[seed.index(pick.len())], &edits)
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{event, Event, Resync};
    use proptest::strategy::ValueTree;
    use prost::Message;

    #[test]
    fn field_edits_keep_the_framing() {
        let event = Event {
            stream_id: "s".into(),
            seq: 7,
            kind: Some(event::Kind::Resync(Resync {
                reason: "r".into(),
                cause: 2,
            })),
            ..Default::default()
        };
        let bytes = event.encode_to_vec();
        assert_eq!(
            apply_field_edits(&bytes, &[]),
            bytes,
            "re-encoded as it was"
        );
        // Every field of every edit leaves a message prost reads.
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let indices: Vec<Index> = (0..64)
            .map(|_| {
                any::<Index>()
                    .new_tree(&mut runner)
                    .expect("an index")
                    .current()
            })
            .collect();
        for i in indices {
            for edit in [
                FieldEdit::Value(i, u64::MAX),
                FieldEdit::Drop(i),
                FieldEdit::Repeat(i),
                FieldEdit::Text(i, b"x".to_vec()),
            ] {
                let edited = apply_field_edits(&bytes, &[edit]);
                assert!(fields(&edited, 0).is_some(), "{edited:02x?}");
            }
        }
    }
}
