//! One stored version of a route or nexthop object, and a host's table at
//! a moment.

use prost::Message;
use routewatch_proto::v1::{change, event, Action, Change, Event, Nexthop, Origin, Route, Rule};

use super::row::Row;
use super::targets::{self, Target};
use crate::printer::origin_name;
use crate::store::schema::{CLOSED_BY_RESYNC, KIND_NEXTHOP, KIND_ROUTE, KIND_RULE};
use crate::store::{Store, Value};
use crate::ClientError;

/// The columns [`Version::read`] reads, of `versions v`.
pub const COLUMNS: &str = "v.target_id, v.vid, v.netns, v.key, v.kind, v.object, v.valid_from, \
     v.opened_stream, v.opened_seq, v.opened_origin, \
     v.valid_to, v.closed_stream, v.closed_seq, v.closed_origin";

/// A position in a stream, and the origin of the change there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub time: i64,
    pub stream_id: String,
    pub seq: i64,
    /// The API's origin, or [`CLOSED_BY_RESYNC`].
    pub origin: i64,
}

impl Mark {
    /// How the version opened or closed, in words: notification, dump,
    /// reconcile or resync.
    pub fn how(&self) -> &'static str {
        if self.origin == CLOSED_BY_RESYNC {
            "resync"
        } else {
            origin_name(self.origin as i32)
        }
    }
}

/// One version of a route or nexthop object.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub target_id: i64,
    pub vid: i64,
    pub netns: String,
    pub key: String,
    pub object: change::Object,
    pub opened: Mark,
    /// None while current.
    pub closed: Option<Mark>,
}

impl Version {
    /// A row of [`COLUMNS`].
    pub fn read(row: &[Value]) -> Result<Version, ClientError> {
        let r = Row(row);
        let vid = r.int(1)?;
        let bad = |e: prost::DecodeError| {
            ClientError::Record(format!("version {vid} does not decode: {e}"))
        };
        let object = match r.int(4)? {
            KIND_ROUTE => change::Object::Route(Route::decode(r.bytes(5)?).map_err(bad)?),
            KIND_NEXTHOP => change::Object::Nexthop(Nexthop::decode(r.bytes(5)?).map_err(bad)?),
            KIND_RULE => change::Object::Rule(Rule::decode(r.bytes(5)?).map_err(bad)?),
            kind => {
                return Err(ClientError::Record(format!(
                    "version {vid} is of kind {kind}, which this routewatch does not know"
                )))
            }
        };
        let closed = match r.opt_int(10)? {
            None => None,
            Some(time) => Some(Mark {
                time,
                stream_id: r.opt_text(11)?.unwrap_or_default(),
                seq: r.opt_int(12)?.unwrap_or_default(),
                origin: r.opt_int(13)?.unwrap_or_default(),
            }),
        };
        Ok(Version {
            target_id: r.int(0)?,
            vid,
            netns: r.text(2)?,
            key: r.text(3)?,
            object,
            opened: Mark {
                time: r.int(6)?,
                stream_id: r.text(7)?,
                seq: r.int(8)?,
                origin: r.int(9)?,
            },
            closed,
        })
    }

    /// The version as `show` receives an object: an add of a snapshot,
    /// observed when the version began, at the position that opened it.
    pub fn event(&self) -> Event {
        Event {
            stream_id: self.opened.stream_id.clone(),
            seq: self.opened.seq as u64,
            time_unix_nano: self.opened.time,
            netns: self.netns.clone(),
            kind: Some(event::Kind::Change(Change {
                action: Action::Add as i32,
                origin: Origin::Dump as i32,
                key: self.key.clone(),
                object: Some(self.object.clone()),
            })),
        }
    }
}

/// The versions of `targets` valid at `t`: begun at or before it and not
/// ended by then.
pub async fn at(
    store: &mut Store,
    targets: &[&Target],
    t: i64,
) -> Result<Vec<Version>, ClientError> {
    at_where(store, targets, t, "TRUE", Vec::new()).await
}

/// Like [`at`], of the versions that also meet `condition` (SQL on
/// `versions v`, with `condition_params` for its placeholders).
pub async fn at_where(
    store: &mut Store,
    targets: &[&Target],
    t: i64,
    condition: &str,
    condition_params: Vec<Value>,
) -> Result<Vec<Version>, ClientError> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let (sql, params) = at_sql(targets, t, condition, condition_params, "");
    let rows = store.select(&sql, &params).await?;
    rows.iter().map(|r| Version::read(r)).collect()
}

/// One page of [`at_where`] for one target: at most `limit` of its
/// versions valid at `t` that meet `condition`, after version `after_vid`,
/// in version order. A host of a million routes is read a page at a time
/// along its primary key (`+v.valid_from` keeps the planners off the time
/// index, which would read every version begun before `t` to sort them).
pub async fn page_where(
    store: &mut Store,
    target: &Target,
    t: i64,
    condition: &str,
    condition_params: Vec<Value>,
    after_vid: i64,
    limit: i64,
) -> Result<Vec<Version>, ClientError> {
    let (sql, mut params) = at_sql(
        &[target],
        t,
        condition,
        condition_params,
        " AND v.vid > ? ORDER BY v.target_id, v.vid LIMIT ?",
    );
    let sql = sql.replacen("v.valid_from <= ?", "+v.valid_from <= ?", 1);
    params.extend([Value::Int(after_vid), Value::Int(limit)]);
    let rows = store.select(&sql, &params).await?;
    rows.iter().map(|r| Version::read(r)).collect()
}

/// The query of the versions of `targets` valid at `t` that meet
/// `condition`, followed by `tail`.
fn at_sql(
    targets: &[&Target],
    t: i64,
    condition: &str,
    condition_params: Vec<Value>,
    tail: &str,
) -> (String, Vec<Value>) {
    let (list, mut params) = targets::ids(targets);
    let sql = format!(
        "SELECT {COLUMNS} FROM versions v
         WHERE v.target_id IN ({list}) AND v.valid_from <= ?
           AND (v.valid_to IS NULL OR v.valid_to > ?) AND ({condition}){tail}"
    );
    params.extend([Value::Int(t), Value::Int(t)]);
    params.extend(condition_params);
    (sql, params)
}
