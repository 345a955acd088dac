//! The agent's configuration: every field is a flag (and an environment
//! variable); the doc comments are the `--help` text.

use std::net::SocketAddr;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::Args;

use crate::journal::RingLimits;
use crate::session::SessionConfig;
use crate::tls::TlsConfig;

/// How the agent watches the kernel and serves subscribers.
#[derive(Debug, Clone, Args)]
pub struct AgentConfig {
    /// Address to serve gRPC on.
    #[arg(long, env = "ROUTEWATCH_LISTEN", default_value = "0.0.0.0:50051")]
    pub listen: SocketAddr,

    /// Serve plaintext gRPC. Anyone who can reach --listen can then read
    /// this host's routing tables; use it on loopback or a trusted network.
    #[arg(long, env = "ROUTEWATCH_INSECURE", value_parser = BoolishValueParser::new())]
    pub insecure: bool,

    /// Address to serve operations on, over plain HTTP: `/metrics`
    /// (OpenMetrics), `/healthz` (the agent runs) and `/readyz` (ready once
    /// the first complete dump of the routing tables is in memory). Off
    /// unless given. What it shows is counts and sizes, never routes.
    #[arg(long, env = "ROUTEWATCH_OPS_LISTEN", value_name = "ADDR")]
    pub ops_listen: Option<SocketAddr>,

    /// The host name the agent reports: on subscriptions (clients label
    /// this host's lines with it) and in GetInfo. Default: the kernel's
    /// host name. In Kubernetes, the node's name is a good choice
    /// (ROUTEWATCH_HOSTNAME from spec.nodeName).
    #[arg(long, env = "ROUTEWATCH_HOSTNAME", value_name = "NAME")]
    pub hostname: Option<String>,

    /// The identity the agent reports instead of /etc/machine-id. With the
    /// network namespace it serves (--netns NAME; else its own, by its
    /// `ip netns` name, else `net:[INODE]`), it names this agent to collectors for as long as the
    /// host lives, whatever its addresses: `routewatch collect` keys its
    /// record by the pair, continues it when the address changes, and
    /// refuses a second agent reporting the same pair. Give one when
    /// machines are cloned from one image with its machine id (every clone
    /// would claim to be the same agent), or when the agent cannot read
    /// /etc/machine-id (then, without it, collectors key its record by the
    /// address they dial).
    #[arg(long, env = "ROUTEWATCH_AGENT_ID", value_name = "ID")]
    pub agent_id: Option<String>,

    #[command(flatten)]
    pub tls: TlsConfig,

    /// Seconds a connection has, from its accept, to start its first call
    /// (a TLS handshake included); one that has not is closed. Connections
    /// that never send a request (scanners, broken or hostile clients)
    /// then cannot pile up and lock out real clients.
    #[arg(
        long,
        env = "ROUTEWATCH_FIRST_REQUEST_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub first_request_timeout_secs: u64,

    /// Most connections open at once from one IP address; the agent closes
    /// any more at once. A client needs one connection per agent it
    /// follows or asks, so the default leaves room for many clients behind
    /// one address while no single address can fill the agent's
    /// connections and file descriptors.
    #[arg(
        long,
        env = "ROUTEWATCH_MAX_CONNECTIONS_PER_PEER",
        default_value_t = 64
    )]
    pub max_connections_per_peer: usize,

    /// Most following subscriptions (`routewatch tail`, `collect`) served
    /// at once. One more is refused with
    /// RESOURCE_EXHAUSTED (its client retries later) instead of costing the
    /// host memory and CPU without bound.
    #[arg(long, env = "ROUTEWATCH_MAX_SUBSCRIBERS", default_value_t = 256)]
    pub max_subscribers: usize,

    /// Most one-shot snapshots (`routewatch show`: a snapshot without
    /// follow) served at once. They have their own slots, apart from
    /// --max-subscribers: followers that fill their limit do not lock out
    /// a `show`, and snapshots never take a follower's slot. One more is
    /// refused with RESOURCE_EXHAUSTED (`show` retries for a while).
    #[arg(long, env = "ROUTEWATCH_MAX_SNAPSHOTS", default_value_t = 16)]
    pub max_snapshots: usize,

    #[command(flatten)]
    pub pipeline: PipelineConfig,
}

/// How the in-memory pipeline (netlink source, journal, sessions) behaves;
/// shared by the agent and the CLI's in-process mode.
#[derive(Debug, Clone, Args)]
pub struct PipelineConfig {
    /// Receive buffer of the rtnetlink socket, in bytes. Set with
    /// SO_RCVBUFFORCE (needs CAP_NET_ADMIN), else SO_RCVBUF, which
    /// net.core.rmem_max caps. A larger buffer rides out longer bursts
    /// before the kernel drops notifications (which costs a re-dump).
    #[arg(long, env = "ROUTEWATCH_NETLINK_RCVBUF", default_value_t = 32 << 20)]
    pub netlink_rcvbuf: usize,

    /// Network namespaces to watch. Not given: the agent's own (events
    /// carry netns ""). `all`: the agent's own (netns "") and every named
    /// namespace in --netns-dir, including those created while the agent
    /// runs; a deleted one is dropped (consumers get a delete for each of
    /// its objects). NAME: that named namespace alone. Entering a
    /// namespace other than the agent's own needs CAP_SYS_ADMIN. All
    /// namespaces share one stream: one stream id, one sequence, each event
    /// naming its namespace, so one cursor resumes them all.
    #[arg(long, env = "ROUTEWATCH_NETNS", value_name = "all|NAME")]
    pub netns: Option<String>,

    /// Where named network namespaces live (`ip netns add` puts them in
    /// /var/run/netns; some container runtimes use other directories).
    #[arg(
        long,
        env = "ROUTEWATCH_NETNS_DIR",
        value_name = "DIR",
        default_value = "/var/run/netns"
    )]
    pub netns_dir: std::path::PathBuf,

    /// How many recent changes the journal keeps. A subscriber that falls
    /// further behind gets a resync and a fresh snapshot.
    #[arg(long, env = "ROUTEWATCH_JOURNAL_CAPACITY", default_value_t = 1 << 18)]
    pub journal_capacity: usize,

    /// Keep the stream's id, position, table and recent changes in this
    /// directory, so that a restarted agent continues the same stream:
    /// consumers resume from their cursors and receive what changed while
    /// the agent was down (origin reconcile) instead of a full snapshot.
    /// Without it every start is a new stream and consumers resync.
    #[arg(long, env = "ROUTEWATCH_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<std::path::PathBuf>,

    /// Where iproute2's name files are: rt_tables, rt_protos, rt_scopes,
    /// rt_realms (and rt_tables.d/*.conf, rt_protos.d/*.conf). Events carry
    /// these names beside the numbers, and filters accept them. Default:
    /// /etc/iproute2, and /usr/share/iproute2 for a file /etc lacks, read
    /// as `ip` reads them; the built-in names (main, bgp, link, ...) hold
    /// where no file names a number. Read once, at start.
    #[arg(long, env = "ROUTEWATCH_IPROUTE2_DIR", value_name = "DIR")]
    pub iproute2_dir: Option<std::path::PathBuf>,

    /// Most bytes of memory the journal's recent changes take: each
    /// change's encoded bytes, its bookkeeping and the versions of the
    /// object it holds (including the one an add replaced). This is the
    /// other bound on how far back a subscriber can resume; with routes of
    /// about 100 bytes it holds about 85,000 changes.
    #[arg(long, env = "ROUTEWATCH_JOURNAL_BYTES", default_value_t = 32 << 20)]
    pub journal_bytes: usize,

    /// Most events in one response message.
    #[arg(long, env = "ROUTEWATCH_MAX_BATCH", default_value_t = 1024)]
    pub max_batch: usize,

    /// Most bytes of events in one response message.
    #[arg(long, env = "ROUTEWATCH_MAX_BATCH_BYTES", default_value_t = 1 << 20)]
    pub max_batch_bytes: usize,

    /// Seconds without a response after which a subscriber gets a heartbeat
    /// carrying the current position (also while its filter drops every
    /// change, so that its cursor keeps up).
    #[arg(long, env = "ROUTEWATCH_HEARTBEAT_SECS", default_value_t = 30)]
    pub heartbeat_secs: u64,

    /// Seconds between the digests every following subscriber gets: per
    /// network namespace, kind of object and routing table, how many
    /// objects the agent holds and a 128-bit sum of their hashes, at a
    /// stream position. A consumer compares its own picture at that
    /// position and starts over on a mismatch (`routewatch collect`
    /// always, `routewatch tail --verify`), so that a picture that
    /// drifted from the host (a bug, a damaged or restored store) is found
    /// and repaired within one interval. A digest goes out once the
    /// subscriber has caught up, costs one message, and is computed from
    /// sums the agent keeps on every change (no rescan). 0 turns the
    /// periodic digests off (a subscriber can still ask for one).
    #[arg(
        long,
        env = "ROUTEWATCH_DIGEST_INTERVAL",
        default_value_t = 60.0,
        value_name = "SECONDS"
    )]
    pub digest_interval: f64,

    /// Do not find out who made each change. By default a change a
    /// notification announces names the netlink port id of the request
    /// behind it and, when found, the process holding that socket (pid,
    /// comm, executable, command line, cgroup, container and pod): found
    /// once per socket from the namespace's socket table and /proc, and
    /// checked with one readlink per batch after that.
    #[arg(long, env = "ROUTEWATCH_NO_CHANGED_BY", value_parser = BoolishValueParser::new())]
    pub no_changed_by: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            netlink_rcvbuf: 32 << 20,
            netns: None,
            netns_dir: "/var/run/netns".into(),
            journal_capacity: 1 << 18,
            journal_bytes: 32 << 20,
            state_dir: None,
            iproute2_dir: None,
            max_batch: 1024,
            max_batch_bytes: 1 << 20,
            heartbeat_secs: 30,
            digest_interval: 60.0,
            no_changed_by: false,
        }
    }
}

/// Which network namespaces a pipeline watches (`--netns`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetnsSelection {
    /// The agent's own.
    Own,
    /// One named namespace.
    Named(String),
    /// The agent's own and every named one, as they come and go.
    All,
}

impl PipelineConfig {
    pub fn netns_selection(&self) -> NetnsSelection {
        match self.netns.as_deref() {
            None | Some("") => NetnsSelection::Own,
            Some("all") => NetnsSelection::All,
            Some(name) => NetnsSelection::Named(name.to_string()),
        }
    }

    pub fn ring(&self) -> RingLimits {
        RingLimits {
            changes: self.journal_capacity,
            bytes: self.journal_bytes,
        }
    }

    pub fn session(&self) -> SessionConfig {
        SessionConfig {
            max_batch: self.max_batch.max(1),
            max_batch_bytes: self.max_batch_bytes.max(1),
            heartbeat: Duration::from_secs(self.heartbeat_secs.max(1)),
            digest: (self.digest_interval > 0.0 && self.digest_interval.is_finite())
                .then(|| Duration::from_secs_f64(self.digest_interval.max(0.01))),
        }
    }
}

/// The on/off flags of `command` (and its subcommands) that have an
/// environment variable but do not read every spelling an operator writes
/// in an environment file: `1/0`, `yes/no`, `on/off`, `true/false`. Each
/// binary's tests call this on its whole command line, so a new flag
/// cannot forget `BoolishValueParser`.
pub fn env_flags_not_boolish(command: &clap::Command) -> Vec<String> {
    const SPELLINGS: [(&str, bool); 12] = [
        ("1", true),
        ("yes", true),
        ("on", true),
        ("true", true),
        ("YES", true),
        ("On", true),
        ("0", false),
        ("no", false),
        ("off", false),
        ("false", false),
        ("NO", false),
        ("Off", false),
    ];
    let mut bad = Vec::new();
    for arg in command.get_arguments() {
        let on_off = matches!(
            arg.get_action(),
            clap::ArgAction::SetTrue | clap::ArgAction::SetFalse
        );
        let Some(var) = arg.get_env().filter(|_| on_off) else {
            continue;
        };
        // The flag's own value parser, given the text the way the
        // variable's value reaches it.
        let probe = clap::Command::new("probe").arg(
            clap::Arg::new("value")
                .long("value")
                .action(clap::ArgAction::Set)
                .value_parser(arg.get_value_parser().clone()),
        );
        let reads = |text: &str| {
            probe
                .clone()
                .try_get_matches_from(["probe", "--value", text])
                .ok()
                .and_then(|matches| matches.get_one::<bool>("value").copied())
        };
        if SPELLINGS
            .iter()
            .any(|&(text, want)| reads(text) != Some(want))
        {
            bad.push(format!(
                "{} --{}",
                var.to_string_lossy(),
                arg.get_long().unwrap_or_default()
            ));
        }
    }
    for sub in command.get_subcommands() {
        bad.extend(env_flags_not_boolish(sub));
    }
    bad
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: super::AgentConfig,
    }

    #[test]
    fn every_on_off_variable_reads_1_0_yes_no_on_off() {
        let bad = super::env_flags_not_boolish(&Cli::command());
        assert!(
            bad.is_empty(),
            "flags whose variable reads only true/false: {bad:?}"
        );
    }
}
