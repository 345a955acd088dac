//! Fuzzing harnesses: proptest properties over what the client reads from
//! outside, run by `cargo test` (see `routewatch_proto::fuzzing`).
//!
//! - [`responses`]: Subscribe responses as an agent sends them, decoded.
//! - [`cursor_files`]: `--cursor-file` contents, read and round-tripped.
//! - [`filter_flags`]: the filter flags of `tail` and `show`.
//!
//! A longer run: `ROUTEWATCH_FUZZ_CASES=100000 cargo test -p
//! routewatch-client --lib fuzz`.

mod cursor_files;
mod filter_flags;
mod responses;

use routewatch_proto::fuzzing::CountingAllocator;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;
