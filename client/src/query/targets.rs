//! The targets a store knows, and which of them `--host` names.

use std::io::{self, Write};

use super::row::Row;
use crate::store::{Store, Value};
use crate::ClientError;

/// A target as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub id: i64,
    /// The address collect last reached its agent at (the address it
    /// dials, for a record made before agents had identities).
    pub name: String,
    /// The host name the agent reports ('' before it did).
    pub host: String,
    /// When its first write was stored (none before its first snapshot
    /// was).
    pub first_seen: Option<i64>,
    /// When its record begins: its first snapshot, whose versions begin
    /// when the agent saw each object (the write that stored it may have
    /// come later).
    pub begins: Option<i64>,
}

impl Target {
    /// The first columns of `row`, [`COLUMNS`].
    pub fn read(row: &Row<'_>) -> Result<Target, ClientError> {
        let first_seen = row.opt_int(3)?;
        let first_version = row.opt_int(4)?;
        Ok(Target {
            id: row.int(0)?,
            name: row.text(1)?,
            host: row.text(2)?,
            first_seen,
            begins: match (first_seen, first_version) {
                (Some(s), Some(v)) => Some(s.min(v)),
                (s, v) => s.or(v),
            },
        })
    }

    /// What lines call it: its host name, or its address before the agent
    /// reported a name.
    pub fn label(&self) -> &str {
        if self.host.is_empty() {
            &self.name
        } else {
            &self.host
        }
    }

    fn is(&self, wanted: &str) -> bool {
        self.host == wanted || self.name == wanted
    }
}

/// The columns [`Target::read`] reads, of `targets t`.
pub const COLUMNS: &str = "t.id, COALESCE(t.address, t.name), t.host, t.first_seen,
    CAST((SELECT MIN(v.valid_from) FROM versions v WHERE v.target_id = t.id) AS BIGINT)";

/// Every target, by label (then address).
pub async fn load(store: &mut Store) -> Result<Vec<Target>, ClientError> {
    let rows = store
        .select(&format!("SELECT {COLUMNS} FROM targets t"), &[])
        .await?;
    let mut targets = rows
        .iter()
        .map(|r| Target::read(&Row(r)))
        .collect::<Result<Vec<_>, ClientError>>()?;
    targets.sort_by(by_label);
    Ok(targets)
}

/// The order targets are listed in: by label, then address.
pub fn by_label(a: &Target, b: &Target) -> std::cmp::Ordering {
    (a.label(), &a.name).cmp(&(b.label(), &b.name))
}

/// The targets `wanted` names (host name or address).
pub fn find<'a>(all: &'a [Target], wanted: &str) -> Vec<&'a Target> {
    all.iter().filter(|t| t.is(wanted)).collect()
}

/// The targets that the `--host` values name, every target with none.
/// Each value that names none is said on `notes`.
pub fn chosen<'a>(
    all: &'a [Target],
    wanted: &[String],
    notes: &mut dyn Write,
) -> io::Result<Vec<&'a Target>> {
    if wanted.is_empty() {
        if all.is_empty() {
            writeln!(notes, "routewatch: {}", NO_TARGETS)?;
        }
        return Ok(all.iter().collect());
    }
    let mut found: Vec<&Target> = Vec::new();
    for w in wanted {
        let named = find(all, w);
        if named.is_empty() {
            writeln!(notes, "routewatch: {}", no_match(all, w))?;
        }
        for t in named {
            if !found.iter().any(|f| f.id == t.id) {
                found.push(t);
            }
        }
    }
    found.sort_by(|a, b| by_label(a, b));
    Ok(found)
}

/// `no host matches H; known: ...`.
pub fn no_match(all: &[Target], wanted: &str) -> String {
    if all.is_empty() {
        return format!("no host matches {wanted}: {}", NO_TARGETS);
    }
    let known: Vec<String> = all
        .iter()
        .map(|t| {
            if t.host.is_empty() {
                t.name.clone()
            } else {
                format!("{} ({})", t.host, t.name)
            }
        })
        .collect();
    format!("no host matches {wanted}; known: {}", known.join(", "))
}

/// What a store without targets has to say.
pub const NO_TARGETS: &str = "the store holds no hosts yet (routewatch collect adds them)";

/// The one target `wanted` names, for a question about a single host:
/// `Ok(None)` (said on `notes`) when it names none.
pub fn one<'a>(
    all: &'a [Target],
    wanted: &str,
    notes: &mut dyn Write,
) -> Result<Option<&'a Target>, ClientError> {
    match find(all, wanted).as_slice() {
        [] => {
            writeln!(notes, "routewatch: {}", no_match(all, wanted))?;
            Ok(None)
        }
        [t] => Ok(Some(t)),
        several => {
            let names: Vec<&str> = several.iter().map(|t| t.name.as_str()).collect();
            Err(ClientError::Usage(format!(
                "--host {wanted} names {} targets ({}): name one by its address",
                several.len(),
                names.join(", ")
            )))
        }
    }
}

/// The `IN (...)` list of `targets`' ids and its values.
pub fn ids(targets: &[&Target]) -> (String, Vec<Value>) {
    (
        super::row::placeholders(targets.len()),
        targets.iter().map(|t| Value::Int(t.id)).collect(),
    )
}
