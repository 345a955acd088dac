//! `query diff`: one host at two moments, or two hosts at one.

use std::collections::HashMap;

use routewatch_proto::v1::change;
use serde_json::{Map, Value as Json};

use super::args::Diff;
use super::targets::{self, Target};
use super::version::{self, Version};
use super::{gaps, Context, Lines};
use crate::order;
use crate::printer::{json_map, object_fields, object_json, object_line, rfc3339};
use crate::ClientError;

const USAGE: &str = "query diff compares one host at two moments (--host H --at T1 --at T2) \
     or two hosts at one moment (--host A --host B, with at most one --at; default now)";

/// One of the two tables compared.
struct Side<'a> {
    target: &'a Target,
    at: i64,
    /// What `only` calls it: the host, or the moment.
    name: String,
}

/// Which two tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// One host at two moments: objects match by key.
    Moments,
    /// Two hosts at one moment: objects match by what makes a route
    /// distinct in the kernel (its key is the host's own).
    Hosts,
}

/// What two versions must share to be the same object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Identity {
    Key {
        netns: String,
        key: String,
    },
    Route {
        netns: String,
        family: i32,
        table: u32,
        dst: String,
        src: String,
        tos: u32,
        metric: u32,
    },
    Nexthop {
        netns: String,
        id: u32,
    },
    /// Rules are found by priority: `ip rule` lists them so, and a rule
    /// that looks up another table on the other host is the same rule
    /// changed.
    Rule {
        netns: String,
        family: i32,
        priority: u32,
    },
}

fn identity(form: Form, v: &Version) -> Identity {
    let netns = v.netns.clone();
    match (form, &v.object) {
        (Form::Moments, _) => Identity::Key {
            netns,
            key: v.key.clone(),
        },
        (Form::Hosts, change::Object::Route(r)) => Identity::Route {
            netns,
            family: r.family,
            table: r.table,
            dst: r.dst.clone(),
            src: r.src.clone(),
            tos: r.tos,
            metric: r.metric,
        },
        (Form::Hosts, change::Object::Nexthop(n)) => Identity::Nexthop { netns, id: n.id },
        (Form::Hosts, change::Object::Rule(r)) => Identity::Rule {
            netns,
            family: r.family,
            priority: r.priority,
        },
    }
}

/// A version and what `ip -j -d` shows of it.
type Shown<'a> = (&'a Version, Map<String, Json>);

/// What `ip -j -d` shows of the object: two versions that show alike do
/// not differ (interface indexes, for one, are each host's own).
fn shown(v: &Version) -> Map<String, Json> {
    json_map(|o| object_fields(&v.object, o))
}

pub async fn run(cx: &mut Context<'_>, args: &Diff) -> Result<(), ClientError> {
    let lines = cx.lines("diff", false)?;
    let all = targets::load(cx.store).await?;
    match (args.hosts.as_slice(), args.at.as_slice()) {
        ([host], [t1, t2]) => {
            let (t1, t2) = (cx.time("--at", t1)?, cx.time("--at", t2)?);
            let Some(target) = targets::one(&all, host, cx.notes)? else {
                return Ok(());
            };
            let side = |at| Side {
                target,
                at,
                name: rfc3339(at),
            };
            compare(cx, lines, Form::Moments, [side(t1), side(t2)]).await
        }
        ([a, b], at) if at.len() <= 1 => {
            let at = match at.first() {
                Some(text) => cx.time("--at", text)?,
                None => cx.now,
            };
            let a = targets::one(&all, a, cx.notes)?;
            let b = targets::one(&all, b, cx.notes)?;
            let (Some(a), Some(b)) = (a, b) else {
                return Ok(());
            };
            let sides = [a, b].map(|target| Side {
                target,
                at,
                name: target.label().to_owned(),
            });
            compare(cx, lines, Form::Hosts, sides).await
        }
        _ => Err(ClientError::Usage(USAGE.into())),
    }
}

/// What the second side's table has that the first's lacks, and the
/// reverse, in `show`'s order.
async fn compare(
    cx: &mut Context<'_>,
    lines: Lines,
    form: Form,
    sides: [Side<'_>; 2],
) -> Result<(), ClientError> {
    let mut tables = Vec::new();
    for side in &sides {
        gaps::note_moment(cx, side.target, side.at).await?;
        tables.push(version::at(cx.store, side.target, side.at).await?);
    }
    // Per identity, each side's versions not shown alike on the other.
    let mut groups: HashMap<Identity, [Vec<Shown<'_>>; 2]> = HashMap::new();
    for (i, table) in tables.iter().enumerate() {
        for v in table {
            groups.entry(identity(form, v)).or_default()[i].push((v, shown(v)));
        }
    }
    let mut differ = Vec::new();
    for [mut first, mut second] in groups.into_values() {
        first.retain(|(_, x)| match second.iter().position(|(_, y)| x == y) {
            Some(i) => {
                second.remove(i);
                false
            }
            None => true,
        });
        let pair = [first, second].map(|s| s.into_iter().map(|(v, _)| v).collect::<Vec<_>>());
        // Where it sorts: as the first side's object would in `show`.
        if let Some(v) = pair[0].first().or(pair[1].first()) {
            differ.push((v.event(), (v.netns.clone(), v.key.clone()), pair));
        }
    }
    differ.sort_by(|(x, x_id, _), (y, y_id, _)| order::compare(x, y).then_with(|| x_id.cmp(y_id)));
    if differ.is_empty() {
        let held = tables.iter().map(Vec::len).max().unwrap_or(0);
        writeln!(
            cx.notes,
            "routewatch: no differences: {} and {} hold the same {held} routes, rules and nexthop objects",
            sides[0].name, sides[1].name
        )?;
        return Ok(());
    }
    for (_, _, pair) in &differ {
        let both = pair.iter().all(|s| !s.is_empty());
        for (i, side) in sides.iter().enumerate() {
            for v in &pair[i] {
                let line = Line {
                    form,
                    side,
                    first: i == 0,
                    only: !both,
                    version: v,
                };
                match lines {
                    Lines::Text => writeln!(cx.out, "{}", line.text())?,
                    Lines::Json => cx.json_line(&line.json())?,
                }
            }
        }
    }
    Ok(())
}

/// One object of one side.
struct Line<'a> {
    form: Form,
    side: &'a Side<'a>,
    /// Of the first side (T1, or host A).
    first: bool,
    /// The other side has nothing of its identity.
    only: bool,
    version: &'a Version,
}

impl Line<'_> {
    /// `Deleted ROUTE` / `ROUTE` (moments), `A only: ROUTE` / `A: ROUTE`
    /// (hosts).
    fn text(&self) -> String {
        let mut s = match self.form {
            Form::Moments if self.first => "Deleted ".to_owned(),
            Form::Moments => String::new(),
            Form::Hosts if self.only => format!("{} only: ", self.side.name),
            Form::Hosts => format!("{}: ", self.side.name),
        };
        object_line(&self.version.object, &mut s);
        s
    }

    fn json(&self) -> Json {
        let mut m = Map::new();
        m.insert(
            "only".into(),
            self.only.then(|| self.side.name.clone()).into(),
        );
        m.insert("host".into(), self.side.target.label().into());
        m.insert("at".into(), rfc3339(self.side.at).into());
        if self.form == Form::Moments {
            let action = if self.first { "delete" } else { "add" };
            m.insert("action".into(), action.into());
        }
        m.insert("netns".into(), self.version.netns.clone().into());
        m.extend(json_map(|o| {
            object_json(&self.version.key, &self.version.object, o)
        }));
        Json::Object(m)
    }
}
