//! Fuzzing harnesses: proptest properties over the agent's decoders of
//! outside input, run by `cargo test` (see `routewatch_proto::fuzzing`).
//!
//! - [`netlink`]: netlink datagrams (routes, nexthop objects, links,
//!   rules, addresses, encapsulations), mutated from the captured fixtures
//!   with attribute-aware edits.
//! - [`request`]: subscription requests as the server decodes and checks
//!   them, and their filters compiled and applied.
//! - [`interest`]: filtered subscribers, whose picture must be the table
//!   within their filters.
//! - [`state_dir`]: a state dir's files as the agent reads them at start.
//! - [`state_table`]: decoded messages applied to a state table, whose
//!   changes must rebuild it.
//!
//! A longer run: `ROUTEWATCH_FUZZ_CASES=100000 cargo test -p
//! routewatch-agent --lib fuzz`.

mod interest;
mod netlink;
mod request;
mod state_dir;
mod state_table;

use routewatch_proto::fuzzing::CountingAllocator;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Every netlink message captured from a real `ip` command
/// (`agent/tests/fixtures/*.bin`).
fn fixtures() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("fixture dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    paths.sort();
    let out: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect();
    assert!(out.len() > 40, "fixtures missing in {}", dir.display());
    out
}
