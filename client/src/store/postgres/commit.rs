//! One target's write: the compare and set of its cursor, then its rows in
//! as few round trips as PostgreSQL allows. New rows go in by binary COPY
//! (one stream per table), closes by one statement fed with arrays.

use std::pin::pin;

use bytes::{BufMut, Bytes, BytesMut};
use futures::SinkExt;
use tokio_postgres::{Client, Statement, Transaction};

use crate::store::columns::{self, Columns, NOBODY};
use crate::store::plan::Write;
use crate::store::schema::{numbered_placeholders, CURRENT};
use crate::store::{statements, Outcome, StoreError};

const COPY_VERSIONS: &str = "COPY versions (target_id, vid, netns, key, kind, family, table_id,
     dst_len, dst_lo, dst_hi, object, digest, valid_from, opened_stream, opened_seq,
     opened_origin, valid_to, closed_stream, closed_seq, closed_origin, valid_until)
 FROM STDIN (FORMAT binary)";

/// One version's readable columns as a COPY row, in
/// [`columns::copy_statement`]'s order (the writer's and the migration's
/// rows alike).
pub(super) fn column_row(rows: &mut CopyRows, target_id: i64, vid: i64, c: &Columns) {
    rows.row();
    rows.int(target_id);
    rows.int(vid);
    rows.opt_text(c.table_name.as_deref());
    rows.opt_text(c.dst.as_deref());
    rows.opt_text(c.gateway.as_deref());
    rows.opt_text(c.dev.as_deref());
    rows.opt_text(c.protocol.as_deref());
    rows.opt_text(c.r#type.as_deref());
    rows.opt_text(c.scope.as_deref());
    rows.opt_int(c.metric);
    rows.opt_text(c.prefsrc.as_deref());
    rows.opt_text(c.vrf.as_deref());
    rows.opt_text(c.encap.as_deref());
    rows.text(&c.object_json);
    rows.opt_text(c.changed_by.as_deref());
    rows.opt_int(c.changed_by_pid);
    rows.opt_text(c.changed_by_comm.as_deref());
    rows.opt_text(c.changed_by_pod.as_deref());
    rows.opt_text(c.reason.as_deref());
}

const COPY_EVENTS: &str = "COPY events (target_id, stream_id, seq, time, action, origin, vid,
 changed_by, changed_by_pid, changed_by_comm, changed_by_pod, reason) FROM STDIN (FORMAT binary)";

const COPY_GAPS: &str = "COPY gaps (target_id, from_time, from_stream, from_seq, to_time,
     to_stream, to_seq, cause, reason)
 FROM STDIN (FORMAT binary)";

/// The closes, as arrays: `routewatch_close_versions` (migrations 6 and
/// 7) moves each version from the partition of current versions to its
/// day's, and returns how many it moved: fewer than asked means the store
/// lacks some (see [`close_versions`]).
const CLOSE_VERSIONS: &str =
    "SELECT routewatch_close_versions($6, $1::int8[], $2::int8[], $3::text[], $4::int8[], $5::int8[])";

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

/// One write's new rows in COPY's binary format, one stream per table
/// (none where it has no row). Encoded before the transaction (by the
/// collector while the commit before runs), so that the server does not
/// wait for it; shared, not copied, when a failed commit is retried.
#[derive(Debug, Clone, Default)]
pub struct Copies {
    versions: Option<Bytes>,
    columns: Option<Bytes>,
    events: Option<Bytes>,
    gaps: Option<Bytes>,
}

/// Bytes a COPY row of each table takes, about: room reserved at once
/// rather than grown by copying (a write of 20,000 rows grew its buffers
/// a dozen times over). A little more than the ingest bench's rows (/32
/// blackhole routes: 283, 265 and 114 to 133 bytes); larger rows grow the
/// buffer once or twice.
const VERSION_ROW_BYTES: usize = 320;
const COLUMN_ROW_BYTES: usize = 300;
const EVENT_ROW_BYTES: usize = 144;

impl Copies {
    pub fn of(w: &Write) -> Copies {
        let mut copies = Copies::default();
        if !w.opens.is_empty() {
            let mut rows = CopyRows::with_capacity(w.opens.len() * VERSION_ROW_BYTES);
            for v in &w.opens {
                let close = v.close.as_ref();
                rows.row();
                rows.int(w.target_id);
                rows.int(v.vid);
                rows.text(&v.netns);
                rows.text(&v.key);
                rows.int(v.kind);
                rows.int(v.family);
                rows.opt_int(v.table_id);
                rows.opt_int(v.dst_len);
                rows.opt_bytes(v.dst_lo.as_deref());
                rows.opt_bytes(v.dst_hi.as_deref());
                rows.bytes(&v.object);
                rows.int(v.digest);
                rows.int(v.valid_from);
                rows.text(&v.opened_stream);
                rows.int(v.opened_seq);
                rows.int(v.opened_origin);
                rows.opt_int(close.map(|c| c.valid_to));
                rows.opt_text(close.map(|c| &*c.stream_id));
                rows.opt_int(close.map(|c| c.seq));
                rows.opt_int(close.map(|c| c.origin));
                rows.int(close.map_or(CURRENT, |c| c.valid_to));
            }
            copies.versions = Some(rows.finish());
            let mut rows = CopyRows::with_capacity(w.opens.len() * COLUMN_ROW_BYTES);
            for v in &w.opens {
                column_row(&mut rows, w.target_id, v.vid, &v.columns);
            }
            copies.columns = Some(rows.finish());
        }
        if !w.events.is_empty() {
            let mut rows = CopyRows::with_capacity(w.events.len() * EVENT_ROW_BYTES);
            for e in &w.events {
                rows.row();
                rows.int(w.target_id);
                rows.text(&e.stream_id);
                rows.int(e.seq);
                rows.int(e.time);
                rows.int(e.action);
                rows.int(e.origin);
                rows.int(e.vid);
                let by = e.by.as_deref().unwrap_or(&NOBODY);
                rows.opt_text(by.changed_by.as_deref());
                rows.opt_int(by.changed_by_pid);
                rows.opt_text(by.changed_by_comm.as_deref());
                rows.opt_text(by.changed_by_pod.as_deref());
                rows.opt_text(by.reason.as_deref());
            }
            copies.events = Some(rows.finish());
        }
        if !w.gaps.is_empty() {
            let mut rows = CopyRows::new();
            for g in &w.gaps {
                rows.row();
                rows.int(w.target_id);
                rows.opt_int(g.from_time);
                rows.text(&g.from.stream_id);
                rows.int(g.from.seq);
                rows.int(g.to_time);
                rows.text(&g.to.stream_id);
                rows.int(g.to.seq);
                rows.int(g.cause);
                rows.text(&g.reason);
            }
            copies.gaps = Some(rows.finish());
        }
        copies
    }
}

/// One target's write, its new rows encoded in `copies`, unless the
/// target's cursor moved under it: then nothing is written (the UPDATE
/// matched no row, which is no error, so the transaction goes on with the
/// other targets' writes).
pub(super) async fn write_one(
    tx: &Transaction<'_>,
    prepared: &Prepared,
    w: &Write,
    copies: &Copies,
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
    for (copy, rows) in [
        (&prepared.copy_versions, &copies.versions),
        (&prepared.copy_columns, &copies.columns),
        (&prepared.copy_events, &copies.events),
        (&prepared.copy_gaps, &copies.gaps),
    ] {
        if let Some(rows) = rows {
            send(tx, copy, rows.clone()).await?;
        }
    }
    Ok(Outcome::Committed)
}

/// Rows in COPY's binary format, written straight into one buffer and
/// sent in large pieces: a field is its length and its bytes (big-endian
/// int8 for BIGINT, UTF-8 for TEXT, the bytes for BYTEA), -1 for NULL.
/// A row's field count is the fields written after [`CopyRows::row`];
/// each field's encoding must fit its column's type (BIGINT, TEXT, BYTEA
/// as the COPY statement lists them): PostgreSQL refuses a row that does
/// not, and the transaction with it.
pub(super) struct CopyRows {
    buf: BytesMut,
    /// Where the open row's field count goes, and its fields so far.
    row: Option<(usize, i16)>,
}

/// What a COPY sends at a time.
const COPY_CHUNK: usize = 256 * 1024;

impl CopyRows {
    pub(super) fn new() -> CopyRows {
        CopyRows::with_capacity(COPY_CHUNK)
    }

    /// Rows to take about `bytes` bytes.
    pub(super) fn with_capacity(bytes: usize) -> CopyRows {
        let mut buf = BytesMut::with_capacity(bytes + 32);
        buf.put_slice(b"PGCOPY\n\xff\r\n\0");
        buf.put_i32(0); // flags
        buf.put_i32(0); // header extension length
        CopyRows { buf, row: None }
    }

    /// Starts a row (and ends the one before).
    fn row(&mut self) {
        self.end_row();
        self.row = Some((self.buf.len(), 0));
        self.buf.put_i16(0);
    }

    fn end_row(&mut self) {
        if let Some((at, fields)) = self.row.take() {
            self.buf[at..at + 2].copy_from_slice(&fields.to_be_bytes());
        }
    }

    /// Counts a field of the open row.
    fn field(&mut self) -> &mut BytesMut {
        if let Some((_, fields)) = &mut self.row {
            *fields += 1;
        }
        &mut self.buf
    }

    fn int(&mut self, v: i64) {
        let buf = self.field();
        buf.put_i32(8);
        buf.put_i64(v);
    }

    fn opt_int(&mut self, v: Option<i64>) {
        match v {
            Some(v) => self.int(v),
            None => self.field().put_i32(-1),
        }
    }

    fn bytes(&mut self, b: &[u8]) {
        let buf = self.field();
        buf.put_i32(b.len() as i32);
        buf.put_slice(b);
    }

    fn opt_bytes(&mut self, b: Option<&[u8]>) {
        match b {
            Some(b) => self.bytes(b),
            None => self.field().put_i32(-1),
        }
    }

    fn text(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    fn opt_text(&mut self, s: Option<&str>) {
        self.opt_bytes(s.map(str::as_bytes));
    }

    /// The rows, ready to send.
    pub(super) fn finish(mut self) -> Bytes {
        self.end_row();
        self.buf.put_i16(-1);
        self.buf.freeze()
    }

    /// Runs `copy` with these rows.
    pub(super) async fn send(
        self,
        tx: &Transaction<'_>,
        copy: &Statement,
    ) -> Result<(), StoreError> {
        send(tx, copy, self.finish()).await
    }
}

/// Runs `copy` with the rows `data` (from [`CopyRows::finish`]).
async fn send(tx: &Transaction<'_>, copy: &Statement, mut data: Bytes) -> Result<(), StoreError> {
    let sink = tx.copy_in::<_, Bytes>(copy).await?;
    let mut sink = pin!(sink);
    while !data.is_empty() {
        let piece = data.split_to(data.len().min(COPY_CHUNK));
        sink.as_mut().send(piece).await?;
    }
    sink.finish().await?;
    Ok(())
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
    let closed: i64 = tx
        .query_one(
            &prepared.close_versions,
            &[&vids, &valid_to, &streams, &seqs, &origins, &w.target_id],
        )
        .await?
        .try_get(0)?;
    let missing = w.closes.len() as i64 - closed;
    if missing > 0 {
        // The transaction is rolled back with the error.
        return Err(StoreError::MissingVersions {
            target_id: w.target_id,
            missing,
        });
    }
    Ok(())
}
