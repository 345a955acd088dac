//! `query gaps`, and the gaps other questions must mention: where a
//! host's record is not exact.

use std::collections::HashMap;

use serde_json::{json, Value as Json};

use super::args::Gaps;
use super::row::Row;
use super::targets::{self, Target};
use super::{Context, Lines};
use crate::printer::{aligned, cause_name, rfc3339};
use crate::store::{Store, Value};
use crate::ClientError;

const COLUMNS: &str = "g.target_id, g.from_time, g.from_stream, g.from_seq, \
     g.to_time, g.to_stream, g.to_seq, g.cause, g.reason";

/// One gap: a resync, between the last position stored before it and the
/// snapshot after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub target_id: i64,
    /// When the last position before it was stored (unknown when nothing
    /// was).
    pub from_time: Option<i64>,
    pub from_stream: String,
    pub from_seq: i64,
    pub to_time: i64,
    pub to_stream: String,
    pub to_seq: i64,
    /// The API's ResyncCause.
    pub cause: i64,
    pub reason: String,
}

impl Gap {
    fn read(row: &[Value]) -> Result<Gap, ClientError> {
        let r = Row(row);
        Ok(Gap {
            target_id: r.int(0)?,
            from_time: r.opt_int(1)?,
            from_stream: r.text(2)?,
            from_seq: r.int(3)?,
            to_time: r.int(4)?,
            to_stream: r.text(5)?,
            to_seq: r.int(6)?,
            cause: r.int(7)?,
            reason: r.text(8)?,
        })
    }

    /// Where it sorts among versions: where it starts.
    pub fn start(&self) -> i64 {
        self.from_time.unwrap_or(self.to_time)
    }

    /// Whether `t` lies inside the gap (the record is not exact then).
    pub fn covers(&self, t: i64) -> bool {
        self.from_time.is_none_or(|from| from <= t) && t < self.to_time
    }

    fn start_text(&self) -> String {
        self.from_time.map_or_else(|| "unknown".to_owned(), rfc3339)
    }

    fn start_cursor(&self) -> String {
        format!("{}:{}", self.from_stream, self.from_seq)
    }

    fn end_cursor(&self) -> String {
        format!("{}:{}", self.to_stream, self.to_seq)
    }

    fn cause(&self) -> &'static str {
        cause_name(self.cause as i32)
    }

    /// `query gaps -o json`'s line, and what `history` puts under `gap`.
    pub fn json(&self, host: &str) -> Json {
        json!({
            "host": host,
            "from": self.from_time.map(rfc3339),
            "from_stream_id": self.from_stream,
            "from_seq": self.from_seq,
            "to": rfc3339(self.to_time),
            "to_stream_id": self.to_stream,
            "to_seq": self.to_seq,
            "cause": self.cause(),
            "reason": self.reason,
        })
    }

    /// `history`'s text line.
    pub fn line(&self, host: &str) -> String {
        format!(
            "gap {} {} {host} {} {}..{} {}",
            self.start_text(),
            rfc3339(self.to_time),
            self.cause(),
            self.start_cursor(),
            self.end_cursor(),
            self.reason
        )
    }

    /// `CAUSE FROM_CURSOR..TO_CURSOR REASON`: a gap among history lines.
    pub fn summary(&self) -> String {
        format!(
            "{} {}..{} {}",
            self.cause(),
            self.start_cursor(),
            self.end_cursor(),
            self.reason
        )
    }

    fn cells(&self, host: &str) -> Vec<String> {
        vec![
            host.to_owned(),
            self.start_text(),
            self.start_cursor(),
            rfc3339(self.to_time),
            self.end_cursor(),
            self.cause().to_owned(),
            self.reason.clone(),
        ]
    }
}

/// The gaps of `targets` (every target's with none) that overlap
/// `[since, until]`, in the order they start.
pub async fn load(
    store: &mut Store,
    targets: Option<&[&Target]>,
    since: i64,
    until: i64,
) -> Result<Vec<Gap>, ClientError> {
    let mut sql = format!(
        "SELECT {COLUMNS} FROM gaps g
         WHERE g.to_time >= ? AND (g.from_time IS NULL OR g.from_time <= ?)"
    );
    let mut params = vec![Value::Int(since), Value::Int(until)];
    if let Some(targets) = targets {
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let (list, ids) = targets::ids(targets);
        sql.push_str(&format!(" AND g.target_id IN ({list})"));
        params.extend(ids);
    }
    let rows = store.select(&sql, &params).await?;
    let mut gaps = rows
        .iter()
        .map(|r| Gap::read(r))
        .collect::<Result<Vec<_>, _>>()?;
    gaps.sort_by_key(|g| (g.start(), g.to_time, g.target_id));
    Ok(gaps)
}

/// Says on stderr what a question about `target` at `t` cannot know: that
/// its record begins later, or that `t` lies inside one of its gaps.
pub async fn note_moment(cx: &mut Context<'_>, target: &Target, t: i64) -> Result<(), ClientError> {
    let host = target.label();
    match target.begins {
        None => writeln!(cx.notes, "routewatch: the record of {host} is empty")?,
        Some(begins) if t < begins => writeln!(
            cx.notes,
            "routewatch: the record of {host} begins at {}: nothing is known of {}",
            rfc3339(begins),
            rfc3339(t)
        )?,
        Some(_) => {}
    }
    for gap in load(cx.store, Some(&[target]), t, t).await? {
        if gap.covers(t) {
            writeln!(
                cx.notes,
                "routewatch: the record of {host} is not exact at {}: resync ({}: {}) between {} ({}) and {} ({})",
                rfc3339(t),
                gap.cause(),
                gap.reason,
                gap.start_text(),
                gap.start_cursor(),
                rfc3339(gap.to_time),
                gap.end_cursor()
            )?;
        }
    }
    Ok(())
}

/// `query gaps`.
pub async fn run(cx: &mut Context<'_>, args: &Gaps) -> Result<(), ClientError> {
    let lines = cx.lines("gaps", true)?;
    let since = match &args.since {
        Some(text) => cx.time("--since", text)?,
        None => i64::MIN,
    };
    let all = targets::load(cx.store).await?;
    let chosen = targets::chosen(&all, &args.hosts, cx.notes)?;
    if chosen.is_empty() {
        return Ok(());
    }
    let only = (!args.hosts.is_empty()).then_some(chosen.as_slice());
    let gaps = load(cx.store, only, since, i64::MAX).await?;
    if gaps.is_empty() {
        writeln!(cx.notes, "routewatch: no gaps found")?;
        return Ok(());
    }
    let labels: HashMap<i64, &str> = all.iter().map(|t| (t.id, t.label())).collect();
    let host = |g: &Gap| labels.get(&g.target_id).copied().unwrap_or_default();
    match lines {
        Lines::Json => {
            for g in &gaps {
                cx.json_line(&g.json(host(g)))?;
            }
        }
        Lines::Text => {
            let header: Vec<String> = [
                "HOST",
                "FROM",
                "FROM_CURSOR",
                "TO",
                "TO_CURSOR",
                "CAUSE",
                "REASON",
            ]
            .map(str::to_owned)
            .into();
            let rows: Vec<Vec<String>> = gaps.iter().map(|g| g.cells(host(g))).collect();
            cx.out.write_all(aligned(&header, &rows).as_bytes())?;
        }
    }
    Ok(())
}
