//! The command line. Every field's doc comment is its `--help` text.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};

use crate::certs::Certs;
use crate::filter_args::FilterArgs;
use crate::printer::{Color, Format};
use crate::query::Query;
use crate::tls::TlsArgs;

/// Follow Linux routing changes on this host or on many, exactly.
///
/// With no TARGET, routewatch reads this host's routing tables in process
/// (needs no agent, only the rights to open an rtnetlink socket). With
/// TARGETs (HOST:PORT of routewatch-agent, or dns:///NAME:PORT for every
/// address of NAME), it subscribes to each agent. Lines are labelled with
/// the host name each agent reports.
#[derive(Debug, Parser)]
#[command(name = "routewatch", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the current routes, then every change as it happens.
    ///
    /// A remote target that is down or goes away is retried until
    /// routewatch is stopped (with backoff, at least every 10 seconds) or
    /// --retries is used up, and its stream resumes where it stopped: no
    /// line is printed twice or skipped. When the agent cannot resume (it
    /// restarted, or the client was away too long) it says so with a
    /// resync, and tail prints the differences from the fresh snapshot
    /// (--raw: the whole snapshot).
    ///
    /// Filters run on the agent: only what passes crosses the network, and
    /// the picture stays exact (a route that changes so that it leaves the
    /// filter arrives as a delete).
    ///
    /// Examples:
    ///   routewatch tail                               # this host, in process
    ///   routewatch tail --ca ca.pem --cert client.pem --key client-key.pem host1:50051 host2:50051
    ///   routewatch tail --insecure 10.0.0.1:50051     # an agent serving plaintext
    ///   routewatch tail --insecure dns:///routewatch-agent.kube-system.svc:50051
    ///   routewatch tail --proto bgp --within 10.0.0.0/8       # BGP routes inside 10/8
    ///   routewatch tail --not --table local --not --proto kernel
    ///   routewatch tail -6 --dev eth0,eth1 --metric 100-200 -o table
    ///   routewatch tail -o json | jq 'select(.action=="delete")'
    ///   routewatch tail --ca ca.pem -o json --cursor-file pos.json host1:50051 >> log
    ///   routewatch tail --insecure --no-snapshot --count 1 10.0.0.1:50051  # the next change
    ///   routewatch tail --insecure --until 10m --retries 3 10.0.0.1:50051
    #[command(verbatim_doc_comment)]
    Tail(Tail),
    /// Print the current routes and nexthop objects, then exit.
    ///
    /// Sorted as `ip route show` sorts (per host: nexthop objects by id,
    /// then IPv4 and IPv6 routes, each table in the kernel's order).
    /// Fails (exit status 3) when a target cannot be reached: nothing is
    /// retried.
    ///
    /// Examples:
    ///   routewatch show
    ///   routewatch show -o table --table main
    ///   routewatch show --ca ca.pem --cert client.pem --key client-key.pem host1:50051 -o json
    ///   routewatch show --insecure 10.0.0.1:50051 -o json
    ///   routewatch show --summary --insecure dns:///routewatch-agent:50051
    ///   routewatch show --contains 10.1.2.3                   # what would carry 10.1.2.3
    ///   routewatch show -o json-array | jq '.[] | .dst'      # as ip -j -d route show
    #[command(verbatim_doc_comment)]
    Show(Show),
    /// Follow agents and store every change in SQLite or PostgreSQL: the
    /// history of every route, for `routewatch query`.
    ///
    /// Every target's stream is stored exactly: each change once in the
    /// log, every version of every route with the time it was valid, and a
    /// gap row wherever the record cannot be exact (an agent that had to
    /// resync this collector). The position in each agent's stream is
    /// stored in the same transaction as the rows, so a collector that is
    /// stopped, killed or restarted continues where its rows end, without
    /// a snapshot and without storing anything twice. Agents that are down
    /// are retried for as long as collect runs.
    ///
    /// Each agent has one record, keyed by the identity it reports (its
    /// machine id, or routewatch-agent --agent-id, and the network
    /// namespace it serves), not by the address dialled: an agent reached
    /// at a new address continues its record (the address is noted, see
    /// `routewatch query hosts`), one agent given at two addresses is
    /// collected once, and a second agent reporting an identity already
    /// followed is refused with an error, never merged into the first's
    /// record. Agents that report no identity are keyed by their address.
    ///
    /// SQLite (the default) serves one collector. On PostgreSQL, any number
    /// of collectors may run with the same targets: each target is followed
    /// by one of them (an advisory lock per target), and when a collector
    /// stops, the others take its targets over within --claim-interval
    /// seconds, from the stored positions.
    ///
    /// Examples:
    ///   routewatch collect --insecure 10.0.0.1:50051 10.0.0.2:50051
    ///   routewatch collect --ca ca.pem --cert client.pem --key client-key.pem \
    ///       --store postgres://routewatch:secret@db/routewatch dns:///routewatch-agent.routewatch.svc:50051
    ///   routewatch collect --store sqlite:///var/lib/routewatch/history.db --retain 30d host1:50051
    ///   routewatch collect --ops-listen 0.0.0.0:9465 --insecure 10.0.0.1:50051
    #[command(verbatim_doc_comment)]
    Collect(Collect),
    /// Describe agents: host, kernel, version, stream position, routes and
    /// nexthop objects per family, subscribers.
    ///
    /// Examples:
    ///   routewatch info
    ///   routewatch info --insecure 10.0.0.1:50051 10.0.0.2:50051
    ///   routewatch info --insecure -o table dns:///routewatch-agent:50051
    #[command(verbatim_doc_comment)]
    Info(Watch),
    /// Answer audit questions from the store `routewatch collect` writes:
    /// a host's routes at a moment, a prefix's history, what changed, where
    /// the record is not exact.
    ///
    /// Times (--at, --since, --until) are `now`, RFC 3339
    /// (2026-11-28T10:00:00Z) or a time ago (-1h, 30m, 2d). --host is the
    /// host name an agent reports or the address collect dials. A question
    /// that matches nothing says so on stderr and prints nothing (exit
    /// status 0).
    ///
    /// Examples:
    ///   routewatch query hosts
    ///   routewatch query routes --host node1 --at -1h
    ///   routewatch query history 10.0.0.0/8 --since 2026-11-28T00:00:00Z
    ///   routewatch query diff --host node1 --at -1h --at now
    ///   routewatch query diff --host node1 --host node2 -o json
    ///   routewatch query gaps --since -7d
    ///   routewatch query --store postgres://rw@db/routewatch hosts
    #[command(verbatim_doc_comment)]
    Query(Query),
    /// Serve the store `routewatch collect` writes as web pages: the
    /// fleet, a host at a moment, a prefix's history, a diff, and changes
    /// arriving live.
    ///
    /// Pages (each URL holds its filters and time, so it can be pasted into
    /// a ticket; each has a JSON twin: add ?format=json, or send
    /// `Accept: application/json`):
    ///   /fleet    every host: following, lagging or unreachable, who
    ///             collects it, its routes, nexthops, rules and gaps;
    ///             sortable, filterable (?q=NAME&state=lagging&sort=routes)
    ///   /host     a host's routes, rules and nexthop objects at a moment,
    ///             by table, with show's filters, a page at a time
    ///             (?host=node1&at=-1h&table=main&within=10.0.0.0/8)
    ///   /prefix   every version of the routes at or inside a prefix, on
    ///             every host, as a timeline and a table
    ///             (?prefix=10.0.0.0/8&since=-7d)
    ///   /diff     two moments of a host (?host=node1&at=-1h&at2=now), or
    ///             two hosts at a moment (?host=node1&host2=node2)
    ///   /live     changes as the collector stores them (server-sent
    ///             events at /live/events), with the host page's filters
    ///
    /// web only reads: a read-only SQLite connection, or PostgreSQL
    /// sessions whose transactions are read only. It listens on loopback
    /// unless told otherwise; on any other address it needs TLS and
    /// authenticated clients (mutual TLS with the agent's flags, or
    /// --token-file), and refuses to start without them.
    ///
    /// Examples:
    ///   routewatch web                                   # http://127.0.0.1:8080/
    ///   routewatch web --store postgres://rw@db/routewatch --listen 127.0.0.1:9000
    ///   routewatch web --listen 0.0.0.0:8443 --tls-cert web.pem --tls-key web-key.pem \
    ///       --client-ca ca.pem --allow-client ops.example.net
    ///   routewatch web --listen [::]:8443 --tls-cert web.pem --tls-key web-key.pem --token-file token
    ///   curl -H 'Accept: application/json' 'http://127.0.0.1:8080/host?host=node1&at=-1h'
    #[command(verbatim_doc_comment)]
    Web(crate::web::Web),
    /// Print a shell completion script.
    ///
    /// Examples:
    ///   routewatch completions bash > /etc/bash_completion.d/routewatch
    ///   routewatch completions zsh > "${fpath[1]}/_routewatch"
    ///   routewatch completions fish > ~/.config/fish/completions/routewatch.fish
    #[command(verbatim_doc_comment)]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write every page.
    ///
    /// Examples:
    ///   routewatch man > routewatch.1
    ///   routewatch man --agent > routewatch-agent.8
    ///   routewatch man --dir /usr/local/share/man/man1
    #[command(verbatim_doc_comment)]
    Man {
        /// Write routewatch.1, a page for each command (routewatch-tail.1,
        /// ...) and the agent's routewatch-agent.8 into DIR instead.
        #[arg(long, value_name = "DIR", env = "ROUTEWATCH_MAN_DIR")]
        dir: Option<PathBuf>,
        /// Print the agent's page (routewatch-agent.8) instead.
        #[arg(long, conflicts_with = "dir")]
        agent: bool,
    },
    /// Make certificates for trying mutual TLS.
    #[command(subcommand)]
    Certs(Certs),
}

/// `tail`'s options.
#[derive(Debug, Args)]
pub struct Tail {
    #[command(flatten)]
    pub watch: Watch,

    #[command(flatten)]
    pub filter: FilterArgs,

    /// Remember where each remote target's stream stopped in FILE, and
    /// resume from there on the next start, without a snapshot. Written
    /// atomically about once a second while changes arrive and on exit,
    /// only ever with positions whose lines are already on stdout: a
    /// restarted tail never skips a line. After a clean exit (Ctrl-C,
    /// SIGTERM) it prints none twice either; after a crash, the lines of
    /// the last second or so may come again. A missing file starts from a
    /// snapshot. This host in process (no TARGET) has no lasting position
    /// and is not recorded.
    /// The file also records the filter: a tail with other filters
    /// refuses it rather than continue a picture made with different ones.
    #[arg(long, value_name = "FILE", env = "ROUTEWATCH_CURSOR_FILE")]
    pub cursor_file: Option<PathBuf>,

    /// Print what the agent sends as it is: after a resync, the whole
    /// fresh snapshot (consumers drop what they hold on `resync`). Without
    /// it, `tail` keeps each target's picture and prints only the
    /// differences between the picture and the new snapshot (deletes
    /// included, origin `reconcile`); `-o jsonpb` is always raw.
    #[arg(long, env = "ROUTEWATCH_RAW", value_parser = BoolishValueParser::new())]
    pub raw: bool,

    /// Print changes only, not the snapshot of the current state. The
    /// snapshot is still received (quietly) to print a later resync's
    /// differences; with --raw it is not even asked for.
    #[arg(long, env = "ROUTEWATCH_NO_SNAPSHOT", value_parser = BoolishValueParser::new())]
    pub no_snapshot: bool,

    /// Check tail's picture of each target against the digests its agent
    /// sends (every routewatch-agent --digest-interval, 60 s by default):
    /// per network namespace, kind of object and routing table, a count
    /// and a sum of hashes of what the agent holds at that position. On a
    /// difference, a warning naming each part and both counts goes to
    /// stderr, a resync marker (reason "digest mismatch") is printed, the
    /// target is subscribed again from a fresh snapshot, and only the
    /// differences are printed. Needs the whole picture: not with filters,
    /// --raw, -o jsonpb, --last or --since.
    #[arg(long, env = "ROUTEWATCH_VERIFY", value_parser = BoolishValueParser::new())]
    pub verify: bool,

    /// Exit (status 0) once N routes, nexthop objects or rules have been
    /// printed, snapshot lines included (with --no-snapshot: N changes).
    #[arg(long, value_name = "N", env = "ROUTEWATCH_COUNT")]
    pub count: Option<u64>,

    /// Exit (status 0) at this time: an RFC 3339 time
    /// (2026-11-28T10:00:00Z) or a duration from now (90s, 10m, +1h).
    #[arg(long, value_name = "TIME", env = "ROUTEWATCH_UNTIL", value_parser = parse_until)]
    pub until: Option<i64>,

    /// Start with the last N changes the agent's journal holds instead of
    /// a snapshot (changes only), then follow. When the journal holds
    /// fewer, the replay starts at its oldest change and says so (JSON:
    /// a `replay` line with `"complete":false`). A target resumed from
    /// --cursor-file continues from there instead.
    #[arg(
        long,
        value_name = "N",
        env = "ROUTEWATCH_LAST",
        conflicts_with = "since"
    )]
    pub last: Option<u64>,

    /// Like --last, from the first change observed at or after this time:
    /// a time ago (10m, 1h) or an RFC 3339 time (2026-11-28T10:00:00Z).
    #[arg(long, value_name = "DURATION|TIME", env = "ROUTEWATCH_SINCE", value_parser = parse_since)]
    pub since: Option<i64>,

    /// Give a remote target up after N failed attempts in a row to
    /// (re)subscribe (0: at the first failure), instead of retrying until
    /// stopped. The exit status then says why: 3 never reached, 4 TLS or
    /// authentication, 5 lost after it was followed (its lines stop at a
    /// gap).
    #[arg(long, value_name = "N", env = "ROUTEWATCH_RETRIES")]
    pub retries: Option<u32>,
}

/// `collect`'s options.
#[derive(Debug, Args)]
pub struct Collect {
    /// Agents to store: HOST:PORT, or dns:///NAME:PORT for an agent at every
    /// address NAME resolves to (followed as the answer changes). Each
    /// agent is one record in the store, whichever of these addresses it is
    /// reached at (an agent that reports no identity: each address).
    #[arg(
        value_name = "TARGET",
        env = "ROUTEWATCH_TARGETS",
        value_delimiter = ',',
        required = true,
        value_parser = parse_target
    )]
    pub targets: Vec<String>,

    /// Where to store: sqlite://FILE (created if missing; sqlite:///abs/path
    /// for an absolute path) or postgres://USER:PASSWORD@HOST[:PORT]/DATABASE
    /// (the database must exist; the tables are created). The schema is
    /// migrated at start. TLS to PostgreSQL as libpq takes it, in the URL:
    /// ?sslmode=verify-full&sslrootcert=/path/ca.pem (modes disable, allow,
    /// prefer (default), require, verify-ca, verify-full; sslrootcert=system
    /// for the system's CAs), plus sslcert=...&sslkey=... for a client
    /// certificate.
    #[arg(long, value_name = "URL", default_value = crate::store::DEFAULT_STORE, env = "ROUTEWATCH_STORE")]
    pub store: String,

    /// Remove closed route versions, log rows and gaps older than this
    /// (e.g. 30d, 12h), at start and every hour. Current routes are kept
    /// however old. Default: keep everything.
    #[arg(long, value_name = "DURATION", env = "ROUTEWATCH_RETAIN", value_parser = crate::when::parse_duration)]
    pub retain: Option<std::time::Duration>,

    /// Address to serve /metrics (OpenMetrics), /healthz and /readyz on,
    /// over plain HTTP. Off unless given.
    #[arg(long, value_name = "ADDR", env = "ROUTEWATCH_OPS_LISTEN")]
    pub ops_listen: Option<std::net::SocketAddr>,

    /// Seconds between attempts to take targets that another collector on
    /// the same PostgreSQL database follows (how soon a stopped collector's
    /// targets are taken over).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 2,
        env = "ROUTEWATCH_CLAIM_INTERVAL"
    )]
    pub claim_interval: u64,

    #[command(flatten)]
    pub reach: Reach,
}

/// `show`'s options.
#[derive(Debug, Args)]
pub struct Show {
    #[command(flatten)]
    pub watch: Watch,

    #[command(flatten)]
    pub filter: FilterArgs,

    /// Print route counts per host, table and protocol (IPv4, IPv6 and
    /// both) instead of the routes.
    #[arg(long, env = "ROUTEWATCH_SUMMARY", value_parser = BoolishValueParser::new())]
    pub summary: bool,

    /// Print each host's objects as they arrive instead of in `ip route
    /// show`'s order: the first lines come at once, and nothing is held
    /// back (a table still waits for its widest values).
    #[arg(long, env = "ROUTEWATCH_UNSORTED", value_parser = BoolishValueParser::new(), conflicts_with = "summary")]
    pub unsorted: bool,

    /// How long to keep asking an agent that answers busy
    /// (RESOURCE_EXHAUSTED: all its --max-snapshots slots are taken), with
    /// backoff, before giving up with an error (e.g. 5s, 1m; 0s: ask once).
    /// Snapshots have their own slots on the agent, so a `show` is never
    /// refused because followers fill --max-subscribers.
    #[arg(
        long,
        value_name = "DURATION",
        env = "ROUTEWATCH_RETRY_FOR",
        default_value = "5s",
        value_parser = crate::when::parse_duration
    )]
    pub retry_for: std::time::Duration,
}

/// What to watch and how to print it.
#[derive(Debug, Args)]
pub struct Watch {
    /// Agents to subscribe to: HOST:PORT, or dns:///NAME:PORT for an agent
    /// at every address NAME resolves to (A and AAAA records, e.g. a
    /// Kubernetes headless Service), followed as the answer changes. None:
    /// this host, in process.
    #[arg(
        value_name = "TARGET",
        env = "ROUTEWATCH_TARGETS",
        value_delimiter = ',',
        value_parser = parse_target
    )]
    pub targets: Vec<String>,

    #[command(flatten)]
    pub reach: Reach,

    /// Without a target, where this host's iproute2 name files are, as the
    /// agent's --iproute2-dir (default: /etc/iproute2, and
    /// /usr/share/iproute2 for a file /etc lacks). An agent uses its own
    /// host's names.
    #[arg(long, env = "ROUTEWATCH_IPROUTE2_DIR", value_name = "DIR")]
    pub iproute2_dir: Option<std::path::PathBuf>,

    /// Output format: `text` reads like `ip monitor route`; `json` prints one
    /// object per line with the field names of `ip -j -d route show`;
    /// `json-array` (show) one array of routes exactly as `ip -j -d route
    /// show table all`; `jsonpb` prints the API's events in protobuf's JSON
    /// mapping; `table` prints aligned columns.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text, env = "ROUTEWATCH_OUTPUT")]
    pub format: Format,

    /// Colour live adds green and deletes red, the snapshot not at all
    /// (text and table output of `tail`). `auto`: when stdout is a terminal
    /// and NO_COLOR is not set.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = Color::Auto, env = "ROUTEWATCH_COLOR")]
    pub color: Color,
}

/// How agents are reached (`tail`, `show`, `info` and `collect`).
#[derive(Debug, Args)]
pub struct Reach {
    /// Connect to agents in plaintext (the agent must run with --insecure).
    /// Without it, routewatch connects with TLS.
    #[arg(long, env = "ROUTEWATCH_INSECURE", value_parser = BoolishValueParser::new())]
    pub insecure: bool,

    #[command(flatten)]
    pub tls: TlsArgs,

    /// Seconds between resolutions of dns:/// targets (`tail`, `collect`):
    /// hosts that appear in the answer are followed, hosts that leave it
    /// are dropped.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 10,
        env = "ROUTEWATCH_DNS_REFRESH"
    )]
    pub dns_refresh: u64,

    /// Response compression to accept from agents: `auto` accepts zstd and
    /// gzip, zstd preferred (an agent compresses each batch once for all
    /// its zstd subscribers: about 4.5 times fewer bytes), except from an
    /// agent on loopback (127.0.0.0/8, ::1, localhost), where compressing
    /// only costs both sides CPU; `zstd` or `gzip`
    /// only that one (gzip costs the agent a pass per subscriber), `none`
    /// asks for uncompressed responses (a little less work for a lone
    /// subscriber on a fast link). Requests are never compressed.
    #[arg(long, value_enum, default_value_t = Compression::Auto, env = "ROUTEWATCH_COMPRESSION")]
    pub compression: Compression,

    /// Seconds that connecting to an agent, and then its first answer, may
    /// take each (fractions allowed: 0.5). An agent that does not answer
    /// in time counts as unreachable (exit status 3 when nothing else
    /// comes of it).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 5.0,
        env = "ROUTEWATCH_CONNECT_TIMEOUT",
        value_parser = parse_timeout
    )]
    pub connect_timeout: f64,
}

impl Reach {
    /// `--connect-timeout` as a duration.
    pub fn connect_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.connect_timeout)
    }
}

/// `--since`: the moment, in nanoseconds since the Unix epoch.
fn parse_since(text: &str) -> Result<i64, String> {
    crate::when::parse_time(text, crate::printer::now_unix_nano())
}

/// `--until`: the moment, in nanoseconds since the Unix epoch.
fn parse_until(text: &str) -> Result<i64, String> {
    crate::when::parse_deadline(text, crate::printer::now_unix_nano())
}

/// A TARGET, checked when the command line is read (so that a bad one
/// from ROUTEWATCH_TARGETS is reported as that variable's).
fn parse_target(text: &str) -> Result<String, String> {
    crate::target::Target::parse(text)
        .map(|_| text.to_owned())
        .map_err(|e| e.to_string())
}

/// A positive number of seconds, at most a day.
fn parse_timeout(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 86_400.0 => Ok(secs),
        _ => Err(format!(
            "{text:?} is not a timeout: give seconds, more than 0 and at most 86400 (e.g. 5 or 0.5)"
        )),
    }
}

/// `--compression` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    /// Accept zstd and gzip, zstd preferred.
    Auto,
    /// Accept zstd only.
    Zstd,
    /// Accept gzip only.
    Gzip,
    /// Accept uncompressed responses only.
    None,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_on_off_variable_reads_1_0_yes_no_on_off() {
        let bad = routewatch_agent::env_flags_not_boolish(&super::Cli::command());
        assert!(
            bad.is_empty(),
            "flags whose variable reads only true/false: {bad:?}"
        );
    }
}
