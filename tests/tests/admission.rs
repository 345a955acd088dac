//! `--max-subscribers` and `--max-snapshots`: one follower more than the
//! limit is refused with RESOURCE_EXHAUSTED and a message saying so, the
//! others are undisturbed, and a slot is free again as soon as a subscriber
//! leaves. One-shot snapshots (`show`) have their own slots: followers
//! cannot lock them out, and `show` asks a busy agent again for a while.

use std::time::{Duration, Instant};

use routewatch_proto::v1::route_watch_client::RouteWatchClient;
use routewatch_proto::v1::{SubscribeRequest, SubscribeResponse};
use routewatch_tests::util::poll;
use routewatch_tests::{
    add_veth_pair, assert_matches_kernel, blackholes, eventually_matches_kernel, Agent, Netns,
    AGENT_ADDR, CHECK_TIMEOUT, SYNC_TIMEOUT,
};

#[test]
fn followers_beyond_the_limit_get_resource_exhausted_and_show_still_works() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let mut agent = Agent::start_with(&ns, &["--max-subscribers", "2"]);
    let first = agent.tail(&ns);
    first.wait_synced(SYNC_TIMEOUT);
    let second = agent.tail(&ns);
    second.wait_synced(SYNC_TIMEOUT);

    let third = agent.tail(&ns);
    // With -o json its refusals are marker lines on stdout.
    let refused = poll(CHECK_TIMEOUT, Duration::from_millis(100), || {
        third
            .lines()
            .into_iter()
            .find(|l| l.contains(r#""action":"disconnected""#))
    })
    .unwrap_or_else(|| panic!("a third follower must be refused: {}", third.report()));
    assert!(
        refused.contains("agent busy: ")
            && refused.contains("maximum of 2 subscribers (--max-subscribers)"),
        "the refusal says the agent is busy and which limit: {refused}"
    );
    agent.assert_running();

    // A one-shot snapshot does not need a follower's slot.
    let objects = agent.try_show().unwrap_or_else(|e| {
        panic!(
            "show refused while followers fill --max-subscribers: {e}\n--- agent log ---\n{}",
            agent.log()
        )
    });
    assert_matches_kernel(&ns, objects);

    // The two admitted keep streaming.
    ns.ip("route add 10.140.0.0/24 via 10.1.0.10");
    eventually_matches_kernel(&ns, || first.objects(), CHECK_TIMEOUT);
    eventually_matches_kernel(&ns, || second.objects(), CHECK_TIMEOUT);

    // One leaves: its slot comes back with the end of its session, and the
    // refused follower, retrying, gets it.
    drop(second);
    third.wait_synced(SYNC_TIMEOUT);
    eventually_matches_kernel(&ns, || third.objects(), CHECK_TIMEOUT);
}

/// A one-shot snapshot that is not read: the agent cannot send past the
/// client's HTTP/2 window, so the session, and its slot, stay until the
/// holder is dropped. The runtime is never driven again after the call
/// started, so nothing is read or acknowledged.
struct HeldSnapshot {
    _responses: tonic::Streaming<SubscribeResponse>,
    _runtime: tokio::runtime::Runtime,
}

fn hold_snapshot(ns: &Netns) -> HeldSnapshot {
    ns.in_ns(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let responses = runtime.block_on(async {
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{AGENT_ADDR}"))
                .expect("an endpoint")
                .initial_stream_window_size(65_535)
                .initial_connection_window_size(65_535)
                .connect()
                .await
                .expect("connecting to the agent");
            let request = SubscribeRequest {
                snapshot: true,
                follow: false,
                ..Default::default()
            };
            RouteWatchClient::new(channel)
                .subscribe(request)
                .await
                .expect("a snapshot while a slot is free")
                .into_inner()
        });
        HeldSnapshot {
            _responses: responses,
            _runtime: runtime,
        }
    })
}

#[test]
fn show_waits_for_a_free_snapshot_slot_within_retry_for() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    // A snapshot far larger than one HTTP/2 window plus what the session
    // queues (4 responses of --max-batch events).
    ns.ip_batch(&blackholes("add", 0..3000));
    let agent = Agent::start_with(&ns, &["--max-snapshots", "1", "--max-batch", "16"]);
    let held = hold_snapshot(&ns);
    let refused = |retry_for: &str, why: &str| -> String {
        match agent.try_show_with(&["--insecure", "--retry-for", retry_for]) {
            Ok(objects) => panic!("{why}, but show got {} objects", objects.len()),
            Err(e) => e,
        }
    };

    // Asked once: refused as busy at once.
    let e = refused("0s", "the only snapshot slot is taken");
    assert!(
        e.contains("agent busy: ")
            && e.contains("maximum of 1 one-shot snapshots (--max-snapshots)")
            && e.contains("still busy after 1 attempts"),
        "{e}"
    );

    // Asked for 2 s: still busy; gives up in time, saying so.
    let start = Instant::now();
    let e = refused("2s", "the slot stays taken");
    let took = start.elapsed();
    assert!(
        e.contains("agent busy: ") && e.contains("--retry-for"),
        "{e}"
    );
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_secs(10),
        "gave up after {took:?} with --retry-for 2s"
    );

    // The slot comes free while show is retrying: it gets its snapshot.
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        drop(held);
    });
    let start = Instant::now();
    let objects = agent
        .try_show_with(&["--insecure", "--retry-for", "30s"])
        .unwrap_or_else(|e| panic!("{e}\n--- agent log ---\n{}", agent.log()));
    assert!(
        start.elapsed() >= Duration::from_millis(1000),
        "show waited for the slot"
    );
    assert_matches_kernel(&ns, objects);
    release.join().expect("release");
}
