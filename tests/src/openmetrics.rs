//! A small, strict parser of the OpenMetrics text format: enough to check
//! that the agent's `/metrics` is well formed and to read values from it.
//!
//! Checked: `# EOF` ends the text; HELP/TYPE/UNIT come before a family's
//! samples, at most once each; a family's samples are contiguous; sample
//! names are the family's name plus a suffix its type allows (`_total` and
//! `_created` for counters, `_info` for info, none for gauges); names,
//! label names and quoted label values are well formed; values are numbers;
//! counters are not negative; no sample appears twice.

use std::collections::{BTreeMap, BTreeSet};

/// One metric family.
#[derive(Debug, Clone, Default)]
pub struct Family {
    pub kind: String,
    pub help: Option<String>,
    pub unit: Option<String>,
    pub samples: Vec<Sample>,
}

/// One sample line.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed exposition.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    pub families: BTreeMap<String, Family>,
}

impl Exposition {
    /// The value of sample `name` with exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    /// The sum of every sample `name`, whatever its labels (0 if none).
    pub fn sum(&self, name: &str) -> f64 {
        self.samples()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum()
    }

    fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.families.values().flat_map(|f| f.samples.iter())
    }
}

fn is_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    let first_ok = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
    match chars.next() {
        Some(c) if first_ok(c) => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

fn suffixes(kind: &str) -> &'static [&'static str] {
    match kind {
        "counter" => &["_total", "_created"],
        "info" => &["_info"],
        "histogram" | "gaugehistogram" => {
            &["_bucket", "_count", "_sum", "_created", "_gcount", "_gsum"]
        }
        "summary" => &["", "_count", "_sum", "_created"],
        _ => &[""],
    }
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// `{a="x",b="y"}` (the braces included) into labels; returns the rest.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = &s[1..];
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without '='")?;
        let name = &rest[..eq];
        if !is_name(name, false) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, '\\')) => value.push('\\'),
                    other => return Err(format!("bad escape in label value: {other:?}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err("expected ',' or '}' after a label".into());
        }
    }
}

/// Parses `text`; `Err` names the first problem and its line.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let body = text
        .strip_suffix("# EOF\n")
        .or_else(|| text.strip_suffix("# EOF"))
        .ok_or("the exposition does not end with `# EOF`")?;
    let mut out = Exposition::default();
    let mut current: Option<String> = None;
    let mut closed: BTreeSet<String> = BTreeSet::new();
    let mut seen: BTreeSet<(String, BTreeMap<String, String>)> = BTreeSet::new();
    for (n, line) in body.lines().enumerate() {
        let err = |what: String| format!("line {}: {what}: {line:?}", n + 1);
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let (Some(keyword), Some(name)) = (parts.next(), parts.next()) else {
                return Err(err("short metadata line".into()));
            };
            let text = parts.next().unwrap_or("");
            if !is_name(name, true) {
                return Err(err(format!("bad metric name {name:?}")));
            }
            if current.as_deref() != Some(name) {
                if closed.contains(name) || out.families.contains_key(name) {
                    return Err(err(format!("family {name} is not contiguous")));
                }
                if let Some(prev) = current.take() {
                    closed.insert(prev);
                }
                current = Some(name.to_string());
                out.families.insert(name.to_string(), Family::default());
            }
            let family = out.families.get_mut(name).expect("just inserted");
            if !family.samples.is_empty() {
                return Err(err("metadata after samples".into()));
            }
            let slot = match keyword {
                "HELP" => &mut family.help,
                "UNIT" => &mut family.unit,
                "TYPE" => {
                    const TYPES: [&str; 8] = [
                        "counter",
                        "gauge",
                        "histogram",
                        "gaugehistogram",
                        "stateset",
                        "info",
                        "summary",
                        "unknown",
                    ];
                    if !TYPES.contains(&text) {
                        return Err(err(format!("unknown type {text:?}")));
                    }
                    if !family.kind.is_empty() {
                        return Err(err("TYPE twice".into()));
                    }
                    family.kind = text.to_string();
                    continue;
                }
                other => return Err(err(format!("unknown metadata {other:?}"))),
            };
            if slot.replace(text.to_string()).is_some() {
                return Err(err(format!("{keyword} twice")));
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            return Err(err("empty line or stray comment".into()));
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| err("no value".into()))?;
        let name = &line[..name_end];
        if !is_name(name, true) {
            return Err(err(format!("bad sample name {name:?}")));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(err)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let mut fields = rest
            .strip_prefix(' ')
            .ok_or_else(|| err("no space before the value".into()))?
            .split(' ');
        let value = fields
            .next()
            .and_then(parse_value)
            .ok_or_else(|| err("value is not a number".into()))?;
        if let Some(ts) = fields.next() {
            if ts.parse::<f64>().is_err() {
                return Err(err("bad timestamp".into()));
            }
        }
        if fields.next().is_some() {
            return Err(err("trailing fields".into()));
        }
        let family_name = current
            .clone()
            .ok_or_else(|| err("sample before any TYPE".into()))?;
        let family = out.families.get_mut(&family_name).expect("current family");
        let kind = if family.kind.is_empty() {
            "unknown"
        } else {
            family.kind.as_str()
        };
        let suffix = name
            .strip_prefix(family_name.as_str())
            .ok_or_else(|| err(format!("sample outside its family {family_name}")))?;
        if !suffixes(kind).contains(&suffix) {
            return Err(err(format!("suffix {suffix:?} not allowed for a {kind}")));
        }
        if kind == "counter" && suffix == "_total" && (value.is_nan() || value < 0.0) {
            return Err(err("negative or NaN counter".into()));
        }
        if !seen.insert((name.to_string(), labels.clone())) {
            return Err(err("sample twice".into()));
        }
        family.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "# HELP a_events Events.\n# TYPE a_events counter\na_events_total{origin=\"x\",action=\"add\"} 3\na_events_total{origin=\"y\\\"q\",action=\"add\"} 4\n# TYPE a_up gauge\na_up 1\n# TYPE a_build info\na_build_info{version=\"1\"} 1\n# EOF\n";

    #[test]
    fn a_well_formed_exposition_parses() {
        let e = parse(GOOD).unwrap();
        assert_eq!(e.families.len(), 3);
        assert_eq!(
            e.value("a_events_total", &[("origin", "x"), ("action", "add")]),
            Some(3.0)
        );
        assert_eq!(e.sum("a_events_total"), 7.0);
        assert_eq!(e.value("a_up", &[]), Some(1.0));
    }

    #[test]
    fn malformed_expositions_are_refused() {
        for bad in [
            GOOD.trim_end_matches("# EOF\n"),
            &GOOD.replace("a_up 1", "a_up one"),
            &GOOD.replace("a_up 1", "a_up_total 1"),
            &GOOD.replace("a_events_total{origin=\"x\"", "a_events{origin=\"x\""),
            &GOOD.replace("origin=\"x\"", "origin=x"),
            &GOOD.replace("} 3", "} -3"),
            &GOOD.replace(
                "# TYPE a_up gauge\n",
                "# TYPE a_up gauge\n# TYPE a_up gauge\n",
            ),
            &GOOD.replace("a_up 1\n", "a_up 1\na_up 1\n"),
            &format!(
                "{}# TYPE a_events counter\n# EOF\n",
                GOOD.trim_end_matches("# EOF\n")
            ),
        ] {
            assert!(parse(bad).is_err(), "accepted: {bad}");
        }
    }
}
