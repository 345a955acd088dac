//! Exit statuses scripts can rely on (README "Exit status"): 0 done, 2 a
//! wrong command line or environment variable, 3 an agent not reached, 4
//! TLS or authentication refused, 5 a followed agent lost for good.

mod pki;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use pki::{strs, Ca, Dir, Mtls};
use routewatch_tests::bins::client_bin;
use routewatch_tests::util::{terminate, wait_timeout};
use routewatch_tests::{Agent, Netns, Tail, SYNC_TIMEOUT};

/// `routewatch ARGS` in `ns` with `env` set, to its end (at most 30 s):
/// the exit status and stderr.
fn run(ns: &Netns, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = ns.command(client_bin(), args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn routewatch");
    let status = match wait_timeout(&mut child, Duration::from_secs(30)) {
        Some(s) => s,
        None => {
            terminate(&mut child, Duration::from_secs(1));
            panic!("routewatch {args:?} did not exit within 30 s");
        }
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code(), stderr)
}

#[test]
fn an_agent_that_cannot_be_reached_is_status_3() {
    let ns = Netns::new();
    let (code, stderr) = run(&ns, &["show", "--insecure", "127.0.0.1:1"], &[]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("cannot connect to 127.0.0.1:1"), "{stderr}");
    let (code, stderr) = run(
        &ns,
        &["tail", "--insecure", "--retries", "1", "127.0.0.1:1"],
        &[],
    );
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains("giving up after 2 failed attempts in a row"),
        "{stderr}"
    );
}

#[test]
fn an_agent_that_never_answers_is_status_3_after_the_connect_timeout() {
    let ns = Netns::new();
    // Accepts connections and says nothing.
    let mut silent = ns.spawn(
        "python3",
        &[
            "-c",
            "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('127.0.0.1',50999))\ns.listen(8)\nprint('listening',flush=True)\nc=[]\nwhile True: c.append(s.accept())",
        ],
    );
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(silent.stdout.as_mut().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "listening");
    client_bin(); // built before the clock starts
    let started = std::time::Instant::now();
    let (code, stderr) = run(
        &ns,
        &[
            "show",
            "--insecure",
            "--connect-timeout",
            "0.5",
            "127.0.0.1:50999",
        ],
        &[],
    );
    let took = started.elapsed();
    let _ = silent.kill();
    let _ = silent.wait();
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("within 0.5s"), "{stderr}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
}

#[test]
fn a_refused_certificate_is_status_4() {
    let ns = Netns::new();
    let dir = Dir::new();
    let ca = Ca::new("routewatch test CA");
    let mtls = Mtls::new(&dir, &ca, "");
    let agent = Agent::start_tls(&ns, &strs(&mtls.agent_args), &strs(&mtls.client_args));
    let ca_only = ["--ca", &dir.path("ca.pem")];
    let mut show = vec!["show"];
    show.extend(ca_only);
    show.push(agent.addr());
    let (code, stderr) = run(&ns, &show, &[]);
    assert_eq!(code, Some(4), "{stderr}");
    let mut tail = vec!["tail", "--retries", "0"];
    tail.extend(ca_only);
    tail.push(agent.addr());
    let (code, stderr) = run(&ns, &tail, &[]);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("client certificate"), "{stderr}");
}

#[test]
fn a_followed_agent_lost_beyond_the_retries_is_status_5() {
    let ns = Netns::new();
    let agent = Agent::start(&ns);
    let tail = Tail::with_args(
        &ns,
        &[
            "tail",
            "-o",
            "json",
            "--insecure",
            "--retries",
            "2",
            "--connect-timeout",
            "0.5",
            agent.addr(),
        ],
    );
    tail.wait_synced(SYNC_TIMEOUT);
    agent.stop_with("KILL", Duration::from_secs(10));
    let status = tail.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(5), "{}", tail.report());
    assert!(
        tail.stderr().contains("giving up after 3 failed attempts"),
        "{}",
        tail.report()
    );
}

#[test]
fn a_bad_value_from_the_environment_is_status_2_and_names_the_variable() {
    let ns = Netns::new();
    let (code, stderr) = run(&ns, &["show"], &[("ROUTEWATCH_CONNECT_TIMEOUT", "soon")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("environment variable ROUTEWATCH_CONNECT_TIMEOUT"),
        "{stderr}"
    );
    assert!(stderr.contains("Usage: routewatch show"), "{stderr}");
    let (code, stderr) = run(&ns, &["tail"], &[("ROUTEWATCH_TARGETS", "node1")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("environment variable ROUTEWATCH_TARGETS"),
        "{stderr}"
    );
    // A filter value, checked once the command line is read.
    let (code, stderr) = run(&ns, &["show"], &[("ROUTEWATCH_FAMILY", "inet7")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--family inet7"), "{stderr}");
    assert!(
        stderr.contains("environment variable ROUTEWATCH_FAMILY"),
        "{stderr}"
    );
    assert!(stderr.contains("Usage: routewatch show"), "{stderr}");
    // The same value on the command line is blamed on the flag alone.
    let (code, stderr) = run(&ns, &["tail", "--until", "soon"], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--until"), "{stderr}");
    assert!(!stderr.contains("environment"), "{stderr}");
    assert!(stderr.contains("Usage: routewatch tail"), "{stderr}");
    // An error found after the command line is read: the usage line too.
    let (code, stderr) = run(&ns, &["tail", "-o", "json-array"], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("Usage: routewatch tail"), "{stderr}");
}
