//! Checks on the stream itself, beyond the state it builds: every change
//! arrives exactly once, in order, with no gap (DESIGN.md, contract item 2).

use std::collections::BTreeMap;

use serde_json::Value;

/// What a consumer's lines say about the stream.
#[derive(Debug, Default)]
pub struct StreamCheck {
    /// Live changes (origin notification or reconcile) per host.
    pub live_changes: usize,
    /// `cause` of every resync marker, in order.
    pub resync_causes: Vec<String>,
    /// Stream ids seen, in order of first appearance.
    pub streams: Vec<String>,
    /// Every violation: a gap, a duplicate, a change out of order.
    pub problems: Vec<String>,
}

impl StreamCheck {
    /// Reads `lines` (JSON lines of `routewatch tail`, possibly from several
    /// runs concatenated). After a `sync` marker at seq S the next live
    /// change of that host must be S+1, then S+2, ...; a `resync` suspends
    /// the check until the next `sync`. After a resync that says
    /// `"snapshot":"differences"`, the `reconcile` changes before its
    /// `sync` are that snapshot's differences, at the snapshot's position.
    pub fn of<S: AsRef<str>>(lines: &[S]) -> StreamCheck {
        let mut check = StreamCheck::default();
        // host -> the next seq expected, None while resynchronising.
        let mut next: BTreeMap<String, Option<u64>> = BTreeMap::new();
        // Hosts between a resync followed by differences and its sync.
        let mut differences: BTreeMap<String, bool> = BTreeMap::new();
        for (n, line) in lines.iter().enumerate() {
            let Ok(v) = serde_json::from_str::<Value>(line.as_ref()) else {
                continue;
            };
            let host = v["host"].as_str().unwrap_or("").to_owned();
            if let Some(stream) = v["stream_id"].as_str() {
                if !check.streams.iter().any(|s| s == stream) {
                    check.streams.push(stream.to_owned());
                }
            }
            let seq = v["seq"].as_u64();
            match (v["action"].as_str(), v["origin"].as_str()) {
                // A replay of the journal: its changes follow this seq.
                (Some("sync" | "replay"), _) => {
                    differences.remove(&host);
                    next.insert(host, seq.map(|s| s + 1));
                }
                (Some("resync"), _) => {
                    check
                        .resync_causes
                        .push(v["cause"].as_str().unwrap_or("").to_owned());
                    if v["snapshot"].as_str() == Some("differences") {
                        differences.insert(host.clone(), true);
                    }
                    next.insert(host, None);
                }
                (Some("add" | "delete"), Some("reconcile"))
                    if differences.get(&host).copied().unwrap_or(false) => {}
                (Some("add" | "delete"), Some("notification" | "reconcile")) => {
                    check.live_changes += 1;
                    let Some(seq) = seq else {
                        check.problems.push(format!("line {n}: change without seq"));
                        continue;
                    };
                    match next.get(&host).copied().flatten() {
                        Some(want) if want == seq => {
                            next.insert(host, Some(seq + 1));
                        }
                        Some(want) => {
                            check.problems.push(format!(
                                "line {n}: host {host} seq {seq}, expected {want} ({})",
                                if seq < want {
                                    "duplicate or reordered"
                                } else {
                                    "gap"
                                }
                            ));
                            next.insert(host, Some(seq + 1));
                        }
                        None => check.problems.push(format!(
                            "line {n}: live change before any sync: {line}",
                            line = line.as_ref()
                        )),
                    }
                }
                _ => {}
            }
        }
        check
    }

    /// Panics with the problems, if any.
    pub fn assert_exactly_once(&self) {
        assert!(
            self.problems.is_empty(),
            "the stream broke its contract ({} problems), first: {:?}",
            self.problems.len(),
            &self.problems[..self.problems.len().min(10)]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(action: &str, origin: &str, seq: u64) -> String {
        format!(
            r#"{{"host":"h","stream_id":"s","action":"{action}","origin":"{origin}","seq":{seq},"object":"route","key":"k"}}"#
        )
    }

    #[test]
    fn contiguous_changes_after_sync_pass() {
        let lines = vec![
            line("add", "dump", 4),
            r#"{"host":"h","stream_id":"s","action":"sync","seq":4}"#.to_owned(),
            line("add", "notification", 5),
            line("delete", "reconcile", 6),
        ];
        let c = StreamCheck::of(&lines);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.live_changes, 2);
    }

    #[test]
    fn a_resync_s_differences_are_not_live_changes() {
        let lines = vec![
            r#"{"host":"h","stream_id":"s","action":"sync","seq":4}"#.to_owned(),
            r#"{"host":"h","stream_id":"t","action":"resync","cause":"unknown_stream","snapshot":"differences"}"#.to_owned(),
            format!(r#"{{"host":"h","stream_id":"t","action":"delete","origin":"reconcile","seq":9,"object":"route","key":"k"}}"#),
            r#"{"host":"h","stream_id":"t","action":"sync","seq":9}"#.to_owned(),
            line("add", "notification", 10),
        ];
        let c = StreamCheck::of(&lines);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.resync_causes, ["unknown_stream"]);
        let full = vec![
            lines[0].clone(),
            lines[1].replace("differences", "full"),
            lines[2].clone(),
        ];
        assert_eq!(
            StreamCheck::of(&full).problems.len(),
            1,
            "a full resync has no reconcile changes before its sync"
        );
    }

    #[test]
    fn gaps_and_duplicates_are_found() {
        let lines = vec![
            r#"{"host":"h","stream_id":"s","action":"sync","seq":4}"#.to_owned(),
            line("add", "notification", 5),
            line("add", "notification", 5),
            line("add", "notification", 8),
        ];
        assert_eq!(StreamCheck::of(&lines).problems.len(), 2);
    }
}
