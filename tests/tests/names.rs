//! iproute2's names as the agent's host has them: a table named in the
//! agent's `--iproute2-dir` is printed by that name, filters take it, and a
//! name the agent does not know is refused with the names it does.

use std::time::Duration;

use routewatch_tests::util::{poll, temp_path, TempDir};
use routewatch_tests::{add_veth_pair, run_show, Agent, Env, Netns, CHECK_TIMEOUT, SYNC_TIMEOUT};
use serde_json::Value;

const DST: &str = "10.77.0.0/24";

/// An iproute2 directory whose rt_tables names table 1234 `blue`.
fn iproute2_dir() -> TempDir {
    let dir = TempDir::new("iproute2");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("rt_tables"), "# this site's tables\n1234\tblue\n").unwrap();
    dir
}

fn the_route(objects: &[Value]) -> Option<Value> {
    objects.iter().find(|o| o["dst"] == DST).cloned()
}

#[test]
fn a_table_named_in_the_agent_s_rt_tables() {
    let dir = iproute2_dir();
    let env = Env::start_with(&["--iproute2-dir", dir.to_str().unwrap()]);

    env.ns.ip(&format!("route add {DST} dev va table 1234"));

    // What a live change says ...
    let live = poll(CHECK_TIMEOUT, Duration::from_millis(100), || {
        the_route(&env.tail.objects())
    })
    .expect("the tail receives the route");
    assert_eq!(live["table"], "blue", "{live}");
    // ... and a snapshot.
    let shown = the_route(&env.agent.show()).expect("show lists the route");
    assert_eq!(shown["table"], "blue", "{shown}");
    assert_eq!(shown["protocol"], "boot", "built-in names hold: {shown}");

    // The agent reads the name in filters.
    for table in ["blue", "1234"] {
        let only: Vec<Value> = env
            .agent
            .try_show_with(&["--insecure", "--table", table])
            .unwrap_or_else(|e| panic!("--table {table}: {e}"))
            .into_iter()
            .filter(|o| o["object"] == "route")
            .collect();
        assert_eq!(only.len(), 1, "--table {table}: {only:?}");
        assert_eq!(only[0]["dst"], DST);
    }

    // A rule that looks the table up reads the name too, and a table
    // filter holds it beside the table's routes.
    env.ns
        .ip("rule add pref 100 from 10.77.0.0/24 lookup 1234 proto static");
    let rule = poll(CHECK_TIMEOUT, Duration::from_millis(100), || {
        env.tail
            .objects()
            .into_iter()
            .find(|o| o["object"] == "rule" && o["priority"] == 100)
    })
    .expect("the tail receives the rule");
    assert_eq!(
        (&rule["table"], &rule["protocol"]),
        (&"blue".into(), &"static".into()),
        "{rule}"
    );
    let blue = env
        .agent
        .try_show_with(&["--insecure", "--table", "blue"])
        .unwrap_or_else(|e| panic!("--table blue: {e}"));
    let kinds: Vec<&Value> = blue.iter().filter_map(|o| o.get("object")).collect();
    assert_eq!(kinds, ["rule", "route"], "{blue:?}");

    // A name it does not know: refused, saying which names there are and
    // where they come from.
    let e = env
        .agent
        .try_show_with(&["--insecure", "--table", "bleu"])
        .expect_err("an unknown table name is refused");
    for needed in ["table", "\"bleu\"", "blue", "main", "rt_tables"] {
        assert!(e.contains(needed), "the error names {needed}: {e}");
    }

    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn names_do_not_make_a_restart_from_the_state_dir_resend_anything() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let (names, state) = (iproute2_dir(), TempDir::new("state"));
    let args = [
        "--iproute2-dir",
        names.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ];
    ns.ip(&format!("route add {DST} dev va table 1234"));
    let agent = Agent::start_with(&ns, &args);
    let tail = agent.tail(&ns);
    tail.wait_synced(SYNC_TIMEOUT);
    agent.stop(Duration::from_secs(10));

    // The restarted agent compares the table it kept (written with names)
    // with a fresh dump (numbers only): nothing differs, nothing is sent.
    let _agent = Agent::start_with(&ns, &args);
    ns.ip("route add 10.78.0.0/24 dev va table 1234");
    let after = poll(CHECK_TIMEOUT, Duration::from_millis(100), || {
        tail.objects()
            .into_iter()
            .find(|o| o["dst"] == "10.78.0.0/24")
    })
    .expect("the tail follows the restarted agent");
    assert_eq!(after["table"], "blue");
    let reconciled: Vec<String> = tail
        .lines()
        .into_iter()
        .filter(|l| l.contains(r#""origin":"reconcile""#))
        .collect();
    assert!(reconciled.is_empty(), "spurious changes: {reconciled:?}");
    let _ = std::fs::remove_dir_all(&names);
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn the_cli_in_process_reads_names_as_the_agent_does() {
    let ns = Netns::new();
    add_veth_pair(&ns);
    let dir = iproute2_dir();
    ns.ip(&format!("route add {DST} dev va table 1234"));
    let dir_arg = dir.to_str().unwrap();
    let shown = run_show(
        ns.name(),
        &["show", "-o", "json", "--iproute2-dir", dir_arg],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let route = the_route(&shown).expect("show lists the route");
    assert_eq!(route["table"], "blue", "{route}");
    let only = run_show(
        ns.name(),
        &[
            "show",
            "-o",
            "json",
            "--iproute2-dir",
            dir_arg,
            "--table",
            "blue",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(only.iter().filter(|o| o["object"] == "route").count(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unreadable_iproute2_dir_stops_the_agent_with_a_clear_error() {
    let ns = Netns::new();
    let dir = temp_path("no-such-iproute2");
    let out = ns.output(
        routewatch_tests::bins::agent_bin(),
        &[
            "--insecure",
            "--listen",
            "127.0.0.1:50051",
            "--iproute2-dir",
            dir.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--iproute2-dir") && stderr.contains(dir.to_str().unwrap()),
        "{stderr}"
    );
}
