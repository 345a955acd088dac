//! The `process_*` metrics that Prometheus client libraries export by
//! convention (CPU time, memory, file descriptors, threads, start time),
//! read from `/proc/self` at scrape time. The agent and the collector both
//! register [`ProcessMetrics`] on their ops port.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::metrics::{counter, gauge, Metric};

pub const CPU: Metric = counter(
    "process_cpu_seconds",
    &[],
    "User and system CPU time the process has used, in seconds.",
);
pub const RESIDENT: Metric = gauge(
    "process_resident_memory_bytes",
    &[],
    "Resident memory of the process, in bytes.",
);
pub const VIRTUAL: Metric = gauge(
    "process_virtual_memory_bytes",
    &[],
    "Virtual memory of the process, in bytes.",
);
pub const OPEN_FDS: Metric = gauge(
    "process_open_fds",
    &[],
    "File descriptors the process has open.",
);
pub const MAX_FDS: Metric = gauge(
    "process_max_fds",
    &[],
    "The process's limit of open file descriptors (RLIMIT_NOFILE, soft).",
);
pub const THREADS: Metric = gauge("process_threads", &[], "Threads of the process.");
pub const START_TIME: Metric = gauge(
    "process_start_time_seconds",
    &[],
    "When the process started, in seconds since the Unix epoch.",
);

/// Every process metric, in the order they are exported.
pub const ALL: &[Metric] = &[
    CPU, RESIDENT, VIRTUAL, OPEN_FDS, MAX_FDS, THREADS, START_TIME,
];

/// The figures of one scrape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub threads: u64,
    pub start_time_seconds: f64,
}

/// Reads [`Figures`] from `/proc/self`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessMetrics;

impl ProcessMetrics {
    /// This process's figures now; `None` where `/proc` cannot be read.
    pub fn read() -> Option<Figures> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        // SAFETY: sysconf and getrlimit only read process-wide settings;
        // getrlimit writes into the struct it is given.
        let (ticks, page, max_fds) = unsafe {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                limit.rlim_cur
            } else {
                0
            };
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
                max,
            )
        };
        // One entry is the directory's own descriptor.
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()?
            .count()
            .saturating_sub(1) as u64;
        parse(
            &stat,
            &boot,
            u64::try_from(ticks).ok()?,
            u64::try_from(page).ok()?,
            open_fds,
            max_fds,
        )
    }
}

/// Figures from the text of `/proc/self/stat` and `/proc/stat`.
fn parse(
    stat: &str,
    boot: &str,
    ticks_per_second: u64,
    page_size: u64,
    open_fds: u64,
    max_fds: u64,
) -> Option<Figures> {
    // The command name is in parentheses and may hold spaces or ')':
    // fields are counted from the last ')'. After it, field 3 (state) is
    // index 0.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let boot_time: u64 = boot
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let ticks = ticks_per_second.max(1) as f64;
    Some(Figures {
        cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
        threads: field(20)?,
        start_time_seconds: boot_time as f64 + field(22)? as f64 / ticks,
        virtual_bytes: field(23)?,
        resident_bytes: field(24)? * page_size,
        open_fds,
        max_fds,
    })
}

impl Collector for ProcessMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let Some(f) = ProcessMetrics::read() else {
            return Ok(());
        };
        let mut put = |m: &Metric, value: f64| -> fmt::Result {
            let family = encoder.encode_descriptor(m.name, m.help, None, m.kind)?;
            match m.kind {
                MetricType::Counter => ConstCounter::new(value).encode(family),
                _ => ConstGauge::new(value).encode(family),
            }
        };
        put(&CPU, f.cpu_seconds)?;
        put(&RESIDENT, f.resident_bytes as f64)?;
        put(&VIRTUAL, f.virtual_bytes as f64)?;
        put(&OPEN_FDS, f.open_fds as f64)?;
        put(&MAX_FDS, f.max_fds as f64)?;
        put(&THREADS, f.threads as f64)?;
        put(&START_TIME, f.start_time_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/self/stat` of a process named `a) b` (a name may hold both).
    const STAT: &str = "4242 (a) b) S 1 4242 4242 0 -1 4194560 1500 0 0 0 250 130 0 0 20 0 3 0 12345 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
    const BOOT: &str = "cpu  1 2 3 4\nintr 1\nbtime 1764900000\nprocesses 9\n";

    #[test]
    fn figures_come_from_the_fields_after_the_command_name() {
        let f = parse(STAT, BOOT, 100, 4096, 9, 1024).expect("parses");
        assert!((f.cpu_seconds - 3.8).abs() < 1e-9, "{f:?}");
        assert!(
            (f.start_time_seconds - 1_764_900_123.45).abs() < 1e-3,
            "{f:?}"
        );
        assert_eq!(
            (
                f.resident_bytes,
                f.virtual_bytes,
                f.open_fds,
                f.max_fds,
                f.threads
            ),
            (2560 * 4096, 104_857_600, 9, 1024, 3)
        );
    }

    #[test]
    fn this_process_reads_and_exports() {
        let f = ProcessMetrics::read().expect("/proc/self is readable");
        assert!(f.resident_bytes > 0 && f.open_fds > 0 && f.max_fds >= f.open_fds);
        assert!(f.threads >= 1);
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ProcessMetrics));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for m in ALL {
            assert!(
                text.contains(&format!("\n{} ", m.sample_name())),
                "{} missing from {text}",
                m.sample_name()
            );
        }
    }
}
