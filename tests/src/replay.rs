//! Applying a stream of JSON lines the way a consumer would.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::compare::{kind, Kind};

/// The state obtained by applying lines in order, per host: `resync` clears
/// that host's objects (unless it says `"snapshot":"differences"`: then
/// the changes that follow turn the held picture into the new one), `add`
/// upserts by key, `delete` removes by key.
#[derive(Clone, Debug, Default)]
pub struct Replay {
    /// host -> key -> the last `add` line for it.
    pub state: BTreeMap<String, BTreeMap<String, Value>>,
    /// Hosts whose last marker was `sync` (snapshot complete).
    pub synced: BTreeMap<String, bool>,
    /// Number of lines applied.
    pub lines: usize,
    pub syncs: usize,
    pub resyncs: usize,
    /// Reasons given by `resync` markers, in order.
    pub resync_reasons: Vec<String>,
    pub adds: usize,
    pub deletes: usize,
    /// Deletes of keys that were not held (suspicious, not fatal).
    pub unknown_deletes: usize,
    /// Lines that are not valid JSON or break the line contract.
    pub errors: Vec<String>,
}

fn host_of(v: &Value) -> String {
    v.get("host")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

impl Replay {
    /// Applies `lines` in order to an empty state.
    pub fn from_lines<S: AsRef<str>>(lines: &[S]) -> Replay {
        let mut r = Replay::default();
        for l in lines {
            r.apply_line(l.as_ref());
        }
        r
    }

    /// Applies one line (empty lines are ignored).
    pub fn apply_line(&mut self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        self.lines += 1;
        match serde_json::from_str::<Value>(line) {
            Ok(v) => self.apply(v),
            Err(e) => self
                .errors
                .push(format!("line {}: not JSON ({e}): {line}", self.lines)),
        }
    }

    /// Applies one parsed line.
    pub fn apply(&mut self, v: Value) {
        let host = host_of(&v);
        let action = v
            .get("action")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if kind(&v) == Kind::Marker {
            match action.as_str() {
                "sync" => {
                    self.syncs += 1;
                    self.synced.insert(host, true);
                }
                "resync" => {
                    self.resyncs += 1;
                    self.resync_reasons.push(
                        v.get("reason")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                    );
                    if v.get("snapshot").and_then(Value::as_str) != Some("differences") {
                        self.state.remove(&host);
                    }
                    self.synced.insert(host, false);
                }
                // Other markers (heartbeats, ...) carry no state.
                _ => {}
            }
            return;
        }
        // Keys are unique within a (host, netns): qualify them by namespace.
        let netns = v.get("netns").and_then(Value::as_str).unwrap_or("");
        let key = v.get("key").and_then(Value::as_str).map(|k| {
            if netns.is_empty() {
                k.to_owned()
            } else {
                format!("{netns}/{k}")
            }
        });
        let Some(key) = key else {
            self.errors.push(format!(
                "line {}: object without a string key: {v}",
                self.lines
            ));
            return;
        };
        match action.as_str() {
            "add" => {
                self.adds += 1;
                self.state.entry(host).or_default().insert(key, v);
            }
            "delete" => {
                self.deletes += 1;
                let removed = self.state.get_mut(&host).and_then(|m| m.remove(&key));
                if removed.is_none() {
                    self.unknown_deletes += 1;
                }
            }
            other => self.errors.push(format!(
                "line {}: unknown action {other:?}: {v}",
                self.lines
            )),
        }
    }

    /// True when at least one host has synced and every host seen is
    /// synced (its last marker is `sync`).
    pub fn is_synced(&self) -> bool {
        !self.synced.is_empty() && self.synced.values().all(|s| *s)
    }

    /// Every object held (all hosts), as the last `add` line for its key.
    pub fn objects(&self) -> Vec<Value> {
        self.state
            .values()
            .flat_map(|m| m.values().cloned())
            .collect()
    }

    /// The objects held of network namespace `netns` (all hosts).
    pub fn objects_in(&self, netns: &str) -> Vec<Value> {
        self.objects()
            .into_iter()
            .filter(|v| v.get("netns").and_then(Value::as_str).unwrap_or("") == netns)
            .collect()
    }

    /// The route objects held.
    pub fn routes(&self) -> Vec<Value> {
        self.objects()
            .into_iter()
            .filter(|v| kind(v) == Kind::Route)
            .collect()
    }

    /// The nexthop objects held.
    pub fn nexthops(&self) -> Vec<Value> {
        self.objects()
            .into_iter()
            .filter(|v| kind(v) == Kind::Nexthop)
            .collect()
    }

    /// Number of objects held.
    pub fn len(&self) -> usize {
        self.state.values().map(BTreeMap::len).sum()
    }

    /// True when no object is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_applies_adds_deletes_and_resyncs_per_host() {
        let lines = [
            r#"{"object":"route","action":"add","key":"a","host":"h1","dst":"10.0.0.0/8"}"#,
            r#"{"object":"route","action":"add","key":"b","host":"h1","dst":"10.1.0.0/16"}"#,
            r#"{"object":"nexthop","action":"add","key":"n1","host":"h1","id":1}"#,
            r#"{"object":"route","action":"add","key":"c","host":"h2","dst":"10.2.0.0/16"}"#,
            r#"{"action":"sync","host":"h1"}"#,
            r#"{"action":"sync","host":"h2"}"#,
            r#"{"object":"route","action":"add","key":"a","host":"h1","dst":"10.0.0.0/8","metric":5}"#,
            r#"{"object":"route","action":"delete","key":"b","host":"h1"}"#,
            r#"{"object":"route","action":"delete","key":"zz","host":"h1"}"#,
            "",
        ];
        let r = Replay::from_lines(&lines);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert!(r.is_synced());
        assert_eq!(r.len(), 3);
        assert_eq!(r.routes().len(), 2);
        assert_eq!(r.nexthops().len(), 1);
        assert_eq!(r.state["h1"]["a"]["metric"], 5);
        assert_eq!(r.unknown_deletes, 1);

        let mut r = r;
        r.apply_line(r#"{"action":"resync","reason":"test","host":"h1"}"#);
        assert!(!r.is_synced());
        assert_eq!(r.len(), 1, "resync clears only h1");
        assert_eq!(r.resync_reasons, vec!["test".to_owned()]);
        r.apply_line(r#"{"object":"route","action":"add","key":"a","host":"h1"}"#);
        r.apply_line(r#"{"action":"sync","host":"h1"}"#);
        assert!(r.is_synced());
        assert_eq!(r.len(), 2);
        r.apply_line(r#"{"action":"resync","reason":"test","host":"h2","snapshot":"differences"}"#);
        assert_eq!(
            r.state.get("h2").map(BTreeMap::len),
            Some(1),
            "a resync followed by differences keeps what is held"
        );

        r.apply_line("not json");
        r.apply_line(r#"{"object":"route","action":"add","host":"h1"}"#);
        r.apply_line(r#"{"object":"route","action":"frob","key":"a","host":"h1"}"#);
        assert_eq!(r.errors.len(), 3, "{:?}", r.errors);
    }
}
