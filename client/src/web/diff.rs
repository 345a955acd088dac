//! What differs between two moments of a host, or between two hosts at a
//! moment, side by side (`query diff`).

use serde_json::{json, Value as Json};

use super::html::{self, esc};
use super::page::{ask, describe, Page, Params, RECORD_FIELDS};
use crate::query::targets;
use crate::store::Store;
use crate::ClientError;

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
    let mut words = vec!["diff".to_owned(), "--host".into(), host.to_owned()];
    if two_hosts {
        words.extend(["--host".into(), host2.to_owned()]);
        if !at.is_empty() {
            words.extend(["--at".into(), at.to_owned()]);
        }
    } else {
        words.extend([
            "--at".into(),
            if at.is_empty() { "-1h" } else { at }.to_owned(),
        ]);
        words.extend([
            "--at".into(),
            if at2.is_empty() { "now" } else { at2 }.to_owned(),
        ]);
    }
    if host.is_empty() {
        return Ok(Page {
            active: "diff",
            title: "Diff".into(),
            notes: vec!["name a host and two moments, or two hosts and one moment".into()],
            html: body,
            json: json!({ "lines": [] }),
        });
    }
    let (lines, notes) = ask(store, &words, now).await?;
    // The first side is the first host, or the earlier moment: a line
    // that only it has is on the left, only the other's on the right, and
    // what both have differently is a pair, the first side's line first.
    let all = targets::load(store).await?;
    let left_label = targets::find(&all, host)
        .first()
        .map_or(host.to_owned(), |t| t.label().to_owned());
    let left_name = |l: &Json| -> bool {
        if two_hosts {
            l["only"].as_str() == Some(left_label.as_str())
        } else {
            l["action"].as_str() == Some("delete")
        }
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut i = 0;
    let cell = |l: &Json| format!("<code>{}</code>", esc(&describe(l, &RECORD_FIELDS)));
    while i < lines.len() {
        let l = &lines[i];
        let next = lines.get(i + 1);
        // Both sides have it, differently: a pair (the one host's old
        // version deleted and the new one added, matched by what
        // `ip` tells routes apart by: destination, table, metric, TOS).
        let pair = next.is_some_and(|n| {
            (l["only"].is_null() && n["only"].is_null())
                || (!two_hosts
                    && l["action"] == "delete"
                    && n["action"] == "add"
                    && ["object", "netns", "dst", "table", "metric", "tos", "id"]
                        .iter()
                        .all(|f| l[f] == n[f]))
        });
        if pair {
            rows.push(vec!["changed".into(), cell(l), cell(&lines[i + 1])]);
            i += 2;
            continue;
        }
        if left_name(l) {
            rows.push(vec!["removed".into(), cell(l), String::new()]);
        } else {
            rows.push(vec!["added".into(), String::new(), cell(l)]);
        }
        i += 1;
    }
    let (left, right) = if two_hosts {
        (host.to_owned(), host2.to_owned())
    } else {
        (
            format!("{host} at {}", if at.is_empty() { "-1h" } else { at }),
            format!("{host} at {}", if at2.is_empty() { "now" } else { at2 }),
        )
    };
    body.push_str(&format!(
        "<p class=\"count\" id=\"count\">{} differences</p>",
        rows.len()
    ));
    let header = ["", &esc(&left), &esc(&right)];
    body.push_str(&html::table("diff", &header, &rows));
    Ok(Page {
        active: "diff",
        title: format!("{left} ↔ {right}"),
        notes,
        html: body,
        json: json!({ "left": left, "right": right, "lines": lines }),
    })
}
