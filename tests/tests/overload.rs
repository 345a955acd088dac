//! An agent under connection pressure keeps serving real clients: idle
//! connections are closed after a bounded time and one address cannot hold
//! them all, running out of file descriptors pauses accepting instead of
//! spinning a core, and floods of refusals are logged with counts rather
//! than a line each.

mod pki;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use pki::{strs, Ca, Dir, Mtls};
use routewatch_tests::flood::{cpu_time, idle_connections, wait_closed};
use routewatch_tests::ops::scrape;
use routewatch_tests::util::poll;
use routewatch_tests::{
    add_veth_pair, assert_matches_kernel, eventually_matches_kernel, Agent, Netns, Tail,
    CHECK_TIMEOUT, SYNC_TIMEOUT,
};

const OPS: &str = "127.0.0.1:9464";
const AGENT: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 50051);
/// Where the idle connections come from: another address than the real
/// clients' 127.0.0.1.
const FLOODER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

fn counter(ns: &Netns, name: &str, labels: &[(&str, &str)]) -> f64 {
    let e = scrape(ns, OPS);
    e.value(name, labels)
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in {e:?}"))
}

/// `show` must succeed, and promptly: a client gives up connecting after 5 s.
fn assert_prompt_show(agent: &Agent, ns: &Netns) {
    let start = Instant::now();
    let objects = agent.try_show().unwrap_or_else(|e| {
        panic!(
            "show failed while idle connections were open: {e}\n--- agent log ---\n{}",
            agent.log()
        )
    });
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "show took {:?}",
        start.elapsed()
    );
    assert_matches_kernel(ns, objects);
}

#[test]
fn idle_tls_connections_from_one_address_do_not_lock_out_real_clients() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let dir = Dir::new();
    let ca = Ca::new("routewatch test CA");
    let mtls = Mtls::new(&dir, &ca, "");
    let mut agent_args = strs(&mtls.agent_args);
    agent_args.extend_from_slice(&["--ops-listen", OPS]);
    let agent = Agent::start_tls(&ns, &agent_args, &strs(&mtls.client_args));
    // More than the handshakes the agent runs at once (256): before, they
    // filled every handshake slot and the accept queue for 10 s.
    let idle = idle_connections(&ns, FLOODER, AGENT, 400);
    std::thread::sleep(Duration::from_millis(300));
    assert_prompt_show(&agent, &ns);
    // Connections beyond --max-connections-per-peer (64) are refused.
    poll(CHECK_TIMEOUT, Duration::from_millis(200), || {
        let refused = counter(&ns, "routewatch_connections_refused_per_peer_total", &[]);
        (refused >= (400 - 64) as f64).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "not all connections beyond the limit were refused: {:?}",
            scrape(&ns, OPS)
        )
    });
    let open = counter(&ns, "routewatch_connections", &[]);
    assert!(
        open <= 64.0,
        "at most 64 connections from one address: {open}"
    );
    drop(idle);
}

#[test]
fn idle_plaintext_connections_are_closed_and_do_not_lock_out_real_clients() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let agent = Agent::start_with(
        &ns,
        &["--first-request-timeout-secs", "2", "--ops-listen", OPS],
    );
    let start = Instant::now();
    let mut idle = idle_connections(&ns, FLOODER, AGENT, 400);
    assert_prompt_show(&agent, &ns);

    // A connection that sent nothing at all...
    let closed = wait_closed(&mut idle[0], start, Duration::from_secs(10)).unwrap_or_else(|| {
        panic!(
            "a connection that never sent a request is still open after 10 s\n--- agent log ---\n{}",
            agent.log()
        )
    });
    assert!(
        closed >= Duration::from_millis(1500),
        "closed after {closed:?}: the client had 2 s"
    );
    // ... and one that spoke HTTP/2 but never started a call.
    let mut speaking = idle_connections(&ns, Ipv4Addr::LOCALHOST, AGENT, 1).remove(0);
    let start = Instant::now();
    std::io::Write::write_all(
        &mut speaking,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0",
    )
    .expect("writing the HTTP/2 preface");
    let closed = wait_closed(&mut speaking, start, Duration::from_secs(10))
        .expect("a connection with a preface but no request is closed too");
    assert!(
        closed >= Duration::from_millis(1500),
        "closed after {closed:?}"
    );

    let idle_closed = counter(&ns, "routewatch_connections_idle_closed_total", &[]);
    assert!(idle_closed >= 2.0, "idle closes are counted: {idle_closed}");
    assert!(
        agent
            .log()
            .contains("no request within 2s of its accept (--first-request-timeout-secs)"),
        "the agent says why it closed them:\n{}",
        agent.log()
    );
    // Real clients are still served, also from the address that was cut off.
    assert_prompt_show(&agent, &ns);
}

#[test]
fn a_client_beyond_its_address_limit_is_told_the_agent_is_busy() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let agent = Agent::start_with(
        &ns,
        &["--max-connections-per-peer", "4", "--ops-listen", OPS],
    );
    // The harness's readiness probe was a connection from 127.0.0.1 too:
    // it counts until the agent has seen it close.
    poll(CHECK_TIMEOUT, Duration::from_millis(50), || {
        (counter(&ns, "routewatch_connections", &[]) == 0.0).then_some(())
    })
    .expect("the readiness probe's connection is closed");
    let idle = idle_connections(&ns, Ipv4Addr::LOCALHOST, AGENT, 4);
    poll(CHECK_TIMEOUT, Duration::from_millis(50), || {
        (counter(&ns, "routewatch_connections", &[]) == 4.0).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the agent did not take the 4 connections: routewatch_connections {}\n--- agent log ---\n{}",
            counter(&ns, "routewatch_connections", &[]),
            agent.log()
        )
    });
    let e = match agent.try_show() {
        Ok(objects) => panic!(
            "a fifth connection from 127.0.0.1 must be refused, but show got {} objects; {:?}\n--- agent log ---\n{}",
            objects.len(),
            scrape(&ns, OPS),
            agent.log()
        ),
        Err(e) => e,
    };
    assert!(
        e.contains("busy") && e.contains("--max-connections-per-peer"),
        "the client says the agent is busy and why: {e}"
    );
    assert!(
        counter(&ns, "routewatch_connections_refused_per_peer_total", &[]) >= 1.0,
        "the refusal is counted"
    );
    drop(idle);
    let objects = poll(CHECK_TIMEOUT, Duration::from_millis(200), || {
        agent.try_show().ok()
    })
    .expect("served again once the idle connections are gone");
    assert_matches_kernel(&ns, objects);
}

#[test]
fn out_of_file_descriptors_the_agent_pauses_accepting_and_keeps_serving() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let agent = Agent::start_via(
        &ns,
        &["prlimit", "--nofile=256:256", "--"],
        "127.0.0.1:50051",
        &["--max-connections-per-peer", "1000", "--ops-listen", OPS],
    );
    let tail = agent.tail(&ns);
    tail.wait_synced(SYNC_TIMEOUT);

    // More connections than the agent has descriptors left: accept fails
    // with EMFILE while they wait in the queue.
    let idle = idle_connections(&ns, FLOODER, AGENT, 300);
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_time(agent.pid());
    let window = Duration::from_secs(4);
    std::thread::sleep(window);
    let used = cpu_time(agent.pid()) - before;
    // A spinning accept loop takes whatever share of a core the machine
    // leaves it (seconds); paused, the agent needs next to nothing.
    assert!(
        used < Duration::from_millis(500),
        "the agent used {used:?} of CPU in {window:?} while out of file descriptors: it spins\n--- agent log ---\n{}",
        agent.log()
    );

    // The subscriber it serves keeps receiving changes.
    ns.ip("route add 10.150.0.0/24 via 10.1.0.10");
    eventually_matches_kernel(&ns, || tail.objects(), CHECK_TIMEOUT);

    let log = agent.log();
    let said = log.matches("cannot accept connections").count();
    assert_eq!(
        said, 1,
        "the failure is logged once, not per attempt:\n{log}"
    );
    assert!(log.contains("EMFILE"), "{log}");

    // Once the idle connections are gone, new clients are served again,
    // and the metrics say what happened.
    drop(idle);
    let objects = poll(CHECK_TIMEOUT, Duration::from_millis(200), || {
        agent.try_show().ok()
    })
    .unwrap_or_else(|| panic!("not served again\n--- agent log ---\n{}", agent.log()));
    assert_matches_kernel(&ns, objects);
    let emfile = counter(
        &ns,
        "routewatch_accept_errors_total",
        &[("reason", "EMFILE")],
    );
    assert!(emfile >= 1.0, "EMFILE is counted: {emfile}");
    assert_eq!(counter(&ns, "routewatch_accept_paused", &[]), 0.0);
    assert!(agent.log().contains("accepting connections again"));
}

#[test]
fn a_flood_of_refused_subscriptions_is_logged_with_counts() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let agent = Agent::start_with(&ns, &["--max-subscribers", "1", "--ops-listen", OPS]);
    let first = agent.tail(&ns);
    first.wait_synced(SYNC_TIMEOUT);
    // Twenty followers that are refused and keep retrying.
    let refused: Vec<Tail> = (0..20).map(|_| agent.tail(&ns)).collect();
    let summary = poll(Duration::from_secs(40), Duration::from_millis(500), || {
        let log = agent.log();
        log.lines()
            .find(|l| l.contains("subscriber refused") && l.contains("more in the last"))
            .map(str::to_owned)
    })
    .unwrap_or_else(|| {
        panic!(
            "no summary line with a count\n--- agent log ---\n{}",
            agent.log()
        )
    });
    let log = agent.log();
    let lines = log.matches("subscriber refused").count();
    let counted = counter(&ns, "routewatch_subscribers_rejected_total", &[]);
    assert!(
        counted >= 40.0,
        "the followers were refused many times: {counted}"
    );
    assert!(
        lines <= 3,
        "{counted} refusals took {lines} log lines:\n{log}"
    );
    assert!(
        summary.contains("--max-subscribers reached ("),
        "the summary counts what it left out: {summary}"
    );
    drop(refused);
}

#[test]
fn a_port_that_never_answers_is_told_apart_from_one_where_nothing_listens() {
    let ns = Netns::new();
    // Something that takes connections (the kernel completes them into its
    // queue) and never answers: what a client sees of a stuck agent.
    let _silent = ns.in_ns(|| std::net::TcpListener::bind("127.0.0.1:50052").expect("bind"));
    let dir = Dir::new();
    let ca = dir.write("ca.pem", &Ca::new("routewatch test CA").pem);
    for (args, expected, not) in [
        (
            vec!["show", "--insecure", "127.0.0.1:50052"],
            "busy",
            "nothing listens",
        ),
        (
            vec!["show", "--ca", &ca, "127.0.0.1:50052"],
            "busy",
            "nothing listens",
        ),
        (
            vec!["show", "--insecure", "127.0.0.1:50053"],
            "nothing listens on that port",
            "busy",
        ),
    ] {
        let e = match routewatch_tests::run_show(ns.name(), &args) {
            Ok(objects) => panic!("{args:?} got {} objects", objects.len()),
            Err(e) => e,
        };
        assert!(
            e.contains(expected) && !e.contains(not),
            "{args:?} must say {expected:?}, not {not:?}: {e}"
        );
    }
}
