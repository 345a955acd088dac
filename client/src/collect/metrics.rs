//! Every metric the collector exports, named here and nowhere else, each
//! with its help text ([`ALL`] lists them; the README's table must name
//! each one).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use routewatch_agent::metrics::{counter, gauge, Metric};
use routewatch_agent::ops::Exposition;

// Help texts without a final period: the exposition adds it.

pub const BUILD: Metric = Metric {
    name: "routewatch_collector_build",
    kind: MetricType::Info,
    labels: &["version"],
    help: "The collector's version",
};
pub const EVENTS: Metric = counter(
    "routewatch_collector_events",
    &["target", "host"],
    "Changes stored in the log, per target",
);
pub const SNAPSHOTS: Metric = counter(
    "routewatch_collector_snapshots",
    &["target", "host"],
    "Complete snapshots stored (the first of a target, and one after every resync), per target",
);
pub const GAPS: Metric = counter(
    "routewatch_collector_gaps",
    &["target", "host"],
    "Gaps recorded (resyncs: the history between the last stored position and the new snapshot is not exact), per target",
);
pub const LAG: Metric = gauge(
    "routewatch_collector_lag_seconds",
    &["target", "host"],
    "Time from the agent observing the last stored event (or heartbeat) to its commit, per target",
);
pub const CONNECTED: Metric = gauge(
    "routewatch_collector_connected",
    &["target", "host"],
    "1 while the target's subscription is up, 0 while it is being retried",
);
pub const HELD: Metric = gauge(
    "routewatch_collector_targets_held",
    &[],
    "Targets this collector follows (holds the claim of)",
);
pub const WAITING: Metric = gauge(
    "routewatch_collector_targets_waiting",
    &[],
    "Targets held by another collector on the same PostgreSQL database, which this one takes over if that collector stops",
);
pub const LOST: Metric = counter(
    "routewatch_collector_targets_lost",
    &[],
    "Targets given up because another collector wrote to them or the store's connection (and its locks) went away",
);
pub const TAKEN_OVER: Metric = counter(
    "routewatch_collector_targets_taken_over",
    &[],
    "Targets taken from another collector that held them (it stopped, or let them go)",
);
pub const CLAIMS: Metric = counter(
    "routewatch_collector_claims",
    &[],
    "Rounds of claims made to the store, each for every target waiting at that moment (one round trip or two for all of them)",
);
pub const CLAIMED: Metric = counter(
    "routewatch_collector_targets_claimed",
    &[],
    "Targets granted to this collector by its claims",
);
pub const COMMITS: Metric = counter(
    "routewatch_collector_commits",
    &[],
    "Transactions committed to the store",
);
pub const STORE_ERRORS: Metric = counter(
    "routewatch_collector_store_errors",
    &[],
    "Store operations that failed (each is retried; nothing is lost, the cursor moves only with the rows)",
);
pub const PRUNED: Metric = counter(
    "routewatch_collector_pruned_rows",
    &[],
    "Rows removed by --retain",
);
pub const IDENTITY_CONFLICTS: Metric = counter(
    "routewatch_collector_identity_conflicts",
    &[],
    "Claims refused because a second agent (another stream) reported the identity of an agent this collector follows: two agents claiming one identity are never merged",
);
pub const READY: Metric = gauge(
    "routewatch_collector_ready",
    &[],
    "1 while the store is open and the last write to it succeeded (as /readyz)",
);

/// Every metric, for the README check.
pub const ALL: &[&Metric] = &[
    &BUILD,
    &EVENTS,
    &SNAPSHOTS,
    &GAPS,
    &LAG,
    &CONNECTED,
    &HELD,
    &WAITING,
    &LOST,
    &TAKEN_OVER,
    &CLAIMS,
    &CLAIMED,
    &COMMITS,
    &STORE_ERRORS,
    &PRUNED,
    &IDENTITY_CONFLICTS,
    &READY,
];

type Labels = Vec<(&'static str, String)>;

/// The collector's metrics, updated by the writer and the fan-in.
pub struct Metrics {
    registry: Registry,
    events: Family<Labels, Counter>,
    snapshots: Family<Labels, Counter>,
    gaps: Family<Labels, Counter>,
    lag: Family<Labels, Gauge<f64, AtomicU64>>,
    connected: Family<Labels, Gauge>,
    held: Gauge,
    waiting: Gauge,
    lost: Counter,
    taken_over: Counter,
    claims: Counter,
    claimed: Counter,
    commits: Counter,
    store_errors: Counter,
    pruned: Counter,
    identity_conflicts: Counter,
    ready: Gauge,
    ready_flag: AtomicBool,
    /// The host name each target's agent reports, once known: the `host`
    /// label of its series.
    hosts: Mutex<HashMap<String, String>>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::default();
        let m = Metrics {
            registry: Registry::default(),
            events: Family::default(),
            snapshots: Family::default(),
            gaps: Family::default(),
            lag: Family::default(),
            connected: Family::default(),
            held: Gauge::default(),
            waiting: Gauge::default(),
            lost: Counter::default(),
            taken_over: Counter::default(),
            claims: Counter::default(),
            claimed: Counter::default(),
            commits: Counter::default(),
            store_errors: Counter::default(),
            pruned: Counter::default(),
            identity_conflicts: Counter::default(),
            ready: Gauge::default(),
            ready_flag: AtomicBool::new(false),
            hosts: Mutex::new(HashMap::new()),
        };
        registry.register(
            BUILD.name,
            BUILD.help,
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register(EVENTS.name, EVENTS.help, m.events.clone());
        registry.register(SNAPSHOTS.name, SNAPSHOTS.help, m.snapshots.clone());
        registry.register(GAPS.name, GAPS.help, m.gaps.clone());
        registry.register(LAG.name, LAG.help, m.lag.clone());
        registry.register(CONNECTED.name, CONNECTED.help, m.connected.clone());
        registry.register(HELD.name, HELD.help, m.held.clone());
        registry.register(WAITING.name, WAITING.help, m.waiting.clone());
        registry.register(LOST.name, LOST.help, m.lost.clone());
        registry.register(TAKEN_OVER.name, TAKEN_OVER.help, m.taken_over.clone());
        registry.register(CLAIMS.name, CLAIMS.help, m.claims.clone());
        registry.register(CLAIMED.name, CLAIMED.help, m.claimed.clone());
        registry.register(COMMITS.name, COMMITS.help, m.commits.clone());
        registry.register(STORE_ERRORS.name, STORE_ERRORS.help, m.store_errors.clone());
        registry.register(PRUNED.name, PRUNED.help, m.pruned.clone());
        registry.register(
            IDENTITY_CONFLICTS.name,
            IDENTITY_CONFLICTS.help,
            m.identity_conflicts.clone(),
        );
        registry.register(READY.name, READY.help, m.ready.clone());
        registry.register_collector(Box::new(routewatch_agent::process::ProcessMetrics));
        Arc::new(Metrics { registry, ..m })
    }

    /// A target's labels: its address and the host name its agent
    /// reports (empty until it has said).
    fn target(&self, name: &str) -> Labels {
        let host = lock(&self.hosts).get(name).cloned().unwrap_or_default();
        vec![("target", name.to_owned()), ("host", host)]
    }

    /// Notes the host name `name`'s agent reports; series made before it
    /// was known move to the labels with it.
    fn host(&self, name: &str, host: &str) {
        if host.is_empty() {
            return;
        }
        let old = lock(&self.hosts).insert(name.to_owned(), host.to_owned());
        if old.as_deref() == Some(host) {
            return;
        }
        let before = vec![
            ("target", name.to_owned()),
            ("host", old.unwrap_or_default()),
        ];
        let after = self.target(name);
        let moved = |value: Option<u64>, to: &Counter| {
            if let Some(v) = value {
                to.inc_by(v);
            }
        };
        for family in [&self.events, &self.snapshots, &self.gaps] {
            let value = family.get(&before).map(|c| c.get());
            if family.remove(&before) {
                moved(value, &family.get_or_create(&after));
            }
        }
        self.lag.remove(&before);
        self.connected.remove(&before);
    }

    pub fn stored(&self, name: &str, events: u64, snapshots: u64, gaps: u64, lag_seconds: f64) {
        let t = self.target(name);
        self.events.get_or_create(&t).inc_by(events);
        if snapshots > 0 {
            self.snapshots.get_or_create(&t).inc_by(snapshots);
        }
        if gaps > 0 {
            self.gaps.get_or_create(&t).inc_by(gaps);
        }
        self.lag.get_or_create(&t).set(lag_seconds.max(0.0));
    }

    /// `name` (whose agent calls itself `host`) is connected or not.
    pub fn connected(&self, name: &str, host: &str, up: bool) {
        self.host(name, host);
        self.connected
            .get_or_create(&self.target(name))
            .set(i64::from(up));
    }

    /// The target is no longer followed here: its per-target series go.
    pub fn forget(&self, name: &str) {
        let t = self.target(name);
        self.connected.remove(&t);
        self.lag.remove(&t);
    }

    pub fn targets(&self, held: usize, waiting: usize) {
        self.held.set(held as i64);
        self.waiting.set(waiting as i64);
    }

    pub fn lost(&self) {
        self.lost.inc();
    }

    /// One round of claims granted `claimed` targets, `taken_over` of
    /// them from another collector.
    pub fn claimed(&self, claimed: usize, taken_over: usize) {
        self.claims.inc();
        self.claimed.inc_by(claimed as u64);
        self.taken_over.inc_by(taken_over as u64);
    }

    pub fn committed(&self) {
        self.commits.inc();
        self.set_ready(true);
    }

    pub fn store_error(&self) {
        self.store_errors.inc();
        self.set_ready(false);
    }

    /// A claim refused: its agent reports an identity another agent
    /// followed here has.
    pub fn identity_conflict(&self) {
        self.identity_conflicts.inc();
    }

    pub fn pruned(&self, rows: u64) {
        self.pruned.inc_by(rows);
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready_flag.store(ready, Ordering::Relaxed);
        self.ready.set(i64::from(ready));
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Exposition for Metrics {
    fn metrics_text(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    fn readiness(&self) -> Result<(), String> {
        if self.ready_flag.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("the store is not open, or its last write failed (see the collector's log)".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_lists_every_metric() {
        let readme = include_str!("../../../README.md");
        for m in ALL {
            let sample = format!("`{}`", m.sample_name());
            assert!(readme.contains(&sample), "README.md lacks {sample}");
        }
    }

    /// The Grafana dashboard of the ops ports asks only for series the
    /// agent and the collector export, with labels they carry.
    #[test]
    fn the_metrics_dashboard_names_only_exported_series() {
        let text = include_str!("../../../deploy/grafana/dashboards/routewatch-metrics.json");
        let dashboard: serde_json::Value = serde_json::from_str(text).expect("dashboard JSON");
        let mut known: Vec<(String, &[&str])> = Vec::new();
        let agent = routewatch_agent::metrics::ALL.iter();
        let process = routewatch_agent::process::ALL.iter();
        for m in agent.chain(process).chain(ALL.iter().copied()) {
            let samples: Vec<String> = match m.kind {
                MetricType::Histogram => ["_bucket", "_count", "_sum"]
                    .iter()
                    .map(|s| format!("{}{s}", m.name))
                    .collect(),
                _ => vec![m.sample_name()],
            };
            for sample in samples {
                known.push((sample, m.labels));
            }
        }
        let mut asked = 0;
        for panel in dashboard["panels"].as_array().expect("panels") {
            assert_eq!(panel["datasource"]["uid"], "routewatch-prometheus");
            for target in panel["targets"].as_array().expect("targets") {
                let expr = target["expr"].as_str().expect("expr");
                let words = expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
                for word in
                    words.filter(|w| w.starts_with("routewatch_") || w.starts_with("process_"))
                {
                    assert!(
                        known.iter().any(|(name, _)| name == word),
                        "{:?} asks for {word}, which nothing exports",
                        panel["title"]
                    );
                    asked += 1;
                }
                // Labels grouped by must be the metric's own (or the
                // scrape's: instance, job).
                if let Some(by) = expr.split("by (").nth(1).and_then(|r| r.split(')').next()) {
                    for label in by.split(',').map(str::trim) {
                        let ours = known
                            .iter()
                            .filter(|(name, _)| expr.contains(name.as_str()))
                            .any(|(_, labels)| labels.contains(&label));
                        assert!(
                            ours || ["instance", "job", "le"].contains(&label),
                            "{:?} groups by {label}, which its series lack",
                            panel["title"]
                        );
                    }
                }
            }
        }
        assert!(asked >= 10, "{asked}");
    }

    #[test]
    fn metrics_are_openmetrics_and_labelled_with_the_host_name() {
        let m = Metrics::new();
        m.stored("10.0.0.1:50051", 5, 1, 0, 0.25);
        m.connected("10.0.0.1:50051", "node-a", true);
        m.stored("10.0.0.1:50051", 2, 0, 0, 0.1);
        m.committed();
        let text = m.metrics_text();
        // The events stored before the host name was known moved to the
        // series that carries it.
        assert!(
            text.contains(
                "routewatch_collector_events_total{target=\"10.0.0.1:50051\",host=\"node-a\"} 7"
            ),
            "{text}"
        );
        assert!(!text.contains("host=\"\""), "{text}");
        assert!(
            text.contains(
                "routewatch_collector_connected{target=\"10.0.0.1:50051\",host=\"node-a\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("routewatch_collector_build_info{version="),
            "{text}"
        );
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(m.readiness().is_ok());
        m.store_error();
        assert!(m.readiness().is_err());
    }
}
