//! The SQLite backend: one file, WAL, prepared statements inside one
//! transaction per batch. One collector at a time (an exclusive lock on
//! the file's companion `.collector-lock`); any number of readers.

use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, ToSql};

use super::columns::{self, NOBODY};
use super::plan::{OpenVersion, StoredCursor, TargetRow, Write};
use super::schema::{self, Dialect};
use super::statements;
use super::{AgentRecord, Outcome, Pruned, StoreError, Value};

pub struct SqliteStore {
    path: PathBuf,
    conn: Connection,
    /// Held while this process collects into the file.
    collector_lock: Option<File>,
}

impl SqliteStore {
    /// Opens (creating) the database and applies missing migrations.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let store = || format!("sqlite://{}", path.display());
        let conn = Connection::open(path).map_err(|e| StoreError::Open {
            store: store(),
            problem: format!(
                "cannot open the database: {e} (does its directory exist, and may this user write there?)"
            ),
        })?;
        let setup = || -> rusqlite::Result<()> {
            conn.busy_timeout(std::time::Duration::from_secs(10))?;
            // WAL lets queries read while the collector writes; NORMAL
            // syncing keeps the file consistent after a crash of the
            // process (only a power loss may take the last transactions,
            // whose cursor goes with them).
            //
            // A new file gets 16 KiB pages (an existing one keeps its
            // own): a version's rows are a few hundred bytes, and larger
            // pages mean fewer B-tree pages split and rewritten to the WAL
            // per transaction.
            conn.execute_batch("PRAGMA page_size = 16384")?;
            let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF;")?;
            Ok(())
        };
        setup().map_err(|e| StoreError::Open {
            store: store(),
            problem: format!("cannot set the database up: {e}"),
        })?;
        let mut s = SqliteStore {
            path: path.to_owned(),
            conn,
            collector_lock: None,
        };
        s.migrate()?;
        Ok(s)
    }

    /// Opens an existing database read only (no migration: a schema of
    /// another version is refused).
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, StoreError> {
        use rusqlite::OpenFlags;
        let store = || format!("sqlite://{}", path.display());
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::Open {
            store: store(),
            problem: format!("cannot open the database for reading: {e} (does it exist, and may this user read it?)"),
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch("PRAGMA query_only = ON")?;
        let found: i64 = conn
            .query_row(statements::SCHEMA_VERSION, [], |r| r.get(0))
            .map_err(|e| StoreError::Open {
                store: store(),
                problem: format!(
                    "holds no routewatch store ({e}): is it the file routewatch collect writes?"
                ),
            })?;
        super::check_read_only_version(store(), found)?;
        Ok(SqliteStore {
            path: path.to_owned(),
            conn,
            collector_lock: None,
        })
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(statements::CREATE_SCHEMA_VERSION, [])?;
        let found: i64 = tx.query_row(statements::SCHEMA_VERSION, [], |r| r.get(0))?;
        if found > schema::VERSION {
            return Err(StoreError::TooNew {
                store: format!("sqlite://{}", self.path.display()),
                found,
                known: schema::VERSION,
            });
        }
        for n in found + 1..=schema::VERSION {
            for statement in schema::migration(Dialect::Sqlite, n).unwrap_or_default() {
                tx.execute(&statement, [])?;
            }
            tx.execute(statements::RECORD_MIGRATION, [n])?;
        }
        // The readable columns of versions stored before migration 2, once
        // the table has all its columns.
        if found < 2 {
            backfill(&tx)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Makes this process the file's only collector.
    pub fn lock_for_collecting(&mut self) -> Result<(), StoreError> {
        use std::os::fd::AsRawFd;
        let lock_path = {
            let mut p = self.path.clone().into_os_string();
            p.push(".collector-lock");
            PathBuf::from(p)
        };
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::Open {
                store: format!("sqlite://{}", self.path.display()),
                problem: format!("cannot open {}: {e}", lock_path.display()),
            })?;
        // SAFETY: flock on a descriptor this function owns.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if locked != 0 {
            return Err(StoreError::Open {
                store: format!("sqlite://{}", self.path.display()),
                problem: "another routewatch collect is writing to this file (SQLite serves one collector; share targets among collectors with PostgreSQL)".into(),
            });
        }
        self.collector_lock = Some(file);
        Ok(())
    }

    pub fn claim(&mut self, name: &str) -> Result<(TargetRow, Vec<OpenVersion>), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(statements::ADD_TARGET, [name])?;
        let target = tx.query_row(statements::TARGET, [name], |r| {
            Ok(TargetRow {
                id: r.get(0)?,
                name: name.to_owned(),
                host: r.get(1)?,
                cursor: StoredCursor {
                    stream_id: r.get::<_, String>(2)?.into(),
                    seq: r.get(3)?,
                },
                next_vid: r.get(4)?,
                last_seen: r.get(5)?,
            })
        })?;
        let open = {
            let mut statement = tx.prepare(statements::OPEN_VERSIONS)?;
            let rows = statement.query_map([target.id], |r| {
                Ok(OpenVersion {
                    netns: r.get(0)?,
                    key: r.get(1)?,
                    vid: r.get(2)?,
                    digest: r.get(3)?,
                    kind: r.get(4)?,
                    object: r.get(5)?,
                })
            })?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        tx.commit()?;
        Ok((target, open))
    }

    /// See [`super::Store::agent_record`].
    pub fn agent_record(&mut self, agent: &str, address: &str) -> Result<AgentRecord, StoreError> {
        let tx = self.conn.transaction()?;
        let found = |tx: &rusqlite::Transaction<'_>| {
            tx.query_row(statements::AGENT_TARGET, [agent], |r| r.get::<_, String>(0))
                .optional()
        };
        let record = if let Some(name) = found(&tx)? {
            AgentRecord {
                name,
                adopted: false,
            }
        } else if tx.execute(statements::ADOPT_TARGET, [agent, address, address])? == 1 {
            AgentRecord {
                name: address.to_owned(),
                adopted: true,
            }
        } else {
            tx.execute(statements::ADD_AGENT_TARGET, [agent, agent, address])?;
            AgentRecord {
                name: found(&tx)?.ok_or_else(|| name_taken(&self.path, agent))?,
                adopted: false,
            }
        };
        tx.commit()?;
        Ok(record)
    }

    /// See [`super::Store::note_address`].
    pub fn note_address(
        &mut self,
        target_id: i64,
        address: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let tx = self.conn.transaction()?;
        let before: Option<String> = tx
            .query_row(statements::TARGET_ADDRESS, [target_id], |r| r.get(0))
            .optional()?
            .flatten();
        tx.execute(statements::MOVE_TARGET, params![address, target_id])?;
        tx.execute(
            statements::NOTE_ADDRESS,
            params![target_id, address, now, now],
        )?;
        tx.commit()?;
        Ok(before.filter(|b| b != address))
    }

    pub fn commit(&mut self, writes: &[Write]) -> Result<Vec<Outcome>, StoreError> {
        let tx = self.conn.transaction()?;
        let mut outcomes = Vec::with_capacity(writes.len());
        for w in writes {
            outcomes.push(write_one(&tx, w)?);
        }
        tx.commit()?;
        Ok(outcomes)
    }

    pub fn prune(&mut self, before: i64) -> Result<Pruned, StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(statements::PRUNE_VERSION_COLUMNS, [before])?;
        let versions = tx.execute(statements::PRUNE_VERSIONS, [before])?;
        let events = tx.execute(statements::PRUNE_EVENTS, [before])?;
        let gaps = tx.execute(statements::PRUNE_GAPS, [before])?;
        tx.commit()?;
        Ok(Pruned {
            versions: versions as u64,
            events: events as u64,
            gaps: gaps as u64,
        })
    }

    /// Calls `f` with each row of a read-only query, as SQLite steps to
    /// it: no more than one row is held.
    pub fn for_each<E: From<StoreError>>(
        &mut self,
        sql: &str,
        params: &[Value],
        f: &mut dyn FnMut(&[Value]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut statement = self.conn.prepare_cached(sql).map_err(StoreError::from)?;
        let columns = statement.column_count();
        let bound: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
        let mut rows = statement
            .query(bound.as_slice())
            .map_err(StoreError::from)?;
        let mut values = Vec::with_capacity(columns);
        while let Some(row) = rows.next().map_err(StoreError::from)? {
            values.clear();
            for i in 0..columns {
                values.push(match row.get_ref(i).map_err(StoreError::from)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => Value::Int(n),
                    ValueRef::Real(f) => Value::Int(f as i64),
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
                });
            }
            f(&values)?;
        }
        Ok(())
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::ToSqlOutput;
        Ok(match self {
            Value::Null => ToSqlOutput::Owned(rusqlite::types::Value::Null),
            Value::Int(i) => ToSqlOutput::from(*i),
            Value::Text(s) => ToSqlOutput::from(s.as_str()),
            Value::Bytes(b) => ToSqlOutput::from(b.as_slice()),
        })
    }
}

/// One target's write, unless the target's cursor moved under it.
fn write_one(tx: &rusqlite::Transaction<'_>, w: &Write) -> Result<Outcome, StoreError> {
    let moved = tx
        .prepare_cached(statements::MOVE_CURSOR)?
        .execute(params![
            w.host,
            &*w.cursor.stream_id,
            w.cursor.seq,
            w.next_vid,
            w.last_seen,
            w.last_seen,
            w.target_id,
            &*w.expect.stream_id,
            w.expect.seq,
        ])?;
    if moved == 0 {
        let exists: Option<i64> = tx
            .query_row(statements::TARGET_EXISTS, [w.target_id], |r| r.get(0))
            .optional()?;
        return Ok(Outcome::lost(w.target_id, exists.is_some()));
    }
    insert_rows(
        tx,
        "INSERT INTO versions (target_id, vid, netns, key, kind, family, table_id, dst_len,
             dst_lo, dst_hi, object, digest, valid_from, opened_stream, opened_seq,
             opened_origin, valid_to, closed_stream, closed_seq, closed_origin, valid_until)",
        w.opens.iter().map(|v| {
            let close = v.close.as_ref();
            [
                &w.target_id as &dyn ToSql,
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
                &v.opened_stream,
                &v.opened_seq,
                &v.opened_origin,
                close.map_or(&NULL, |c| &c.valid_to),
                close.map_or(&NULL, |c| &c.stream_id),
                close.map_or(&NULL, |c| &c.seq),
                close.map_or(&NULL, |c| &c.origin),
                close.map_or(&CURRENT, |c| &c.valid_to),
            ]
        }),
    )?;
    insert_rows(
        tx,
        &columns::insert_head(),
        w.opens
            .iter()
            .map(|v| column_values(&w.target_id, &v.vid, &v.columns)),
    )?;
    {
        let mut close = tx.prepare_cached(
            "UPDATE versions SET valid_to = ?, closed_stream = ?, closed_seq = ?, closed_origin = ?,
                 valid_until = ?
             WHERE target_id = ? AND vid = ?",
        )?;
        for c in &w.closes {
            close.execute(params![
                c.close.valid_to,
                &*c.close.stream_id,
                c.close.seq,
                c.close.origin,
                c.close.valid_to,
                w.target_id,
                c.vid,
            ])?;
        }
    }
    insert_rows(
        tx,
        "INSERT INTO events (target_id, stream_id, seq, time, action, origin, vid, changed_by, \
         changed_by_pid, changed_by_comm, changed_by_pod, reason)",
        w.events.iter().map(|e| {
            let by = e.by.as_deref().unwrap_or(&NOBODY);
            [
                &w.target_id as &dyn ToSql,
                &e.stream_id,
                &e.seq,
                &e.time,
                &e.action,
                &e.origin,
                &e.vid,
                &by.changed_by,
                &by.changed_by_pid,
                &by.changed_by_comm,
                &by.changed_by_pod,
                &by.reason,
            ]
        }),
    )?;
    {
        let mut gap = tx.prepare_cached(
            "INSERT INTO gaps (target_id, from_time, from_stream, from_seq, to_time, to_stream,
                 to_seq, cause, reason)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )?;
        for g in &w.gaps {
            gap.execute(params![
                w.target_id,
                g.from_time,
                &*g.from.stream_id,
                g.from.seq,
                g.to_time,
                &*g.to.stream_id,
                g.to.seq,
                g.cause,
                g.reason,
            ])?;
        }
    }
    Ok(Outcome::Committed)
}

/// SQL NULL, for the columns of a row that are not set.
const NULL: rusqlite::types::Null = rusqlite::types::Null;

/// `valid_until` of a version that is current.
const CURRENT: i64 = schema::CURRENT;

/// Rows per INSERT: SQLite stores rows given as one multi-row VALUES list
/// for less CPU than the same rows inserted one statement each.
const ROWS_PER_INSERT: usize = 64;

/// Inserts `rows` with `head` (`INSERT INTO t (a, b)`): in statements of
/// [`ROWS_PER_INSERT`] rows, the rest one row at a time (two cached
/// statements per table, whatever the number of rows, each looked up once
/// per call).
fn insert_rows<'a, const N: usize>(
    tx: &rusqlite::Transaction<'_>,
    head: &str,
    rows: impl Iterator<Item = [&'a dyn ToSql; N]>,
) -> rusqlite::Result<()> {
    let one = format!("({})", vec!["?"; N].join(", "));
    let mut chunk: Vec<&dyn ToSql> = Vec::with_capacity(N * ROWS_PER_INSERT);
    let mut rows = rows.peekable();
    let mut many = None;
    while rows.peek().is_some() {
        chunk.clear();
        for row in rows.by_ref().take(ROWS_PER_INSERT) {
            chunk.extend_from_slice(&row);
        }
        let n = chunk.len() / N;
        if n == ROWS_PER_INSERT {
            if many.is_none() {
                let values = vec![one.as_str(); n].join(", ");
                many = Some(tx.prepare_cached(&format!("{head} VALUES {values}"))?);
            }
            if let Some(many) = &mut many {
                many.execute(chunk.as_slice())?;
            }
        } else {
            let mut single = tx.prepare_cached(&format!("{head} VALUES {one}"))?;
            for row in chunk.chunks(N) {
                single.execute(row)?;
            }
        }
    }
    Ok(())
}

/// One version's readable columns in [`columns::insert_head`]'s order.
fn column_values<'a>(
    target_id: &'a i64,
    vid: &'a i64,
    c: &'a columns::Columns,
) -> [&'a dyn ToSql; 19] {
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

/// Writes the readable columns of the versions written before they existed.
fn backfill(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    let mut select = tx.prepare(columns::TO_BACKFILL)?;
    let mut after = (0, 0);
    loop {
        let rows: Vec<(i64, i64, i64, Vec<u8>)> = select
            .query_map(params![after.0, after.0, after.1], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<Result<_, _>>()?;
        if rows.is_empty() {
            return Ok(());
        }
        for (target_id, vid, kind, object) in rows {
            // An object this version cannot read keeps its bytes; its JSON
            // says so rather than staying NULL for ever.
            let c = columns::decode(kind, &object)
                .map(|o| columns::of(&o))
                .unwrap_or_else(columns::Columns::unreadable);
            insert_rows(
                tx,
                &columns::insert_head(),
                std::iter::once(column_values(&target_id, &vid, &c)),
            )?;
            after = (target_id, vid);
        }
    }
}

/// A record named like the identity of an agent, but not that agent's
/// (made by hand): the agent's record cannot be made.
fn name_taken(path: &Path, agent: &str) -> StoreError {
    StoreError::Open {
        store: format!("sqlite://{}", path.display()),
        problem: format!("a target named {agent:?} exists but is not that agent's record; rename it (UPDATE targets SET name = ...)"),
    }
}
