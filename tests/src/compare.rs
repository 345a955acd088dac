//! Comparing our objects with the kernel's own view (`ip -j -d ...`).
//!
//! Our route lines carry exactly the fields of `ip -j -d route show table
//! all` plus metadata (`object`, `action`, `key`, `family`, `host`, `netns`,
//! `seq`, `time`, `origin`). The comparison drops the metadata (after
//! checking it is well formed), compares `expires` (a countdown) within
//! [`EXPIRES_TOLERANCE`] seconds and everything else exactly, as multisets.
//! Routes are compared per family: ours with `family` "inet" against
//! `ip -4`, "inet6" against `ip -6`. The kernel's encapsulation fields are
//! nested under `encap` first, as ours are ([`flat_encap`]).
//! Policy rules are compared the same way, against `ip -j -d rule show`,
//! whose `action` (blackhole, unreachable, prohibit) our lines call `type`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::flat_encap;
use crate::netns::Netns;

/// The metadata fields our lines add to `ip`'s fields (`vrf`: the label of
/// a route in a VRF's table, which `ip` does not print).
pub const META_FIELDS: [&str; 13] = [
    "object",
    "action",
    "key",
    "family",
    "host",
    "netns",
    "seq",
    "stream_id",
    "time",
    "origin",
    "vrf",
    "changed_by",
    "reason",
];

/// `expires` values within this many seconds of each other are equal.
pub const EXPIRES_TOLERANCE: i64 = 5;

/// Placeholder that replaces a numeric `expires` in the comparison key.
const EXPIRES_PLACEHOLDER: &str = "<countdown>";

/// How many entries of each kind a [`Diff`] lists before eliding the rest.
const LIST_LIMIT: usize = 40;

/// The difference between our objects and the kernel's.
#[derive(Clone, Debug, Default)]
pub struct Diff {
    /// "routes", "rules" or "nexthop objects".
    pub what: &'static str,
    pub kernel_count: usize,
    pub ours_count: usize,
    /// Canonical JSON of objects the kernel has and we do not (prefixed by
    /// the family for routes).
    pub only_kernel: Vec<String>,
    /// Canonical JSON of objects we have and the kernel does not.
    pub only_ours: Vec<String>,
    /// Our objects whose metadata break the contract (missing or malformed
    /// fields, duplicate keys, an action other than "add").
    pub problems: Vec<String>,
    /// Observations that help read the listing (e.g. a field that appears
    /// only on one side).
    pub hints: Vec<String>,
}

impl Diff {
    /// True when ours equals the kernel's and all metadata are well formed.
    pub fn is_empty(&self) -> bool {
        self.only_kernel.is_empty() && self.only_ours.is_empty() && self.problems.is_empty()
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, title: &str, items: &[String]) -> fmt::Result {
    if items.is_empty() {
        return Ok(());
    }
    writeln!(f, "  {title} ({}):", items.len())?;
    for item in items.iter().take(LIST_LIMIT) {
        writeln!(f, "    {item}")?;
    }
    if items.len() > LIST_LIMIT {
        writeln!(f, "    ... and {} more", items.len() - LIST_LIMIT)?;
    }
    Ok(())
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return write!(
                f,
                "{} equal the kernel's ({} objects)",
                self.what, self.kernel_count
            );
        }
        writeln!(
            f,
            "{} differ from the kernel's (kernel has {}, ours has {}):",
            self.what, self.kernel_count, self.ours_count
        )?;
        write_list(f, "only in the kernel", &self.only_kernel)?;
        write_list(f, "only in ours", &self.only_ours)?;
        write_list(f, "malformed metadata in ours", &self.problems)?;
        write_list(f, "hints", &self.hints)
    }
}

/// JSON with object keys sorted recursively (independent of serde_json's
/// map ordering); arrays keep their order.
pub fn canonical(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    // serde_json keeps insertion order with `preserve_order`, sorted order
    // without: either way keys were inserted sorted.
    serde_json::to_string(&sorted(v)).expect("serialising JSON")
}

/// Our object without the metadata fields: what `ip -j -d` would print.
pub fn normalise(ours: &Value) -> Value {
    match ours {
        Value::Object(m) => {
            let mut m = m.clone();
            for f in META_FIELDS {
                m.remove(f);
            }
            Value::Object(m)
        }
        other => other.clone(),
    }
}

/// What a line of ours is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Route,
    Nexthop,
    Rule,
    /// `sync`, `resync` or another marker (no `object`).
    Marker,
}

/// Classifies a line: `object` "nexthop" is a nexthop, "rule" a rule; a
/// line without
/// `object` whose action is neither "add" nor "delete" is a marker;
/// everything else counts as a route (and is checked as one).
pub fn kind(v: &Value) -> Kind {
    match v.get("object").and_then(Value::as_str) {
        Some("nexthop") => Kind::Nexthop,
        Some("rule") => Kind::Rule,
        Some(_) => Kind::Route,
        None => match v.get("action").and_then(Value::as_str) {
            Some("add") | Some("delete") => Kind::Route,
            _ => Kind::Marker,
        },
    }
}

fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .is_some_and(|x| x.iter().all(u8::is_ascii_digit))
    };
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !matches!(b[10], b'T' | b't' | b' ')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match &b[i..] {
        [b'Z'] | [b'z'] => true,
        [sign, h1, h2, b':', m1, m2] => {
            matches!(sign, b'+' | b'-') && [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
        }
        _ => false,
    }
}

fn short(v: &Value) -> String {
    let s = canonical(v);
    if s.len() > 300 {
        format!("{}...", &s[..300])
    } else {
        s
    }
}

/// Checks the metadata of one object of ours (kind Route, Nexthop or Rule).
fn check_meta(v: &Value, kind: Kind, problems: &mut Vec<String>) {
    let mut bad = Vec::new();
    let Some(m) = v.as_object() else {
        problems.push(format!("not a JSON object: {}", short(v)));
        return;
    };
    let want_object = match kind {
        Kind::Nexthop => "nexthop",
        Kind::Rule => "rule",
        _ => "route",
    };
    if m.get("object").and_then(Value::as_str) != Some(want_object) {
        bad.push(format!("object must be {want_object:?}"));
    }
    if m.get("action").and_then(Value::as_str) != Some("add") {
        bad.push("action of a held object must be \"add\"".to_owned());
    }
    if m.get("key")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        bad.push("key must be a non-empty string".to_owned());
    }
    match (kind, m.get("family").and_then(Value::as_str)) {
        (Kind::Route | Kind::Rule, Some("inet" | "inet6")) | (Kind::Nexthop, Some(_)) => {}
        (Kind::Route | Kind::Rule, _) => {
            bad.push("family must be \"inet\" or \"inet6\"".to_owned())
        }
        _ => bad.push("family must be a string".to_owned()),
    }
    if !m.get("host").is_some_and(Value::is_string) {
        bad.push("host must be a string".to_owned());
    }
    if !m.get("netns").is_some_and(Value::is_string) {
        bad.push("netns must be a string".to_owned());
    }
    if !m.get("seq").is_some_and(Value::is_u64) {
        bad.push("seq must be a non-negative integer".to_owned());
    }
    if m.get("stream_id")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        bad.push("stream_id must be a non-empty string".to_owned());
    }
    if !m
        .get("time")
        .and_then(Value::as_str)
        .is_some_and(is_rfc3339)
    {
        bad.push("time must be an RFC 3339 string".to_owned());
    }
    if !matches!(
        m.get("origin").and_then(Value::as_str),
        Some("notification" | "dump" | "reconcile")
    ) {
        bad.push("origin must be \"notification\", \"dump\" or \"reconcile\"".to_owned());
    }
    if !bad.is_empty() {
        problems.push(format!("{}: {}", bad.join("; "), short(v)));
    }
}

/// Every object (route or nexthop) must have a unique (host, key).
fn check_unique_keys(ours: &[Value], problems: &mut Vec<String>) {
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for v in ours.iter().filter(|v| kind(v) != Kind::Marker) {
        let (Some(host), Some(key)) = (
            v.get("host").and_then(Value::as_str),
            v.get("key").and_then(Value::as_str),
        ) else {
            continue;
        };
        *seen.entry((host.to_owned(), key.to_owned())).or_default() += 1;
    }
    let mut dups: Vec<_> = seen.into_iter().filter(|(_, n)| *n > 1).collect();
    dups.sort();
    for ((host, key), n) in dups {
        problems.push(format!(
            "key {key:?} (host {host:?}) is held by {n} objects"
        ));
    }
}

/// One object prepared for matching.
struct Entry {
    /// Canonical JSON with `expires` replaced by a placeholder, prefixed.
    key: String,
    expires: Option<i64>,
    /// Canonical JSON with the real `expires`, prefixed.
    display: String,
}

fn entry(prefix: &str, v: &Value) -> Entry {
    let display = format!("{prefix}{}", canonical(v));
    let mut v = v.clone();
    let mut expires = None;
    if let Some(m) = v.as_object_mut() {
        if let Some(e) = m.get("expires").and_then(Value::as_i64) {
            expires = Some(e);
            m.insert("expires".into(), Value::String(EXPIRES_PLACEHOLDER.into()));
        }
    }
    Entry {
        key: format!("{prefix}{}", canonical(&v)),
        expires,
        display,
    }
}

/// Top-level field names of a listed object (its canonical JSON follows an
/// optional family prefix).
fn field_names(display: &str) -> BTreeSet<String> {
    display
        .find('{')
        .and_then(|i| serde_json::from_str::<Value>(&display[i..]).ok())
        .and_then(|v| v.as_object().map(|m| m.keys().cloned().collect()))
        .unwrap_or_default()
}

/// Names fields that appear only in the unmatched objects of one side.
fn add_hints(diff: &mut Diff) {
    let union = |items: &[String]| -> BTreeSet<String> {
        items.iter().flat_map(|d| field_names(d)).collect()
    };
    let (k, o) = (union(&diff.only_kernel), union(&diff.only_ours));
    if diff.only_kernel.is_empty() || diff.only_ours.is_empty() {
        return;
    }
    let only_o: Vec<&String> = o.difference(&k).collect();
    let only_k: Vec<&String> = k.difference(&o).collect();
    if !only_o.is_empty() {
        diff.hints
            .push(format!("fields only in our unmatched objects: {only_o:?}"));
    }
    if !only_k.is_empty() {
        diff.hints.push(format!(
            "fields only in the kernel's unmatched objects: {only_k:?}"
        ));
    }
}

/// Multiset difference, with `expires` matched within the tolerance.
fn match_entries(kernel: Vec<Entry>, ours: Vec<Entry>, diff: &mut Diff) {
    type Side = Vec<(Option<i64>, String)>;
    let mut groups: BTreeMap<String, (Side, Side)> = BTreeMap::new();
    for e in kernel {
        groups
            .entry(e.key)
            .or_default()
            .0
            .push((e.expires, e.display));
    }
    for e in ours {
        groups
            .entry(e.key)
            .or_default()
            .1
            .push((e.expires, e.display));
    }
    for (_, (mut k, mut o)) in groups {
        k.sort();
        o.sort();
        let (mut i, mut j) = (0, 0);
        while i < k.len() && j < o.len() {
            let (a, b) = (k[i].0.unwrap_or(0), o[j].0.unwrap_or(0));
            if (a - b).abs() <= EXPIRES_TOLERANCE {
                i += 1;
                j += 1;
            } else if a < b {
                diff.only_kernel.push(k[i].1.clone());
                i += 1;
            } else {
                diff.only_ours.push(o[j].1.clone());
                j += 1;
            }
        }
        diff.only_kernel.extend(k[i..].iter().map(|x| x.1.clone()));
        diff.only_ours.extend(o[j..].iter().map(|x| x.1.clone()));
    }
}

/// Pure comparison of our route objects with the kernel's `ip -4` and
/// `ip -6 -j -d route show table all` arrays. Lines of ours that are not
/// routes (nexthop objects, rules, markers) are ignored, but keys must be
/// unique across all objects.
pub fn diff_routes(kernel_v4: &[Value], kernel_v6: &[Value], ours: &[Value]) -> Diff {
    diff_by_family("routes", Kind::Route, kernel_v4, kernel_v6, ours)
}

/// Like [`diff_routes`] for policy rules, against `ip -4` and
/// `ip -6 -j -d rule show` as [`kernel_rules`] shapes them.
pub fn diff_rules(kernel_v4: &[Value], kernel_v6: &[Value], ours: &[Value]) -> Diff {
    diff_by_family("rules", Kind::Rule, kernel_v4, kernel_v6, ours)
}

fn diff_by_family(
    what: &'static str,
    of: Kind,
    kernel_v4: &[Value],
    kernel_v6: &[Value],
    ours: &[Value],
) -> Diff {
    let mut diff = Diff {
        what,
        kernel_count: kernel_v4.len() + kernel_v6.len(),
        ..Diff::default()
    };
    let mut kernel = Vec::new();
    kernel.extend(kernel_v4.iter().map(|v| entry("inet ", v)));
    kernel.extend(kernel_v6.iter().map(|v| entry("inet6 ", v)));
    let mut mine = Vec::new();
    for v in ours.iter().filter(|v| kind(v) == of) {
        check_meta(v, of, &mut diff.problems);
        let family = v.get("family").and_then(Value::as_str).unwrap_or("?");
        mine.push(entry(&format!("{family} "), &normalise(v)));
    }
    check_unique_keys(ours, &mut diff.problems);
    diff.ours_count = mine.len();
    match_entries(kernel, mine, &mut diff);
    add_hints(&mut diff);
    diff
}

/// Pure comparison of our nexthop objects with `ip -j -d nexthop show`.
/// Families are not compared (groups have none in the kernel); keys must be
/// unique across all objects.
pub fn diff_nexthops(kernel: &[Value], ours: &[Value]) -> Diff {
    let mut diff = Diff {
        what: "nexthop objects",
        kernel_count: kernel.len(),
        ..Diff::default()
    };
    let kernel: Vec<Entry> = kernel.iter().map(|v| entry("", v)).collect();
    let mut mine = Vec::new();
    for v in ours.iter().filter(|v| kind(v) == Kind::Nexthop) {
        check_meta(v, Kind::Nexthop, &mut diff.problems);
        mine.push(entry("", &normalise(v)));
    }
    check_unique_keys(ours, &mut diff.problems);
    diff.ours_count = mine.len();
    match_entries(kernel, mine, &mut diff);
    add_hints(&mut diff);
    diff
}

fn as_array(v: Value, what: &str) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        other => panic!("{what} is not a JSON array: {other}"),
    }
}

/// `ip -j ARGS` in `ns`, encapsulations nested as ours are (see
/// [`flat_encap`]: iproute2 prints them flat, with duplicate keys).
fn ip_json_nested(ns: &Netns, args: &str) -> Value {
    let out = ns.ip(&format!("-j {args}"));
    if out.trim().is_empty() {
        return Value::Array(Vec::new());
    }
    flat_encap::parse(&out)
        .unwrap_or_else(|e| panic!("`ip -j {args}` printed invalid JSON ({e}): {out}"))
}

/// The kernel's routes: (`ip -4 -j -d route show table all`, the same `-6`).
pub fn kernel_routes(ns: &Netns) -> (Vec<Value>, Vec<Value>) {
    (
        as_array(
            ip_json_nested(ns, "-4 -d route show table all"),
            "ip -4 route",
        ),
        as_array(
            ip_json_nested(ns, "-6 -d route show table all"),
            "ip -6 route",
        ),
    )
}

/// The kernel's policy rules: (`ip -4 -j -d rule show`, the same `-6`),
/// with `ip`'s `action` (blackhole, unreachable, prohibit) renamed `type`
/// as our lines name it.
pub fn kernel_rules(ns: &Netns) -> (Vec<Value>, Vec<Value>) {
    let shaped = |args: &str| -> Vec<Value> {
        as_array(ns.ip_json(args), "ip rule")
            .into_iter()
            .map(rule_as_ours)
            .collect()
    };
    (shaped("-4 -d rule show"), shaped("-6 -d rule show"))
}

/// One `ip -j -d rule show` object with `action` renamed `type`.
pub fn rule_as_ours(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        if let Some(action) = m.remove("action") {
            m.insert("type".into(), action);
        }
    }
    v
}

/// Compares our rules with the kernel's in `ns`.
pub fn diff_rules_against_kernel(ns: &Netns, ours: Vec<Value>) -> Diff {
    let (v4, v6) = kernel_rules(ns);
    diff_rules(&v4, &v6, &ours)
}

/// The kernel's nexthop objects (`ip -j -d nexthop show`).
pub fn kernel_nexthops(ns: &Netns) -> Vec<Value> {
    as_array(ip_json_nested(ns, "-d nexthop show"), "ip nexthop")
}

/// Compares our route objects with the kernel's routes in `ns`.
pub fn diff_against_kernel(ns: &Netns, ours: Vec<Value>) -> Diff {
    let (v4, v6) = kernel_routes(ns);
    diff_routes(&v4, &v6, &ours)
}

/// Compares our nexthop objects with the kernel's in `ns`.
pub fn diff_nexthops_against_kernel(ns: &Netns, ours: Vec<Value>) -> Diff {
    diff_nexthops(&kernel_nexthops(ns), &ours)
}

/// Panics with a readable listing unless our routes and rules equal the
/// kernel's.
pub fn assert_matches_kernel(ns: &Netns, ours: Vec<Value>) {
    let diff = diff_against_kernel(ns, ours.clone());
    assert!(diff.is_empty(), "{diff}");
    let diff = diff_rules_against_kernel(ns, ours);
    assert!(diff.is_empty(), "{diff}");
}

/// Panics with a readable listing unless our nexthop objects equal the
/// kernel's.
pub fn assert_nexthops_match_kernel(ns: &Netns, ours: Vec<Value>) {
    let diff = diff_nexthops_against_kernel(ns, ours);
    assert!(diff.is_empty(), "{diff}");
}

fn eventually(
    what: &str,
    timeout: Duration,
    mut ours: impl FnMut() -> Vec<Value>,
    mut diff: impl FnMut(Vec<Value>) -> Vec<Diff>,
) {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut tries = 0u32;
    loop {
        tries += 1;
        let diffs = diff(ours());
        if diffs.iter().all(Diff::is_empty) {
            return;
        }
        if Instant::now() >= deadline {
            let text: Vec<String> = diffs
                .iter()
                .filter(|d| !d.is_empty())
                .map(ToString::to_string)
                .collect();
            panic!(
                "{what}: still different from the kernel after {:.1?} ({tries} comparisons):\n{}",
                start.elapsed(),
                text.join("\n")
            );
        }
        thread::sleep(Duration::from_millis(250));
    }
}

/// Retries until `ours()` has exactly the kernel's routes and rules (the
/// routing decision), or panics with the last difference once `timeout`
/// has passed.
pub fn eventually_matches_kernel(ns: &Netns, ours: impl FnMut() -> Vec<Value>, timeout: Duration) {
    eventually("routes and rules", timeout, ours, |o| {
        vec![
            diff_against_kernel(ns, o.clone()),
            diff_rules_against_kernel(ns, o),
        ]
    });
}

/// Like [`eventually_matches_kernel`] for nexthop objects.
pub fn eventually_nexthops_match_kernel(
    ns: &Netns,
    ours: impl FnMut() -> Vec<Value>,
    timeout: Duration,
) {
    eventually("nexthop objects", timeout, ours, |o| {
        vec![diff_nexthops_against_kernel(ns, o)]
    });
}

/// Retries until `ours()` has exactly the kernel's routes, rules AND
/// nexthop objects (from the same call), or panics with the last
/// differences.
pub fn eventually_all_match_kernel(
    ns: &Netns,
    ours: impl FnMut() -> Vec<Value>,
    timeout: Duration,
) {
    eventually("routes, rules and nexthop objects", timeout, ours, |o| {
        vec![
            diff_against_kernel(ns, o.clone()),
            diff_rules_against_kernel(ns, o.clone()),
            diff_nexthops_against_kernel(ns, o),
        ]
    });
}

/// Which of the kernel's objects a filtered consumer should hold: routes
/// by family ("inet", "inet6") and `ip -j -d route` object, nexthop objects
/// by `ip -j -d nexthop` object.
pub struct KernelFilter<'a> {
    pub routes: &'a (dyn Fn(&str, &Value) -> bool + Sync),
    pub nexthops: &'a (dyn Fn(&Value) -> bool + Sync),
}

/// Compares our objects with the kernel's routes and nexthop objects in
/// `ns` that `keep` keeps.
pub fn diff_against_kernel_filtered(
    ns: &Netns,
    ours: Vec<Value>,
    keep: &KernelFilter<'_>,
) -> Vec<Diff> {
    let (v4, v6) = kernel_routes(ns);
    let v4: Vec<Value> = v4
        .into_iter()
        .filter(|r| (keep.routes)("inet", r))
        .collect();
    let v6: Vec<Value> = v6
        .into_iter()
        .filter(|r| (keep.routes)("inet6", r))
        .collect();
    let nexthops: Vec<Value> = kernel_nexthops(ns)
        .into_iter()
        .filter(|n| (keep.nexthops)(n))
        .collect();
    vec![
        diff_routes(&v4, &v6, &ours),
        diff_nexthops(&nexthops, &ours),
    ]
}

/// Retries until `ours()` holds exactly the kernel's routes and nexthop
/// objects that `keep` keeps, or panics with the last differences.
pub fn eventually_matches_kernel_filtered(
    ns: &Netns,
    ours: impl FnMut() -> Vec<Value>,
    keep: &KernelFilter<'_>,
    timeout: Duration,
) {
    eventually("filtered routes and nexthop objects", timeout, ours, |o| {
        diff_against_kernel_filtered(ns, o, keep)
    });
}

/// Turns kernel objects into lines shaped like ours (metadata added, keys
/// `<prefix><n>`): for self-tests of the comparison and of the harness.
pub fn decorate(kernel: &[Value], object: &str, family: &str, key_prefix: &str) -> Vec<Value> {
    kernel
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut m = v.as_object().cloned().unwrap_or_default();
            m.insert("object".into(), object.into());
            m.insert("action".into(), "add".into());
            m.insert("key".into(), format!("{key_prefix}{i}").into());
            m.insert("family".into(), family.into());
            m.insert("host".into(), "testhost".into());
            m.insert("netns".into(), "".into());
            m.insert("seq".into(), (i as u64).into());
            m.insert("stream_id".into(), "0123456789abcdef".into());
            m.insert("time".into(), "2026-01-02T03:04:05.123456789Z".into());
            m.insert("origin".into(), "dump".into());
            Value::Object(m)
        })
        .collect()
}

#[cfg(test)]
#[path = "compare_tests.rs"]
mod tests;
