//! 20,000 routes added and deleted at once with `ip -batch`, and a netlink
//! overflow (ENOBUFS) provoked with a tiny receive buffer: the state must be
//! exact afterwards.

use std::time::Duration;

use routewatch_tests::{Env, CHECK_TIMEOUT};

const COUNT: usize = 20_000;
const SCALE_TIMEOUT: Duration = Duration::from_secs(180);

/// `ip -batch` lines adding (or deleting) COUNT /24 routes in 10.128.0.0/9.
fn batch(verb: &str, table: Option<u32>) -> String {
    let table = table.map(|t| format!(" table {t}")).unwrap_or_default();
    (0..COUNT)
        .map(|i| {
            let via = if i % 2 == 0 { "10.1.0.10" } else { "10.2.0.10" };
            format!(
                "route {verb} 10.{}.{}.0/24 via {via}{table}\n",
                128 + i / 256,
                i % 256
            )
        })
        .collect()
}

#[test]
fn twenty_thousand_routes_added_and_deleted_by_batch() {
    let env = Env::start();
    env.ns.ip_batch(&batch("add", None));
    env.check_routes(SCALE_TIMEOUT);
    env.ns.ip_batch(&batch("del", None));
    env.check_routes(SCALE_TIMEOUT);
    // Still live afterwards.
    env.ns.ip("route add 10.127.0.0/24 via 10.1.0.10");
    env.check_routes(CHECK_TIMEOUT);
}

#[test]
fn enobufs_with_a_tiny_receive_buffer() {
    let env = Env::start_with(&["--netlink-rcvbuf", "4096"]);
    env.ns.ip_batch(&batch("add", Some(1000)));
    env.ns.ip("route add 10.126.0.0/24 via 10.1.0.10");
    env.check_routes(SCALE_TIMEOUT);
    env.ns.ip_batch(&batch("del", Some(1000)));
    env.ns.ip("route del 10.126.0.0/24");
    env.check_routes(SCALE_TIMEOUT);
    // Still live afterwards.
    env.ns.ip("route add 10.127.0.0/24 via 10.1.0.10");
    env.check_routes(CHECK_TIMEOUT);
    let r = env.tail.replay();
    eprintln!(
        "note: the tail saw {} resync markers {:?} and {} lines",
        r.resyncs, r.resync_reasons, r.lines
    );
}
