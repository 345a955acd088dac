//! The fleet: every host, its state, what it holds and its gaps;
//! filtered, sorted and paged on the server (`query hosts`).

use std::collections::HashMap;

use routewatch_proto::names;
use serde_json::{json, Map, Value as Json};

use super::html::{self, esc};
use super::page::{ask, Page, Params};
use crate::printer::family_name;
use crate::query::row::Row;
use crate::query::targets::{self, Target};
use crate::store::schema::KIND_ROUTE;
use crate::store::{Store, Value};
use crate::ClientError;

/// Hosts on one page.
const PER_PAGE: i64 = 100;

/// Seconds without news after which a host counts as lagging (a healthy
/// host is seen at least every 30 s: heartbeats), and as unreachable.
const LAGGING_AFTER_S: i64 = 90;
const UNREACHABLE_AFTER_S: i64 = 600;

/// How a host is followed, from when the collector last heard of it.
fn state(last_seen_unix_nano: Option<i64>, now: i64) -> &'static str {
    match last_seen_unix_nano {
        None => "waiting",
        Some(t) if now - t <= LAGGING_AFTER_S * 1_000_000_000 => "following",
        Some(t) if now - t <= UNREACHABLE_AFTER_S * 1_000_000_000 => "lagging",
        Some(_) => "unreachable",
    }
}

pub async fn page(store: &mut Store, params: &Params, now: i64) -> Result<Page, ClientError> {
    let (hosts, notes) = ask(store, &["hosts".to_owned()], now).await?;
    let q = params.get("q").to_lowercase();
    let wanted_state = params.get("state");
    let mut rows: Vec<Json> = hosts
        .into_iter()
        .map(|mut h| {
            let last = h["last_seen"]
                .as_str()
                .and_then(|t| crate::when::parse_time(t, now).ok());
            h["state"] = state(last, now).into();
            h
        })
        .filter(|h| {
            let text = |k: &str| h[k].as_str().unwrap_or("").to_lowercase();
            (q.is_empty() || text("host").contains(&q) || text("address").contains(&q))
                && (wanted_state.is_empty() || h["state"] == wanted_state)
        })
        .collect();
    let sort = match params.get("sort") {
        s @ ("routes" | "nexthops" | "rules" | "gaps" | "last_seen" | "state" | "address") => s,
        _ => "host",
    };
    let desc = params.get("desc") == "1";
    rows.sort_by(|a, b| {
        let o = match (&a[sort], &b[sort]) {
            (Json::Number(x), Json::Number(y)) => x.as_i64().cmp(&y.as_i64()),
            (x, y) => x.as_str().unwrap_or("").cmp(y.as_str().unwrap_or("")),
        };
        let o = o.then_with(|| a["host"].as_str().cmp(&b["host"].as_str()));
        if desc {
            o.reverse()
        } else {
            o
        }
    });
    let total = rows.len() as i64;
    let offset = params.number("offset", 0).clamp(0, total.max(0));
    let mut shown: Vec<Json> = rows
        .into_iter()
        .skip(offset as usize)
        .take(PER_PAGE as usize)
        .collect();
    by_table(store, &mut shown).await?;

    let mut body = String::from("<form method=\"get\" class=\"filters\">");
    body.push_str(&html::input(
        "q",
        "Host",
        params.get("q"),
        "name or address",
    ));
    body.push_str("<label>State <select name=\"state\">");
    for s in ["", "following", "lagging", "unreachable", "waiting"] {
        let selected = if s == wanted_state { " selected" } else { "" };
        let name = if s.is_empty() { "any" } else { s };
        body.push_str(&format!("<option value=\"{s}\"{selected}>{name}</option>"));
    }
    body.push_str("</select></label>");
    body.push_str(&format!(
        "<input type=\"hidden\" name=\"sort\" value=\"{sort}\"><input type=\"hidden\" name=\"desc\" value=\"{}\">\
         <button type=\"submit\">Filter</button></form>",
        if desc { "1" } else { "" }
    ));
    body.push_str(&format!(
        "<p class=\"count\" id=\"count\">{total} hosts; {} to {} shown</p>",
        (offset + 1).min(total),
        offset + shown.len() as i64
    ));
    let columns = [
        ("host", "Host"),
        ("address", "Address"),
        ("state", "State"),
        ("held_by", "Collected by"),
        ("routes", "Routes"),
        ("routes_by_table", "By family and table"),
        ("nexthops", "Nexthops"),
        ("rules", "Rules"),
        ("last_seen", "Last seen"),
        ("gaps", "Gaps"),
    ];
    let link = |key: &str, desc: bool, offset: i64| {
        html::query(&[
            ("q", params.get("q")),
            ("state", wanted_state),
            ("sort", key),
            ("desc", if desc { "1" } else { "" }),
            (
                "offset",
                &if offset > 0 {
                    offset.to_string()
                } else {
                    String::new()
                },
            ),
        ])
    };
    let header: Vec<String> = columns
        .iter()
        .map(|(key, name)| {
            let flip = *key == sort && !desc;
            let mark = if *key == sort {
                if desc {
                    " ▼"
                } else {
                    " ▲"
                }
            } else {
                ""
            };
            format!(
                "<a href=\"/fleet{}\">{name}{mark}</a>",
                esc(&link(key, flip, 0))
            )
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let cells: Vec<Vec<String>> = shown
        .iter()
        .map(|h| {
            let text = |k: &str| match &h[k] {
                Json::Null => "-".to_owned(),
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            let host = text("host");
            vec![
                format!(
                    "<a href=\"/host{}\">{}</a>",
                    esc(&html::query(&[("host", &text("address"))])),
                    esc(&host)
                ),
                esc(&text("address")),
                format!("<span class=\"state {0}\">{0}</span>", text("state")),
                esc(&text("held_by")),
                text("routes"),
                esc(&h["routes_by_table"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k} {v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default()),
                text("nexthops"),
                text("rules"),
                esc(&text("last_seen")),
                if h["gaps"].as_i64().unwrap_or(0) > 0 {
                    format!("<span class=\"gaps\">{}</span>", text("gaps"))
                } else {
                    "0".into()
                },
            ]
        })
        .collect();
    body.push_str(&html::table("hosts", &header, &cells));
    body.push_str("<p class=\"pages\">");
    if offset > 0 {
        body.push_str(&format!(
            "<a rel=\"prev\" href=\"/fleet{}\">← previous</a> ",
            esc(&link(sort, desc, (offset - PER_PAGE).max(0)))
        ));
    }
    if offset + PER_PAGE < total {
        body.push_str(&format!(
            "<a rel=\"next\" href=\"/fleet{}\">next →</a>",
            esc(&link(sort, desc, offset + PER_PAGE))
        ));
    }
    body.push_str("</p>");
    Ok(Page {
        active: "fleet",
        title: "Fleet".into(),
        notes,
        html: body,
        json: json!({ "total": total, "offset": offset, "hosts": shown }),
    })
}

/// Adds each host's current routes by family and table
/// (`routes_by_table`: {"inet main": 4, ...}), for the hosts of one page.
async fn by_table(store: &mut Store, hosts: &mut [Json]) -> Result<(), ClientError> {
    let all = targets::load(store).await?;
    let ids: HashMap<&str, i64> = all.iter().map(|t| (t.name.as_str(), t.id)).collect();
    let shown: Vec<&Target> = hosts
        .iter()
        .filter_map(|h| ids.get(h["address"].as_str()?))
        .filter_map(|id| all.iter().find(|t| t.id == *id))
        .collect();
    if shown.is_empty() {
        return Ok(());
    }
    let (list, mut params) = targets::ids(&shown);
    params.push(Value::Int(KIND_ROUTE));
    let rows = store
        .select(
            &format!(
                "SELECT v.target_id, v.family, v.table_id, CAST(COUNT(*) AS BIGINT) FROM versions v
                 WHERE v.target_id IN ({list}) AND v.valid_to IS NULL AND v.kind = ?
                 GROUP BY v.target_id, v.family, v.table_id"
            ),
            &params,
        )
        .await?;
    let mut counts: HashMap<i64, Map<String, Json>> = HashMap::new();
    for r in &rows {
        let r = Row(r);
        let table = r.opt_int(2)?.unwrap_or(0) as u32;
        let key = format!(
            "{} {}",
            family_name(r.int(1)? as i32),
            names::name(names::TABLES, table)
        );
        counts
            .entry(r.int(0)?)
            .or_default()
            .insert(key, r.int(3)?.into());
    }
    for h in hosts.iter_mut() {
        let id = h["address"].as_str().and_then(|a| ids.get(a)).copied();
        h["routes_by_table"] =
            Json::Object(id.and_then(|id| counts.remove(&id)).unwrap_or_default());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_fleet_state_follows_the_last_news() {
        let s = 1_000_000_000;
        let now = 10_000 * s;
        assert_eq!(state(None, now), "waiting");
        assert_eq!(state(Some(now - 30 * s), now), "following");
        assert_eq!(state(Some(now - 300 * s), now), "lagging");
        assert_eq!(state(Some(now - 3600 * s), now), "unreachable");
    }
}
