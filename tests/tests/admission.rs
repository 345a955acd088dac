//! `--max-subscribers`: one subscriber more than the limit is refused with
//! RESOURCE_EXHAUSTED and a message saying so, the others are undisturbed,
//! and a slot is free again as soon as a subscriber leaves.

use std::time::Duration;

use routewatch_tests::util::poll;
use routewatch_tests::{
    add_veth_pair, eventually_matches_kernel, Agent, Netns, CHECK_TIMEOUT, SYNC_TIMEOUT,
};

#[test]
fn subscribers_beyond_the_limit_get_resource_exhausted() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let mut agent = Agent::start_with(&ns, &["--max-subscribers", "2"]);
    let first = agent.tail(&ns);
    first.wait_synced(SYNC_TIMEOUT);
    let second = agent.tail(&ns);
    second.wait_synced(SYNC_TIMEOUT);

    let e = agent
        .try_show()
        .expect_err("a third subscriber must be refused");
    assert!(e.contains("ResourceExhausted"), "{e}");
    assert!(
        e.contains("maximum of 2 subscribers (--max-subscribers)"),
        "the refusal says which limit: {e}"
    );
    agent.assert_running();

    // The two admitted keep streaming.
    ns.ip("route add 10.140.0.0/24 via 10.1.0.10");
    eventually_matches_kernel(&ns, || first.objects(), CHECK_TIMEOUT);
    eventually_matches_kernel(&ns, || second.objects(), CHECK_TIMEOUT);

    // One leaves: its slot comes back with the end of its session.
    drop(second);
    let admitted = poll(CHECK_TIMEOUT, Duration::from_millis(200), || {
        agent.try_show().ok()
    });
    let objects = admitted.unwrap_or_else(|| {
        panic!(
            "no slot came free after a subscriber left\n--- agent log ---\n{}",
            agent.log()
        )
    });
    routewatch_tests::assert_matches_kernel(&ns, objects);
}
