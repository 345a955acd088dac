//! The fleet's route history: SQLite (one collector) or PostgreSQL (a
//! fleet of collectors sharing the targets).
//!
//! - [`schema`]: the one logical schema, its migrations and dialects.
//! - [`plan`]: the rows one transaction writes for one target.
//! - [`ledger`]: one target's record keeper, turning its stream into rows.
//! - [`statements`]: the statements both backends run alike.
//! - [`sqlite`] and [`postgres`]: the two backends behind [`Store`].

pub mod columns;
pub mod ledger;
pub mod plan;
pub mod postgres;
pub mod schema;
pub mod sqlite;
pub mod statements;

#[cfg(any(test, feature = "test-support"))]
pub mod testing;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

pub use ledger::Ledger;
pub use plan::{OpenVersion, StoredCursor, TargetRow, Write};

/// The default `--store`.
pub const DEFAULT_STORE: &str = "sqlite://routewatch.db";

/// Where the history is kept, as given by `--store`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite://PATH` (relative to the working directory;
    /// `sqlite:///abs/path` for an absolute one).
    Sqlite(PathBuf),
    /// `postgres://` or `postgresql://` (a libpq connection URL).
    Postgres(String),
}

impl StoreUrl {
    pub fn parse(url: &str) -> Result<StoreUrl, StoreError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(StoreError::Url(format!(
                    "{url:?} names no file: use sqlite://FILE, e.g. {DEFAULT_STORE}"
                )));
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(url.to_owned()));
        }
        Err(StoreError::Url(format!(
            "{url:?} is not a store URL: use sqlite://FILE (e.g. {DEFAULT_STORE}) or postgres://USER:PASSWORD@HOST/DATABASE"
        )))
    }
}

impl fmt::Display for StoreUrl {
    /// The URL without a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            StoreUrl::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

/// `postgres://user:secret@host/db` as `postgres://user:***@host/db`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some(split) => split,
        None => return url.to_owned(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// A value read from or bound into a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Value {
    pub fn int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// A claimed target's row and current versions, or `None` while another
/// collector holds it.
pub type Claimed = Option<(TargetRow, Vec<OpenVersion>)>;

/// An agent's record, found by [`Store::agent_record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRecord {
    /// The record's name, to claim it by.
    pub name: String,
    /// The record was the address's, and has just become the agent's.
    pub adopted: bool,
}

/// What became of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Committed,
    /// The store no longer holds the cursor the write continues from:
    /// another collector took the target. Nothing was written.
    Lost,
}

impl Outcome {
    /// A write refused by the compare and set of the target's cursor.
    fn lost(target_id: i64, target_exists: bool) -> Outcome {
        tracing::warn!(
            target_id,
            exists = target_exists,
            "the stored cursor moved under this collector; its write is dropped"
        );
        Outcome::Lost
    }
}

/// Writes ready to commit (see [`Store::commit_batch`]): for PostgreSQL,
/// with their new rows encoded for COPY already, so that whoever makes the
/// batch does the encoding rather than the commit, while the server waits.
pub struct Batch {
    writes: Vec<Write>,
    /// PostgreSQL's encoding of each write, in their order (empty for
    /// SQLite, which binds the rows as it inserts them).
    copies: Vec<postgres::Copies>,
}

impl Batch {
    /// The batch of `writes` for the store at `url`.
    pub fn new(url: &StoreUrl, writes: Vec<Write>) -> Batch {
        let copies = match url {
            StoreUrl::Sqlite(_) => Vec::new(),
            StoreUrl::Postgres(_) => writes.iter().map(postgres::Copies::of).collect(),
        };
        Batch { writes, copies }
    }

    pub fn writes(&self) -> &[Write] {
        &self.writes
    }

    pub fn into_writes(self) -> Vec<Write> {
        self.writes
    }

    /// Keeps the writes marked `true` in `kept` (one mark per write, in
    /// order).
    pub fn keep(&mut self, kept: &[bool]) {
        keep_marked(&mut self.writes, kept);
        if !self.copies.is_empty() {
            keep_marked(&mut self.copies, kept);
        }
    }
}

/// Keeps the items of `items` marked `true` in `kept` (one mark per item,
/// in order).
pub fn keep_marked<T>(items: &mut Vec<T>, kept: &[bool]) {
    let mut marks = kept.iter();
    items.retain(|_| *marks.next().expect("a mark per item"));
}

/// What `--retain` removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub versions: u64,
    pub events: u64,
    pub gaps: u64,
}

/// A store's failure, worded for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("bad --store: {0}")]
    Url(String),
    #[error("{store}: {problem}")]
    Open { store: String, problem: String },
    #[error("{store}: the database has schema version {found}, newer than this routewatch knows ({known}); use a newer routewatch")]
    TooNew {
        store: String,
        found: i64,
        known: i64,
    },
    /// Versions a collector holds current are gone from the store (rows
    /// removed by hand): its write is refused, nothing is written.
    #[error("target {target_id}: {missing} versions this collector holds current are missing from the store (were rows deleted by hand?); restart the collector to reload the target from the store")]
    MissingVersions { target_id: i64, missing: i64 },
    /// A query's column that is not read into a [`Value`] (PostgreSQL).
    #[error("query column {column:?}: {problem}")]
    Column { column: String, problem: String },
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {}", crate::error::chain(.0))]
    Postgres(#[from] tokio_postgres::Error),
}

/// An open store.
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(Box<postgres::PgStore>),
}

impl Store {
    /// Opens (creating if needed) the store and brings its schema up to
    /// date.
    pub async fn open(url: &StoreUrl) -> Result<Store, StoreError> {
        Ok(match url {
            StoreUrl::Sqlite(path) => {
                let path = path.clone();
                Store::Sqlite(blocking(move || sqlite::SqliteStore::open(&path))?)
            }
            StoreUrl::Postgres(url) => {
                Store::Postgres(Box::new(postgres::PgStore::open(url).await?))
            }
        })
    }

    /// Opens an existing store for reading only: a read-only SQLite
    /// connection, or a PostgreSQL session whose every transaction is read
    /// only. Nothing is created or migrated; a store whose schema is not
    /// this routewatch's is refused in words.
    pub async fn open_read_only(url: &StoreUrl) -> Result<Store, StoreError> {
        Ok(match url {
            StoreUrl::Sqlite(path) => {
                let path = path.clone();
                Store::Sqlite(blocking(move || {
                    sqlite::SqliteStore::open_read_only(&path)
                })?)
            }
            StoreUrl::Postgres(url) => {
                Store::Postgres(Box::new(postgres::PgStore::open_read_only(url).await?))
            }
        })
    }

    /// A token cancelled when the store's connection ends (PostgreSQL;
    /// none for SQLite, which has no connection to lose).
    pub fn ended(&self) -> Option<tokio_util::sync::CancellationToken> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(s) => Some(s.ended()),
        }
    }

    /// Whether the store's connection is gone (PostgreSQL; it is opened
    /// again, and every claim with it).
    pub fn is_closed(&self) -> bool {
        match self {
            Store::Sqlite(_) => false,
            Store::Postgres(s) => s.is_closed(),
        }
    }

    /// Makes this process the store's only collector (SQLite; PostgreSQL
    /// shares targets among collectors by claims instead).
    pub fn lock_for_collecting(&mut self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.lock_for_collecting(),
            Store::Postgres(_) => Ok(()),
        }
    }

    /// Whether several collectors may share this store.
    pub fn shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// Takes the target named `name` (the address dialled) for this
    /// collector, creating its row on first sight: its row and current
    /// versions, or `None` while another collector holds it.
    pub async fn claim(
        &mut self,
        name: &str,
    ) -> Result<Option<(TargetRow, Vec<OpenVersion>)>, StoreError> {
        match self {
            Store::Sqlite(s) => blocking(|| s.claim(name)).map(Some),
            Store::Postgres(s) => s.claim(name).await,
        }
    }

    /// The record of the agent whose identity is `agent` (`AGENT_ID/NETNS`),
    /// reached at `address`: found by the identity; else the record of
    /// `address` that no agent has claimed yet (one stored before
    /// identities), which becomes the agent's; else a new record named by
    /// the identity. Claim it by its name ([`Store::claim_many`]).
    pub async fn agent_record(
        &mut self,
        agent: &str,
        address: &str,
    ) -> Result<AgentRecord, StoreError> {
        match self {
            Store::Sqlite(s) => blocking(|| s.agent_record(agent, address)),
            Store::Postgres(s) => s.agent_record(agent, address).await,
        }
    }

    /// Notes that the target `target_id`, which this collector holds, was
    /// reached at `address` at `now` (`targets.address` and
    /// `target_addresses`): the address it was reached at before, when
    /// that was another.
    pub async fn note_address(
        &mut self,
        target_id: i64,
        address: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        match self {
            Store::Sqlite(s) => blocking(|| s.note_address(target_id, address, now)),
            Store::Postgres(s) => s.note_address(target_id, address, now).await,
        }
    }

    /// Takes every target of `names` that no other collector holds, as
    /// [`Store::claim`] does, in a few round trips for all of them: what
    /// each name got, in the order of `names`.
    pub async fn claim_many(&mut self, names: &[String]) -> Result<Vec<Claimed>, StoreError> {
        match self {
            Store::Sqlite(s) => {
                blocking(|| names.iter().map(|name| s.claim(name).map(Some)).collect())
            }
            Store::Postgres(s) => s.claim_many(names).await,
        }
    }

    /// Who holds each target another collector holds, by target name: a
    /// line naming the holder (its application_name, which a collector
    /// sets to `routewatch on HOST (pid N)`, its backend and address).
    /// Empty for SQLite, which one collector holds whole.
    pub async fn holders(&mut self) -> Result<HashMap<String, String>, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(HashMap::new()),
            Store::Postgres(s) => s.holders().await,
        }
    }

    /// Gives the target up (another collector may take it).
    pub async fn release(&mut self, target_id: i64) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(_) => Ok(()),
            Store::Postgres(s) => s.release(target_id).await,
        }
    }

    /// Writes `writes` (several targets' writes may share one transaction;
    /// each one is all or nothing). Outcomes in the order of `writes`.
    pub async fn commit(&mut self, writes: &[Write]) -> Result<Vec<Outcome>, StoreError> {
        match self {
            Store::Sqlite(s) => blocking(|| s.commit(writes)),
            Store::Postgres(s) => s.commit(writes).await,
        }
    }

    /// [`Store::commit`] of a batch made for this store.
    pub async fn commit_batch(&mut self, batch: &Batch) -> Result<Vec<Outcome>, StoreError> {
        match self {
            Store::Postgres(s) if batch.copies.len() == batch.writes.len() => {
                s.commit_encoded(&batch.writes, &batch.copies).await
            }
            _ => self.commit(&batch.writes).await,
        }
    }

    /// Removes closed versions, log rows and gaps that ended before
    /// `before` (nanoseconds since the epoch).
    pub async fn prune(&mut self, before: i64) -> Result<Pruned, StoreError> {
        match self {
            Store::Sqlite(s) => blocking(|| s.prune(before)),
            Store::Postgres(s) => s.prune(before).await,
        }
    }

    /// Runs a read-only query written with `?` placeholders.
    pub async fn select(
        &mut self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        let mut rows = Vec::new();
        self.for_each(sql, params, |row| {
            rows.push(row.to_vec());
            Ok::<_, StoreError>(())
        })
        .await?;
        Ok(rows)
    }

    /// Runs a read-only query written with `?` placeholders, calling `f`
    /// with each row as it comes from the database: the rows are never
    /// held together, whatever their number. `f`'s error ends the query.
    pub async fn for_each<E: From<StoreError>>(
        &mut self,
        sql: &str,
        params: &[Value],
        mut f: impl FnMut(&[Value]) -> Result<(), E>,
    ) -> Result<(), E> {
        match self {
            Store::Sqlite(s) => blocking(|| s.for_each(sql, params, &mut f)),
            Store::Postgres(s) => s.for_each(sql, params, &mut f).await,
        }
    }
}

/// A store read by a routewatch whose schema is another's: refused, with
/// what to do.
pub(crate) fn check_read_only_version(store: String, found: i64) -> Result<(), StoreError> {
    if found > schema::VERSION {
        return Err(StoreError::TooNew {
            store,
            found,
            known: schema::VERSION,
        });
    }
    if found < schema::VERSION {
        return Err(StoreError::Open {
            store,
            problem: format!(
                "the database has schema version {found}, older than this routewatch's ({}); it is opened read only, so run this routewatch's collect on it once to bring it up to date",
                schema::VERSION
            ),
        });
    }
    Ok(())
}

/// Runs SQLite's blocking calls without stalling the other tasks.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        assert_eq!(
            StoreUrl::parse(DEFAULT_STORE).unwrap(),
            StoreUrl::Sqlite("routewatch.db".into())
        );
        assert_eq!(
            StoreUrl::parse("sqlite:///var/lib/rw.db").unwrap(),
            StoreUrl::Sqlite("/var/lib/rw.db".into())
        );
        assert!(matches!(
            StoreUrl::parse("postgresql://u:p@h/db").unwrap(),
            StoreUrl::Postgres(_)
        ));
        let err = StoreUrl::parse("mysql://x").unwrap_err().to_string();
        assert!(err.contains("sqlite://FILE"), "{err}");
        assert!(StoreUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn passwords_are_not_shown() {
        let url = StoreUrl::parse("postgres://rw:secret@db:5432/routewatch").unwrap();
        assert_eq!(url.to_string(), "postgres://rw:***@db:5432/routewatch");
        let url = StoreUrl::parse("postgres://db/routewatch").unwrap();
        assert_eq!(url.to_string(), "postgres://db/routewatch");
    }
}
