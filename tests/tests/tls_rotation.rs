//! Certificate rotation without a restart: the agent re-reads its TLS
//! files when they change (and on SIGHUP). New connections get the new
//! material, streams opened before go on, and unusable files are reported
//! while the old material keeps serving. A running client re-reads its own
//! files too.

mod pki;

use std::time::Duration;

use pki::{strs, Ca, Dir, Mtls};
use routewatch_tests::util::{poll, signal};
use routewatch_tests::{
    add_veth_pair, eventually_matches_kernel, Agent, Env, Netns, CHECK_TIMEOUT, SYNC_TIMEOUT,
};

/// How long a change of the files may take to reach new connections
/// (the tests check every second).
const RELOAD_TIMEOUT: Duration = Duration::from_secs(20);

/// Waits until `show` with `client_args` works; panics with the last error.
fn wait_until_accepted(agent: &Agent, client_args: &[String]) {
    let mut last = String::new();
    let ok = poll(RELOAD_TIMEOUT, Duration::from_millis(200), || {
        match agent.try_show_with(&strs(client_args)) {
            Ok(_) => Some(()),
            Err(e) => {
                last = e;
                None
            }
        }
    });
    if ok.is_none() {
        panic!(
            "new connections were not served with the new material within {RELOAD_TIMEOUT:?}; last error:\n{last}\n--- agent log ---\n{}",
            agent.log()
        );
    }
}

/// Puts `new`'s agent files where the agent reads `old`'s, one file at a
/// time, each replaced by a rename (as Kubernetes and cert-manager do).
fn rotate(dir: &Dir, from: &str, to: &str) {
    for name in ["agent.pem", "agent-key.pem", "client-ca.pem"] {
        let text = std::fs::read_to_string(dir.path(&format!("{from}{name}"))).unwrap();
        dir.replace(&format!("{to}{name}"), &text);
    }
}

#[test]
fn rotation_to_a_new_ca_applies_to_new_connections_while_open_streams_go_on() {
    let dir = Dir::new();
    let old = Mtls::new(&dir, &Ca::new("old CA"), "");
    let new = Mtls::new(&dir, &Ca::new("new CA"), "next-");
    let mut agent_args = old.agent_args.clone();
    agent_args.extend(["--tls-reload-secs".into(), "1".into()]);
    let env = Env::start_tls(&strs(&agent_args), &strs(&old.client_args));

    rotate(&dir, "next-", "");
    wait_until_accepted(&env.agent, &new.client_args);
    // New connections need the new CA now: the old one no longer verifies
    // the agent.
    let e = env
        .agent
        .try_show_with(&strs(&old.client_args))
        .expect_err("a client with the old CA must be refused after the rotation");
    assert!(
        e.contains("not issued by a CA this client trusts"),
        "refused, but not for the CA: {e}"
    );
    assert!(env.agent.log().contains("TLS material reloaded"));

    // The stream opened before the rotation keeps streaming, on its old
    // connection: no reconnect.
    env.ns.ip("route add 10.130.0.0/24 via 10.1.0.10");
    env.ns
        .ip("-6 route add 2001:db8:130::/64 via 2001:db8:1::10");
    eventually_matches_kernel(&env.ns, || env.tail.objects(), CHECK_TIMEOUT);
    let stderr = env.tail.stderr();
    assert!(
        !stderr.contains("disconnected"),
        "the open stream was cut by the rotation:\n{stderr}"
    );
    eventually_matches_kernel(
        &env.ns,
        || env.agent.try_show_with(&strs(&new.client_args)).unwrap(),
        CHECK_TIMEOUT,
    );
}

#[test]
fn unusable_new_files_keep_the_old_material_and_sighup_reloads_at_once() {
    let dir = Dir::new();
    let old = Mtls::new(&dir, &Ca::new("old CA"), "");
    let new = Mtls::new(&dir, &Ca::new("new CA"), "next-");
    // Checks of the files are an hour apart: only SIGHUP reloads here.
    let mut agent_args = old.agent_args.clone();
    agent_args.extend(["--tls-reload-secs".into(), "3600".into()]);
    let env = Env::start_tls(&strs(&agent_args), &strs(&old.client_args));
    let hup = || signal(env.agent.pid(), "HUP");
    let wait_for_log = |needle: &str, count: usize| {
        let seen = poll(RELOAD_TIMEOUT, Duration::from_millis(100), || {
            (env.agent.log().matches(needle).count() >= count).then_some(())
        });
        assert!(
            seen.is_some(),
            "the agent did not log {needle:?} {count} times\n--- agent log ---\n{}",
            env.agent.log()
        );
    };

    // Not PEM at all.
    dir.replace("agent.pem", "this is not a certificate\n");
    hup();
    wait_for_log("new TLS material is unusable", 1);
    wait_for_log("holds no certificate", 1);
    env.agent
        .try_show_with(&strs(&old.client_args))
        .expect("the old material still serves");

    // A certificate with someone else's key.
    rotate(&dir, "next-", "");
    let stranger = Ca::new("third CA").agent(&["127.0.0.1"]);
    dir.replace("agent-key.pem", &stranger.key);
    hup();
    wait_for_log("new TLS material is unusable", 2);
    wait_for_log("does not match the certificate", 1);
    env.agent
        .try_show_with(&strs(&old.client_args))
        .expect("the old material still serves");

    // A complete, usable set: taken at once on SIGHUP.
    rotate(&dir, "next-", "");
    hup();
    wait_until_accepted(&env.agent, &new.client_args);
    env.agent
        .try_show_with(&strs(&old.client_args))
        .expect_err("the old CA no longer verifies the agent");
    env.ns.ip("route add 10.131.0.0/24 via 10.1.0.10");
    eventually_matches_kernel(&env.ns, || env.tail.objects(), CHECK_TIMEOUT);
}

/// A running client re-reads its own TLS files when they change: when its
/// CA, certificate and key are renewed under it (to a new CA, as the agent
/// is), it reconnects with them instead of failing every handshake until
/// someone restarts it.
#[test]
fn a_running_client_reconnects_with_its_renewed_files() {
    let dir = Dir::new();
    let old = Mtls::new(&dir, &Ca::new("old CA"), "");
    let new = Mtls::new(&dir, &Ca::new("new CA"), "next-");
    let ns = Netns::new();
    add_veth_pair(&ns);
    let agent = Agent::start_tls(&ns, &strs(&old.agent_args), &strs(&old.client_args));
    let tail = agent.tail(&ns);
    tail.wait_synced(SYNC_TIMEOUT);
    // The agent goes down, the client's files are renewed under the running
    // tail, and the agent comes back with the new CA's material.
    agent.stop(Duration::from_secs(10));
    for name in ["ca.pem", "client.pem", "client-key.pem"] {
        let text = std::fs::read_to_string(dir.path(&format!("next-{name}"))).unwrap();
        dir.replace(name, &text);
    }
    let agent = Agent::start_tls(&ns, &strs(&new.agent_args), &strs(&new.client_args));
    ns.ip("route add 10.132.0.0/24 via 10.1.0.10");
    eventually_matches_kernel(&ns, || tail.objects(), CHECK_TIMEOUT);
    let stderr = tail.stderr();
    assert!(
        stderr.contains("TLS files changed: new connections use them"),
        "{stderr}\n--- agent log ---\n{}",
        agent.log()
    );
}
