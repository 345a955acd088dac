//! TLS between agent and client: mutual TLS carries the same exact stream
//! as plaintext, and every client the agent should not serve is turned
//! away with an error that says why, without harm to the agent.

mod pki;

use std::time::{Duration, Instant};

use pki::{client_args, strs, Ca, Dir, Mtls, CLIENT_ID};
use rcgen::ExtendedKeyUsagePurpose;
use routewatch_tests::{add_veth_pair, Agent, Env, Netns, CHECK_TIMEOUT};

/// An agent with mutual TLS and an allow-list in a fresh namespace.
fn mtls_agent(ns: &Netns, dir: &Dir, ca: &Ca) -> (Agent, Mtls) {
    let mtls = Mtls::new(dir, ca, "");
    let agent = Agent::start_tls(ns, &strs(&mtls.agent_args), &strs(&mtls.client_args));
    (agent, mtls)
}

/// `routewatch show` with `args` must fail, saying `expected`.
fn assert_refused(agent: &Agent, args: &[&str], expected: &str) -> String {
    match agent.try_show_with(args) {
        Ok(objects) => panic!(
            "show {args:?} succeeded with {} objects although it must be refused\n--- agent log ---\n{}",
            objects.len(),
            agent.log()
        ),
        Err(e) => {
            assert!(
                e.contains(expected),
                "show {args:?} failed, but without saying {expected:?}:\n{e}"
            );
            e
        }
    }
}

#[test]
fn tail_and_show_over_mutual_tls_equal_the_kernel() {
    let dir = Dir::new();
    let ca = Ca::new("routewatch test CA");
    let mtls = Mtls::new(&dir, &ca, "");
    let env = Env::start_tls(&strs(&mtls.agent_args), &strs(&mtls.client_args));
    env.check();
    env.ns.ip("route add 10.120.0.0/24 via 10.1.0.10");
    env.ns
        .ip("-6 route add 2001:db8:120::/64 via 2001:db8:1::10");
    env.ns.ip("route append 10.120.1.0/24 via 10.1.0.11");
    env.check();
    env.ns.ip("link set vb down");
    env.check();
    let log = env.agent.log();
    assert!(
        log.contains(&format!("identity={CLIENT_ID}")),
        "the agent logs the client's identity:\n{log}"
    );
}

#[test]
fn a_client_without_a_certificate_is_rejected_at_the_first_call() {
    let ns = Netns::new();
    let dir = Dir::new();
    let ca = Ca::new("routewatch test CA");
    let (agent, _) = mtls_agent(&ns, &dir, &ca);
    let ca_only = ["--ca", &dir.path("ca.pem")];
    assert_refused(&agent, &ca_only, "the agent requires a client certificate");
    assert!(agent.log().contains("the client presented no certificate"));
    agent.show();
}

#[test]
fn a_certificate_from_another_ca_is_rejected() {
    let ns = Netns::new();
    let dir = Dir::new();
    let ca = Ca::new("routewatch test CA");
    let (agent, _) = mtls_agent(&ns, &dir, &ca);
    // Same name, other key: only the signature tells them apart.
    let other = Ca::new("routewatch test CA").client(&[CLIENT_ID]);
    let args = client_args(&dir, "other", &other);
    assert_refused(
        &agent,
        &strs(&args),
        "the agent does not trust this client's certificate",
    );
    assert!(agent.log().contains("not issued by --client-ca"));
    // And the client does not trust an agent certificate from another CA.
    let stranger = Ca::new("stranger CA");
    let args = ["--ca", &dir.write("stranger.pem", &stranger.pem)];
    assert_refused(
        &agent,
        &args,
        "not issued by a CA this client trusts (unknown CA)",
    );
}

#[test]
fn an_identity_outside_the_allow_list_gets_permission_denied() {
    let ns = Netns::new();
    let dir = Dir::new();
    let ca = Ca::new("routewatch test CA");
    let (mut agent, _) = mtls_agent(&ns, &dir, &ca);
    for (name, ids) in [
        ("intruder", &["spiffe://routewatch.test/intruder"][..]),
        ("dns", &["collector.routewatch.test"][..]),
    ] {
        let leaf = ca.client(ids);
        let args = client_args(&dir, name, &leaf);
        let e = assert_refused(&agent, &strs(&args), "--allow-client");
        assert!(
            e.contains("PermissionDenied") || e.contains("Permission denied"),
            "{e}"
        );
        assert!(
            e.contains(ids[0]),
            "the refusal names the identity it saw: {e}"
        );
    }
    // A DNS name on the list admits as well as a URI.
    agent.assert_running();
    let leaf = ca.client(&["collector.routewatch.test", CLIENT_ID]);
    let args = client_args(&dir, "both", &leaf);
    agent
        .try_show_with(&strs(&args))
        .expect("a certificate carrying an allowed identity among others");
}

#[test]
fn a_plaintext_client_gets_a_clean_error_and_the_agent_keeps_serving() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let dir = Dir::new();
    let ca = Ca::new("routewatch test CA");
    let (mut agent, _) = mtls_agent(&ns, &dir, &ca);
    let good = agent.tail(&ns);
    good.wait_synced(routewatch_tests::SYNC_TIMEOUT);
    for _ in 0..3 {
        assert_refused(&agent, &["--insecure"], "the agent speaks TLS");
    }
    agent.assert_running();
    ns.ip("route add 10.121.0.0/24 via 10.1.0.10");
    routewatch_tests::eventually_matches_kernel(&ns, || good.objects(), CHECK_TIMEOUT);
    routewatch_tests::eventually_matches_kernel(&ns, || agent.show(), CHECK_TIMEOUT);
}

#[test]
fn a_tls_client_of_a_plaintext_agent_is_told_so() {
    let ns = Netns::new();
    let dir = Dir::new();
    let ca = Ca::new("routewatch test CA");
    let mut agent = Agent::start(&ns);
    let args = ["--ca", &dir.write("ca.pem", &ca.pem)];
    assert_refused(&agent, &args, "the agent is not speaking TLS");
    agent.assert_running();
    agent.show();
}

#[test]
fn expired_certificates_are_rejected_with_a_clear_message() {
    let ns = Netns::new();
    let dir = Dir::new();
    let ca = Ca::new("routewatch test CA");
    let (agent, _) = mtls_agent(&ns, &dir, &ca);
    let old = ca.expired(&[CLIENT_ID], ExtendedKeyUsagePurpose::ClientAuth);
    let args = client_args(&dir, "old", &old);
    assert_refused(
        &agent,
        &strs(&args),
        "this client's certificate: it has expired",
    );
    assert!(agent.log().contains("the client's certificate has expired"));
    drop(agent);

    // An agent whose own certificate expired.
    let ns = Netns::new();
    let agent_cert = ca.expired(&["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    let agent_args = [
        "--tls-cert",
        &dir.write("expired-agent.pem", &agent_cert.cert),
        "--tls-key",
        &dir.write("expired-agent-key.pem", &agent_cert.key),
    ];
    let ca_pem = dir.path("ca.pem");
    let agent = Agent::start_tls(&ns, &agent_args, &["--ca", &ca_pem]);
    let e = assert_refused(
        &agent,
        &["--ca", &ca_pem],
        "the agent's certificate expired at",
    );
    assert!(e.contains("renew it"), "{e}");
}

#[test]
fn a_client_that_never_finishes_its_handshake_is_cut_off() {
    let ns = Netns::new();
    let dir = Dir::new();
    let mtls = Mtls::new(&dir, &Ca::new("routewatch test CA"), "");
    let mut agent_args = strs(&mtls.agent_args);
    agent_args.extend(["--tls-handshake-timeout-secs", "1"]);
    let mut agent = Agent::start_tls(&ns, &agent_args, &strs(&mtls.client_args));
    // Connect and say nothing; `cat` ends when the agent closes.
    let start = Instant::now();
    let out = ns.output(
        "bash",
        &[
            "-c",
            "exec 3<>/dev/tcp/127.0.0.1/50051; timeout 20 cat <&3; echo status=$?",
        ],
    );
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("status=0") && elapsed < Duration::from_secs(10),
        "the agent kept a silent connection open for {elapsed:?} ({stdout})\n--- agent log ---\n{}",
        agent.log()
    );
    assert!(
        elapsed >= Duration::from_millis(900),
        "closed after {elapsed:?}, before the deadline"
    );
    assert!(agent.log().contains("TLS handshake not finished within 1s"));
    agent.assert_running();
    agent.show();
}
