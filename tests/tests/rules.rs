//! Policy rules (`ip rule`), the other half of the routing decision: every
//! selector and action of both families added and deleted, the kernel's
//! silent changes of a rule's state (a device named by a rule deleted and
//! created again, a goto target added and removed), a namespace created
//! after the agent started, filters and text output. Each step is checked
//! against `ip -j -d rule show` (and the routes against `ip route`).

use routewatch_tests::bins::client_bin;
use routewatch_tests::{
    add_veth_pair, eventually_matches_kernel, Agent, Env, Netns, CHECK_TIMEOUT, SYNC_TIMEOUT,
};
use serde_json::Value;

fn ip_all(ns: &Netns, cmds: &[&str]) {
    for c in cmds {
        ns.ip(c);
    }
}

/// Our rules of `lines`.
fn rules(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|v| v["object"] == "rule").collect()
}

#[test]
fn every_selector_and_action_of_both_families() {
    let env = Env::start();
    ip_all(
        &env.ns,
        &[
            "rule add pref 100 from 10.0.0.0/8 lookup 100",
            "rule add pref 200 not to 192.168.0.0/16 fwmark 0x10/0xff iif va lookup 200",
            "rule add pref 300 oif vb tos 0x10 goto 32766",
            "rule add pref 400 nop",
            "rule add pref 500 from 1.2.3.4 blackhole",
            "rule add pref 600 prohibit",
            "rule add pref 700 unreachable",
            "rule add pref 800 lookup main suppress_prefixlength 0",
            "rule add pref 900 lookup main suppress_ifgroup 5",
            "rule add pref 1000 uidrange 100-200 lookup 5",
            "rule add pref 1100 sport 1000-2000 dport 80 ipproto tcp lookup 6",
            "rule add pref 1200 realms 3/4 lookup 7",
            "rule add pref 1201 realms 4 lookup 7",
            "rule add pref 1300 tun_id 55 lookup 8",
            "rule add pref 1400 l3mdev",
            "rule add pref 1600 lookup 10 proto bgp",
            "rule add pref 1700 lookup 100000",
            "rule add pref 1800 fwmark 0x5 ipproto udp dport 53 lookup 11",
            // Two rules of one priority: both are kept, in the kernel's order.
            "rule add pref 1900 from 10.1.0.0/16 lookup 12",
            "rule add pref 1900 from 10.2.0.0/16 lookup 13",
            "-6 rule add pref 100 from 2001:db8::/32 lookup 100",
            "-6 rule add pref 50 iif va fwmark 1 lookup 5",
            "-6 rule add pref 60 to 2001:db8:9::/48 ipproto ipv6-icmp lookup 6",
            "-6 rule add pref 70 prohibit",
        ],
    );
    env.check();
    let held = env.agent.show();
    assert_eq!(
        rules(&held).len(),
        3 + 20 + 2 + 4,
        "the default rules of both families and every rule added"
    );
    ip_all(
        &env.ns,
        &[
            "rule del pref 100",
            "rule del pref 200",
            "rule del pref 500",
            "rule del pref 1900 from 10.1.0.0/16 lookup 12",
            "-6 rule del pref 50",
            "-6 rule del pref 100 from 2001:db8::/32 lookup 100",
        ],
    );
    env.check();
    // A rule "replaced" the way `ip` allows: deleted, and added again with
    // another table at the same priority.
    ip_all(
        &env.ns,
        &["rule del pref 1700", "rule add pref 1700 lookup 100001"],
    );
    env.check();
}

#[test]
fn rules_naming_a_deleted_device_are_detached_and_attached_again() {
    let env = Env::start();
    ip_all(
        &env.ns,
        &[
            "rule add pref 100 iif vb lookup 5",
            "rule add pref 110 oif vb lookup 6",
            "-6 rule add pref 100 iif vb lookup 5",
            "rule add pref 120 iif nosuch lookup 7",
        ],
    );
    env.check();
    // Deleting va takes its peer vb with it; the kernel detaches the rules
    // naming vb and says nothing about them.
    env.ns.ip("link del va");
    env.check();
    let held = env.agent.show();
    assert!(
        held.iter().any(|v| v["object"] == "rule"
            && v["priority"] == 110
            && v["oif_detached"].is_null()
            && v.get("oif_detached").is_some()),
        "the rule on vb is shown detached: {held:?}"
    );
    // A device of that name appears: attached again, again silently.
    env.ns.ip("link add vb type veth peer name vc");
    env.check();
    env.ns.ip("link add nosuch type veth peer name nosuch2");
    env.check();
}

#[test]
fn goto_is_resolved_and_unresolved_as_its_target_comes_and_goes() {
    let env = Env::start();
    env.ns.ip("rule add pref 100 goto 400");
    env.ns.ip("-6 rule add pref 100 goto 400");
    env.check();
    env.ns.ip("rule add pref 400 lookup 40");
    env.check();
    env.ns.ip("-6 rule add pref 400 lookup 40");
    env.check();
    env.ns.ip("rule del pref 400");
    env.check();
    let held = env.agent.show();
    let goto = |family: &str| {
        held.iter()
            .find(|v| v["object"] == "rule" && v["family"] == family && v["priority"] == 100)
            .cloned()
            .unwrap_or_else(|| panic!("no goto rule of {family}: {held:?}"))
    };
    assert!(goto("inet").get("unresolved").is_some(), "{held:?}");
    assert!(goto("inet6").get("unresolved").is_none(), "{held:?}");
}

#[test]
fn rules_of_a_namespace_created_after_the_agent_started() {
    let host = Netns::new();
    add_veth_pair(&host);
    let agent = Agent::start_with(&host, &["--netns", "all"]);
    let tail = agent.tail(&host);
    tail.wait_synced(SYNC_TIMEOUT);
    let late = Netns::new();
    add_veth_pair(&late);
    late.ip("rule add pref 100 from 10.9.0.0/16 lookup 9");
    late.ip("-6 rule add pref 100 from 2001:db8:9::/48 lookup 9");
    let in_late = || {
        tail.objects();
        tail.replay().objects_in(late.name())
    };
    eventually_matches_kernel(&late, in_late, CHECK_TIMEOUT);
    late.ip("rule del pref 100 from 10.9.0.0/16 lookup 9");
    late.ip("rule add pref 150 iif va blackhole");
    eventually_matches_kernel(&late, in_late, CHECK_TIMEOUT);
}

#[test]
fn filters_select_rules_by_object_family_and_table() {
    let env = Env::start();
    ip_all(
        &env.ns,
        &[
            // First: the kernel checks the gateway through the rules.
            "route add 10.9.0.0/24 via 10.1.0.10 table 100",
            "rule add pref 100 from 10.0.0.0/8 lookup 100",
            "-6 rule add pref 100 from 2001:db8::/32 lookup 100",
            "rule add pref 200 blackhole",
        ],
    );
    env.check();
    let show = |args: &[&str]| {
        env.agent
            .try_show_with(&[&["--insecure"], args].concat())
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let only_rules = show(&["--object", "rule"]);
    assert!(only_rules
        .iter()
        .filter(|v| v.get("object").is_some())
        .all(|v| v["object"] == "rule"));
    assert_eq!(rules(&only_rules).len(), 3 + 2 + 3);

    let v6_rules = show(&["--object", "rule", "--family", "inet6"]);
    assert_eq!(rules(&v6_rules).len(), 3, "{v6_rules:?}");

    // A table filter holds the routes of the table and the rules that look
    // it up: the whole decision about it.
    let table_100 = show(&["--table", "100"]);
    let objects: Vec<&Value> = table_100
        .iter()
        .filter(|v| v.get("object").is_some())
        .collect();
    assert_eq!(objects.len(), 3, "{table_100:?}");
    assert_eq!(rules(&table_100).len(), 2, "{table_100:?}");

    // Fields about routes never match a rule.
    let by_prefix = show(&["--object", "rule", "--within", "10.0.0.0/8"]);
    assert!(rules(&by_prefix).is_empty(), "{by_prefix:?}");
}

#[test]
fn text_lines_read_like_ip_rule_show() {
    let env = Env::start();
    ip_all(
        &env.ns,
        &[
            "rule add pref 100 from 10.0.0.0/8 lookup 100",
            "rule add pref 200 not to 192.168.0.0/16 fwmark 0x10/0xff iif va lookup 200",
            "rule add pref 300 goto 350",
            "rule add pref 1100 uidrange 100-200 sport 1000-2000 dport 80 ipproto tcp tun_id 55 lookup 100000 suppress_prefixlength 0 realms 3/4 proto bgp",
            "rule add pref 1400 l3mdev",
            "rule add pref 1500 iif nosuch lookup 9",
            "-6 rule add pref 100 from 2001:db8::/32 lookup 100",
        ],
    );
    env.check();
    let out = env.ns.output(
        client_bin(),
        &[
            "show",
            "--insecure",
            "-o",
            "text",
            "--object",
            "rule",
            env.agent.addr(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let mut ip: Vec<String> = Vec::new();
    for family in ["-4", "-6"] {
        ip.extend(
            env.ns
                .ip(&format!("{family} rule show"))
                .lines()
                .map(|l| l.trim_end().to_owned()),
        );
    }
    assert_eq!(ours, ip, "our text lines, in order, are `ip rule show`'s");
}

#[test]
fn rule_counts_are_reported() {
    let ops = "127.0.0.1:9465";
    let env = Env::start_with(&["--ops-listen", ops]);
    env.ns.ip("rule add pref 100 lookup 100");
    env.check();
    let metrics = routewatch_tests::ops::scrape(&env.ns, ops);
    let rules = |family| metrics.value("routewatch_rules", &[("netns", ""), ("family", family)]);
    assert_eq!(rules("inet"), Some(4.0));
    assert_eq!(rules("inet6"), Some(2.0));
}
