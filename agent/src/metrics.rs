//! Every metric the agent exports, named here and nowhere else, each with
//! its help text ([`ALL`] lists them; the README's table is made from it).
//!
//! Values are read at scrape time from the counters the data path keeps
//! anyway (the sources', the journal's, the sessions', the TLS layer's and
//! the admission limit's), so the hot path carries no metrics code.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::tls::TlsStats;
use crate::wire::WireStats;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use routewatch_proto::v1::{Family, Origin, ResyncCause};

use crate::journal::Journal;
use crate::namespaces::NamespaceStats;
use crate::persist::StateDirStats;
use crate::pipeline::Pipeline;
use crate::source::SourceStats;
use crate::state::Action;

/// One metric: its name (counters get `_total` on their samples, info
/// metrics `_info`), type, labels and help.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: MetricType,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

/// A counter (its samples are `NAME_total`).
pub const fn counter(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind: MetricType::Counter,
        labels,
        help,
    }
}

/// A gauge.
pub const fn gauge(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind: MetricType::Gauge,
        labels,
        help,
    }
}

impl Metric {
    /// The name its samples carry: `NAME_total` for counters, `NAME_info`
    /// for info metrics (the name the README's tables list).
    pub fn sample_name(&self) -> String {
        match self.kind {
            MetricType::Counter => format!("{}_total", self.name),
            MetricType::Info => format!("{}_info", self.name),
            _ => self.name.to_owned(),
        }
    }
}

pub const BUILD: Metric = Metric {
    name: "routewatch_build",
    kind: MetricType::Info,
    labels: &["version"],
    help: "The agent's version.",
};
pub const EVENTS: Metric = counter(
    "routewatch_events",
    &["origin", "action"],
    "Events by origin and action: changes numbered into the stream (origin notification or reconcile) and snapshot objects sent to subscribers (origin dump).",
);
pub const RESYNCS: Metric = counter(
    "routewatch_resyncs",
    &["cause"],
    "Resync markers sent to subscribers, by cause: unknown_stream (a cursor from another stream), cursor_too_old (the journal no longer holds it), lagged (the journal overtook a slow subscriber).",
);
pub const DUMPS: Metric = counter(
    "routewatch_dumps",
    &["reason"],
    "Dumps of the kernel's links, nexthop objects and routes, by what started them (initial_dump once per namespace; every other reason is a re-dump to reconcile).",
);
pub const ENOBUFS: Metric = counter(
    "routewatch_netlink_enobufs",
    &[],
    "Times the kernel dropped notifications because an rtnetlink socket's receive queue was full (ENOBUFS); each costs a re-dump.",
);
pub const TRUNCATED: Metric = counter(
    "routewatch_netlink_truncated",
    &[],
    "Netlink datagrams larger than the receive buffer; each costs a re-dump.",
);
pub const DECODE_FAILURES: Metric = counter(
    "routewatch_decode_failures",
    &[],
    "Netlink messages that failed to decode (logged with their bytes); each costs a re-dump.",
);
pub const UNKNOWN_ATTRIBUTES: Metric = counter(
    "routewatch_unknown_attributes",
    &["object"],
    "Attributes of routes and nexthop objects (object route or nexthop, encapsulations included) this version does not decode, counted each time a message carries one (dump replies too); they are passed on raw and each new kind is logged once.",
);
pub const RECONCILE_DIFFERENCES: Metric = counter(
    "routewatch_reconcile_differences",
    &[],
    "Differences between the agent's tables and the kernel's found by re-dumps, sent as changes with origin reconcile.",
);
pub const CHANGED_BY_LOOKUPS: Metric = counter(
    "routewatch_changed_by_lookups",
    &["how"],
    "Netlink port ids looked up to find who asked for a change, by the answer: cached (a cached process still holding the socket, one readlink), pid (the process the port id names), early (the same, read by an early reader before the process exited), socket (found among every process's open files), exited (the socket was gone first: the port id alone is reported), failed (the socket table could not be read, no process visible to the agent holds the socket, or the scans of every process's open files had used their tenth of the source's time).",
);
pub const CHANGED_BY_LOOKUP_SECONDS: Metric = counter(
    "routewatch_changed_by_lookup_seconds",
    &[],
    "Time the netlink sources spent finding who asked for changes (socket table and /proc reads; not the cached answers' checks).",
);
pub const SUBSCRIBERS: Metric = gauge("routewatch_subscribers", &[], "Subscriptions open now.");
pub const SUBSCRIBER_LAG: Metric = gauge(
    "routewatch_subscriber_lag_max",
    &[],
    "Changes the slowest subscriber is behind the stream's last change (0 without subscribers). A subscriber the journal overtakes is resynced.",
);
pub const STREAM_SEQ: Metric = gauge(
    "routewatch_stream_seq",
    &[],
    "Sequence number of the stream's last change.",
);
pub const JOURNAL_CHANGES: Metric = gauge(
    "routewatch_journal_changes",
    &[],
    "Changes the journal holds for subscribers to resume from (bounded by --journal-capacity).",
);
pub const JOURNAL_BYTES: Metric = gauge(
    "routewatch_journal_bytes",
    &[],
    "Memory the journal's recent changes take: bytes, bookkeeping and the object versions they hold (bounded by --journal-bytes).",
);
pub const ROUTES: Metric = gauge(
    "routewatch_routes",
    &["netns", "family"],
    "Routes in the agent's tables, by network namespace and family.",
);
pub const NEXTHOPS: Metric = gauge(
    "routewatch_nexthops",
    &["netns", "family"],
    "Nexthop objects in the agent's tables, by network namespace and family (unspec: groups and blackholes).",
);
pub const RULES: Metric = gauge(
    "routewatch_rules",
    &["netns", "family"],
    "Policy rules in the agent's tables, by network namespace and family.",
);
pub const NAMESPACES: Metric = gauge("routewatch_namespaces", &[], "Network namespaces watched.");
pub const NAMESPACE_FAILURES: Metric = counter(
    "routewatch_namespace_failures",
    &[],
    "Network namespaces that could not be watched (entering failed, or their source failed); each is logged and left out.",
);
pub const NAMESPACES_UNWATCHED: Metric = gauge(
    "routewatch_namespaces_unwatched",
    &[],
    "With --netns all: network namespaces in use on the host (held by a process, or mounted in pid 1's mount namespace) that the agent does not watch because they are not named in --netns-dir as it sees it (each change is logged with the namespaces); 0 otherwise.",
);
pub const STATE_DIR_DISCARDED: Metric = counter(
    "routewatch_state_dir_discarded",
    &["reason"],
    "Times the agent did not use (part of) its --state-dir, by reason: torn_tail (a last record the agent was killed while writing, cut off; the stream continues), and, each starting a new stream that every consumer resyncs to, damaged (a record whose checksum does not match, or files that contradict each other), unknown_format (files of another format or version), reboot (a log written before the machine rebooted), unreadable (files that could not be read or appended to).",
);
pub const READY: Metric = gauge(
    "routewatch_ready",
    &[],
    "1 once the first complete dump is in memory (as /readyz), else 0.",
);
pub const TLS_RELOADS: Metric = counter(
    "routewatch_tls_reloads",
    &[],
    "Times the TLS certificate, key and client CA were reloaded from disk.",
);
pub const TLS_RELOAD_FAILURES: Metric = counter(
    "routewatch_tls_reload_failures",
    &[],
    "Reloads of the TLS material that failed (the previous material stays in use).",
);
pub const TLS_HANDSHAKE_FAILURES: Metric = counter(
    "routewatch_tls_handshake_failures",
    &[],
    "Connections closed because their TLS handshake failed (no or untrusted client certificate, a plaintext client).",
);
pub const TLS_HANDSHAKE_TIMEOUTS: Metric = counter(
    "routewatch_tls_handshake_timeouts",
    &[],
    "Connections closed because the TLS handshake did not finish within --tls-handshake-timeout-secs.",
);
pub const CLIENTS_DENIED: Metric = counter(
    "routewatch_clients_denied",
    &[],
    "Calls refused with PERMISSION_DENIED: the client certificate names no identity on --allow-client.",
);
pub const SUBSCRIBERS_REJECTED: Metric = counter(
    "routewatch_subscribers_rejected",
    &[],
    "Subscriptions refused with RESOURCE_EXHAUSTED: --max-subscribers followers (or --max-snapshots one-shot snapshots) were open already.",
);
pub const CONNECTIONS: Metric = gauge(
    "routewatch_connections",
    &[],
    "Connections open now: in their TLS handshake, waiting for their first request, or serving calls.",
);
pub const CONNECTIONS_IDLE_CLOSED: Metric = counter(
    "routewatch_connections_idle_closed",
    &[],
    "Connections closed because no request arrived within --first-request-timeout-secs of their accept.",
);
pub const CONNECTIONS_REFUSED_PER_PEER: Metric = counter(
    "routewatch_connections_refused_per_peer",
    &[],
    "Connections closed at once because their IP address had --max-connections-per-peer open already.",
);
pub const ACCEPT_ERRORS: Metric = counter(
    "routewatch_accept_errors",
    &["reason"],
    "Failures to accept a connection, by reason: EMFILE (the agent's file-descriptor limit), ENFILE (the system's), other. Each pauses accepting briefly; open connections are still served.",
);
pub const ACCEPT_PAUSED: Metric = gauge(
    "routewatch_accept_paused",
    &[],
    "1 while accepting connections is paused because accept failed (out of file descriptors), else 0.",
);
pub const SUBSCRIBERS_STALLED: Metric = counter(
    "routewatch_subscribers_stalled_disconnects",
    &[],
    "Subscriptions whose connection was closed because the client answered nothing, not even HTTP/2 keepalive pings, for 20 s (each is logged once, with the peer and its position).",
);

pub const SEND_LATENCY: Metric = Metric {
    name: "routewatch_send_latency_seconds",
    kind: MetricType::Histogram,
    labels: &[],
    help: "Time from the agent reading a change from the kernel to a session handing the batch that carries it to its connection, observed per batch and session for the batch's oldest change.",
};
pub const DUMP_DURATION: Metric = Metric {
    name: "routewatch_dump_duration_seconds",
    kind: MetricType::Histogram,
    labels: &[],
    help: "Time a dump of a namespace's links, nexthop objects, rules and routes took, from the request to the table in memory (initial dumps and re-dumps).",
};

pub const RESPONSE_BYTES: Metric = counter(
    "routewatch_response_bytes",
    &["compression"],
    "Bytes of Subscribe responses sent (gRPC messages with their headers, before HTTP/2 framing and TLS), by compression: none, zstd or gzip.",
);

/// Every metric, in the order they are exported.
pub const ALL: &[Metric] = &[
    BUILD,
    EVENTS,
    RESYNCS,
    DUMPS,
    ENOBUFS,
    TRUNCATED,
    DECODE_FAILURES,
    UNKNOWN_ATTRIBUTES,
    RECONCILE_DIFFERENCES,
    CHANGED_BY_LOOKUPS,
    CHANGED_BY_LOOKUP_SECONDS,
    SUBSCRIBERS,
    SUBSCRIBER_LAG,
    STREAM_SEQ,
    JOURNAL_CHANGES,
    JOURNAL_BYTES,
    ROUTES,
    NEXTHOPS,
    RULES,
    NAMESPACES,
    NAMESPACE_FAILURES,
    NAMESPACES_UNWATCHED,
    STATE_DIR_DISCARDED,
    READY,
    TLS_RELOADS,
    TLS_RELOAD_FAILURES,
    TLS_HANDSHAKE_FAILURES,
    TLS_HANDSHAKE_TIMEOUTS,
    CLIENTS_DENIED,
    SUBSCRIBERS_REJECTED,
    CONNECTIONS,
    CONNECTIONS_IDLE_CLOSED,
    CONNECTIONS_REFUSED_PER_PEER,
    ACCEPT_ERRORS,
    ACCEPT_PAUSED,
    SUBSCRIBERS_STALLED,
    SEND_LATENCY,
    DUMP_DURATION,
    RESPONSE_BYTES,
];

/// Observations of a duration, in seconds, in fixed buckets: a histogram
/// metric ([`SEND_LATENCY`], [`DUMP_DURATION`]).
#[derive(Debug, Clone)]
pub struct Durations(Histogram);

impl Durations {
    /// Buckets of [`SEND_LATENCY`]: 100 µs to 10 s.
    pub const LATENCY: &'static [f64] = &[
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0,
    ];
    /// Buckets of [`DUMP_DURATION`]: 1 ms to 2 min.
    pub const DUMPS: &'static [f64] = &[
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        120.0,
    ];

    pub fn new(buckets: &[f64]) -> Durations {
        Durations(Histogram::new(buckets.iter().copied()))
    }

    pub fn observe(&self, seconds: f64) {
        self.0.observe(seconds.max(0.0));
    }

    fn write(&self, encoder: &mut DescriptorEncoder, m: &Metric) -> fmt::Result {
        self.0
            .encode(encoder.encode_descriptor(m.name, m.help, None, m.kind)?)
    }
}

/// The agent's metrics, ready to encode.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// Metrics read from `pipeline`, the TLS layer, the admission limit
    /// and the responses sent.
    pub fn new(
        pipeline: &Pipeline,
        tls: Arc<TlsStats>,
        rejected: Arc<AtomicU64>,
        wire: Arc<WireStats>,
    ) -> Metrics {
        Metrics::of(
            pipeline.journal.clone(),
            pipeline.stats.clone(),
            pipeline.namespaces.clone(),
            pipeline.state_dir.clone(),
            tls,
            rejected,
            wire,
        )
    }

    /// Metrics read from a journal, the counters of its sources, its
    /// namespaces' and its state dir's, the TLS layer's, the admission
    /// limit's and the responses'.
    pub fn of(
        journal: Arc<Journal>,
        sources: Arc<SourceStats>,
        namespaces: Arc<NamespaceStats>,
        state_dir: Arc<StateDirStats>,
        tls: Arc<TlsStats>,
        rejected: Arc<AtomicU64>,
        wire: Arc<WireStats>,
    ) -> Metrics {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(crate::process::ProcessMetrics));
        registry.register_collector(Box::new(Scrape {
            journal,
            sources,
            namespaces,
            state_dir,
            tls,
            rejected,
            wire,
        }));
        Metrics { registry }
    }

    /// The OpenMetrics text exposition (ends with `# EOF`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Reads every value at scrape time.
struct Scrape {
    journal: Arc<Journal>,
    sources: Arc<SourceStats>,
    namespaces: Arc<NamespaceStats>,
    state_dir: Arc<StateDirStats>,
    tls: Arc<TlsStats>,
    rejected: Arc<AtomicU64>,
    wire: Arc<WireStats>,
}

impl fmt::Debug for Scrape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scrape")
    }
}

/// One metric's samples, label values in the order of [`Metric::labels`].
enum Samples<'a> {
    Count(Vec<(Vec<&'a str>, u64)>),
    Level(Vec<(Vec<&'a str>, i64)>),
}

fn one_count(v: &AtomicU64) -> Samples<'static> {
    Samples::Count(vec![(vec![], v.load(Ordering::Relaxed))])
}

fn one_level(v: u64) -> Samples<'static> {
    Samples::Level(vec![(vec![], i64::try_from(v).unwrap_or(i64::MAX))])
}

fn write(encoder: &mut DescriptorEncoder, m: &Metric, samples: Samples) -> fmt::Result {
    let mut family = encoder.encode_descriptor(m.name, m.help, None, m.kind)?;
    let labels = |values: &[&str]| -> Vec<(&'static str, String)> {
        m.labels
            .iter()
            .zip(values)
            .map(|(k, v)| (*k, v.to_string()))
            .collect()
    };
    match samples {
        Samples::Count(rows) if m.labels.is_empty() => {
            let total = rows.iter().map(|(_, v)| v).sum::<u64>();
            ConstCounter::new(total).encode(family)
        }
        Samples::Level(rows) if m.labels.is_empty() => {
            let level = rows.iter().map(|(_, v)| v).sum::<i64>();
            ConstGauge::new(level).encode(family)
        }
        Samples::Count(rows) => rows.into_iter().try_for_each(|(values, v)| {
            ConstCounter::new(v).encode(family.encode_family(&labels(&values))?)
        }),
        Samples::Level(rows) => rows.into_iter().try_for_each(|(values, v)| {
            ConstGauge::new(v).encode(family.encode_family(&labels(&values))?)
        }),
    }
}

/// `(netns, family, count)` rows as samples.
fn per_family<'a>(rows: &'a [(String, &'static str, i64)]) -> Vec<(Vec<&'a str>, i64)> {
    rows.iter()
        .map(|(netns, family, n)| (vec![netns.as_str(), *family], *n))
        .collect()
}

fn family_name(family: i32) -> &'static str {
    match Family::try_from(family) {
        Ok(Family::Inet) => "inet",
        Ok(Family::Inet6) => "inet6",
        _ => "unspec",
    }
}

/// A reason as a label value: "netlink overflow (ENOBUFS)" becomes
/// "netlink_overflow_enobufs".
fn slug(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    for c in reason.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        // Everything the journal's lock protects, read at one instant.
        let (published, last_seq, ring_changes, ring_bytes, mut routes, mut nexthops, mut rules) = {
            let core = self.journal.lock();
            let mut routes: Vec<(String, &'static str, i64)> = Vec::new();
            let mut nexthops: Vec<(String, &'static str, i64)> = Vec::new();
            let mut rules: Vec<(String, &'static str, i64)> = Vec::new();
            for (netns, table) in core.tables() {
                for (out, counts) in [
                    (&mut routes, table.route_families()),
                    (&mut nexthops, table.nexthop_families()),
                    (&mut rules, table.rule_families()),
                ] {
                    for (family, n) in counts {
                        out.push((netns.to_string(), family_name(family), n as i64));
                    }
                }
            }
            (
                *core.published(),
                core.last_seq(),
                core.ring_len() as u64,
                core.ring_bytes() as u64,
                routes,
                nexthops,
                rules,
            )
        };
        routes.sort();
        nexthops.sort();
        rules.sort();
        let subscribers = &self.journal.subscribers;
        let e = &mut encoder;

        let mut build = e.encode_descriptor(BUILD.name, BUILD.help, None, BUILD.kind)?;
        build.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])?;

        let mut events: Vec<(Vec<&str>, u64)> = published
            .counts()
            .map(|(origin, action, n)| (vec![origin_name(origin), action_name(action)], n))
            .collect();
        events.push((vec!["dump", "add"], subscribers.snapshot_events()));
        write(e, &EVENTS, Samples::Count(events))?;

        let resyncs = [
            ResyncCause::UnknownStream,
            ResyncCause::CursorTooOld,
            ResyncCause::Lagged,
        ]
        .into_iter()
        .map(|cause| (vec![cause_name(cause)], subscribers.resyncs(cause)))
        .collect();
        write(e, &RESYNCS, Samples::Count(resyncs))?;

        let reasons: Vec<(String, u64)> = self
            .sources
            .dump_reasons()
            .into_iter()
            .map(|(reason, n)| (slug(reason), n))
            .collect();
        let dumps = reasons
            .iter()
            .map(|(r, n)| (vec![r.as_str()], *n))
            .collect();
        write(e, &DUMPS, Samples::Count(dumps))?;

        write(e, &ENOBUFS, one_count(&self.sources.overflows))?;
        write(e, &TRUNCATED, one_count(&self.sources.truncated))?;
        write(
            e,
            &DECODE_FAILURES,
            one_count(&self.sources.decode_failures),
        )?;
        let unknown = self
            .sources
            .unknown
            .counts()
            .into_iter()
            .map(|(object, n)| (vec![object], n))
            .collect();
        write(e, &UNKNOWN_ATTRIBUTES, Samples::Count(unknown))?;
        write(
            e,
            &RECONCILE_DIFFERENCES,
            one_count(&self.sources.reconcile_changes),
        )?;
        let a = &self.sources.attribution;
        let lookups = [
            ("cached", &a.hits),
            ("pid", &a.by_pid),
            ("socket", &a.by_socket),
            ("early", &a.early),
            ("exited", &a.exited),
            ("failed", &a.failed),
        ]
        .into_iter()
        .map(|(how, n)| (vec![how], n.load(Ordering::Relaxed)))
        .collect();
        write(e, &CHANGED_BY_LOOKUPS, Samples::Count(lookups))?;
        let m = &CHANGED_BY_LOOKUP_SECONDS;
        let seconds = a.lookup_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        ConstCounter::new(seconds).encode(e.encode_descriptor(m.name, m.help, None, m.kind)?)?;
        write(e, &SUBSCRIBERS, one_level(subscribers.count() as u64))?;
        write(e, &SUBSCRIBER_LAG, one_level(subscribers.max_lag(last_seq)))?;
        write(e, &STREAM_SEQ, one_level(last_seq))?;
        write(e, &JOURNAL_CHANGES, one_level(ring_changes))?;
        write(e, &JOURNAL_BYTES, one_level(ring_bytes))?;
        write(e, &ROUTES, Samples::Level(per_family(&routes)))?;
        write(e, &NEXTHOPS, Samples::Level(per_family(&nexthops)))?;
        write(e, &RULES, Samples::Level(per_family(&rules)))?;
        write(
            e,
            &NAMESPACES,
            one_level(self.namespaces.watched.load(Ordering::Relaxed)),
        )?;
        write(e, &NAMESPACE_FAILURES, one_count(&self.namespaces.failures))?;
        write(
            e,
            &NAMESPACES_UNWATCHED,
            one_level(self.namespaces.unwatched.load(Ordering::Relaxed)),
        )?;
        let discarded = self
            .state_dir
            .discarded()
            .into_iter()
            .map(|(why, n)| (vec![why.label()], n))
            .collect();
        write(e, &STATE_DIR_DISCARDED, Samples::Count(discarded))?;
        write(e, &READY, one_level(u64::from(self.journal.is_ready())))?;
        write(e, &TLS_RELOADS, one_count(&self.tls.reloads))?;
        write(e, &TLS_RELOAD_FAILURES, one_count(&self.tls.reload_errors))?;
        write(
            e,
            &TLS_HANDSHAKE_FAILURES,
            one_count(&self.tls.handshake_failures),
        )?;
        write(
            e,
            &TLS_HANDSHAKE_TIMEOUTS,
            one_count(&self.tls.handshake_timeouts),
        )?;
        write(e, &CLIENTS_DENIED, one_count(&self.tls.clients_denied))?;
        write(e, &SUBSCRIBERS_REJECTED, one_count(&self.rejected))?;
        write(
            e,
            &CONNECTIONS,
            one_level(self.tls.connections.load(Ordering::Relaxed)),
        )?;
        write(
            e,
            &CONNECTIONS_IDLE_CLOSED,
            one_count(&self.tls.idle_closed),
        )?;
        write(
            e,
            &CONNECTIONS_REFUSED_PER_PEER,
            one_count(&self.tls.refused_per_peer),
        )?;
        let accept_errors = self
            .tls
            .accept_errors
            .counts()
            .into_iter()
            .map(|(reason, n)| (vec![reason], n))
            .collect();
        write(e, &ACCEPT_ERRORS, Samples::Count(accept_errors))?;
        write(
            e,
            &ACCEPT_PAUSED,
            one_level(self.tls.accept_paused.load(Ordering::Relaxed)),
        )?;
        write(
            e,
            &SUBSCRIBERS_STALLED,
            one_count(&self.wire.stalled_disconnects),
        )?;
        subscribers.send_latency.write(e, &SEND_LATENCY)?;
        self.sources.dump_seconds.write(e, &DUMP_DURATION)?;
        let bytes = [
            ("none", &self.wire.plain_bytes),
            ("zstd", &self.wire.zstd_bytes),
            ("gzip", &self.wire.gzip_bytes),
        ]
        .into_iter()
        .map(|(c, n)| (vec![c], n.load(Ordering::Relaxed)))
        .collect();
        write(e, &RESPONSE_BYTES, Samples::Count(bytes))?;
        Ok(())
    }
}

fn origin_name(origin: Origin) -> &'static str {
    match origin {
        Origin::Notification => "notification",
        Origin::Dump => "dump",
        Origin::Reconcile => "reconcile",
        Origin::Unspecified => "unspecified",
    }
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Add => "add",
        Action::Delete => "delete",
    }
}

fn cause_name(cause: ResyncCause) -> &'static str {
    match cause {
        ResyncCause::UnknownStream => "unknown_stream",
        ResyncCause::CursorTooOld => "cursor_too_old",
        ResyncCause::Lagged => "lagged",
        ResyncCause::DigestMismatch => "digest_mismatch",
        ResyncCause::Unspecified => "unspecified",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_help_reads_as_a_sentence() {
        let mut names: Vec<&str> = ALL.iter().map(|m| m.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        for m in ALL {
            assert!(m.name.starts_with("routewatch_"), "{}", m.name);
            assert!(
                !m.name.ends_with("_total"),
                "{}: the encoder adds _total",
                m.name
            );
            assert!(m.help.ends_with('.'), "{}", m.name);
            assert!(
                !m.help.contains('\n') && !m.help.contains('\\'),
                "{}",
                m.name
            );
        }
    }

    #[test]
    fn the_readme_lists_every_metric() {
        let readme = include_str!("../../README.md");
        for m in ALL.iter().chain(crate::process::ALL) {
            let sample = format!("`{}`", m.sample_name());
            assert!(readme.contains(&sample), "README.md lacks {sample}");
        }
    }

    #[test]
    fn reasons_become_label_values() {
        assert_eq!(
            slug("netlink overflow (ENOBUFS)"),
            "netlink_overflow_enobufs"
        );
        assert_eq!(slug("initial dump"), "initial_dump");
    }
}
