//! A prefix across the fleet: every version of the routes whose
//! destination is it (`exact`), lies inside it (`within`, the default) or
//! contains it (`containing`: for 10.1.2.0/24, the versions of
//! 10.1.0.0/16, 10.0.0.0/8, 0.0.0.0/0), on every host, with who opened
//! each where the store knows; as a timeline and a table.
//!
//! The database filters, sorts and pages: a page reads its own rows and
//! one more (whether a next page exists), and the total is counted up to
//! [`COUNT_UP_TO`], so that a prefix with millions of versions costs a page.

use std::collections::{BTreeMap, HashMap};

use ipnet::IpNet;
use routewatch_proto::v1::Family;
use serde_json::{json, Value as Json};

use super::attribution::{self, Attribution};
use super::html::{self, esc};
use super::page::{Page, Params};
use crate::printer::{json_map, object_json, object_line, rfc3339, rfc3339_millis};
use crate::query::gaps::{self, Gap};
use crate::query::history::{version_fields, Within};
use crate::query::targets::{self, Target};
use crate::query::version::{self, Version};
use crate::store::schema::{destination, KIND_ROUTE};
use crate::store::{Store, Value};
use crate::ClientError;

/// Versions on one page.
pub const PER_PAGE: i64 = 500;
/// The total is counted up to this many versions ("more than" beyond).
const COUNT_UP_TO: i64 = 10_000;

/// Which destinations a prefix names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The prefix itself.
    Exact,
    /// The prefix and every prefix inside it.
    Within,
    /// Every prefix that contains it: the routes a packet to it may take.
    Containing,
}

impl Mode {
    const ALL: [(Mode, &'static str, &'static str); 3] = [
        (Mode::Exact, "exact", "exactly"),
        (Mode::Within, "within", "at or inside"),
        (Mode::Containing, "containing", "containing"),
    ];

    fn parse(text: &str) -> Result<Mode, ClientError> {
        match text {
            "" => Ok(Mode::Within),
            t => Mode::ALL
                .iter()
                .find(|(_, name, _)| *name == t)
                .map(|(m, _, _)| *m)
                .ok_or_else(|| {
                    ClientError::Usage(format!(
                        "mode {t}: the modes are exact, within and containing"
                    ))
                }),
        }
    }

    fn name(self) -> &'static str {
        Mode::ALL
            .iter()
            .find(|(m, ..)| *m == self)
            .map_or("", |x| x.1)
    }

    fn words(self) -> &'static str {
        Mode::ALL
            .iter()
            .find(|(m, ..)| *m == self)
            .map_or("", |x| x.2)
    }
}

/// The condition on `versions v` of the destinations `prefix` names in
/// `mode`, with its values. `default` is the default route of each
/// family, whatever the mode (it contains everything, and only itself
/// contains it).
pub fn destinations(prefix: &str, mode: Mode) -> Result<(String, Vec<Value>), ClientError> {
    let mut params = Vec::new();
    if prefix == "default" {
        let both = [IpNet::V4(Default::default()), IpNet::V6(Default::default())];
        for net in both {
            Within::exactly(net).bind(&mut params);
        }
        return Ok((
            format!("({} OR {})", Within::CLAUSE, Within::CLAUSE),
            params,
        ));
    }
    let net = routewatch_proto::filter::prefix("prefix", prefix)
        .map_err(|e| ClientError::Usage(e.to_string()))?;
    let sql = match mode {
        Mode::Exact => {
            Within::exactly(net).bind(&mut params);
            Within::CLAUSE.to_owned()
        }
        Mode::Within => {
            Within::inside(net).bind(&mut params);
            Within::CLAUSE.to_owned()
        }
        Mode::Containing => {
            // The prefixes containing `net` are one per length up to its
            // own, each starting at `net` cut to that length: a list of
            // first addresses, each a point of the index on (family,
            // dst_lo); the lengths and last addresses check the rest.
            let family = if net.addr().is_ipv4() {
                Family::Inet
            } else {
                Family::Inet6
            };
            let firsts: Vec<Vec<u8>> = (0..=net.prefix_len())
                .filter_map(|len| IpNet::new(net.addr(), len).ok())
                .map(|n| destination(&n.trunc()).1)
                .collect();
            let (len, _, hi) = destination(&net);
            params.push(Value::Int(family as i64));
            let list = crate::query::row::placeholders(firsts.len());
            params.extend(firsts.into_iter().map(Value::Bytes));
            params.extend([Value::Int(len), Value::Bytes(hi)]);
            format!("(v.family = ? AND v.dst_lo IN ({list}) AND v.dst_len <= ? AND v.dst_hi >= ?)")
        }
    };
    Ok((sql, params))
}

/// The versions of routes `prefix` names, valid at some time in
/// `since..=until`, of `only` (every host when `None`): the `FROM ...
/// WHERE ...` part and its values.
fn answer(
    prefix: &str,
    mode: Mode,
    since: i64,
    until: i64,
    only: Option<&[&Target]>,
) -> Result<(String, Vec<Value>), ClientError> {
    let (dst, dst_params) = destinations(prefix, mode)?;
    let mut sql = format!(
        "FROM versions v
         WHERE v.kind = ? AND {dst} AND v.valid_from <= ?
           AND v.valid_until > ?"
    );
    let mut params = vec![Value::Int(KIND_ROUTE)];
    params.extend(dst_params);
    params.extend([Value::Int(until), Value::Int(since)]);
    if let Some(targets) = only {
        let (list, ids) = targets::ids(targets);
        sql.push_str(&format!(" AND v.target_id IN ({list})"));
        params.extend(ids);
    }
    Ok((sql, params))
}

pub async fn page(store: &mut Store, params: &Params, now: i64) -> Result<Page, ClientError> {
    let prefix = params.get("prefix");
    let mode = Mode::parse(params.get("mode"))?;
    let mut body = String::from("<form method=\"get\" class=\"filters\">");
    body.push_str(&html::input(
        "prefix",
        "Prefix",
        prefix,
        "10.0.0.0/8, 10.1.2.3, 2001:db8::/32, default",
    ));
    body.push_str("<label>Routes <select name=\"mode\">");
    for (m, name, words) in Mode::ALL {
        let selected = if m == mode { " selected" } else { "" };
        body.push_str(&format!(
            "<option value=\"{name}\"{selected}>{words}</option>"
        ));
    }
    body.push_str("</select></label>");
    body.push_str(&html::input(
        "host",
        "Host",
        params.get("host"),
        "every host",
    ));
    body.push_str(&html::input("since", "Since", params.get("since"), "-7d"));
    body.push_str(&html::input("until", "Until", params.get("until"), "now"));
    body.push_str("<button type=\"submit\">Show</button></form>");
    if prefix.is_empty() {
        return Ok(Page {
            active: "prefix",
            title: "Prefix".into(),
            notes: vec!["name a prefix: every route exactly it, at or inside it, or containing it, on every host, with every version it had and who made it".into()],
            html: body,
            json: json!({ "lines": [] }),
        });
    }
    let time = |name: &str, default: i64| match params.get(name) {
        "" => Ok(default),
        text => crate::when::parse_time(text, now)
            .map_err(|e| ClientError::Usage(format!("{name}: {e}"))),
    };
    let (since, until) = (time("since", i64::MIN)?, time("until", i64::MAX)?);
    if since > until {
        return Err(ClientError::Usage(format!(
            "since {} is after until {}",
            rfc3339(since),
            rfc3339(until)
        )));
    }
    let all = targets::load(store).await?;
    let wanted: Vec<String> = match params.get("host") {
        "" => Vec::new(),
        h => h.split(',').map(|s| s.trim().to_owned()).collect(),
    };
    let mut notes_bytes = Vec::new();
    let chosen = targets::chosen(&all, &wanted, &mut notes_bytes)?;
    let mut notes = super::page::note_lines(&notes_bytes);
    let only = (!wanted.is_empty()).then_some(chosen.as_slice());
    let offset = params.number("offset", 0).max(0);

    let (from_where, values) = answer(prefix, mode, since, until, only)?;
    // `more`: the time the next page starts at, when there is one.
    let (shown, more, total) = if chosen.is_empty() {
        (Vec::new(), None, Count::Exactly(0))
    } else {
        let mut page_values = values.clone();
        page_values.extend([Value::Int(PER_PAGE + 1), Value::Int(offset)]);
        // The page's versions are found with the narrow columns alone,
        // then read whole: what is sorted past is never decoded.
        let rows = store
            .select(
                &format!(
                    "SELECT {}, {} FROM (
                         SELECT v.target_id, v.vid, v.valid_from {from_where}
                         ORDER BY v.valid_from, v.target_id, v.vid LIMIT ? OFFSET ?
                     ) p
                     JOIN versions v ON v.target_id = p.target_id AND v.vid = p.vid
                     {}
                     ORDER BY p.valid_from, p.target_id, p.vid",
                    version::COLUMNS,
                    attribution::COLUMNS,
                    attribution::JOIN
                ),
                &page_values,
            )
            .await?;
        let mut read = rows
            .iter()
            .map(|r| {
                let v = Version::read(r)?;
                let by = Attribution::read(&v, &r[version::COLUMN_COUNT..])?;
                Ok((v, by))
            })
            .collect::<Result<Vec<_>, ClientError>>()?;
        let more = if read.len() as i64 > PER_PAGE {
            read.pop().map(|(v, _)| v.opened.time)
        } else {
            None
        };
        let total = count(
            store,
            &from_where,
            values,
            offset,
            read.len() as i64,
            more.is_some(),
        )
        .await?;
        (read, more, total)
    };

    // The hosts' gaps, each on the page its start falls on.
    let gaps = gaps::load(store, only, since, until).await?;
    let first_time = shown.first().map(|(v, _)| v.opened.time);
    let gaps: Vec<&Gap> = gaps
        .iter()
        .filter(|g| {
            let t = g.start();
            (offset == 0 || first_time.is_some_and(|f| t >= f)) && more.is_none_or(|next| t < next)
        })
        .collect();
    let by_id: HashMap<i64, &Target> = all.iter().map(|t| (t.id, t)).collect();
    let label = |id: i64| by_id.get(&id).map_or("", |t| t.label());
    let mut lines: Vec<Line<'_>> = shown
        .iter()
        .map(|(v, by)| Line::Version(v, by))
        .chain(gaps.iter().map(|g| Line::Gap(g)))
        .collect();
    // Oldest first, then by host; a gap before what it ends in; one host's
    // versions of one moment in `show`'s order.
    lines.sort_by(|a, b| {
        a.time()
            .cmp(&b.time())
            .then_with(|| label(a.target_id()).cmp(label(b.target_id())))
            .then_with(|| a.target_id().cmp(&b.target_id()))
            .then_with(|| match (a, b) {
                (Line::Gap(_), Line::Version(..)) => std::cmp::Ordering::Less,
                (Line::Version(..), Line::Gap(_)) => std::cmp::Ordering::Greater,
                (Line::Gap(x), Line::Gap(y)) => x.to_time.cmp(&y.to_time),
                (Line::Version(x, _), Line::Version(y, _)) => {
                    crate::order::compare(&x.event(), &y.event()).then_with(|| x.vid.cmp(&y.vid))
                }
            })
    });
    let versions_shown = shown.len() as i64;
    if offset == 0 && lines.is_empty() && !chosen.is_empty() {
        notes.push(format!(
            "the record holds no route {} {prefix}",
            mode.words()
        ));
    }

    body.push_str(&timeline(&lines, &label, now));
    body.push_str(&format!(
        "<p class=\"count\" id=\"count\">{} versions of routes {} {}; {} to {} shown</p>",
        total.text(),
        mode.words(),
        esc(prefix),
        (offset + 1).min(offset + versions_shown),
        offset + versions_shown
    ));
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| l.cells(label(l.target_id())))
        .collect();
    body.push_str(&html::table(
        "history",
        &["From", "Until", "Host", "By", "Changed by", "Route"],
        &rows,
    ));
    let link = |offset: i64| {
        let o = offset.to_string();
        html::query(&[
            ("prefix", prefix),
            (
                "mode",
                if mode == Mode::Within {
                    ""
                } else {
                    mode.name()
                },
            ),
            ("host", params.get("host")),
            ("since", params.get("since")),
            ("until", params.get("until")),
            ("offset", if offset > 0 { &o } else { "" }),
        ])
    };
    body.push_str("<p class=\"pages\">");
    if offset > 0 {
        body.push_str(&format!(
            "<a rel=\"prev\" href=\"/prefix{}\">← previous</a> ",
            esc(&link((offset - PER_PAGE).max(0)))
        ));
    }
    if more.is_some() {
        body.push_str(&format!(
            "<a rel=\"next\" href=\"/prefix{}\">next →</a>",
            esc(&link(offset + PER_PAGE))
        ));
    }
    body.push_str("</p>");
    let json_lines: Vec<Json> = lines.iter().map(|l| l.json(label(l.target_id()))).collect();
    Ok(Page {
        active: "prefix",
        title: format!("{prefix} across the fleet"),
        notes,
        html: body,
        json: json!({
            "prefix": prefix,
            "mode": mode.name(),
            "total": total.json(),
            "total_at_least": matches!(total, Count::AtLeast(_)),
            "offset": offset,
            "per_page": PER_PAGE,
            "next_offset": more.map(|_| offset + PER_PAGE),
            "lines": json_lines,
        }),
    })
}

/// How many versions the answer has, as far as it was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Count {
    Exactly(i64),
    /// More than this many.
    AtLeast(i64),
}

impl Count {
    fn text(self) -> String {
        match self {
            Count::Exactly(n) => n.to_string(),
            Count::AtLeast(n) => format!("more than {n}"),
        }
    }

    fn json(self) -> Json {
        match self {
            Count::Exactly(n) | Count::AtLeast(n) => n.into(),
        }
    }
}

/// The answer's size: known from the page itself when it is the last, else
/// counted by the database up to [`COUNT_UP_TO`].
async fn count(
    store: &mut Store,
    from_where: &str,
    mut values: Vec<Value>,
    offset: i64,
    read: i64,
    more: bool,
) -> Result<Count, ClientError> {
    if !more && (read > 0 || offset == 0) {
        return Ok(Count::Exactly(offset + read));
    }
    values.push(Value::Int(COUNT_UP_TO + 1));
    let rows = store
        .select(
            &format!(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM (SELECT 1 AS one {from_where} LIMIT ?) counted"
            ),
            &values,
        )
        .await?;
    let n = rows
        .first()
        .map(|r| crate::query::row::Row(r).int(0))
        .transpose()?
        .unwrap_or(0);
    Ok(if n > COUNT_UP_TO {
        Count::AtLeast(COUNT_UP_TO)
    } else {
        Count::Exactly(n)
    })
}

/// A line of the page: a version and who opened it, or a gap.
enum Line<'a> {
    Version(&'a Version, &'a Attribution),
    Gap(&'a Gap),
}

impl Line<'_> {
    fn time(&self) -> i64 {
        match self {
            Line::Gap(g) => g.start(),
            Line::Version(v, _) => v.opened.time,
        }
    }

    fn target_id(&self) -> i64 {
        match self {
            Line::Gap(g) => g.target_id,
            Line::Version(v, _) => v.target_id,
        }
    }

    fn cells(&self, host: &str) -> Vec<String> {
        match self {
            Line::Gap(g) => vec![
                esc(&g
                    .from_time
                    .map_or_else(|| "unknown".to_owned(), rfc3339_millis)),
                esc(&rfc3339_millis(g.to_time)),
                esc(host),
                "<span class=\"gaps\">gap</span>".into(),
                String::new(),
                esc(&g.summary()),
            ],
            Line::Version(v, by) => {
                let mut route = String::new();
                object_line(&v.object, &mut route);
                vec![
                    esc(&rfc3339_millis(v.opened.time)),
                    v.closed
                        .as_ref()
                        .map_or_else(|| "current".into(), |c| esc(&rfc3339_millis(c.time))),
                    esc(host),
                    format!(
                        "{}/{}",
                        v.opened.how(),
                        v.closed.as_ref().map_or("-", |c| c.how())
                    ),
                    by.cell(),
                    format!("<code>{}</code>", esc(&route)),
                ]
            }
        }
    }

    /// `query history -o json`'s line, with the process that opened the
    /// version (`changed_by_pid`, `changed_by_comm`, `changed_by_pod`).
    fn json(&self, host: &str) -> Json {
        let (v, by) = match self {
            Line::Gap(g) => return json!({ "gap": g.json(host) }),
            Line::Version(v, by) => (v, by),
        };
        let mut m = version_fields(v, host);
        by.add_fields(&mut m);
        m.extend(json_map(|o| object_json(&v.key, &v.object, o)));
        Json::Object(m)
    }
}

/// A bar of the timeline: from, to, and whether it is a gap.
type Bar = (i64, i64, bool);

/// One bar per version, one row per host and destination, from the first
/// line shown to now (an SVG drawn on the server).
fn timeline<'a>(lines: &[Line<'_>], label: &dyn Fn(i64) -> &'a str, now: i64) -> String {
    let mut rows: BTreeMap<(String, String), Vec<Bar>> = BTreeMap::new();
    let mut start = now;
    for l in lines {
        let host = label(l.target_id()).to_owned();
        match l {
            Line::Gap(g) => {
                let from = g.from_time.unwrap_or(g.to_time);
                start = start.min(from);
                rows.entry((host, "gap".into()))
                    .or_default()
                    .push((from, g.to_time, true));
            }
            Line::Version(v, _) => {
                let from = v.opened.time;
                let to = v.closed.as_ref().map_or(now, |c| c.time);
                start = start.min(from);
                let dst = match &v.object {
                    routewatch_proto::v1::change::Object::Route(r) => {
                        if r.dst.is_empty() {
                            "default".to_owned()
                        } else {
                            r.dst.clone()
                        }
                    }
                    _ => String::new(),
                };
                rows.entry((host, dst)).or_default().push((from, to, false));
            }
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    let (width, label_w, row_h) = (900.0, 260.0, 18.0);
    let span = (now - start).max(1) as f64;
    let x = |t: i64| label_w + (t - start) as f64 / span * (width - label_w);
    let mut svg = format!(
        "<svg id=\"timeline\" class=\"timeline\" viewBox=\"0 0 {width} {}\" role=\"img\" aria-label=\"versions over time\">",
        rows.len() as f64 * row_h + 4.0
    );
    for (i, ((host, dst), bars)) in rows.iter().enumerate() {
        let y = i as f64 * row_h + 2.0;
        svg.push_str(&format!(
            "<text x=\"0\" y=\"{}\">{} {}</text>",
            y + 12.0,
            esc(host),
            esc(dst)
        ));
        for (k, (from, to, gap)) in bars.iter().enumerate() {
            let class = if *gap {
                "gap"
            } else if k % 2 == 0 {
                "v0"
            } else {
                "v1"
            };
            svg.push_str(&format!(
                "<rect class=\"{class}\" x=\"{:.1}\" y=\"{y}\" width=\"{:.1}\" height=\"{}\"></rect>",
                x(*from),
                (x(*to) - x(*from)).max(1.5),
                row_h - 4.0
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}
