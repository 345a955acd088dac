//! `query`'s command line. Every field's doc comment is its `--help` text.

use clap::{Args, Subcommand};

use crate::printer::Format;
use crate::store::DEFAULT_STORE;

/// `query`'s options.
#[derive(Debug, Args)]
pub struct Query {
    /// The store `routewatch collect` writes: sqlite://FILE (relative to
    /// the working directory; sqlite:///abs/path for an absolute one) or
    /// postgres://USER:PASSWORD@HOST/DATABASE. query only reads: a store
    /// that does not exist is an error, never created.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        default_value = DEFAULT_STORE,
        env = "ROUTEWATCH_STORE"
    )]
    pub store: String,

    /// Output format: `text` (lines, or aligned columns for hosts and
    /// gaps) or `json` (one object per line, with the field names of
    /// `ip -j -d route show` for routes). `routes` also prints `table`
    /// (aligned columns) and `jsonpb` (the API's events), as `show` does;
    /// `hosts` and `gaps` take `table` as `text`.
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        value_enum,
        default_value_t = Format::Text,
        env = "ROUTEWATCH_OUTPUT"
    )]
    pub format: Format,

    #[command(subcommand)]
    pub command: Question,
}

#[derive(Debug, Subcommand)]
pub enum Question {
    /// The routes and nexthop objects of each host at a moment, printed as
    /// `routewatch show` prints them.
    ///
    /// A version counts at TIME when it was valid then (it began at or
    /// before TIME and had not ended). JSON lines carry each version's
    /// start as `time` and the stream position that opened it as
    /// `stream_id` and `seq`. When TIME lies inside a gap of a host's
    /// record (a resync: what happened between is unknown), stderr says
    /// so.
    ///
    /// Examples:
    ///   routewatch query routes --host node1
    ///   routewatch query routes --host node1 --at 2026-11-28T10:00:00Z
    ///   routewatch query routes --at -1h -o json | jq 'select(.dst=="default")'
    ///   routewatch query routes --host node1 --within 10.0.0.0/8 --not --proto kernel
    ///   routewatch query --store postgres://rw@db/routewatch routes -o table
    #[command(verbatim_doc_comment)]
    Routes(Routes),
    /// Every version of the routes whose destination is PREFIX or lies
    /// inside it, across hosts, oldest first.
    ///
    /// Text: one line per version: valid from, valid until (`current`
    /// while it lasts), host, what opened and what closed it
    /// (notification, dump, reconcile, or resync: the version was gone
    /// when a resync's snapshot came; `-` while current), then the route
    /// as `show` prints it; times in UTC to the millisecond. At a
    /// terminal (or with -o table) the same as aligned columns under a
    /// header (FROM UNTIL HOST BY OBJECT). The hosts' gaps in the range are
    /// lines of their own, in time order, and the history inside them is
    /// not exact:
    ///   FROM TO HOST gap CAUSE FROM_CURSOR..TO_CURSOR REASON
    ///
    /// JSON: the route's `ip -j -d` fields plus host, netns, valid_from,
    /// valid_to (null while current), opened_by, closed_by,
    /// opened_stream_id, opened_seq, closed_stream_id, closed_seq; a gap
    /// is {"gap": {...}} with the fields of `query gaps -o json`.
    ///
    /// Examples:
    ///   routewatch query history 10.0.0.0/8
    ///   routewatch query history 10.1.2.3 --host node1         # the host route 10.1.2.3/32
    ///   routewatch query history default --since -1d           # the default routes
    ///   routewatch query history 2001:db8::/32 --since 2026-11-28T00:00:00Z --until 2026-11-29T00:00:00Z -o json
    #[command(verbatim_doc_comment)]
    History(History),
    /// What differs between two moments of one host, or between two hosts
    /// at one moment.
    ///
    /// One host, two moments (--host H --at T1 --at T2): objects matched by
    /// their key, printed as `ip monitor` would print the change from T1 to
    /// T2: what only T1 had as `Deleted ...`, what only T2 has as an add,
    /// what changed as the old one deleted and the new one added.
    ///
    /// Two hosts, one moment (--host A --host B [--at T], default now):
    /// routes matched by kind, namespace, family, table, destination,
    /// source, TOS and metric; nexthop objects by id. Text: `A only: ...`,
    /// `B only: ...`, and for what both have but differently `A: ...`
    /// followed by `B: ...`.
    ///
    /// JSON: one object per line and side, with the object's `ip -j -d`
    /// fields plus `host`, `at`, and `only`: the side that alone has the
    /// object (the host, or the moment), or null when both have it,
    /// differently (the first side's line comes first). One host's lines
    /// also carry `action`: `delete` (T1) or `add` (T2).
    ///
    /// Examples:
    ///   routewatch query diff --host node1 --at -1h --at now
    ///   routewatch query diff --host node1 --at 2026-11-28T10:00:00Z --at 2026-11-28T11:00:00Z
    ///   routewatch query diff --host node1 --host node2
    ///   routewatch query diff --host node1 --host node2 --at -30m -o json
    #[command(verbatim_doc_comment)]
    Diff(Diff),
    /// Where the record is not exact: every gap (a resync, and what
    /// happened between its two positions is unknown).
    ///
    /// Columns: host, where the gap starts (time and stream:seq of the last
    /// position stored before it), where it ends (the snapshot that
    /// followed), the cause (unknown_stream, cursor_too_old, lagged) and
    /// the agent's reason.
    ///
    /// Examples:
    ///   routewatch query gaps
    ///   routewatch query gaps --host node1 --since -7d
    ///   routewatch query gaps -o json | jq -r .cause | sort | uniq -c
    #[command(verbatim_doc_comment)]
    Gaps(Gaps),
    /// Every host in the store: address, when it was first and last heard
    /// from, its stored cursor, its current routes and nexthop objects,
    /// and how many gaps its record has.
    ///
    /// Examples:
    ///   routewatch query hosts
    ///   routewatch query --store sqlite:///var/lib/routewatch/routes.db hosts -o json
    #[command(verbatim_doc_comment)]
    Hosts,
    /// Checks the store's record of a host against its agent: the current
    /// versions stored for the host are summed up per network namespace,
    /// kind of object and routing table (a count and a sum of hashes, as
    /// the agent keeps them) and compared with a digest the agent sends at
    /// the same stream position. The agent is dialled at the address
    /// `collect` follows it at, with the usual TLS flags; it replays what
    /// happened since the stored cursor (a running collector may be a
    /// little behind), then sends its digest.
    ///
    /// Text: one line per part: `ok` or `MISMATCH`, the namespace, the
    /// kind (and table), the count stored and the agent's. JSON: one
    /// object per part with host, netns, kind, table, status ("ok" or
    /// "mismatch"), stored_count and agent_count.
    ///
    /// Exit status 0 when every part matches, 6 when one differs (collect
    /// repairs it within one --digest-interval of the agent while it
    /// follows the host; a store damaged while collect was stopped is
    /// repaired when it starts), 3 when the agent cannot be reached.
    ///
    /// Examples:
    ///   routewatch query verify --host node1 --ca ca.pem --cert me.pem --key me.key
    ///   routewatch query verify --host 192.0.2.7:50051 --insecure -o json
    #[command(verbatim_doc_comment)]
    Verify(Verify),
}

/// `query verify`'s options.
#[derive(Debug, Args)]
pub struct Verify {
    /// The host: a reported host name or the address collect dials.
    #[arg(long = "host", value_name = "HOST", required = true)]
    pub host: String,

    /// How long to wait for the agent's digest, in seconds (it replays
    /// the changes since the stored cursor first).
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub timeout: f64,

    #[command(flatten)]
    pub reach: crate::cli::Reach,
}

/// `query routes`' options.
#[derive(Debug, Args)]
pub struct Routes {
    /// The hosts to print: a reported host name or the address collect
    /// dials (repeat, or separate with commas). None: every host.
    #[arg(long = "host", value_name = "HOST", value_delimiter = ',')]
    pub hosts: Vec<String>,

    /// The moment: now, an RFC 3339 time (2026-11-28T10:00:00Z, or with a
    /// space: 2026-11-28 10:00:00+01:00; local time without an offset), a
    /// local time of day (14:05), epoch seconds (1764323400), or a time ago
    /// (-1h, 30m, 2d, "5 minutes ago", yesterday).
    #[arg(
        long,
        value_name = "TIME",
        default_value = "now",
        allow_hyphen_values = true
    )]
    pub at: String,

    /// `show`'s filters: the database reads only what they can keep
    /// (narrowed by object, family, namespace and destination), then each
    /// version is matched exactly as the agent matches a snapshot.
    #[command(flatten)]
    pub filter: crate::filter_args::FilterArgs,
}

/// `query history`'s options.
#[derive(Debug, Args)]
pub struct History {
    /// The destination: a prefix (10.0.0.0/8, 2001:db8::/32) for every
    /// route whose destination is it or lies inside it, an address for
    /// its host route (10.1.2.3 is 10.1.2.3/32), or `default` for the
    /// default routes of both families (0.0.0.0/0 and ::/0 name every
    /// route of their family). `rules` instead gives the history of the
    /// policy rules (`ip rule`), which decide the table a packet uses.
    #[arg(value_name = "PREFIX")]
    pub prefix: String,

    /// Only these hosts: a reported host name or the address collect dials
    /// (repeat, or separate with commas). None: every host.
    #[arg(long = "host", value_name = "HOST", value_delimiter = ',')]
    pub hosts: Vec<String>,

    /// Only versions still valid at or after TIME (as --at of `query
    /// routes`: RFC 3339, a time of day, epoch seconds, or a time ago such
    /// as -1h). None: from the start of the record.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<String>,

    /// Only versions that began at or before TIME. None: to the end of the
    /// record.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub until: Option<String>,
}

/// `query diff`'s options.
#[derive(Debug, Args)]
pub struct Diff {
    /// One host (with two --at) or two hosts (with at most one --at): a
    /// reported host name or the address collect dials.
    #[arg(long = "host", value_name = "HOST", required = true)]
    pub hosts: Vec<String>,

    /// Two moments (with one --host) or one (with two --host; default
    /// now), as --at of `query routes`: RFC 3339, a time of day, epoch
    /// seconds, or a time ago such as -1h.
    #[arg(long = "at", value_name = "TIME", allow_hyphen_values = true)]
    pub at: Vec<String>,
}

/// `query gaps`' options.
#[derive(Debug, Args)]
pub struct Gaps {
    /// Only these hosts: a reported host name or the address collect dials
    /// (repeat, or separate with commas). None: every host.
    #[arg(long = "host", value_name = "HOST", value_delimiter = ',')]
    pub hosts: Vec<String>,

    /// Only gaps that ended at or after TIME (as --at of `query routes`:
    /// RFC 3339, a time of day, epoch seconds, or a time ago such as -7d).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<String>,
}
