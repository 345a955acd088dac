//! A host at a moment: its routes, rules and nexthop objects, grouped by
//! table, with `show`'s filters, a page at a time (`query routes`' code,
//! read along the version order so that a table of a million routes costs
//! one page).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value as Json};

use super::html::{self, esc};
use super::page::{flags, question, Page, Params};
use crate::order;
use crate::printer::{json_map, object_json, object_line, rfc3339};
use crate::query::narrow::Narrowed;
use crate::query::targets::{self, Target};
use crate::query::{gaps, version, Question};
use crate::store::Store;
use crate::ClientError;

/// Objects on a page unless `limit` says otherwise, and the most a page
/// may hold.
const PER_PAGE: i64 = 200;
const MAX_PER_PAGE: i64 = 5000;
/// Pages of versions read at most for one page of the answer (filters
/// that keep little read on from where this stops, through "next").
const MAX_READS: usize = 20;

/// The filters of `show` a host page takes.
pub const FILTERS: [&str; 6] = ["family", "table", "proto", "within", "contains", "dev"];

pub async fn page(store: &mut Store, params: &Params, now: i64) -> Result<Page, ClientError> {
    let all = targets::load(store).await?;
    let wanted = params.get("host");
    if wanted.is_empty() {
        return Ok(pick(&all));
    }
    let at = match params.get("at") {
        "" => "now",
        at => at,
    };
    let mut words = vec![
        "routes".to_owned(),
        "--host".into(),
        wanted.into(),
        "--at".into(),
        at.into(),
    ];
    words.extend(flags(params, &FILTERS));
    let Question::Routes(args) = question(&words)?.command else {
        unreachable!("the words ask `routes`")
    };
    let t = crate::when::parse_time(&args.at, now)
        .map_err(|e| ClientError::Usage(format!("at: {e}")))?;
    let narrowed = Narrowed::new(&args.filter)?;
    let mut notes_bytes = Vec::new();
    let Some(target) = targets::one(&all, wanted, &mut notes_bytes)? else {
        let mut page = pick(&all);
        page.notes = super::page::note_lines(&notes_bytes);
        return Ok(page);
    };
    let limit = params.number("limit", PER_PAGE).clamp(1, MAX_PER_PAGE);
    let first_after = params.number("after", 0);
    let mut after = first_after;
    let mut kept = Vec::new();
    let mut more = false;
    for _ in 0..MAX_READS {
        let read = version::page_where(
            store,
            target,
            t,
            &narrowed.sql,
            narrowed.params.clone(),
            after,
            limit,
        )
        .await?;
        let full = read.len() as i64 == limit;
        for v in read {
            after = v.vid;
            if narrowed.keeps(&v) {
                kept.push(v);
                if kept.len() as i64 == limit {
                    break;
                }
            }
        }
        more = full;
        if !full || kept.len() as i64 == limit {
            break;
        }
    }
    let gaps = gaps::load(store, Some(&[target]), i64::MIN, i64::MAX).await?;
    let mut notes = Vec::new();
    for g in gaps.iter().filter(|g| g.covers(t)) {
        notes.push(format!(
            "{} lies inside a gap of the record ({}): what the host held then is not known exactly",
            rfc3339(t),
            g.summary()
        ));
    }
    if target.begins.is_none_or(|b| b > t) {
        notes.push(format!(
            "the record of {} begins after {}",
            target.label(),
            rfc3339(t)
        ));
    }
    kept.sort_by(|a, b| order::compare(&a.event(), &b.event()).then_with(|| a.vid.cmp(&b.vid)));

    let objects: Vec<Json> = kept
        .iter()
        .map(|v| {
            let mut m = Map::new();
            m.insert("valid_from".into(), rfc3339(v.opened.time).into());
            m.insert("opened_by".into(), v.opened.how().into());
            m.insert("netns".into(), v.netns.clone().into());
            m.extend(json_map(|o| object_json(&v.key, &v.object, o)));
            Json::Object(m)
        })
        .collect();
    // Grouped as `ip` lists them: nexthop objects, then each table's
    // routes, then the rules; the order within each is `show`'s.
    let mut groups: BTreeMap<(u8, String), Vec<Vec<String>>> = BTreeMap::new();
    for (v, o) in kept.iter().zip(&objects) {
        let group = match o["object"].as_str() {
            Some("nexthop") => (0, "nexthop objects".to_owned()),
            Some("rule") => (2, "rules".to_owned()),
            _ => (
                1,
                format!("table {}", o["table"].as_str().unwrap_or("main")),
            ),
        };
        let mut line = String::new();
        object_line(&v.object, &mut line);
        let ns = if v.netns.is_empty() {
            String::new()
        } else {
            format!("{} ", esc(&v.netns))
        };
        groups.entry(group).or_default().push(vec![
            format!("{ns}<code>{}</code>", esc(&line)),
            esc(&rfc3339(v.opened.time)),
            v.opened.how().to_owned(),
        ]);
    }

    let begins = target.begins.unwrap_or(t).min(t);
    let mut body = String::from("<form method=\"get\" class=\"filters\" id=\"filters\">");
    body.push_str(&format!(
        "<input type=\"hidden\" name=\"host\" value=\"{}\">",
        esc(wanted)
    ));
    body.push_str(&html::input(
        "at",
        "At",
        params.get("at"),
        "now, -1h, 2026-12-05T14:05:00Z",
    ));
    body.push_str(&format!(
        "<input type=\"range\" id=\"time-slider\" min=\"{}\" max=\"{}\" value=\"{}\" step=\"1\" title=\"the host's record\">",
        begins / 1_000_000_000,
        now / 1_000_000_000,
        t / 1_000_000_000
    ));
    for (name, label, hint) in [
        ("family", "Family", "inet, inet6"),
        ("table", "Table", "main, local, 100"),
        ("proto", "Protocol", "kernel, static, bgp"),
        ("within", "Within", "10.0.0.0/8"),
        ("contains", "Contains", "10.1.2.3"),
        ("dev", "Device", "eth0"),
    ] {
        body.push_str(&html::input(name, label, params.get(name), hint));
    }
    body.push_str("<button type=\"submit\">Show</button></form>");
    body.push_str(&format!(
        "<p class=\"count\" id=\"count\">{} at <time id=\"at\">{}</time>: {} objects on this page</p>",
        esc(target.label()),
        rfc3339(t),
        kept.len()
    ));
    if !gaps.is_empty() {
        body.push_str(
            "<details class=\"gaps\" open><summary>Gaps in the record</summary><ul id=\"gaps\">",
        );
        for g in &gaps {
            let class = if g.covers(t) { " class=\"here\"" } else { "" };
            body.push_str(&format!("<li{class}>{}</li>", esc(&g.line(target.label()))));
        }
        body.push_str("</ul></details>");
    }
    for ((_, name), rows) in &groups {
        body.push_str(&format!("<h2>{}</h2>", esc(name)));
        // `table-main`, `table-100`, `rules`, `nexthop-objects`.
        let id: String = name
            .replace("table ", "table-")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        body.push_str(&html::table(&id, &["Object", "Since", "By"], rows));
    }
    let mut pairs: Vec<(&str, String)> = vec![("host", wanted.to_owned()), ("at", rfc3339(t))];
    for f in FILTERS {
        pairs.push((f, params.get(f).to_owned()));
    }
    if !params.get("limit").is_empty() {
        pairs.push(("limit", limit.to_string()));
    }
    let link = |after: Option<i64>| {
        let mut p = pairs.clone();
        if let Some(a) = after {
            p.push(("after", a.to_string()));
        }
        let refs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
        html::query(&refs)
    };
    body.push_str("<p class=\"pages\">");
    if first_after > 0 {
        body.push_str(&format!(
            "<a href=\"/host{}\">⇤ first page</a> ",
            esc(&link(None))
        ));
    }
    if more {
        body.push_str(&format!(
            "<a rel=\"next\" href=\"/host{}\">next →</a>",
            esc(&link(Some(after)))
        ));
    }
    body.push_str("</p>");
    Ok(Page {
        active: "host",
        title: format!("{} at {}", target.label(), rfc3339(t)),
        notes,
        html: body,
        json: json!({
            "host": target.label(),
            "address": target.name,
            "at": rfc3339(t),
            "objects": objects,
            "next_after": more.then_some(after),
            "gaps": gaps.iter().map(|g| g.json(target.label())).collect::<Vec<_>>(),
        }),
    })
}

/// The host picker, when no host (or an unknown one) is named.
fn pick(all: &[Target]) -> Page {
    let mut body =
        String::from("<form method=\"get\" class=\"filters\"><label>Host <select name=\"host\">");
    for t in all {
        body.push_str(&format!(
            "<option value=\"{}\">{}</option>",
            esc(&t.name),
            esc(t.label())
        ));
    }
    body.push_str("</select></label>");
    body.push_str(&html::input(
        "at",
        "At",
        "",
        "now, -1h, 2026-12-05T14:05:00Z",
    ));
    body.push_str("<button type=\"submit\">Show</button></form>");
    Page {
        active: "host",
        title: "Host".into(),
        notes: Vec::new(),
        html: body,
        json: json!({ "hosts": all.iter().map(|t| json!({"host": t.label(), "address": t.name})).collect::<Vec<_>>() }),
    }
}
