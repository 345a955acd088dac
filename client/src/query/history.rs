//! `query history PREFIX`: every version of the routes at or inside a
//! prefix, across hosts, with the gaps where the record is not exact.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::io::{self, Write};
use std::iter::Peekable;

use ipnet::IpNet;
use routewatch_proto::v1::Family;
use serde_json::{json, Map, Value as Json};

use super::args::History;
use super::gaps::{self, Gap};
use super::targets::{self, Target};
use super::version::{Version, COLUMNS};
use super::{Context, Lines};
use crate::order;
use crate::printer::{
    json_map, object_json, object_line, rfc3339, rfc3339_millis, Aligned, Format,
};
use crate::store::schema::{destination, KIND_ROUTE, KIND_RULE};
use crate::store::Value;
use crate::ClientError;

/// Destinations of one family: `dst_len` in `lens`, the first address at
/// or after `lo`, the last at or before `hi`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Within {
    family: i64,
    lens: (i64, i64),
    lo: Vec<u8>,
    hi: Vec<u8>,
}

impl Within {
    /// The condition on `versions v`, for [`Within::bind`]'s values.
    ///
    /// Byte strings compare as memcmp in SQLite and as bytea in
    /// PostgreSQL: within one family, by address. `dst_lo <= hi` adds
    /// nothing to the answer (dst_lo <= dst_hi <= hi) but bounds the index
    /// on (family, dst_lo) from above too: without it, a prefix reads the
    /// index from its first address to the end of the family (on
    /// PostgreSQL, a scan of the whole table), whatever the answer.
    pub const CLAUSE: &'static str = "(v.family = ? AND v.dst_len >= ? AND v.dst_len <= ?
                   AND v.dst_lo >= ? AND v.dst_lo <= ? AND v.dst_hi <= ?)";

    /// The values of [`Within::CLAUSE`]'s placeholders.
    pub fn bind(&self, params: &mut Vec<Value>) {
        params.extend([
            Value::Int(self.family),
            Value::Int(self.lens.0),
            Value::Int(self.lens.1),
            Value::Bytes(self.lo.clone()),
            Value::Bytes(self.hi.clone()),
            Value::Bytes(self.hi.clone()),
        ]);
    }

    /// Every destination at or inside `net`.
    pub fn inside(net: IpNet) -> Within {
        let max = i64::from(net.max_prefix_len());
        Within {
            lens: (i64::from(net.prefix_len()), max),
            ..Within::exactly(net)
        }
    }

    /// The destination `net` itself.
    pub fn exactly(net: IpNet) -> Within {
        let (len, lo, hi) = destination(&net);
        let family = if net.addr().is_ipv4() {
            Family::Inet
        } else {
            Family::Inet6
        };
        Within {
            family: family as i64,
            lens: (len, len),
            lo,
            hi,
        }
    }
}

/// What PREFIX covers: `default` is the default route of each family;
/// anything else every destination at or inside it.
fn within(prefix: &str) -> Result<Vec<Within>, ClientError> {
    if prefix == "default" {
        let v4 = IpNet::V4(Default::default());
        let v6 = IpNet::V6(Default::default());
        return Ok(vec![Within::exactly(v4), Within::exactly(v6)]);
    }
    let net = routewatch_proto::filter::prefix("PREFIX", prefix)
        .map_err(|e| ClientError::Usage(e.to_string()))?;
    Ok(vec![Within::inside(net)])
}

/// The query of the versions `query history PREFIX` reads (`rules` for
/// the rules' history), valid at some time in `since..=until`, of
/// `targets` (all when `None`): its SQL with `?` placeholders and their
/// values.
pub fn statement(
    prefix: &str,
    since: i64,
    until: i64,
    targets: Option<&[&Target]>,
) -> Result<(String, Vec<Value>), ClientError> {
    let rules = prefix == RULES;
    let ranges = if rules { Vec::new() } else { within(prefix)? };
    Ok(versions_query(rules, &ranges, since, until, targets))
}

fn versions_query(
    rules: bool,
    ranges: &[Within],
    since: i64,
    until: i64,
    only: Option<&[&Target]>,
) -> (String, Vec<Value>) {
    let clauses = if rules {
        "TRUE".to_owned()
    } else {
        vec![Within::CLAUSE; ranges.len()].join(" OR ")
    };
    let mut sql = format!(
        "SELECT {COLUMNS} FROM versions v
         WHERE v.kind = ? AND ({clauses}) AND v.valid_from <= ?
           AND v.valid_until > ?"
    );
    let mut params = vec![Value::Int(if rules { KIND_RULE } else { KIND_ROUTE })];
    for r in ranges {
        r.bind(&mut params);
    }
    params.extend([Value::Int(until), Value::Int(since)]);
    if let Some(targets) = only {
        let (list, ids) = targets::ids(targets);
        sql.push_str(&format!(" AND v.target_id IN ({list})"));
        params.extend(ids);
    }
    (sql, params)
}

/// A line of the history.
/// The PREFIX that asks for the rules' history instead.
const RULES: &str = "rules";

enum Line<'a> {
    Gap(&'a Gap),
    Version(&'a Version),
}

impl Line<'_> {
    fn time(&self) -> i64 {
        match self {
            Line::Gap(g) => g.start(),
            Line::Version(v) => v.opened.time,
        }
    }

    fn target_id(&self) -> i64 {
        match self {
            Line::Gap(g) => g.target_id,
            Line::Version(v) => v.target_id,
        }
    }
}

pub async fn run(cx: &mut Context<'_>, args: &History) -> Result<(), ClientError> {
    let lines = cx.lines("history", true)?;
    let rules = args.prefix == RULES;
    let ranges = if rules {
        Vec::new()
    } else {
        within(&args.prefix)?
    };
    let since = match &args.since {
        Some(text) => cx.time("--since", text)?,
        None => i64::MIN,
    };
    let until = match &args.until {
        Some(text) => cx.time("--until", text)?,
        None => i64::MAX,
    };
    if since > until {
        return Err(ClientError::Usage(format!(
            "--since {} is after --until {}",
            rfc3339(since),
            rfc3339(until)
        )));
    }
    let all = targets::load(cx.store).await?;
    let chosen = targets::chosen(&all, &args.hosts, cx.notes)?;
    if chosen.is_empty() {
        return Ok(());
    }
    let only = (!args.hosts.is_empty()).then_some(chosen.as_slice());

    let (mut sql, params) = versions_query(rules, &ranges, since, until, only);
    // The database sorts (spilling to disk past its memory budget); one
    // moment's versions at a time are held here, to be put in their order.
    sql.push_str(" ORDER BY v.valid_from");
    let gaps = gaps::load(cx.store, only, since, until).await?;
    let by_id: HashMap<i64, &Target> = all.iter().map(|t| (t.id, t)).collect();
    let label = |id: i64| by_id.get(&id).map_or("", |t| t.label());
    let mut print = Print {
        lines,
        columns: (cx.terminal || cx.format == Format::Table).then(|| {
            Aligned::new(
                ["FROM", "UNTIL", "HOST", "BY", "OBJECT"]
                    .map(String::from)
                    .into(),
            )
        }),
        out: &mut *cx.out,
        label: &label,
        printed: false,
    };
    let mut gaps = gaps.iter().peekable();
    let mut moment: Vec<Version> = Vec::new();
    cx.store
        .for_each(&sql, &params, |row| {
            let v = Version::read(row)?;
            if moment
                .first()
                .is_some_and(|m| m.opened.time != v.opened.time)
            {
                print.moment(&mut moment, &mut gaps)?;
            }
            moment.push(v);
            Ok::<_, ClientError>(())
        })
        .await?;
    print.moment(&mut moment, &mut gaps)?;
    print.lines(gaps.map(Line::Gap).collect())?;
    if let Some(columns) = &mut print.columns {
        columns.finish(print.out)?;
    }
    if !print.printed {
        if rules {
            writeln!(cx.notes, "routewatch: the record holds no rule")?;
        } else {
            writeln!(
                cx.notes,
                "routewatch: the record holds no route at or inside {}",
                args.prefix
            )?;
        }
    }
    Ok(())
}

/// The history's lines on their way out, a moment at a time.
struct Print<'a, 'o> {
    lines: Lines,
    /// Aligned columns (a person reads them, or `-o table`).
    columns: Option<Aligned>,
    out: &'o mut (dyn Write + Send),
    label: &'a (dyn Fn(i64) -> &'a str + Sync),
    printed: bool,
}

impl<'a> Print<'a, '_> {
    /// Prints `moment` (versions that all begin at one time, taken out)
    /// with the gaps that start at or before it.
    fn moment(
        &mut self,
        moment: &mut Vec<Version>,
        gaps: &mut Peekable<impl Iterator<Item = &'a Gap>>,
    ) -> Result<(), ClientError> {
        let Some(time) = moment.first().map(|v| v.opened.time) else {
            return Ok(());
        };
        let mut lines: Vec<Line<'_>> = Vec::new();
        while let Some(gap) = gaps.next_if(|g| g.start() <= time) {
            lines.push(Line::Gap(gap));
        }
        lines.extend(moment.iter().map(Line::Version));
        self.lines(lines)?;
        moment.clear();
        Ok(())
    }

    fn lines(&mut self, mut lines: Vec<Line<'_>>) -> Result<(), ClientError> {
        let label = self.label;
        // Oldest first, then by host; a gap before what it ends in; one
        // host's versions of one moment in `show`'s order.
        lines.sort_by(|a, b| {
            a.time()
                .cmp(&b.time())
                .then_with(|| label(a.target_id()).cmp(label(b.target_id())))
                .then_with(|| a.target_id().cmp(&b.target_id()))
                .then_with(|| match (a, b) {
                    (Line::Gap(_), Line::Version(_)) => Ordering::Less,
                    (Line::Version(_), Line::Gap(_)) => Ordering::Greater,
                    (Line::Gap(x), Line::Gap(y)) => x.to_time.cmp(&y.to_time),
                    (Line::Version(x), Line::Version(y)) => {
                        order::compare(&x.event(), &y.event()).then_with(|| x.vid.cmp(&y.vid))
                    }
                })
        });
        self.printed |= !lines.is_empty();
        for line in &lines {
            let host = label(line.target_id());
            if self.lines == Lines::Json {
                let json = match line {
                    Line::Gap(g) => json!({ "gap": g.json(host) }),
                    Line::Version(v) => version_json(v, host),
                };
                serde_json::to_writer(&mut *self.out, &json).map_err(io::Error::from)?;
                self.out.write_all(b"\n")?;
                continue;
            }
            let row = cells(line, host);
            match &mut self.columns {
                Some(columns) => columns.push(self.out, row)?,
                None => writeln!(self.out, "{}", row.join(" "))?,
            }
        }
        Ok(())
    }
}

/// A line's cells: from, until (`current`), host, what opened/closed it
/// (`gap` for a gap), the object (for a gap: its cause, stream positions
/// and reason).
fn cells(line: &Line<'_>, host: &str) -> Vec<String> {
    match line {
        Line::Gap(g) => vec![
            g.from_time
                .map_or_else(|| "unknown".to_owned(), rfc3339_millis),
            rfc3339_millis(g.to_time),
            host.to_owned(),
            "gap".to_owned(),
            g.summary(),
        ],
        Line::Version(v) => {
            let (to, closed) = match &v.closed {
                Some(c) => (rfc3339_millis(c.time), c.how()),
                None => ("current".to_owned(), "-"),
            };
            let mut object = String::new();
            object_line(&v.object, &mut object);
            if let Some(by) = &v.changed_by {
                object.push_str(" by ");
                object.push_str(by);
            }
            if let Some(reason) = &v.reason {
                object.push_str(" (");
                object.push_str(reason);
                object.push(')');
            }
            if let Some(by) = &v.ended_by {
                object.push_str(", ended by ");
                object.push_str(by);
            }
            if let Some(reason) = &v.ended_reason {
                object.push_str(if v.ended_by.is_some() {
                    " ("
                } else {
                    ", ended ("
                });
                object.push_str(reason);
                object.push(')');
            }
            vec![
                rfc3339_millis(v.opened.time),
                to,
                host.to_owned(),
                format!("{}/{closed}", v.opened.how()),
                object,
            ]
        }
    }
}

/// A version's host, namespace, lifetime and the stream positions that
/// opened and closed it, as `query history -o json` (and the web's prefix
/// page) write them.
pub fn version_fields(v: &Version, host: &str) -> Map<String, Json> {
    let closed = v.closed.as_ref();
    let mut m = Map::new();
    m.insert("host".into(), host.into());
    m.insert("netns".into(), v.netns.clone().into());
    m.insert("valid_from".into(), rfc3339(v.opened.time).into());
    m.insert("valid_to".into(), closed.map(|c| rfc3339(c.time)).into());
    m.insert("opened_by".into(), v.opened.how().into());
    m.insert("closed_by".into(), closed.map(|c| c.how()).into());
    m.insert("opened_stream_id".into(), v.opened.stream_id.clone().into());
    m.insert("opened_seq".into(), v.opened.seq.into());
    m.insert(
        "closed_stream_id".into(),
        closed.map(|c| c.stream_id.clone()).into(),
    );
    m.insert("closed_seq".into(), closed.map(|c| c.seq).into());
    m
}

fn version_json(v: &Version, host: &str) -> Json {
    let mut m = version_fields(v, host);
    if let Some(by) = &v.changed_by {
        m.insert("changed_by".into(), by.clone().into());
    }
    if let Some(reason) = &v.reason {
        m.insert("reason".into(), reason.clone().into());
    }
    if let Some(by) = &v.ended_by {
        m.insert("ended_by".into(), by.clone().into());
    }
    if let Some(reason) = &v.ended_reason {
        m.insert("ended_reason".into(), reason.clone().into());
    }
    m.extend(json_map(|o| object_json(&v.key, &v.object, o)));
    Json::Object(m)
}
