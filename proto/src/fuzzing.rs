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
