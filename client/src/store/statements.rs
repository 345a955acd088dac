//! The statements both backends run alike, written once with `?`
//! placeholders (PostgreSQL's copy goes through
//! [`super::schema::numbered_placeholders`]). What differs is written in
//! each backend: SQLite inserts rows one by one, PostgreSQL copies them.

/// Created before anything else, so that the version can be read.
pub const CREATE_SCHEMA_VERSION: &str =
    "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)";
/// The version the database is at (0 when new).
pub const SCHEMA_VERSION: &str = "SELECT COALESCE(MAX(version), 0) FROM schema_version";
/// Records that a migration was applied.
pub const RECORD_MIGRATION: &str = "INSERT INTO schema_version (version) VALUES (?)";

/// A target's row, created on first sight.
pub const ADD_TARGET: &str = "INSERT INTO targets (name) VALUES (?) ON CONFLICT (name) DO NOTHING";
/// A target's row, by name: the columns [`super::plan::TargetRow`] needs.
pub const TARGET: &str =
    "SELECT id, host, stream_id, seq, next_vid, last_seen FROM targets WHERE name = ?";
/// The record of an agent (migration 4), by its identity: its name and
/// the address it was last reached at.
pub const AGENT_TARGET: &str = "SELECT name, address FROM targets WHERE agent_id = ?";
/// The record of an address that no agent has claimed yet (a record from
/// before identities, or of an agent that reports none) becomes the
/// record of the agent reached there: `(agent_id, address, name)`.
pub const ADOPT_TARGET: &str =
    "UPDATE targets SET agent_id = ?, address = ? WHERE name = ? AND agent_id IS NULL";
/// An agent's record, created on first sight: named by its identity
/// (`name`, `agent_id`, `address`).
pub const ADD_AGENT_TARGET: &str =
    "INSERT INTO targets (name, agent_id, address) VALUES (?, ?, ?) ON CONFLICT DO NOTHING";
/// The address a target was last reached at (migration 4).
pub const TARGET_ADDRESS: &str = "SELECT address FROM targets WHERE id = ?";
/// A target reached at an address: `(address, id)`.
pub const MOVE_TARGET: &str = "UPDATE targets SET address = ? WHERE id = ?";
/// Notes that a target was reached at an address: `(target_id, address,
/// now, now)`.
pub const NOTE_ADDRESS: &str =
    "INSERT INTO target_addresses (target_id, address, first_seen, last_seen) VALUES (?, ?, ?, ?)
     ON CONFLICT (target_id, address) DO UPDATE SET last_seen = excluded.last_seen,
         first_seen = COALESCE(target_addresses.first_seen, excluded.first_seen)";
/// A target's current versions (their objects too: the ledger's digests
/// are counted from them). `valid_until` says so as `valid_to IS NULL`
/// does, and keeps PostgreSQL to the partition of current versions.
pub const OPEN_VERSIONS: &str = "SELECT netns, key, vid, digest, kind, object
     FROM versions WHERE target_id = ? AND valid_until = 9223372036854775807";

/// Moves a target's cursor, only from the value the writer read (compare
/// and set): 0 rows when another collector moved it.
pub const MOVE_CURSOR: &str =
    "UPDATE targets SET host = ?, stream_id = ?, seq = ?, next_vid = ?, last_seen = ?,
         first_seen = COALESCE(first_seen, ?)
     WHERE id = ? AND stream_id = ? AND seq = ?";
/// Whether a target's row exists (telling a taken target from a removed one).
pub const TARGET_EXISTS: &str = "SELECT id FROM targets WHERE id = ?";

/// `--retain`: the readable columns of the versions [`PRUNE_VERSIONS`]
/// removes (run first).
pub const PRUNE_VERSION_COLUMNS: &str = "DELETE FROM version_columns WHERE EXISTS (
     SELECT 1 FROM versions v WHERE v.target_id = version_columns.target_id
         AND v.vid = version_columns.vid AND v.valid_to IS NOT NULL AND v.valid_to < ?)";
/// `--retain`: closed versions that ended before the cutoff.
pub const PRUNE_VERSIONS: &str = "DELETE FROM versions WHERE valid_to IS NOT NULL AND valid_to < ?";
/// `--retain`: log rows older than the cutoff.
pub const PRUNE_EVENTS: &str = "DELETE FROM events WHERE time < ?";
/// `--retain`: gaps that ended before the cutoff.
pub const PRUNE_GAPS: &str = "DELETE FROM gaps WHERE to_time < ?";
