//! `query hosts`: what the store holds of each target.

use std::collections::HashMap;

use serde_json::json;

use super::row::Row;
use super::targets::{self, Target};
use super::{Context, Lines};
use crate::printer::{aligned, rfc3339};
use crate::store::schema::{KIND_NEXTHOP, KIND_ROUTE, KIND_RULE};
use crate::store::Value;
use crate::ClientError;

/// Each target's row and what its record holds. Counts are cast to
/// BIGINT: PostgreSQL's COUNT is a bigint already, SQLite's an integer;
/// both read back as 64-bit.
fn sql() -> String {
    format!(
        "SELECT {}, t.last_seen, t.stream_id, t.seq,
            CAST((SELECT COUNT(*) FROM versions v
                  WHERE v.target_id = t.id AND v.valid_until = 9223372036854775807 AND v.kind = ?) AS BIGINT),
            CAST((SELECT COUNT(*) FROM versions v
                  WHERE v.target_id = t.id AND v.valid_until = 9223372036854775807 AND v.kind = ?) AS BIGINT),
            CAST((SELECT COUNT(*) FROM versions v
                  WHERE v.target_id = t.id AND v.valid_until = 9223372036854775807 AND v.kind = ?) AS BIGINT),
            CAST((SELECT COUNT(*) FROM gaps g WHERE g.target_id = t.id) AS BIGINT),
            COALESCE(t.agent_id, '')
        FROM targets t",
        targets::COLUMNS
    )
}

struct Host {
    target: Target,
    last_seen: Option<i64>,
    /// None before the first complete snapshot.
    cursor: Option<(String, i64)>,
    routes: i64,
    nexthops: i64,
    rules: i64,
    gaps: i64,
    /// The collector that follows it (PostgreSQL: the holder of its lock).
    held_by: Option<String>,
    /// Its agent's identity, `AGENT_ID/NETNS` ('' before an agent that
    /// reports one was reached).
    agent_id: String,
    /// Every address its agent was reached at, oldest first.
    addresses: Vec<String>,
}

/// Every address each record's agent was reached at, oldest first, by
/// target id.
async fn addresses(cx: &mut Context<'_>) -> Result<HashMap<i64, Vec<String>>, ClientError> {
    let rows = cx
        .store
        .select(
            "SELECT target_id, address FROM target_addresses
             ORDER BY target_id, COALESCE(first_seen, 0), address",
            &[],
        )
        .await?;
    let mut out: HashMap<i64, Vec<String>> = HashMap::new();
    for r in &rows {
        let r = Row(r);
        out.entry(r.int(0)?).or_default().push(r.text(1)?);
    }
    Ok(out)
}

pub async fn run(cx: &mut Context<'_>) -> Result<(), ClientError> {
    let lines = cx.lines("hosts", true)?;
    let rows = cx
        .store
        .select(
            &sql(),
            &[
                Value::Int(KIND_ROUTE),
                Value::Int(KIND_NEXTHOP),
                Value::Int(KIND_RULE),
            ],
        )
        .await?;
    let mut hosts = rows
        .iter()
        .map(|r| {
            let r = Row(r);
            let stream = r.text(6)?;
            Ok(Host {
                target: Target::read(&r)?,
                last_seen: r.opt_int(5)?,
                cursor: (!stream.is_empty()).then_some((stream, r.int(7)?)),
                routes: r.int(8)?,
                nexthops: r.int(9)?,
                rules: r.int(10)?,
                gaps: r.int(11)?,
                held_by: None,
                agent_id: r.text(12)?,
                addresses: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>, ClientError>>()?;
    let mut noted = addresses(cx).await?;
    for h in &mut hosts {
        h.addresses = noted
            .remove(&h.target.id)
            .unwrap_or_else(|| vec![h.target.name.clone()]);
    }
    // Who follows each target now, where collectors share the store.
    let shared = cx.store.shared();
    if shared {
        let mut holders = cx.store.holders().await?;
        for h in &mut hosts {
            h.held_by = holders.remove(&h.target.name);
        }
    }
    if hosts.is_empty() {
        writeln!(cx.notes, "routewatch: {}", targets::NO_TARGETS)?;
        return Ok(());
    }
    hosts.sort_by(|a, b| targets::by_label(&a.target, &b.target));
    match lines {
        Lines::Json => {
            for h in &hosts {
                let mut line = json!({
                    "host": h.target.label(),
                    "address": h.target.name,
                    "first_seen": h.target.first_seen.map(rfc3339),
                    "last_seen": h.last_seen.map(rfc3339),
                    "stream_id": h.cursor.as_ref().map(|c| &c.0),
                    "seq": h.cursor.as_ref().map(|c| c.1),
                    "routes": h.routes,
                    "nexthops": h.nexthops,
                    "rules": h.rules,
                    "gaps": h.gaps,
                    "agent_id": (!h.agent_id.is_empty()).then_some(&h.agent_id),
                    "addresses": h.addresses,
                });
                if shared {
                    line["held_by"] = h.held_by.clone().into();
                }
                cx.json_line(&line)?;
            }
        }
        Lines::Text => {
            let mut header: Vec<String> = [
                "HOST",
                "ADDRESS",
                "FIRST_SEEN",
                "LAST_SEEN",
                "CURSOR",
                "ROUTES",
                "NEXTHOPS",
                "RULES",
                "GAPS",
            ]
            .map(str::to_owned)
            .into();
            if shared {
                header.push("HELD_BY".into());
            }
            let time = |t: Option<i64>| t.map_or_else(|| "-".to_owned(), rfc3339);
            let rows: Vec<Vec<String>> = hosts
                .iter()
                .map(|h| {
                    let mut row = vec![
                        h.target.label().to_owned(),
                        address_note(h),
                        time(h.target.first_seen),
                        time(h.last_seen),
                        h.cursor
                            .as_ref()
                            .map_or_else(|| "-".to_owned(), |(s, n)| format!("{s}:{n}")),
                        h.routes.to_string(),
                        h.nexthops.to_string(),
                        h.rules.to_string(),
                        h.gaps.to_string(),
                    ];
                    if shared {
                        row.push(h.held_by.clone().unwrap_or_else(|| "-".into()));
                    }
                    row
                })
                .collect();
            cx.out.write_all(aligned(&header, &rows).as_bytes())?;
        }
    }
    Ok(())
}

/// The address a record's agent was last reached at, with the others it
/// was reached at before: `10.0.0.2:50051 (before: 10.0.0.1:50051)`.
fn address_note(h: &Host) -> String {
    let before: Vec<&str> = h
        .addresses
        .iter()
        .map(String::as_str)
        .filter(|a| *a != h.target.name)
        .collect();
    if before.is_empty() {
        h.target.name.clone()
    } else {
        format!("{} (before: {})", h.target.name, before.join(", "))
    }
}
