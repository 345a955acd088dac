//! What differs between two moments of a host, or between two hosts at a
//! moment, side by side (`query diff`).
//!
//! One host at two moments is answered by the database a page at a time:
//! the versions valid at one moment and not the other, read along the
//! primary key (keyset paging: `after` is the last version shown), so that
//! a large difference costs a page. An object's two versions are shown as
//! a change when they fall on one page (always, unless the difference is
//! larger than a page); otherwise as a removal and an addition. Two hosts at a moment are compared by what
//! makes routes distinct in the kernel, which the database's columns do
//! not hold: `query diff` answers, and the page shows a part of it.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value as Json};

use super::html::{self, esc};
use super::page::{ask, describe, Page, Params, RECORD_FIELDS};
use crate::order;
use crate::printer::{json_map, object_fields, object_json, rfc3339};
use crate::query::row::Row;
use crate::query::targets;
use crate::query::version::{self, Version};
use crate::store::{Store, Value};
use crate::ClientError;

/// Differences (objects of either side) on one page.
pub const PER_PAGE: i64 = 500;

pub async fn page(store: &mut Store, params: &Params, now: i64) -> Result<Page, ClientError> {
    let (host, host2, at, at2) = (
        params.get("host"),
        params.get("host2"),
        params.get("at"),
        params.get("at2"),
    );
    let mut body = String::from("<form method=\"get\" class=\"filters\">");
    body.push_str(&html::input("host", "Host", host, "node1"));
    body.push_str(&html::input("at", "At", at, "-1h"));
    body.push_str(&html::input("host2", "or host", host2, "node2"));
    body.push_str(&html::input("at2", "and at", at2, "now"));
    body.push_str("<button type=\"submit\">Compare</button></form>");
    let two_hosts = !host2.is_empty();
    if host.is_empty() {
        return Ok(Page {
            active: "diff",
            title: "Diff".into(),
            notes: vec!["name a host and two moments, or two hosts and one moment".into()],
            html: body,
            json: json!({ "lines": [] }),
        });
    }
    if !two_hosts {
        return moments(store, params, now, body).await;
    }
    let mut words = vec![
        "diff".to_owned(),
        "--host".into(),
        host.to_owned(),
        "--host".into(),
        host2.to_owned(),
    ];
    if !at.is_empty() {
        words.extend(["--at".into(), at.to_owned()]);
    }
    let (lines, notes) = ask(store, &words, now).await?;
    let total = lines.len();
    let offset = (params.number("offset", 0).max(0) as usize).min(total);
    // A pair (both hosts' lines of one route, `only` null) is never split
    // across pages.
    let mut end = offset;
    while end < total && end < offset + PER_PAGE as usize {
        end += if lines[end]["only"].is_null() { 2 } else { 1 };
    }
    let end = end.min(total);
    let lines: Vec<Json> = lines[offset..end].to_vec();
    let all = targets::load(store).await?;
    let left_label = targets::find(&all, host)
        .first()
        .map_or(host.to_owned(), |t| t.label().to_owned());
    let rows = pair_rows(&lines, true, |l| {
        l["only"].as_str() == Some(left_label.as_str())
    });
    let (left, right) = (host.to_owned(), host2.to_owned());
    body.push_str(&format!(
        "<p class=\"count\" id=\"count\">{} differences on this page ({} to {} of {total} lines)</p>",
        rows.len(),
        (offset + 1).min(end),
        end
    ));
    let header = ["", &esc(&left), &esc(&right)];
    body.push_str(&html::table("diff", &header, &rows));
    let link = |offset: usize| {
        let o = offset.to_string();
        html::query(&[
            ("host", host),
            ("host2", host2),
            ("at", at),
            ("offset", if offset > 0 { &o } else { "" }),
        ])
    };
    body.push_str("<p class=\"pages\">");
    if offset > 0 {
        body.push_str(&format!(
            "<a rel=\"prev\" href=\"/diff{}\">← previous</a> ",
            esc(&link(offset.saturating_sub(PER_PAGE as usize)))
        ));
    }
    if end < total {
        body.push_str(&format!(
            "<a rel=\"next\" href=\"/diff{}\">next →</a>",
            esc(&link(end))
        ));
    }
    body.push_str("</p>");
    Ok(Page {
        active: "diff",
        title: format!("{left} ↔ {right}"),
        notes,
        html: body,
        json: json!({
            "left": left,
            "right": right,
            "total": total,
            "offset": offset,
            "next_offset": (end < total).then_some(end),
            "lines": lines,
        }),
    })
}

/// `v` valid at the moment bound to the two placeholders (`?` twice).
const VALID_AT: &str = "CASE WHEN v.valid_from <= ? AND v.valid_until > ? THEN 1 ELSE 0 END";

/// One host at two moments, a page of objects at a time.
async fn moments(
    store: &mut Store,
    params: &Params,
    now: i64,
    mut body: String,
) -> Result<Page, ClientError> {
    let host = params.get("host");
    let (at, at2) = (
        match params.get("at") {
            "" => "-1h",
            a => a,
        },
        match params.get("at2") {
            "" => "now",
            a => a,
        },
    );
    let time = |name: &str, text: &str| {
        crate::when::parse_time(text, now).map_err(|e| ClientError::Usage(format!("{name}: {e}")))
    };
    let (t1, t2) = (time("at", at)?, time("at2", at2)?);
    let all = targets::load(store).await?;
    let mut notes_bytes = Vec::new();
    let Some(target) = targets::one(&all, host, &mut notes_bytes)? else {
        return Ok(Page {
            active: "diff",
            title: "Diff".into(),
            notes: super::page::note_lines(&notes_bytes),
            html: body,
            json: json!({ "lines": [] }),
        });
    };
    let mut notes = Vec::new();
    let gaps = crate::query::gaps::load(store, Some(&[target]), i64::MIN, i64::MAX).await?;
    for t in [t1, t2] {
        for g in gaps.iter().filter(|g| g.covers(t)) {
            notes.push(format!(
                "{} lies inside a gap of the record ({}): what the host held then is not known exactly",
                rfc3339(t),
                g.summary()
            ));
        }
    }
    // The keyset: the last version of the previous page.
    let after = params.number("after", 0);
    let mut values: Vec<Value> = [t1, t1, target.id, t1.max(t2), t1.min(t2), t1, t1, t2, t2]
        .map(Value::Int)
        .into();
    values.extend([Value::Int(after), Value::Int(PER_PAGE)]);
    let rows = store
        .select(
            &format!(
                "SELECT {}, {VALID_AT} FROM versions v
                 WHERE v.target_id = ? AND +v.valid_from <= ?
                   AND v.valid_until > ?
                   AND {VALID_AT} <> {VALID_AT} AND v.vid > ?
                 ORDER BY v.target_id, v.vid LIMIT ?",
                version::COLUMNS
            ),
            &values,
        )
        .await?;
    let read = rows
        .iter()
        .map(|r| Ok((Version::read(r)?, Row(r).int(version::COLUMN_COUNT)? == 1)))
        .collect::<Result<Vec<_>, ClientError>>()?;
    let next_after = (read.len() as i64 == PER_PAGE)
        .then(|| read.last().map(|(v, _)| v.vid))
        .flatten();
    // Per object, what each moment had; objects shown alike at both are
    // no difference.
    let mut objects: BTreeMap<(String, String), [Vec<&Version>; 2]> = BTreeMap::new();
    for (v, at_first) in &read {
        let side = if *at_first { 0 } else { 1 };
        objects.entry((v.netns.clone(), v.key.clone())).or_default()[side].push(v);
    }
    let shown = |v: &Version| json_map(|o| object_fields(&v.object, o));
    let mut differ: Vec<[Vec<&Version>; 2]> = Vec::new();
    for [mut first, mut second] in objects.into_values() {
        first.retain(|x| match second.iter().position(|y| shown(x) == shown(y)) {
            Some(i) => {
                second.remove(i);
                false
            }
            None => true,
        });
        if !first.is_empty() || !second.is_empty() {
            differ.push([first, second]);
        }
    }
    let (left, right) = (format!("{host} at {at}"), format!("{host} at {at2}"));
    let line = |v: &Version, first: bool, only: bool| {
        let at = if first { t1 } else { t2 };
        let mut m = Map::new();
        m.insert("only".into(), only.then(|| rfc3339(at)).into());
        m.insert("host".into(), target.label().into());
        m.insert("at".into(), rfc3339(at).into());
        m.insert("action".into(), if first { "delete" } else { "add" }.into());
        m.insert("netns".into(), v.netns.clone().into());
        m.extend(json_map(|o| object_json(&v.key, &v.object, o)));
        Json::Object(m)
    };
    // In `show`'s order, the first moment's version of an object before
    // the second's.
    let mut sides: Vec<(&Version, bool, bool)> = Vec::new();
    for [first, second] in &differ {
        let only = first.is_empty() || second.is_empty();
        sides.extend(first.iter().map(|v| (*v, true, only)));
        sides.extend(second.iter().map(|v| (*v, false, only)));
    }
    sides.sort_by(|(x, x_first, _), (y, y_first, _)| {
        order::compare(&x.event(), &y.event())
            .then_with(|| y_first.cmp(x_first))
            .then_with(|| (&x.netns, &x.key).cmp(&(&y.netns, &y.key)))
            .then_with(|| x.vid.cmp(&y.vid))
    });
    let lines: Vec<Json> = sides
        .iter()
        .map(|(v, first, only)| line(v, *first, *only))
        .collect();
    let rows = pair_rows(&lines, false, |l| l["action"] == "delete");
    if lines.is_empty() && after == 0 && next_after.is_none() {
        notes.push(format!(
            "no differences: {host} held the same at {at} and at {at2}"
        ));
    }
    body.push_str(&format!(
        "<p class=\"count\" id=\"count\">{} differences on this page</p>",
        rows.len()
    ));
    let header = ["", &esc(&left), &esc(&right)];
    body.push_str(&html::table("diff", &header, &rows));
    let link = |after: Option<i64>| {
        let after = after.map(|a| a.to_string()).unwrap_or_default();
        html::query(&[("host", host), ("at", at), ("at2", at2), ("after", &after)])
    };
    body.push_str("<p class=\"pages\">");
    if after > 0 {
        body.push_str(&format!(
            "<a href=\"/diff{}\">⇤ first page</a> ",
            esc(&link(None))
        ));
    }
    if let Some(next) = next_after {
        body.push_str(&format!(
            "<a rel=\"next\" href=\"/diff{}\">next →</a>",
            esc(&link(Some(next)))
        ));
    }
    body.push_str("</p>");
    Ok(Page {
        active: "diff",
        title: format!("{left} ↔ {right}"),
        notes,
        html: body,
        json: json!({
            "left": left,
            "right": right,
            "next_after": next_after,
            "lines": lines,
        }),
    })
}

/// The table's rows of a diff's `lines`: the first side (the first host,
/// or the earlier moment; `left` tells its lines) on the left, the other's
/// on the right, and what both have differently as a pair, side by side:
/// two hosts' lines of one object (`only` null, `hosts`), or one host's
/// old version deleted and the new one added, matched by what `ip` tells
/// routes apart by (destination, table, metric, TOS).
fn pair_rows(lines: &[Json], hosts: bool, left: impl Fn(&Json) -> bool) -> Vec<Vec<String>> {
    let cell = |l: &Json| format!("<code>{}</code>", esc(&describe(l, &RECORD_FIELDS)));
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = &lines[i];
        let pair = lines.get(i + 1).is_some_and(|n| {
            if hosts {
                l["only"].is_null() && n["only"].is_null()
            } else {
                l["action"] == "delete"
                    && n["action"] == "add"
                    && ["object", "netns", "dst", "table", "metric", "tos", "id"]
                        .iter()
                        .all(|f| l[f] == n[f])
            }
        });
        if pair {
            rows.push(vec!["changed".into(), cell(l), cell(&lines[i + 1])]);
            i += 2;
            continue;
        }
        if left(l) {
            rows.push(vec!["removed".into(), cell(l), String::new()]);
        } else {
            rows.push(vec!["added".into(), String::new(), cell(l)]);
        }
        i += 1;
    }
    rows
}
