//! What one transaction writes for one target: the rows a batch of events
//! makes, and the cursor they bring the target to.

use std::sync::Arc;

use super::columns::{Attribution, Columns};

/// A position in an agent's stream as stored: `stream_id` `""` and `seq` 0
/// before the first complete snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredCursor {
    pub stream_id: Arc<str>,
    pub seq: i64,
}

impl StoredCursor {
    /// Whether the target ever held a complete state.
    pub fn is_set(&self) -> bool {
        !self.stream_id.is_empty()
    }
}

/// A target's row as loaded at the start of following it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRow {
    pub id: i64,
    /// The address dialled.
    pub name: String,
    /// The host name the agent reported ('' before it did).
    pub host: String,
    pub cursor: StoredCursor,
    pub next_vid: i64,
    /// When the last event or heartbeat was stored.
    pub last_seen: Option<i64>,
}

/// A version that is current: what the ledger needs to close or keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenVersion {
    pub netns: String,
    pub key: String,
    pub vid: i64,
    pub digest: i64,
    /// `versions.kind` and the encoded object, for the ledger's digests.
    pub kind: i64,
    pub object: Vec<u8>,
}

/// How a version ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    pub valid_to: i64,
    pub stream_id: Arc<str>,
    pub seq: i64,
    /// The API's origin of the change that ended it, or
    /// [`super::schema::CLOSED_BY_RESYNC`].
    pub origin: i64,
}

/// A new row of `versions` (closed already when it ended within the same
/// write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRow {
    pub vid: i64,
    pub netns: String,
    pub key: String,
    pub kind: i64,
    pub family: i64,
    pub table_id: Option<i64>,
    pub dst_len: Option<i64>,
    pub dst_lo: Option<Vec<u8>>,
    pub dst_hi: Option<Vec<u8>>,
    /// The encoded `Route` or `Nexthop`.
    pub object: Vec<u8>,
    pub digest: i64,
    pub valid_from: i64,
    pub opened_stream: Arc<str>,
    pub opened_seq: i64,
    pub opened_origin: i64,
    pub close: Option<Close>,
    /// What the SQL views show of it.
    pub columns: Columns,
}

/// An existing version (written by an earlier transaction) that ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseRow {
    pub vid: i64,
    pub close: Close,
}

/// A row of the raw log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub stream_id: Arc<str>,
    pub seq: i64,
    pub time: i64,
    /// The API's action: 1 add, 2 delete.
    pub action: i64,
    /// The API's origin: 1 notification, 3 reconcile.
    pub origin: i64,
    /// The version the change opened (add) or closed (delete).
    pub vid: i64,
    /// Who made a delete (an add's is on the version it opens).
    pub by: Option<Box<Attribution>>,
}

/// Where the record is not exact: between `from` (the last position stored
/// before a resync, and when it was stored) and `to` (the Sync after it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapRow {
    pub from_time: Option<i64>,
    pub from: StoredCursor,
    pub to_time: i64,
    pub to: StoredCursor,
    /// The API's ResyncCause.
    pub cause: i64,
    pub reason: String,
}

/// Everything one transaction writes for one target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Write {
    pub target_id: i64,
    /// The cursor the store must still hold (compare and set): when it does
    /// not, another collector took the target and this write is refused.
    pub expect: StoredCursor,
    pub cursor: StoredCursor,
    pub host: String,
    pub next_vid: i64,
    pub last_seen: Option<i64>,
    pub opens: Vec<VersionRow>,
    pub closes: Vec<CloseRow>,
    pub events: Vec<EventRow>,
    pub gaps: Vec<GapRow>,
    /// Complete snapshots this write stores (not a row: for the metrics).
    pub snapshots: u64,
}

impl Write {
    /// Rows it writes (not counting the target's own).
    pub fn rows(&self) -> usize {
        self.opens.len() + self.closes.len() + self.events.len() + self.gaps.len()
    }
}
