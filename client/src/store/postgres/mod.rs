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
//! Each [`Write`](super::Write) is one transaction, so that one target's
//! refused write does not undo the others'. Its new rows go in by binary
//! COPY, its closes by one UPDATE; the statements are prepared once per
//! connection.
//!
//! This build connects without TLS: a URL with `sslmode=require` (or
//! `verify-ca`, `verify-full`) is refused with a message saying so.
//!
//! # Layout
//!
//! - `connect.rs`: the URL checked, the connection made, failures in words.
//! - `pg_store.rs`: [`PgStore`]: migrating, claiming, pruning, queries.
//! - `commit.rs`: one target's write.
//! - `value.rs`: [`Value`](super::Value) to and from PostgreSQL's types.

mod commit;
mod connect;
mod pg_store;
mod value;

pub use pg_store::PgStore;
