//! What `show` prints in each format, checked against what `ip` lists:
//! the order of `ip route show`, the summary's counts, and every object
//! once in table, text and jsonpb output.

use std::collections::BTreeMap;

use routewatch_tests::bins::client_bin;
use routewatch_tests::compare::{kernel_nexthops, kernel_routes, kernel_rules};
use routewatch_tests::{add_veth_pair, run_show, Agent, Netns};
use serde_json::Value;

fn populated() -> (Netns, Agent) {
    populated_after(|_| {})
}

/// [`populated`], with `prepare` run on the namespace before the routes
/// are added.
fn populated_after(prepare: impl Fn(&Netns)) -> (Netns, Agent) {
    let ns = Netns::new();
    add_veth_pair(&ns);
    prepare(&ns);
    ns.ip_batch(
        "route add 10.0.0.0/8 via 10.1.0.10 proto bgp
route add 10.0.0.0/16 via 10.1.0.10 proto static
route add 10.0.0.0/24 via 10.1.0.10 metric 5
route add 10.0.0.0/24 via 10.1.0.10 metric 1
route add 10.0.0.0/24 via 10.1.0.10 tos 0x10
route add 10.0.0.128/25 via 10.1.0.10 proto bgp
route add 9.0.0.0/8 via 10.2.0.10 proto ospf
route add default via 10.1.0.10
route add 1.2.3.4 via 10.1.0.10 proto bgp
route add 192.168.0.0/16 via 10.1.0.10 table 1000 proto bgp
route add 10.5.0.0/16 via 10.1.0.10 table 300
route add 10.5.0.0/16 via 10.1.0.10 table 2 proto bgp
route add 2001:db8:5::/64 via 2001:db8:1::10
route add 2001:db8::/32 via 2001:db8:1::10 proto bgp
route add 2001:db8:5::/48 via 2001:db8:1::10 metric 50
route add 2001:db8:5::/64 via 2001:db8:1::10 metric 50
route add ::/0 via 2001:db8:1::10 metric 10
route add 2001:db8:5::/64 via 2001:db8:1::10 table 7
nexthop add id 1 via 10.1.0.10 dev va
nexthop add id 2 via 10.2.0.10 dev vb
",
    );
    let agent = Agent::start(&ns);
    (ns, agent)
}

fn show(ns: &Netns, agent: &Agent, args: &[&str]) -> String {
    let mut full = vec!["show", "--insecure", agent.addr()];
    full.extend_from_slice(args);
    let out = ns.output(client_bin(), &full);
    assert!(
        out.status.success(),
        "{full:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// (dst, metric, tos) of each route, in order.
fn order(routes: &[Value]) -> Vec<(String, u64, String)> {
    routes
        .iter()
        .map(|r| {
            (
                r["dst"].as_str().unwrap_or("").to_owned(),
                r["metric"].as_u64().unwrap_or(0),
                r["tos"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn show_lists_routes_in_ip_route_show_s_order() {
    let (ns, agent) = populated();
    for family in ["-4", "-6"] {
        let ours: Vec<Value> = run_show(
            ns.name(),
            &["show", "--insecure", "-o", "json", family, agent.addr()],
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .filter(|l| l["object"] == "route")
        .collect();
        let kernel = ns.ip_json(&format!("{family} route show table all"));
        assert_eq!(
            order(&ours),
            order(kernel.as_array().unwrap()),
            "{family}: ours, then ip's"
        );
    }
}

#[test]
fn summary_counts_what_ip_lists_per_table_and_protocol() {
    let (ns, agent) = populated();
    let (v4, v6) = kernel_routes(&ns);
    let mut want: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for (routes, v6) in [(&v4, false), (&v6, true)] {
        for r in routes {
            let key = (
                r["table"].as_str().unwrap().to_owned(),
                r["protocol"].as_str().unwrap().to_owned(),
            );
            let counts = want.entry(key).or_default();
            if v6 {
                counts.1 += 1;
            } else {
                counts.0 += 1;
            }
        }
    }
    let lines = run_show(
        ns.name(),
        &[
            "show",
            "--insecure",
            "--summary",
            "-o",
            "json",
            agent.addr(),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let got: BTreeMap<(String, String), (u64, u64)> = lines
        .iter()
        .map(|l| {
            let inet = l["inet"].as_u64().unwrap();
            let inet6 = l["inet6"].as_u64().unwrap();
            assert_eq!(l["routes"].as_u64(), Some(inet + inet6), "{l}");
            let key = (
                l["table"].as_str().unwrap().to_owned(),
                l["protocol"].as_str().unwrap().to_owned(),
            );
            (key, (inet, inet6))
        })
        .collect();
    assert_eq!(got, want);
    let text = show(&ns, &agent, &["--summary"]);
    assert!(
        text.starts_with("HOST  TABLE  PROTO   INET  INET6  ROUTES\n"),
        "{text}"
    );
    assert_eq!(text.lines().count(), want.len() + 1, "{text}");
}

#[test]
fn table_text_and_jsonpb_print_every_object_once() {
    let (ns, agent) = populated();
    let (v4, v6) = kernel_routes(&ns);
    let (rules4, rules6) = kernel_rules(&ns);
    let objects = v4.len() + v6.len() + kernel_nexthops(&ns).len() + rules4.len() + rules6.len();

    let table = show(&ns, &agent, &["-o", "table"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["TABLE", "DST", "TYPE", "VIA", "DEV", "PROTO", "SCOPE", "METRIC", "SRC"]
    );
    assert_eq!(lines.count(), objects, "{table}");
    let row = [
        "1000",
        "192.168.0.0/16",
        "unicast",
        "10.1.0.10",
        "va",
        "bgp",
    ];
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().take(6).eq(row.iter().copied())),
        "{table}"
    );

    let text = show(&ns, &agent, &["-o", "text"]);
    assert_eq!(text.lines().count(), objects, "{text}");
    assert!(
        text.contains("192.168.0.0/16 via 10.1.0.10 dev va table 1000 proto bgp\n"),
        "{text}"
    );

    let jsonpb = show(&ns, &agent, &["-o", "jsonpb"]);
    let events: Vec<Value> = jsonpb
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let changes = events.iter().filter(|e| e["event"]["change"].is_object());
    assert_eq!(changes.count(), objects, "{jsonpb}");
    assert!(
        events
            .iter()
            .any(|e| e["event"]["sync"].is_object() && e["host"].is_string()),
        "a sync marker: {jsonpb}"
    );
    assert!(jsonpb.contains(r#""action":"ACTION_ADD","origin":"ORIGIN_DUMP""#));
}

#[test]
fn completions_and_the_manual_page_are_printed() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(client_bin())
            .args(args)
            .output()
            .expect("runs");
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    assert!(run(&["completions", "bash"]).contains("_routewatch()"));
    assert!(run(&["completions", "zsh"]).starts_with("#compdef routewatch"));
    assert!(run(&["completions", "fish"]).contains("complete -c routewatch"));
    let page = run(&["man"]);
    assert!(page.contains(".TH routewatch 1"), "{}", &page[..200]);
    let agent = run(&["man", "--agent"]);
    assert!(
        agent.contains(".TH routewatch-agent 8"),
        "{}",
        &agent[..200]
    );
    let dir = routewatch_tests::util::temp_path("man");
    run(&["man", "--dir", &dir.display().to_string()]);
    for page in [
        "routewatch.1",
        "routewatch-tail.1",
        "routewatch-show.1",
        "routewatch-agent.8",
    ] {
        let text =
            std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".SH ENVIRONMENT"), "{page}");
        assert!(text.contains(".SH \"EXIT STATUS\""), "{page}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_array_is_the_array_ip_j_d_route_show_prints() {
    // IPv6 on one device only: each device has its own ff00::/8 route, and
    // routes that share table, prefix and metric come in arrival order
    // (see show's order), which this comparison of whole arrays must not
    // depend on.
    let (ns, agent) = populated_after(|ns| ns.sysctl("net/ipv6/conf/vb/disable_ipv6", "1"));
    let mut kernel = Vec::new();
    for family in ["-4", "-6"] {
        let listed = ns.ip_json(&format!("-d {family} route show table all"));
        kernel.extend(listed.as_array().cloned().unwrap_or_default());
    }
    let want = Value::Array(kernel);
    let through_agent = show(&ns, &agent, &["-o", "json-array"]);
    let in_process = ns.output(client_bin(), &["show", "-o", "json-array"]);
    assert!(in_process.status.success(), "{in_process:?}");
    for (name, printed) in [
        ("through the agent", through_agent),
        (
            "in process",
            String::from_utf8(in_process.stdout).expect("UTF-8"),
        ),
    ] {
        assert_eq!(printed.lines().count(), 1, "{name}: one line: {printed}");
        let got: Value = serde_json::from_str(&printed)
            .unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {printed}"));
        let (g, w) = (got.as_array().unwrap(), want.as_array().unwrap());
        if let Some(i) = (0..g.len().min(w.len())).find(|&i| g[i] != w[i]) {
            panic!("{name}: element {i} differs:\nours {}\nip's {}", g[i], w[i]);
        }
        assert_eq!(
            got, want,
            "{name}: ours, then `ip -j -d -4/-6 route show table all`"
        );
    }
    // The same jq program answers alike.
    let jq = |input: &str| {
        let mut child = std::process::Command::new("jq")
            .args(["-c", "[.[] | select(.protocol == \"bgp\") | .dst]"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("jq is needed for this test (apt-get install jq)");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    };
    let ours = jq(&show(&ns, &agent, &["-o", "json-array"]));
    assert_eq!(ours, jq(&want.to_string()));
    assert!(ours.contains("192.168.0.0/16"), "{ours}");

    // tail streams: it refuses the array format and says what to use.
    let out = ns.output(client_bin(), &["tail", "-o", "json-array"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("jq -s"), "{stderr}");
}
