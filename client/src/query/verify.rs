//! `query verify`: the store's record of a host against its agent's digest.
//!
//! The record's current versions are counted into digests (see
//! [`routewatch_proto::digest`]) at the stored cursor. The agent is asked
//! to resume from that cursor and send a digest once caught up; the
//! changes it replays first (a running collector is usually a little
//! behind) are applied to the counts, so both sides are compared at the
//! same stream position.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use routewatch_proto::digest::{self, Digests, Kind, Mismatch, Slot};
use routewatch_proto::v1::{event, Action, Cursor, Digest, SubscribeRequest};
use serde_json::json;

use super::args::Verify;
use super::row::Row;
use super::targets::{self, Target};
use super::{Context, Lines};
use crate::response_codec::response_events;
use crate::store::schema::{KIND_NEXTHOP, KIND_RULE};
use crate::store::Value;
use crate::tls::Security;
use crate::ClientError;

/// What the store holds of the target, at its cursor.
struct Record {
    cursor: Cursor,
    digests: Digests,
    /// `(netns, key)` → the object's part and hash.
    objects: HashMap<(String, String), (Slot, u128)>,
}

pub async fn run(cx: &mut Context<'_>, args: &Verify) -> Result<(), ClientError> {
    let lines = cx.lines("verify", false)?;
    let all = targets::load(cx.store).await?;
    let target = match targets::find(&all, &args.host).as_slice() {
        [one] => (*one).clone(),
        [] => return Err(ClientError::Usage(targets::no_match(&all, &args.host))),
        many => {
            let names: Vec<&str> = many.iter().map(|t| t.name.as_str()).collect();
            return Err(ClientError::Usage(format!(
                "--host {} names several targets ({}): give the address",
                args.host,
                names.join(", ")
            )));
        }
    };
    let mut record = load(cx, &target).await?;
    let security = Security::from_args(args.reach.insecure, &args.reach.tls)?;
    let request = SubscribeRequest {
        resume_from: Some(record.cursor.clone()),
        follow: true,
        digest: true,
        ..Default::default()
    };
    let wait = Duration::from_secs_f64(args.timeout.max(0.1));
    let digest = tokio::time::timeout(
        wait,
        agent_digest(&target, request, &security, args, &mut record),
    )
    .await
    .map_err(|_| {
        ClientError::Usage(format!(
            "{}: no digest within --timeout {}s (an agent older than digests sends none)",
            target.name, args.timeout
        ))
    })??;
    let mismatches = record.digests.compare(&digest);
    report(cx, lines, &target, &record.digests, &digest, &mismatches)?;
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(ClientError::Mismatch(format!(
            "{}: the store's record differs from the agent's in {} part(s) at {}:{}; collect repairs it (a fresh snapshot, and a gap with reason \"digest mismatch\") at the agent's next digest while it follows the host",
            target.label(),
            mismatches.len(),
            record.cursor.stream_id,
            record.cursor.seq
        )))
    }
}

/// The target's cursor and current versions, read so that they agree
/// (a collector may be writing: read again until the cursor held still).
async fn load(cx: &mut Context<'_>, target: &Target) -> Result<Record, ClientError> {
    for _ in 0..10 {
        let before = cursor(cx, target).await?;
        let rows = cx
            .store
            .select(
                "SELECT netns, key, kind, object FROM versions WHERE target_id = ? AND valid_until = 9223372036854775807",
                &[Value::Int(target.id)],
            )
            .await?;
        if cursor(cx, target).await? != before {
            continue;
        }
        let Some(cursor) = before else {
            return Err(ClientError::Usage(format!(
                "{}: the store holds no complete snapshot of it yet: nothing to verify",
                target.label()
            )));
        };
        let mut digests = Digests::default();
        let mut objects = HashMap::with_capacity(rows.len());
        let mut buf = Vec::new();
        for row in &rows {
            let r = Row(row);
            let (netns, key, kind, object) = (r.text(0)?, r.text(1)?, r.int(2)?, r.bytes(3)?);
            let kind = match kind {
                KIND_NEXTHOP => Kind::Nexthop,
                KIND_RULE => Kind::Rule,
                _ => Kind::Route,
            };
            // A row that no longer decodes counts as its bytes: it differs.
            let (slot, hash) = digest::stored_hash(kind, object, &mut buf)
                .unwrap_or_else(|_| ((kind, 0), digest::hash_bytes(kind, object)));
            digests.add(&netns, slot, hash);
            objects.insert((netns, key), (slot, hash));
        }
        return Ok(Record {
            cursor,
            digests,
            objects,
        });
    }
    Err(ClientError::Usage(format!(
        "{}: its record kept moving while being read; try again",
        target.label()
    )))
}

async fn cursor(cx: &mut Context<'_>, target: &Target) -> Result<Option<Cursor>, ClientError> {
    let rows = cx
        .store
        .select(
            "SELECT stream_id, seq FROM targets WHERE id = ?",
            &[Value::Int(target.id)],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let r = Row(row);
    let (stream_id, seq) = (r.text(0)?, r.int(1)?);
    Ok((!stream_id.is_empty()).then_some(Cursor {
        stream_id,
        seq: seq as u64,
    }))
}

/// Follows the agent from the stored cursor, applying what it replays to
/// `record`, until its digest.
async fn agent_digest(
    target: &Target,
    request: SubscribeRequest,
    security: &Security,
    args: &Verify,
    record: &mut Record,
) -> Result<Digest, ClientError> {
    let subscribed = crate::remote::subscribe(
        &target.name,
        request,
        args.reach.compression,
        security,
        args.reach.connect_timeout(),
    )
    .await?;
    let mut responses = subscribed.responses;
    let mut buf = Vec::new();
    while let Some(response) = responses.next().await {
        let events = response_events(response?).map_err(|e| ClientError::Decode(e.to_string()))?;
        for event in events {
            match event.kind {
                Some(event::Kind::Change(change)) => {
                    let id = (event.netns.clone(), change.key.clone());
                    if let Some((slot, hash)) = record.objects.remove(&id) {
                        record.digests.remove(&event.netns, slot, hash);
                    }
                    if change.action != Action::Delete as i32 {
                        if let Some(mut object) = change.object {
                            let (slot, hash) = digest::object_hash(&mut object, &mut buf);
                            record.digests.add(&event.netns, slot, hash);
                            record.objects.insert(id, (slot, hash));
                        }
                    }
                }
                Some(event::Kind::Resync(r)) => {
                    return Err(ClientError::Usage(format!(
                        "{}: the agent cannot continue from the stored cursor {}:{} ({}): the record is older than its journal reaches (is collect following it?); nothing to compare at one position",
                        target.label(),
                        record.cursor.stream_id,
                        record.cursor.seq,
                        r.reason
                    )))
                }
                Some(event::Kind::Digest(d)) => return Ok(d),
                _ => {}
            }
        }
    }
    Err(ClientError::Usage(format!(
        "{}: the agent ended the stream before sending a digest",
        target.label()
    )))
}

/// One line per part either side holds.
fn report(
    cx: &mut Context<'_>,
    lines: Lines,
    target: &Target,
    ours: &Digests,
    digest: &Digest,
    mismatches: &[Mismatch],
) -> Result<(), ClientError> {
    let stored_parts = ours.sorted();
    let mut parts: Vec<(String, Kind, u32, u64, u64)> = Vec::new();
    for p in &digest.parts {
        if let Some(kind) = Kind::parse(&p.kind) {
            let stored = stored_parts
                .get(&(p.netns.as_str().into(), (kind, p.table)))
                .map_or(0, |part| part.count);
            parts.push((p.netns.clone(), kind, p.table, stored, p.count));
        }
    }
    for m in mismatches {
        if !parts
            .iter()
            .any(|(n, k, t, _, _)| *n == m.netns && *k == m.kind && *t == m.table)
        {
            parts.push((
                m.netns.clone(),
                m.kind,
                m.table,
                m.ours.count,
                m.agent.count,
            ));
        }
    }
    parts.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
    for (netns, kind, table, stored, agent_count) in parts {
        let bad = mismatches
            .iter()
            .any(|m| m.netns == netns && m.kind == kind && m.table == table);
        match lines {
            Lines::Json => cx.json_line(&json!({
                "host": target.label(),
                "netns": netns,
                "kind": kind.as_str(),
                "table": table,
                "status": if bad { "mismatch" } else { "ok" },
                "stored_count": stored,
                "agent_count": agent_count,
            }))?,
            Lines::Text => {
                let ns = if netns.is_empty() { "(own)" } else { &netns };
                let part = match kind {
                    Kind::Route => format!("route table {table}"),
                    other => other.as_str().to_owned(),
                };
                let status = if bad { "MISMATCH" } else { "ok" };
                let sums = if bad && stored == agent_count {
                    " (same count, different contents)"
                } else {
                    ""
                };
                writeln!(
                    cx.out,
                    "{status:<8} {} netns {ns} {part}: {stored} stored, {agent_count} on the agent{sums}",
                    target.label()
                )?;
            }
        }
    }
    Ok(())
}
