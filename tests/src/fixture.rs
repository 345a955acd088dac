//! The common test topology and a ready-made environment (namespace, agent,
//! tail) with one-call checks.

use std::time::Duration;

use crate::agent::Agent;
use crate::compare::{eventually_all_match_kernel, eventually_matches_kernel};
use crate::netns::Netns;
use crate::tail::Tail;

/// IPv4 address of `va` (prefix 10.1.0.0/24; gateways 10.1.0.10.. are
/// reachable through `va` and not local).
pub const VA4: &str = "10.1.0.1";
/// IPv4 address of `vb` (prefix 10.2.0.0/24).
pub const VB4: &str = "10.2.0.1";
/// IPv6 address of `va` (prefix 2001:db8:1::/64).
pub const VA6: &str = "2001:db8:1::1";
/// IPv6 address of `vb` (prefix 2001:db8:2::/64).
pub const VB6: &str = "2001:db8:2::1";

/// Default deadline for a change to reach `show` and the tail.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(20);
/// Deadline for the tail's snapshot.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// Adds the veth pair `va`/`vb` to `ns` (both ends in `ns`, so `vb down`
/// is carrier loss on `va`): va 10.1.0.1/24 + 2001:db8:1::1/64, vb
/// 10.2.0.1/24 + 2001:db8:2::1/64 (IPv6 with `nodad`, DAD off for the
/// link-local addresses too), both up.
pub fn add_veth_pair(ns: &Netns) {
    ns.sysctl("net/ipv6/conf/all/accept_dad", "0");
    ns.sysctl("net/ipv6/conf/default/accept_dad", "0");
    ns.ip("link add va type veth peer name vb");
    ns.ip(&format!("addr add {VA4}/24 dev va"));
    ns.ip(&format!("addr add {VB4}/24 dev vb"));
    ns.ip(&format!("-6 addr add {VA6}/64 dev va nodad"));
    ns.ip(&format!("-6 addr add {VB6}/64 dev vb nodad"));
    ns.ip("link set va up");
    ns.ip("link set vb up");
}

/// `ip -batch` lines for blackhole routes 10.200.0.0/32 + i, i in `range`
/// (blackholes: no device, so taking links down does not flush them).
pub fn blackholes(verb: &str, range: std::ops::Range<u32>) -> String {
    range
        .map(|i| {
            format!(
                "route {verb} blackhole 10.{}.{}.{}/32\n",
                200 + i / 65536,
                (i / 256) % 256,
                i % 256
            )
        })
        .collect()
}

/// A namespace with the veth pair, an agent in it and a tail connected to
/// the agent that has finished its snapshot. Fields drop in order: tail,
/// agent, namespace.
pub struct Env {
    pub tail: Tail,
    pub agent: Agent,
    pub ns: Netns,
}

impl Env {
    /// The standard environment.
    pub fn start() -> Env {
        Env::start_with(&[])
    }

    /// The standard environment with extra agent arguments.
    pub fn start_with(agent_args: &[&str]) -> Env {
        Env::start_agent(|ns| Agent::start_with(ns, agent_args))
    }

    /// The standard environment with an agent serving TLS (see
    /// [`Agent::start_tls`]).
    pub fn start_tls(agent_args: &[&str], client_args: &[&str]) -> Env {
        Env::start_agent(|ns| Agent::start_tls(ns, agent_args, client_args))
    }

    fn start_agent(start: impl FnOnce(&Netns) -> Agent) -> Env {
        let ns = Netns::new();
        add_veth_pair(&ns);
        let agent = start(&ns);
        let tail = agent.tail(&ns);
        tail.wait_synced(SYNC_TIMEOUT);
        Env { tail, agent, ns }
    }

    /// Checks that BOTH `routewatch show` through the agent AND the tail's
    /// replay eventually hold exactly the kernel's routes and rules.
    pub fn check_routes(&self, timeout: Duration) {
        eventually_matches_kernel(&self.ns, || self.agent.show(), timeout);
        eventually_matches_kernel(&self.ns, || self.tail.objects(), timeout);
    }

    /// Like [`Env::check_routes`] for routes, rules AND nexthop objects.
    pub fn check_all(&self, timeout: Duration) {
        eventually_all_match_kernel(&self.ns, || self.agent.show(), timeout);
        eventually_all_match_kernel(&self.ns, || self.tail.objects(), timeout);
    }

    /// [`Env::check_routes`] with the default deadline.
    pub fn check(&self) {
        self.check_routes(CHECK_TIMEOUT);
    }
}
