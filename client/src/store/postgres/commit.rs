//! One target's write: the compare and set of its cursor, then its rows in
//! as few round trips as PostgreSQL allows. New rows go in by binary COPY
//! (one stream per table), closes by one statement fed with arrays.

use std::pin::pin;

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Statement, Transaction};

use crate::store::columns::{self, Columns};
use crate::store::plan::Write;
use crate::store::schema::numbered_placeholders;
use crate::store::{statements, Outcome, StoreError};

const COPY_VERSIONS: &str = "COPY versions (target_id, vid, netns, key, kind, family, table_id,
     dst_len, dst_lo, dst_hi, object, digest, valid_from, opened_stream, opened_seq,
     opened_origin, valid_to, closed_stream, closed_seq, closed_origin)
 FROM STDIN (FORMAT binary)";
const VERSION_TYPES: [Type; 20] = [
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::BYTEA,
    Type::BYTEA,
    Type::BYTEA,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
];

/// The types of [`crate::store::columns::copy_statement`]'s columns.
const COLUMN_TYPES: [Type; 19] = [
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
];

/// One version's readable columns in [`COLUMN_TYPES`]' order (for the
/// COPY and for the migration's inserts alike).
pub(super) fn column_values<'a>(
    target_id: &'a i64,
    vid: &'a i64,
    c: &'a Columns,
) -> [&'a (dyn ToSql + Sync); 19] {
    [
        target_id,
        vid,
        &c.table_name,
        &c.dst,
        &c.gateway,
        &c.dev,
        &c.protocol,
        &c.r#type,
        &c.scope,
        &c.metric,
        &c.prefsrc,
        &c.vrf,
        &c.encap,
        &c.object_json,
        &c.changed_by,
        &c.changed_by_pid,
        &c.changed_by_comm,
        &c.changed_by_pod,
        &c.reason,
    ]
}

const COPY_EVENTS: &str = "COPY events (target_id, stream_id, seq, time, action, origin, vid)
 FROM STDIN (FORMAT binary)";
const EVENT_TYPES: [Type; 7] = [
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
];

const COPY_GAPS: &str = "COPY gaps (target_id, from_time, from_stream, from_seq, to_time,
     to_stream, to_seq, cause, reason)
 FROM STDIN (FORMAT binary)";
const GAP_TYPES: [Type; 9] = [
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
];

/// The closes, as arrays: an upsert that always conflicts, so that each
/// version is found through the primary key by the conflict check rather
/// than by a join the planner chooses. An `UPDATE ... FROM UNNEST` join is
/// planned from statistics that lag behind a target grown since the last
/// ANALYZE (a fresh database, or any new agent's first snapshot): the
/// planner then believes the target holds a handful of versions and hashes
/// or scans all of them. Measured closing 500 versions of a target of
/// 100k: the join took 15 to 200 ms with lagging statistics and 6 to 9
/// with fresh ones; the upsert takes 7 to 9 either way. The values it would
/// insert are never kept: a version the store lacks comes back as kind 0
/// and fails the write (see [`close_versions`]).
const CLOSE_VERSIONS: &str = "WITH closed AS (
     INSERT INTO versions AS v (target_id, vid, netns, key, kind, family, object, digest,
         valid_from, opened_stream, opened_seq, opened_origin, valid_to, closed_stream,
         closed_seq, closed_origin)
     SELECT $6, u.vid, '', '', 0, 0, '', 0, u.valid_to, '', 0, 0, u.valid_to, u.closed_stream,
         u.closed_seq, u.closed_origin
     FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::int8[], $5::int8[])
         AS u(vid, valid_to, closed_stream, closed_seq, closed_origin)
     ON CONFLICT (target_id, vid) DO UPDATE SET valid_to = EXCLUDED.valid_to,
         closed_stream = EXCLUDED.closed_stream, closed_seq = EXCLUDED.closed_seq,
         closed_origin = EXCLUDED.closed_origin
     RETURNING kind)
 SELECT COUNT(*) FROM closed WHERE kind = 0";

/// The statements a write runs, prepared once per connection.
pub(super) struct Prepared {
    move_cursor: Statement,
    target_exists: Statement,
    copy_versions: Statement,
    copy_columns: Statement,
    copy_events: Statement,
    copy_gaps: Statement,
    close_versions: Statement,
}

impl Prepared {
    pub(super) async fn new(client: &Client) -> Result<Prepared, StoreError> {
        let move_cursor = numbered_placeholders(statements::MOVE_CURSOR);
        let target_exists = numbered_placeholders(statements::TARGET_EXISTS);
        // Sent together: one round trip for all of them.
        let copy_columns = columns::copy_statement();
        let (
            move_cursor,
            target_exists,
            copy_versions,
            copy_columns,
            copy_events,
            copy_gaps,
            close_versions,
        ) = futures::try_join!(
            client.prepare(&move_cursor),
            client.prepare(&target_exists),
            client.prepare(COPY_VERSIONS),
            client.prepare(&copy_columns),
            client.prepare(COPY_EVENTS),
            client.prepare(COPY_GAPS),
            client.prepare(CLOSE_VERSIONS),
        )?;
        Ok(Prepared {
            move_cursor,
            target_exists,
            copy_versions,
            copy_columns,
            copy_events,
            copy_gaps,
            close_versions,
        })
    }
}

/// One target's write, unless the target's cursor moved under it: then
/// nothing is written (the UPDATE matched no row, which is no error, so
/// the transaction goes on with the other targets' writes).
pub(super) async fn write_one(
    tx: &Transaction<'_>,
    prepared: &Prepared,
    w: &Write,
) -> Result<Outcome, StoreError> {
    let moved = tx
        .execute(
            &prepared.move_cursor,
            &[
                &w.host,
                &&*w.cursor.stream_id,
                &w.cursor.seq,
                &w.next_vid,
                &w.last_seen,
                &w.last_seen,
                &w.target_id,
                &&*w.expect.stream_id,
                &w.expect.seq,
            ],
        )
        .await?;
    if moved == 0 {
        let exists = tx
            .query_opt(&prepared.target_exists, &[&w.target_id])
            .await?
            .is_some();
        return Ok(Outcome::lost(w.target_id, exists));
    }
    if !w.closes.is_empty() {
        close_versions(tx, prepared, w).await?;
    }
    if !w.opens.is_empty() {
        let sink = tx.copy_in(&prepared.copy_versions).await?;
        let mut rows = pin!(BinaryCopyInWriter::new(sink, &VERSION_TYPES));
        for v in &w.opens {
            let close = v.close.as_ref();
            rows.as_mut()
                .write(&[
                    &w.target_id,
                    &v.vid,
                    &v.netns,
                    &v.key,
                    &v.kind,
                    &v.family,
                    &v.table_id,
                    &v.dst_len,
                    &v.dst_lo,
                    &v.dst_hi,
                    &v.object,
                    &v.digest,
                    &v.valid_from,
                    &&*v.opened_stream,
                    &v.opened_seq,
                    &v.opened_origin,
                    &close.map(|c| c.valid_to),
                    &close.map(|c| &*c.stream_id),
                    &close.map(|c| c.seq),
                    &close.map(|c| c.origin),
                ])
                .await?;
        }
        rows.finish().await?;
        let sink = tx.copy_in(&prepared.copy_columns).await?;
        let mut rows = pin!(BinaryCopyInWriter::new(sink, &COLUMN_TYPES));
        for v in &w.opens {
            rows.as_mut()
                .write(&column_values(&w.target_id, &v.vid, &v.columns))
                .await?;
        }
        rows.finish().await?;
    }
    if !w.events.is_empty() {
        let sink = tx.copy_in(&prepared.copy_events).await?;
        let mut rows = pin!(BinaryCopyInWriter::new(sink, &EVENT_TYPES));
        for e in &w.events {
            rows.as_mut()
                .write(&[
                    &w.target_id,
                    &&*e.stream_id,
                    &e.seq,
                    &e.time,
                    &e.action,
                    &e.origin,
                    &e.vid,
                ])
                .await?;
        }
        rows.finish().await?;
    }
    if !w.gaps.is_empty() {
        let sink = tx.copy_in(&prepared.copy_gaps).await?;
        let mut rows = pin!(BinaryCopyInWriter::new(sink, &GAP_TYPES));
        for g in &w.gaps {
            rows.as_mut()
                .write(&[
                    &w.target_id,
                    &g.from_time,
                    &&*g.from.stream_id,
                    &g.from.seq,
                    &g.to_time,
                    &&*g.to.stream_id,
                    &g.to.seq,
                    &g.cause,
                    &g.reason,
                ])
                .await?;
        }
        rows.finish().await?;
    }
    Ok(Outcome::Committed)
}

/// Versions written earlier that end, all in one statement.
async fn close_versions(
    tx: &Transaction<'_>,
    prepared: &Prepared,
    w: &Write,
) -> Result<(), StoreError> {
    let mut vids = Vec::with_capacity(w.closes.len());
    let mut valid_to = Vec::with_capacity(w.closes.len());
    let mut streams = Vec::with_capacity(w.closes.len());
    let mut seqs = Vec::with_capacity(w.closes.len());
    let mut origins = Vec::with_capacity(w.closes.len());
    for c in &w.closes {
        vids.push(c.vid);
        valid_to.push(c.close.valid_to);
        streams.push(&*c.close.stream_id);
        seqs.push(c.close.seq);
        origins.push(c.close.origin);
    }
    let missing: i64 = tx
        .query_one(
            &prepared.close_versions,
            &[&vids, &valid_to, &streams, &seqs, &origins, &w.target_id],
        )
        .await?
        .try_get(0)?;
    if missing > 0 {
        // The transaction is rolled back with the error.
        return Err(StoreError::MissingVersions {
            target_id: w.target_id,
            missing,
        });
    }
    Ok(())
}
