//! The fleet: every host, its state, what it holds and its gaps;
//! filtered, sorted and paged by the database (`query hosts`' fields): a
//! page reads its own hosts, and what they hold is counted for them
//! alone.

use std::collections::HashMap;

use routewatch_proto::names;
use serde_json::{json, Map, Value as Json};

use super::html::{self, esc};
use super::page::{Page, Params};
use crate::printer::{family_name, rfc3339};
use crate::query::row::Row;
use crate::query::targets::{self, Target};
use crate::store::schema::{KIND_NEXTHOP, KIND_ROUTE, KIND_RULE};
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

/// The columns a page may be sorted by, and the SQL each sorts on (`?`
/// placeholders: [`Filter::state_values`] for the state).
const SORTS: [(&str, &str); 8] = [
    ("host", LABEL),
    ("address", ADDRESS),
    ("state", STATE),
    ("last_seen", "COALESCE(t.last_seen, 0)"),
    (
        "routes",
        "(SELECT COUNT(*) FROM versions v WHERE v.target_id = t.id AND v.valid_until = 9223372036854775807 AND v.kind = 1)",
    ),
    (
        "nexthops",
        "(SELECT COUNT(*) FROM versions v WHERE v.target_id = t.id AND v.valid_until = 9223372036854775807 AND v.kind = 2)",
    ),
    (
        "rules",
        "(SELECT COUNT(*) FROM versions v WHERE v.target_id = t.id AND v.valid_until = 9223372036854775807 AND v.kind = 3)",
    ),
    ("gaps", "(SELECT COUNT(*) FROM gaps g WHERE g.target_id = t.id)"),
];

/// The address a target was last reached at (a record made before the
/// store knew addresses apart from names has its name).
const ADDRESS: &str = "COALESCE(t.address, t.name)";

/// What lines call a target: its host name, or its address.
const LABEL: &str = "CASE WHEN t.host <> '' THEN t.host ELSE COALESCE(t.address, t.name) END";

/// [`state`] in SQL, for the two moments [`Filter::state_values`] binds.
const STATE: &str = "CASE WHEN t.last_seen IS NULL THEN 'waiting' \
     WHEN t.last_seen >= ? THEN 'following' WHEN t.last_seen >= ? THEN 'lagging' \
     ELSE 'unreachable' END";

/// The page's filters, as a condition on `targets t`.
struct Filter {
    sql: String,
    values: Vec<Value>,
}

impl Filter {
    fn new(q: &str, state: &str, now: i64) -> Filter {
        let mut and = vec!["TRUE".to_owned()];
        let mut values = Vec::new();
        if !q.is_empty() {
            let mut pattern = String::from("%");
            for c in q.to_lowercase().chars() {
                if matches!(c, '%' | '_' | '\\') {
                    pattern.push('\\');
                }
                pattern.push(c);
            }
            pattern.push('%');
            and.push(format!(
                "(LOWER({LABEL}) LIKE ? ESCAPE '\\' OR LOWER({ADDRESS}) LIKE ? ESCAPE '\\')"
            ));
            values.extend([Value::Text(pattern.clone()), Value::Text(pattern)]);
        }
        if !state.is_empty() {
            and.push(format!("{STATE} = ?"));
            values.extend(Filter::state_values(now));
            values.push(Value::Text(state.to_owned()));
        }
        Filter {
            sql: and.join(" AND "),
            values,
        }
    }

    /// The values of [`STATE`]'s placeholders.
    fn state_values(now: i64) -> [Value; 2] {
        [
            Value::Int(now - LAGGING_AFTER_S * 1_000_000_000),
            Value::Int(now - UNREACHABLE_AFTER_S * 1_000_000_000),
        ]
    }
}

pub async fn page(store: &mut Store, params: &Params, now: i64) -> Result<Page, ClientError> {
    let wanted_state = match params.get("state") {
        s @ ("following" | "lagging" | "unreachable" | "waiting") => s,
        _ => "",
    };
    let (sort, order_by) = SORTS
        .iter()
        .find(|(name, _)| *name == params.get("sort"))
        .copied()
        .unwrap_or(SORTS[0]);
    let desc = params.get("desc") == "1";
    let filter = Filter::new(params.get("q"), wanted_state, now);
    let rows = store
        .select(
            &format!(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM targets t WHERE {}",
                filter.sql
            ),
            &filter.values,
        )
        .await?;
    let total = rows
        .first()
        .map(|r| Row(r).int(0))
        .transpose()?
        .unwrap_or(0);
    let offset = params.number("offset", 0).clamp(0, total.max(0));
    let mut values = filter.values.clone();
    if sort == "state" {
        values.extend(Filter::state_values(now));
    }
    values.extend([Value::Int(PER_PAGE), Value::Int(offset)]);
    let direction = if desc { "DESC" } else { "ASC" };
    let rows = store
        .select(
            &format!(
                "SELECT {}, t.last_seen, t.stream_id, t.seq FROM targets t WHERE {}
                 ORDER BY {order_by} {direction}, {LABEL} {direction}, {ADDRESS} {direction}
                 LIMIT ? OFFSET ?",
                targets::COLUMNS,
                filter.sql
            ),
            &values,
        )
        .await?;
    let mut shown = Vec::with_capacity(rows.len());
    let mut page_targets = Vec::with_capacity(rows.len());
    for r in &rows {
        let r = Row(r);
        let target = Target::read(&r)?;
        let last_seen = r.opt_int(5)?;
        let stream = r.text(6)?;
        let cursor = (!stream.is_empty()).then_some((stream, r.int(7)?));
        shown.push(json!({
            "host": target.label(),
            "address": target.name,
            "first_seen": target.first_seen.map(rfc3339),
            "last_seen": last_seen.map(rfc3339),
            "stream_id": cursor.as_ref().map(|c| &c.0),
            "seq": cursor.as_ref().map(|c| c.1),
            "state": state(last_seen, now),
        }));
        page_targets.push(target);
    }
    counts(store, &page_targets, &mut shown).await?;
    let mut notes = Vec::new();
    if total == 0 && params.get("q").is_empty() && wanted_state.is_empty() {
        notes.push(targets::NO_TARGETS.to_owned());
    }

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

/// Adds to each host of one page what it holds now (`routes`,
/// `nexthops`, `rules`, and `routes_by_table`: {"inet main": 4, ...}), its
/// gaps and, where collectors share the store, which one follows it.
async fn counts(store: &mut Store, page: &[Target], hosts: &mut [Json]) -> Result<(), ClientError> {
    if page.is_empty() {
        return Ok(());
    }
    let refs: Vec<&Target> = page.iter().collect();
    let (list, ids) = targets::ids(&refs);
    let rows = store
        .select(
            &format!(
                "SELECT v.target_id, v.kind, v.family, v.table_id, CAST(COUNT(*) AS BIGINT)
                 FROM versions v WHERE v.target_id IN ({list}) AND v.valid_until = 9223372036854775807
                 GROUP BY v.target_id, v.kind, v.family, v.table_id"
            ),
            &ids,
        )
        .await?;
    #[derive(Default)]
    struct Held {
        kinds: [i64; 3],
        by_table: Map<String, Json>,
    }
    let mut held: HashMap<i64, Held> = HashMap::new();
    for r in &rows {
        let r = Row(r);
        let h = held.entry(r.int(0)?).or_default();
        let (kind, n) = (r.int(1)?, r.int(4)?);
        if let Some(k) = [KIND_ROUTE, KIND_NEXTHOP, KIND_RULE]
            .iter()
            .position(|x| *x == kind)
        {
            h.kinds[k] += n;
        }
        if kind == KIND_ROUTE {
            let table = r.opt_int(3)?.unwrap_or(0) as u32;
            let key = format!(
                "{} {}",
                family_name(r.int(2)? as i32),
                names::name(names::TABLES, table)
            );
            h.by_table.insert(key, n.into());
        }
    }
    let rows = store
        .select(
            &format!(
                "SELECT g.target_id, CAST(COUNT(*) AS BIGINT) FROM gaps g
                 WHERE g.target_id IN ({list}) GROUP BY g.target_id"
            ),
            &ids,
        )
        .await?;
    let mut gaps: HashMap<i64, i64> = HashMap::new();
    for r in &rows {
        let r = Row(r);
        gaps.insert(r.int(0)?, r.int(1)?);
    }
    let mut holders = if store.shared() {
        Some(store.holders().await?)
    } else {
        None
    };
    for (t, h) in page.iter().zip(hosts.iter_mut()) {
        let Held { kinds, by_table } = held.remove(&t.id).unwrap_or_default();
        h["routes"] = kinds[0].into();
        h["nexthops"] = kinds[1].into();
        h["rules"] = kinds[2].into();
        h["routes_by_table"] = Json::Object(by_table);
        h["gaps"] = gaps.get(&t.id).copied().unwrap_or(0).into();
        if let Some(holders) = &mut holders {
            h["held_by"] = holders.remove(&t.name).into();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreUrl;

    /// A SQLite store of `n` targets: host-000 .. host-N, the even ones
    /// heard from just now, the odd ones never.
    async fn fleet(n: i64, now: i64) -> (Store, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!(
            "routewatch-web-fleet-{}-{n}.db",
            std::process::id()
        ));
        let mut store = Store::open(&StoreUrl::Sqlite(path.clone())).await.unwrap();
        for i in 0..n {
            let seen = if i % 2 == 0 {
                Value::Int(now)
            } else {
                Value::Null
            };
            store
                .select(
                    "INSERT INTO targets (name, host, last_seen) VALUES (?, ?, ?)",
                    &[
                        Value::Text(format!("10.0.{}.{}:50051", i / 250, i % 250)),
                        Value::Text(format!("host-{i:03}")),
                        seen,
                    ],
                )
                .await
                .unwrap();
        }
        (store, path)
    }

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn hosts(page: &Page) -> Vec<String> {
        page.json["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["host"].as_str().unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn web_fleet_is_filtered_sorted_and_paged_by_the_database() {
        let now = 1_800_000_000 * 1_000_000_000;
        let (mut store, path) = fleet(250, now).await;
        let first = page(&mut store, &params(&[]), now).await.unwrap();
        assert_eq!(first.json["total"], 250);
        assert_eq!(hosts(&first).len(), 100);
        assert_eq!(hosts(&first)[0], "host-000");
        assert!(first
            .html
            .contains("rel=\"next\" href=\"/fleet?sort=host&amp;offset=100\""));
        let last = page(&mut store, &params(&[("offset", "200")]), now)
            .await
            .unwrap();
        assert_eq!(hosts(&last).len(), 50, "the last page holds the rest");
        assert_eq!(hosts(&last)[49], "host-249");
        assert!(!last.html.contains("rel=\"next\""));
        let desc = page(&mut store, &params(&[("sort", "host"), ("desc", "1")]), now)
            .await
            .unwrap();
        assert_eq!(hosts(&desc)[0], "host-249");
        // Filters: by name or address (% and _ are letters), by state.
        let q = page(&mut store, &params(&[("q", "HOST-01")]), now)
            .await
            .unwrap();
        assert_eq!(q.json["total"], 10, "host-010 .. host-019");
        let q = page(&mut store, &params(&[("q", "10.0.0.12:")]), now)
            .await
            .unwrap();
        assert_eq!(hosts(&q), ["host-012"], "by address");
        let q = page(&mut store, &params(&[("q", "host_0")]), now)
            .await
            .unwrap();
        assert_eq!(q.json["total"], 0, "_ is no wildcard");
        let waiting = page(
            &mut store,
            &params(&[("state", "waiting"), ("sort", "state")]),
            now,
        )
        .await
        .unwrap();
        assert_eq!(waiting.json["total"], 125);
        assert!(waiting.json["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["state"] == "waiting"));
        let by_state = page(
            &mut store,
            &params(&[("sort", "state"), ("desc", "1")]),
            now,
        )
        .await
        .unwrap();
        assert_eq!(by_state.json["hosts"][0]["state"], "waiting");
        drop(store);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

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
