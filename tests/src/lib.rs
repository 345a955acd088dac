//! End-to-end test support for routewatch.
//!
//! Each test creates its own network namespace ([`Netns`]), starts
//! `routewatch-agent` in it ([`Agent`]), follows it with a long-running
//! `routewatch tail` ([`Tail`], replayed into a [`Replay`]), changes routes
//! with `ip` and checks with ONE shared helper ([`compare`]) that what
//! routewatch holds equals `ip -j -d route show table all` (and
//! `ip -j -d nexthop show`). Everything needs root and iproute2; without
//! them the tests fail with a message saying what is missing.
//!
//! `ip -j -d` prints an encapsulation's fields flat beside the route's,
//! with duplicate keys; [`flat_encap`] reads it nested, as ours is.
//!
//! Idle connections and a process's CPU time, for overload tests, come
//! from [`flood`].
//!
//! The binaries are built on first use ([`bins`]). The agent's ops port is
//! read with [`ops`] and [`openmetrics`].
//!
//! Tests of PostgreSQL storage each get their own database
//! ([`TestDatabase`]) on the server `ROUTEWATCH_TEST_POSTGRES_URL` names, or
//! else on a private server started from the postgresql package's binaries
//! ([`postgres`]); without either they fail with a message saying so.

pub mod agent;
pub mod bins;
pub mod collector;
pub mod compare;
pub mod fixture;
pub mod flat_encap;
pub mod flood;
pub mod ip_batch;
pub mod ipjson;
pub mod netns;
pub mod openmetrics;
pub mod ops;
pub mod postgres;
pub mod postgres_tls;
pub mod replay;
pub mod stream;
pub mod tail;
pub mod util;

pub use self::postgres::TestDatabase;
pub use agent::{run_show, show_in_process, Agent, AGENT_ADDR};
pub use collector::{Collector, TestStore};
pub use compare::{
    assert_matches_kernel, assert_nexthops_match_kernel, diff_against_kernel,
    diff_nexthops_against_kernel, diff_rules_against_kernel, eventually_all_match_kernel,
    eventually_matches_kernel, eventually_matches_kernel_filtered,
    eventually_nexthops_match_kernel, kernel_rules, Diff, KernelFilter,
};
pub use fixture::{
    add_veth_pair, blackholes, Env, CHECK_TIMEOUT, SYNC_TIMEOUT, VA4, VA6, VB4, VB6,
};
pub use ip_batch::IpBatch;
pub use netns::Netns;
pub use replay::Replay;
pub use stream::StreamCheck;
pub use tail::Tail;

#[cfg(test)]
mod selftest;
