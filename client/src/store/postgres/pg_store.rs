//! [`PgStore`]: one collector's connection to the shared database.

use std::collections::{HashMap, HashSet};
use std::pin::pin;

use futures::TryStreamExt;

use tokio_postgres::{Client, Row, Statement};
use tokio_util::sync::CancellationToken;

use super::commit::{self, Copies, Prepared};
use super::{connect, value};
use crate::store::columns;
use crate::store::plan::{OpenVersion, StoredCursor, TargetRow, Write};
use crate::store::schema::{self, numbered_placeholders, Dialect};
use crate::store::{statements, AgentRecord, Claimed, Outcome, Pruned, StoreError, Value};

/// The advisory lock (one 64-bit key) that serialises migrations, so that
/// collectors started together do not create the same tables at once.
const MIGRATION_LOCK: i64 = 0x7277_6d69_6772_6174; // "rwmigrat"

/// The class of the advisory locks (two 32-bit keys: class, target id)
/// that give a target to one collector. PostgreSQL keeps one-key and
/// two-key locks apart, so this cannot meet [`MIGRATION_LOCK`]. Target ids
/// must fit 32 bits (2^31 targets) for their lock.
const TARGET_LOCKS: i32 = 0x7277_7467; // "rwtg"

/// The advisory lock (one 64-bit key) that serialises the creation of
/// history partitions, so that two collectors never create one at once.
const PARTITION_LOCK: i64 = 0x7277_7061_7274_6974; // "rwpartit"

/// Days after today whose history partitions a collector creates ahead.
const DAYS_AHEAD: i64 = 7;

/// Creates the partitions of days `$1` that do not exist yet.
const CREATE_PARTITIONS: &str = "SELECT routewatch_day_partition('versions', d),
     routewatch_day_partition('events', d)
 FROM UNNEST($1::int8[]) AS u(d)";

/// The partitions of the history's partitioned tables: `(parent,
/// partition, bounds)`, the bounds as PostgreSQL writes them (`FOR VALUES
/// FROM ('A') TO ('B')`, see [`upper_bound`]).
const PARTITIONS: &str = "SELECT p.relname::text, c.relname::text,
     pg_get_expr(c.relpartbound, c.oid)
 FROM pg_inherits i
 JOIN pg_class c ON c.oid = i.inhrelid
 JOIN pg_class p ON p.oid = i.inhparent
 WHERE i.inhparent IN ('versions'::regclass, 'events'::regclass)";

const UNLOCK_TARGET: &str = "SELECT pg_advisory_unlock($1::int4, $2::int8::int4)";
/// The targets whose lock another session of this database holds, with
/// that session's application_name (visible to every role), backend pid
/// and client address (empty over a local socket, or when the role may not
/// see it). Two-key advisory locks show their keys as classid and objid,
/// and objsubid 2.
const TARGET_HOLDERS: &str =
    "SELECT COALESCE(t.address, t.name), COALESCE(a.application_name, ''), l.pid,
        COALESCE(host(a.client_addr), '')
    FROM pg_locks l
    JOIN targets t ON t.id = l.objid::int8
    LEFT JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
      AND l.classid = $1::int4::oid AND l.pid <> pg_backend_pid()
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/// Adds the targets of `$1` (names) that have no row yet and tries the
/// lock of each of them not among `$3` (ids this session holds: advisory
/// locks stack, so a held target is not locked again): `(id, name,
/// granted)`. The existence check keeps the INSERT from taking ids of the
/// sequence for rows that exist (claims of held targets are retried every
/// few seconds, and ids must stay within the 32 bits of their lock).
const CLAIM_TARGETS: &str =
    "WITH wanted AS (SELECT DISTINCT name FROM UNNEST($1::text[]) AS u(name)),
     added AS (
         INSERT INTO targets (name)
         SELECT w.name FROM wanted w
         WHERE NOT EXISTS (SELECT 1 FROM targets t WHERE t.name = w.name)
         ON CONFLICT (name) DO NOTHING
         RETURNING id, name),
     found AS (
         SELECT id, name FROM added
         UNION ALL
         SELECT t.id, t.name FROM targets t JOIN wanted w ON w.name = t.name)
     SELECT id, name,
         CASE WHEN id = ANY($3::int8[]) THEN TRUE
              ELSE pg_try_advisory_lock($2::int4, id::int4) END
     FROM found ORDER BY id";
/// The rows of targets `$1` (ids): [`statements::TARGET`]'s columns, then
/// the name.
const TARGETS_BY_ID: &str = "SELECT id, host, stream_id, seq, next_vid, last_seen, name
     FROM targets WHERE id = ANY($1::int8[])";
/// The current versions of targets `$1` (ids): [`statements::OPEN_VERSIONS`]'s
/// columns, then the target.
const OPEN_VERSIONS_OF: &str = "SELECT netns, key, vid, digest, kind, object, target_id
     FROM versions WHERE target_id = ANY($1::int8[]) AND valid_until = 9223372036854775807";

/// One collector's connection to a PostgreSQL store.
pub struct PgStore {
    client: Client,
    prepared: Prepared,
    /// Targets whose lock this connection holds. Advisory locks stack, so
    /// a target is locked once however often it is claimed.
    held: HashSet<i64>,
    /// `select`'s statements, by their text as written.
    selects: HashMap<String, Statement>,
    /// UTC days whose history partitions this connection knows exist.
    days: HashSet<i64>,
    /// Cancelled when the connection ends.
    ended: CancellationToken,
}

impl PgStore {
    /// Connects and applies missing migrations.
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        let (mut client, ended) = connect::connect(url).await?;
        // Commits need not wait for the server's WAL flush: the WAL is
        // replayed in order, so a server crash can only lose the last
        // transactions whole, cursor included, and the collector (whose
        // connection, and so every claim, went with the crash) resumes
        // from the cursor that survived and fetches them again from the
        // agents. Exactly once holds; only the wait goes.
        client.batch_execute("SET synchronous_commit = off").await?;
        migrate(&mut client, &connect::shown(url)).await?;
        let prepared = Prepared::new(&client).await?;
        Ok(PgStore {
            client,
            prepared,
            held: HashSet::new(),
            selects: HashMap::new(),
            days: HashSet::new(),
            ended,
        })
    }

    /// Connects for reading only: every transaction of the session is read
    /// only, and the schema must be this routewatch's (nothing migrates).
    pub async fn open_read_only(url: &str) -> Result<PgStore, StoreError> {
        let (client, ended) = connect::connect(url).await?;
        client
            .batch_execute("SET default_transaction_read_only = on")
            .await?;
        let found: i64 = client
            .query_one(statements::SCHEMA_VERSION, &[])
            .await
            .map_err(|e| StoreError::Open {
                store: connect::shown(url),
                problem: format!(
                    "holds no routewatch store ({}): does the URL name the database routewatch collect writes?",
                    crate::error::chain(&e)
                ),
            })?
            .try_get(0)?;
        crate::store::check_read_only_version(connect::shown(url), found)?;
        let prepared = Prepared::new(&client).await?;
        Ok(PgStore {
            client,
            prepared,
            held: HashSet::new(),
            selects: HashMap::new(),
            days: HashSet::new(),
            ended,
        })
    }

    /// Takes the target for this collector (see [`crate::store::Store::claim`]):
    /// `None` while another collector's connection holds its lock.
    pub async fn claim(&mut self, name: &str) -> Result<Claimed, StoreError> {
        let mut claimed = self.claim_many(&[name.to_owned()]).await?;
        Ok(claimed.pop().flatten())
    }

    /// Takes as many of the targets named `names` as no other collector
    /// holds (see [`crate::store::Store::claim_many`]), in a fixed number
    /// of round trips whatever their number: one adds the missing rows and
    /// tries every lock, one reads the granted targets' rows and current
    /// versions under those locks (a snapshot of both). Claimed one by one,
    /// a target took seven round trips, and a collector taking over a
    /// hundred targets spent seconds doing it.
    pub async fn claim_many(&mut self, names: &[String]) -> Result<Vec<Claimed>, StoreError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let held: Vec<i64> = self.held.iter().copied().collect();
        let rows = self
            .client
            .query(CLAIM_TARGETS, &[&names, &TARGET_LOCKS, &held])
            .await?;
        let mut granted = HashMap::new();
        for row in &rows {
            let (id, name, locked): (i64, String, bool) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            if locked {
                self.held.insert(id);
                granted.insert(name, id);
            }
        }
        let ids: Vec<i64> = granted.values().copied().collect();
        let loaded = match self.load_many(&ids).await {
            Ok(loaded) => loaded,
            Err(e) => {
                for id in ids {
                    // Best effort: the error is what matters to the caller.
                    let _ = self.release(id).await;
                }
                return Err(e);
            }
        };
        Ok(names
            .iter()
            .map(|name| {
                let id = granted.get(name)?;
                loaded.get(id).cloned()
            })
            .collect())
    }

    /// The rows and current versions of targets `ids`, as of one snapshot.
    async fn load_many(
        &mut self,
        ids: &[i64],
    ) -> Result<HashMap<i64, (TargetRow, Vec<OpenVersion>)>, StoreError> {
        let mut loaded = HashMap::new();
        if ids.is_empty() {
            return Ok(loaded);
        }
        let tx = self
            .client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        // Sent together: one round trip for both.
        let by_id: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&ids];
        let (targets, open) = futures::try_join!(
            tx.query(TARGETS_BY_ID, &by_id),
            tx.query(OPEN_VERSIONS_OF, &by_id),
        )?;
        for row in &targets {
            let target = TargetRow {
                id: row.try_get(0)?,
                name: row.try_get(6)?,
                host: row.try_get(1)?,
                cursor: StoredCursor {
                    stream_id: row.try_get::<_, &str>(2)?.into(),
                    seq: row.try_get(3)?,
                },
                next_vid: row.try_get(4)?,
                last_seen: row.try_get(5)?,
            };
            loaded.insert(target.id, (target, Vec::new()));
        }
        for r in &open {
            let target_id: i64 = r.try_get(6)?;
            if let Some((_, versions)) = loaded.get_mut(&target_id) {
                versions.push(OpenVersion {
                    netns: r.try_get(0)?,
                    key: r.try_get(1)?,
                    vid: r.try_get(2)?,
                    digest: r.try_get(3)?,
                    kind: r.try_get(4)?,
                    object: r.try_get(5)?,
                });
            }
        }
        tx.commit().await?;
        Ok(loaded)
    }

    /// Who holds the targets another session holds, by target name (see
    /// [`crate::store::Store::holders`]).
    pub async fn holders(&mut self) -> Result<HashMap<String, String>, StoreError> {
        let rows = self.client.query(TARGET_HOLDERS, &[&TARGET_LOCKS]).await?;
        rows.iter()
            .map(|row| {
                let (name, app, pid, addr): (String, String, i32, String) = (
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                );
                let who = if app.is_empty() {
                    "a session without an application_name".to_owned()
                } else {
                    app
                };
                let from = if addr.is_empty() {
                    String::new()
                } else {
                    format!(" from {addr}")
                };
                Ok((name, format!("{who}, PostgreSQL backend {pid}{from}")))
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(StoreError::from)
    }

    /// See [`crate::store::Store::agent_record`]. Collectors looking up
    /// one agent at once agree: the adoption and the insert each take
    /// effect once, and the record is read back by the identity.
    pub async fn agent_record(
        &mut self,
        agent: &str,
        address: &str,
    ) -> Result<AgentRecord, StoreError> {
        let find = numbered_placeholders(statements::AGENT_TARGET);
        let tx = self.client.transaction().await?;
        let record = if let Some(row) = tx.query_opt(&find, &[&agent]).await? {
            AgentRecord {
                name: row.try_get(0)?,
                adopted: false,
            }
        } else if tx
            .execute(
                &numbered_placeholders(statements::ADOPT_TARGET),
                &[&agent, &address, &address],
            )
            .await?
            == 1
        {
            AgentRecord {
                name: address.to_owned(),
                adopted: true,
            }
        } else {
            tx.execute(
                &numbered_placeholders(statements::ADD_AGENT_TARGET),
                &[&agent, &agent, &address],
            )
            .await?;
            let row = tx.query_opt(&find, &[&agent]).await?.ok_or_else(|| StoreError::Open {
                store: "PostgreSQL".into(),
                problem: format!("a target named {agent:?} exists but is not that agent's record; rename it (UPDATE targets SET name = ...)"),
            })?;
            AgentRecord {
                name: row.try_get(0)?,
                adopted: false,
            }
        };
        tx.commit().await?;
        Ok(record)
    }

    /// See [`crate::store::Store::note_address`].
    pub async fn note_address(
        &mut self,
        target_id: i64,
        address: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let tx = self.client.transaction().await?;
        let before: Option<String> = tx
            .query_opt(
                &numbered_placeholders(statements::TARGET_ADDRESS),
                &[&target_id],
            )
            .await?
            .map(|row| row.try_get(0))
            .transpose()?
            .flatten();
        tx.execute(
            &numbered_placeholders(statements::MOVE_TARGET),
            &[&address, &target_id],
        )
        .await?;
        tx.execute(
            &numbered_placeholders(statements::NOTE_ADDRESS),
            &[&target_id, &address, &now, &now],
        )
        .await?;
        tx.commit().await?;
        Ok(before.filter(|b| b != address))
    }

    /// Gives the target up: its lock is released.
    pub async fn release(&mut self, target_id: i64) -> Result<(), StoreError> {
        if self.held.remove(&target_id) {
            self.client
                .query_one(UNLOCK_TARGET, &[&TARGET_LOCKS, &target_id])
                .await?;
        }
        Ok(())
    }

    /// A token cancelled when the connection ends (the server went away,
    /// or the network): the collector opens the store again at once
    /// rather than at its next write.
    pub fn ended(&self) -> CancellationToken {
        self.ended.clone()
    }

    /// Whether the connection is gone, and every lock with it.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Writes `writes` in one transaction (see
    /// [`crate::store::Store::commit`]): a write that is [`Outcome::Lost`]
    /// writes nothing and leaves the others be; an error leaves nothing
    /// behind, so that the same writes can be tried again.
    pub async fn commit(&mut self, writes: &[Write]) -> Result<Vec<Outcome>, StoreError> {
        let copies: Vec<Copies> = writes.iter().map(Copies::of).collect();
        self.commit_encoded(writes, &copies).await
    }

    /// [`PgStore::commit`], the new rows of each write encoded already
    /// (`copies`, in the order of `writes`).
    pub async fn commit_encoded(
        &mut self,
        writes: &[Write],
        copies: &[Copies],
    ) -> Result<Vec<Outcome>, StoreError> {
        self.ensure_partitions(writes).await?;
        let result = self.write(writes, copies).await;
        if let Err(StoreError::Postgres(e)) = &result {
            // No partition for a row: another collector's retention
            // dropped a day this connection knew. Asked again at the retry.
            if e.code() == Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION) {
                self.days.clear();
            }
        }
        result
    }

    async fn write(
        &mut self,
        writes: &[Write],
        copies: &[Copies],
    ) -> Result<Vec<Outcome>, StoreError> {
        let tx = self.client.transaction().await?;
        let mut outcomes = Vec::with_capacity(writes.len());
        for (w, copies) in writes.iter().zip(copies) {
            outcomes.push(commit::write_one(&tx, &self.prepared, w, copies).await?);
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    /// Creates the history partitions `writes` need (the days of their
    /// log rows and of the versions they close) and those of yesterday,
    /// today and [`DAYS_AHEAD`] days ahead, unless this connection knows
    /// they exist. One transaction under [`PARTITION_LOCK`], before the
    /// write's own: creating a partition locks its parent table.
    async fn ensure_partitions(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        let today = schema::day_of(crate::printer::now_unix_nano());
        let mut wanted: Vec<i64> = (today - 1..=today + DAYS_AHEAD)
            .filter(|d| !self.days.contains(d))
            .collect();
        for w in writes {
            let times = w
                .events
                .iter()
                .map(|e| e.time)
                .chain(w.closes.iter().map(|c| c.close.valid_to))
                .chain(
                    w.opens
                        .iter()
                        .filter_map(|v| v.close.as_ref().map(|c| c.valid_to)),
                );
            let mut last = None;
            for time in times {
                let day = schema::day_of(time);
                if last != Some(day) && !self.days.contains(&day) {
                    wanted.push(day);
                }
                last = Some(day);
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        wanted.sort_unstable();
        wanted.dedup();
        let tx = self.client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
            .await?;
        tx.execute(CREATE_PARTITIONS, &[&wanted]).await?;
        tx.commit().await?;
        self.days.extend(wanted);
        Ok(())
    }

    /// Removes what ended before `before` (see [`crate::store::Store::prune`]):
    /// every day partition of `versions` and `events` that ends by then is
    /// dropped whole (with the readable columns of its versions), so that
    /// nothing is deleted row by row but the few gaps. A day that ends
    /// after `before` is kept whole: retention goes by UTC days.
    pub async fn prune(&mut self, before: i64) -> Result<Pruned, StoreError> {
        let tx = self.client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
            .await?;
        let mut pruned = Pruned::default();
        for row in tx.query(PARTITIONS, &[]).await? {
            let (parent, partition, bounds): (String, String, String) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            // The partition of current versions ends at MAXVALUE.
            if upper_bound(&bounds).is_none_or(|upper| upper > before) {
                continue;
            }
            let quoted = format!("\"{}\"", partition.replace('"', "\"\""));
            match parent.as_str() {
                "versions" => {
                    pruned.versions += tx
                        .execute(
                            &format!(
                                "DELETE FROM version_columns c USING {quoted} v
                                 WHERE c.target_id = v.target_id AND c.vid = v.vid"
                            ),
                            &[],
                        )
                        .await?;
                }
                _ => {
                    let n: i64 = tx
                        .query_one(&format!("SELECT COUNT(*) FROM {quoted}"), &[])
                        .await?
                        .try_get(0)?;
                    pruned.events += n as u64;
                }
            }
            tx.batch_execute(&format!("DROP TABLE {quoted}")).await?;
        }
        pruned.gaps = tx
            .execute(&numbered_placeholders(statements::PRUNE_GAPS), &[&before])
            .await?;
        tx.commit().await?;
        // A dropped day is created again if a late write needs it.
        self.days.retain(|d| (d + 1) * schema::DAY > before);
        Ok(pruned)
    }

    /// Calls `f` with each row of a query written with `?` placeholders,
    /// every column read into a [`Value`] by its type. Rows are read from
    /// the connection as `f` takes them (the connection stops reading the
    /// socket while a row waits), so that an answer of any size costs the
    /// memory of a few rows.
    pub async fn for_each<E, F>(&mut self, sql: &str, params: &[Value], f: &mut F) -> Result<(), E>
    where
        E: From<StoreError>,
        F: FnMut(&[Value]) -> Result<(), E>,
    {
        let statement = self.select_statement(sql).await?;
        let rows = self
            .client
            .query_raw(&statement, params.iter())
            .await
            .map_err(StoreError::from)?;
        let mut rows = pin!(rows);
        while let Some(row) = rows.try_next().await.map_err(StoreError::from)? {
            f(&values(&row).map_err(StoreError::from)?)?;
        }
        Ok(())
    }

    /// `select`'s statement for `sql`, prepared once per connection.
    async fn select_statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.selects.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(&numbered_placeholders(sql)).await?;
        // Refused whether or not a row would show it.
        for column in statement.columns() {
            if let Some(problem) = value::unreadable(column.type_()) {
                return Err(StoreError::Column {
                    column: column.name().to_owned(),
                    problem,
                });
            }
        }
        self.selects.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// The end (exclusive) of a range partition's bounds as PostgreSQL writes
/// them, `FOR VALUES FROM ('A') TO ('B')`: `B`, or `None` for MAXVALUE.
fn upper_bound(bounds: &str) -> Option<i64> {
    let (_, to) = bounds.rsplit_once(" TO (")?;
    to.trim_end_matches(')').trim_matches('\'').parse().ok()
}

fn values(row: &Row) -> Result<Vec<Value>, tokio_postgres::Error> {
    (0..row.len()).map(|i| row.try_get(i)).collect()
}

/// Writes the readable columns of the versions written before they existed.
async fn backfill(tx: &tokio_postgres::Transaction<'_>) -> Result<(), StoreError> {
    let copy = tx.prepare(&columns::copy_statement()).await?;
    let select = tx
        .prepare(&numbered_placeholders(columns::TO_BACKFILL))
        .await?;
    let mut after: (i64, i64) = (0, 0);
    loop {
        let found = tx.query(&select, &[&after.0, &after.0, &after.1]).await?;
        if found.is_empty() {
            return Ok(());
        }
        let mut rows = commit::CopyRows::new();
        for row in found {
            let (target_id, vid, kind): (i64, i64, i64) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            let object: Vec<u8> = row.try_get(3)?;
            // An object this version cannot read keeps its bytes; its JSON
            // says so rather than staying NULL for ever.
            let c = columns::decode(kind, &object)
                .map(|o| columns::of(&o))
                .unwrap_or_else(columns::Columns::unreadable);
            commit::column_row(&mut rows, target_id, vid, &c);
            after = (target_id, vid);
        }
        rows.send(tx, &copy).await?;
    }
}

/// Brings the schema up to date, one collector at a time.
async fn migrate(client: &mut Client, store: &str) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(statements::CREATE_SCHEMA_VERSION).await?;
    let found: i64 = tx
        .query_one(statements::SCHEMA_VERSION, &[])
        .await?
        .try_get(0)?;
    if found > schema::VERSION {
        return Err(StoreError::TooNew {
            store: store.to_owned(),
            found,
            known: schema::VERSION,
        });
    }
    let record = numbered_placeholders(statements::RECORD_MIGRATION);
    for n in found + 1..=schema::VERSION {
        for statement in schema::migration(Dialect::Postgres, n).unwrap_or_default() {
            tx.batch_execute(&statement).await?;
        }
        tx.execute(&record, &[&n]).await?;
    }
    // The readable columns of versions stored before migration 2, once
    // the table has all its columns.
    if found < 2 {
        backfill(&tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::upper_bound;

    #[test]
    fn the_upper_bound_of_a_day_and_of_the_current_partition() {
        assert_eq!(
            upper_bound("FOR VALUES FROM ('1796515200000000000') TO ('1796601600000000000')"),
            Some(1_796_601_600_000_000_000)
        );
        assert_eq!(
            upper_bound("FOR VALUES FROM ('9223372036854775807') TO (MAXVALUE)"),
            None
        );
    }
}
