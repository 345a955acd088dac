//! The PostgreSQL backend: a fleet of collectors sharing one database and
//! its targets.
//!
//! A collector takes a target with a session-level advisory lock
//! (`pg_try_advisory_lock`, keyed by the target's id) on its own
//! connection, and keeps it while it follows the target. The lock belongs
//! to the connection: a collector whose connection dies (its process
//! killed, the network cut, the server restarted) loses all its targets at
//! once, and other collectors may claim them as soon as PostgreSQL notices.
//! A collector that holds on to its state after losing the lock is refused
//! at its next write anyway, by the compare and set of the cursor, and
//! writes nothing.
//!
//! A commit is one transaction, as with SQLite: a write refused by the
//! compare and set of its cursor writes nothing and leaves the other
//! targets' writes be (matching no row is no error), and a commit that
//! fails leaves nothing behind, so that it can be retried as is. New rows
//! go in by binary COPY, closes by one statement fed with arrays; the
//! statements are prepared once per connection.
//!
//! TLS to the server is libpq's: `sslmode`, `sslrootcert`, `sslcert` and
//! `sslkey` in the URL (see `tls.rs`).
//!
//! # Layout
//!
//! - `connect.rs`: the URL checked, the connection made, failures in words.
//! - `pg_store.rs`: [`PgStore`]: migrating, claiming, pruning, queries.
//! - `commit.rs`: one target's write.
//! - `tls.rs`: TLS to the server, with libpq's parameters.
//! - `value.rs`: [`Value`](super::Value) to and from PostgreSQL's types.

mod commit;
mod connect;
mod pg_store;
mod tls;
mod value;

pub use commit::Copies;
pub use pg_store::PgStore;
