//! A prefix across the fleet: every version of the routes at or inside
//! it, on every host, as a timeline and a table (`query history`).

use std::collections::BTreeMap;

use serde_json::{json, Value as Json};

use super::html::{self, esc};
use super::page::{ask, describe, flags, Page, Params, RECORD_FIELDS};
use crate::store::Store;
use crate::ClientError;

/// Lines of the history on one page.
const PER_PAGE: usize = 500;

pub async fn page(store: &mut Store, params: &Params, now: i64) -> Result<Page, ClientError> {
    let prefix = params.get("prefix");
    let mut body = String::from("<form method=\"get\" class=\"filters\">");
    body.push_str(&html::input(
        "prefix",
        "Prefix",
        prefix,
        "10.0.0.0/8, 2001:db8::/32, default",
    ));
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
            notes: vec!["name a prefix: every route at or inside it, on every host, with every version it had".into()],
            html: body,
            json: json!({ "lines": [] }),
        });
    }
    let mut words = vec!["history".to_owned(), prefix.to_owned()];
    words.extend(flags(params, &["host", "since", "until"]));
    let (lines, notes) = ask(store, &words, now).await?;
    let total = lines.len();
    let offset = (params.number("offset", 0).max(0) as usize).min(total);
    let shown: Vec<Json> = lines.into_iter().skip(offset).take(PER_PAGE).collect();

    body.push_str(&timeline(&shown, now));
    body.push_str(&format!(
        "<p class=\"count\" id=\"count\">{total} versions and gaps; {} to {} shown</p>",
        (offset + 1).min(total),
        offset + shown.len()
    ));
    let rows: Vec<Vec<String>> = shown
        .iter()
        .map(|l| {
            if let Some(g) = l.get("gap") {
                return vec![
                    esc(g["from_time"].as_str().unwrap_or("unknown")),
                    esc(g["to_time"].as_str().unwrap_or("")),
                    esc(g["host"].as_str().unwrap_or("")),
                    "<span class=\"gaps\">gap</span>".into(),
                    esc(&describe(g, &["host", "from_time", "to_time"])),
                ];
            }
            vec![
                esc(l["valid_from"].as_str().unwrap_or("")),
                esc(l["valid_to"].as_str().unwrap_or("current")),
                esc(l["host"].as_str().unwrap_or("")),
                format!(
                    "{}/{}",
                    esc(l["opened_by"].as_str().unwrap_or("")),
                    esc(l["closed_by"].as_str().unwrap_or("-"))
                ),
                format!("<code>{}</code>", esc(&describe(l, &RECORD_FIELDS))),
            ]
        })
        .collect();
    body.push_str(&html::table(
        "history",
        &["From", "Until", "Host", "By", "Route"],
        &rows,
    ));
    let link = |offset: usize| {
        let o = offset.to_string();
        html::query(&[
            ("prefix", prefix),
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
            esc(&link(offset.saturating_sub(PER_PAGE)))
        ));
    }
    if offset + PER_PAGE < total {
        body.push_str(&format!(
            "<a rel=\"next\" href=\"/prefix{}\">next →</a>",
            esc(&link(offset + PER_PAGE))
        ));
    }
    body.push_str("</p>");
    Ok(Page {
        active: "prefix",
        title: format!("{prefix} across the fleet"),
        notes,
        html: body,
        json: json!({ "prefix": prefix, "total": total, "offset": offset, "lines": shown }),
    })
}

/// A bar of the timeline: from, to, and whether it is a gap.
type Bar = (i64, i64, bool);

/// One bar per version, one row per host and destination, from the first
/// version shown to now (an SVG drawn on the server).
fn timeline(lines: &[Json], now: i64) -> String {
    let time = |t: &Json| {
        t.as_str()
            .and_then(|s| crate::when::parse_time(s, now).ok())
    };
    let mut rows: BTreeMap<(String, String), Vec<Bar>> = BTreeMap::new();
    let mut start = now;
    for l in lines {
        if let Some(g) = l.get("gap") {
            let to = time(&g["to_time"]).unwrap_or(now);
            let from = time(&g["from_time"]).unwrap_or(to);
            start = start.min(from);
            let host = g["host"].as_str().unwrap_or("").to_owned();
            rows.entry((host, "gap".into()))
                .or_default()
                .push((from, to, true));
            continue;
        }
        let Some(from) = time(&l["valid_from"]) else {
            continue;
        };
        let to = time(&l["valid_to"]).unwrap_or(now);
        start = start.min(from);
        let key = (
            l["host"].as_str().unwrap_or("").to_owned(),
            l["dst"].as_str().unwrap_or("").to_owned(),
        );
        rows.entry(key).or_default().push((from, to, false));
    }
    if rows.is_empty() {
        return String::new();
    }
    let (width, label, row_h) = (900.0, 260.0, 18.0);
    let span = (now - start).max(1) as f64;
    let x = |t: i64| label + (t - start) as f64 / span * (width - label);
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
