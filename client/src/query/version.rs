//! One stored version of a route or nexthop object, and a host's table at
//! a moment.

use prost::Message;
use routewatch_proto::v1::{change, event, Action, Change, Event, Nexthop, Origin, Route, Rule};

use super::row::Row;
use super::targets::Target;
use crate::order;
use crate::printer::origin_name;
use crate::store::schema::{CLOSED_BY_RESYNC, KIND_NEXTHOP, KIND_ROUTE, KIND_RULE};
use crate::store::{Store, Value};
use crate::ClientError;

/// The columns [`Version::read`] reads, of `versions v`: who opened it,
/// from its `version_columns` row, and who ended it, from the log row at
/// the position that closed it (a delete's own attribution, or for an add
/// that replaced it, the new version's).
pub const COLUMNS: &str = "v.target_id, v.vid, v.netns, v.key, v.kind, v.object, v.valid_from, \
     v.opened_stream, v.opened_seq, v.opened_origin, \
     v.valid_to, v.closed_stream, v.closed_seq, v.closed_origin, \
     (SELECT c.changed_by FROM version_columns c \
      WHERE c.target_id = v.target_id AND c.vid = v.vid), \
     (SELECT c.reason FROM version_columns c \
      WHERE c.target_id = v.target_id AND c.vid = v.vid), \
     (SELECT CASE WHEN e.action = 1 THEN c.changed_by ELSE e.changed_by END \
      FROM events e LEFT JOIN version_columns c ON c.target_id = e.target_id AND c.vid = e.vid \
      WHERE e.target_id = v.target_id AND e.stream_id = v.closed_stream \
      AND e.seq = v.closed_seq), \
     (SELECT CASE WHEN e.action = 1 THEN c.reason ELSE e.reason END \
      FROM events e LEFT JOIN version_columns c ON c.target_id = e.target_id AND c.vid = e.vid \
      WHERE e.target_id = v.target_id AND e.stream_id = v.closed_stream \
      AND e.seq = v.closed_seq)";

/// How many cells [`COLUMNS`] reads: a query's own columns after them start
/// at this index.
pub const COLUMN_COUNT: usize = 18;

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
    /// Who asked for the change that opened it (`ip[4242]`, `kernel`),
    /// when the agent said.
    pub changed_by: Option<String>,
    /// Why a reconcile opened it.
    pub reason: Option<String>,
    /// Who asked for the change that ended it (a delete, or an add that
    /// replaced it), when the agent said.
    pub ended_by: Option<String>,
    /// Why a reconcile ended it.
    pub ended_reason: Option<String>,
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
            changed_by: r.opt_text(14)?,
            reason: r.opt_text(15)?,
            ended_by: r.opt_text(16)?,
            ended_reason: r.opt_text(17)?,
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
                ..Default::default()
            })),
        }
    }
}

/// The versions of `target` valid at `t`: begun at or before it and not
/// ended by then.
pub async fn at(store: &mut Store, target: &Target, t: i64) -> Result<Vec<Version>, ClientError> {
    let mut versions = Vec::new();
    at_each(store, target, t, "TRUE", Vec::new(), |v| {
        versions.push(v);
        Ok(())
    })
    .await?;
    Ok(versions)
}

/// `show`'s order ([`order::compare`]) as far as the database sorts it:
/// nexthop objects, rules, then routes by family, table in the kernel's
/// hash order (`id & 255`, then id) and destination (IPv4 by first address,
/// the longer prefix first; IPv6 by last address, the longer prefix first:
/// a prefix after every prefix inside it). What is left, routes of one
/// destination (TOS, metric) and the nexthop objects and rules among
/// themselves, is sorted by [`at_each`], one [`Group`] at a time.
const SHOW_ORDER: &str = "ORDER BY CASE v.kind WHEN 2 THEN 0 WHEN 3 THEN 1 ELSE 2 END,
     v.family, v.table_id % 256, v.table_id,
     CASE WHEN v.family = 2 THEN v.dst_hi ELSE v.dst_lo END, v.dst_len DESC";

/// Versions that [`SHOW_ORDER`] leaves unsorted among themselves.
#[derive(Debug, PartialEq, Eq)]
enum Group {
    Nexthops,
    Rules,
    Route(order::Destination),
}

impl Group {
    fn of(v: &Version) -> Group {
        match &v.object {
            change::Object::Nexthop(_) => Group::Nexthops,
            change::Object::Rule(_) => Group::Rules,
            change::Object::Route(r) => Group::Route(order::RoutePlace::of(r).destination()),
        }
    }
}

/// Calls `f` with each version of `target` valid at `t` that also meets
/// `condition` (SQL on `versions v`, with `condition_params` for its
/// placeholders), in `show`'s order (then by vid). The rows come sorted
/// from the database; what is held here is one [`Group`] at a time, so
/// that a table of any size costs the memory of its largest group.
pub async fn at_each(
    store: &mut Store,
    target: &Target,
    t: i64,
    condition: &str,
    condition_params: Vec<Value>,
    mut f: impl FnMut(Version) -> Result<(), ClientError>,
) -> Result<(), ClientError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM versions v
         WHERE v.target_id = ? AND v.valid_from <= ?
           AND v.valid_until > ? AND ({condition})
         {SHOW_ORDER}"
    );
    let mut params = vec![Value::Int(target.id), Value::Int(t), Value::Int(t)];
    params.extend(condition_params);
    let mut group: Vec<Version> = Vec::new();
    let mut flush = |group: &mut Vec<Version>| {
        group
            .sort_by(|x, y| order::compare(&x.event(), &y.event()).then_with(|| x.vid.cmp(&y.vid)));
        group.drain(..).try_for_each(&mut f)
    };
    store
        .for_each(&sql, &params, |row| {
            let v = Version::read(row)?;
            if group.first().is_some_and(|g| Group::of(g) != Group::of(&v)) {
                flush(&mut group)?;
            }
            group.push(v);
            Ok::<_, ClientError>(())
        })
        .await?;
    flush(&mut group)
}

/// One page of a target's versions valid at `t` that meet `condition`
/// (as [`at_each`] takes it): at most `limit` of them after version
/// `after_vid`, in version order. A host of a million routes is read a page
/// at a time along its primary key (`+v.valid_from` keeps the planners off
/// the time index, which would read every version begun before `t` to sort
/// them).
pub async fn page_where(
    store: &mut Store,
    target: &Target,
    t: i64,
    condition: &str,
    condition_params: Vec<Value>,
    after_vid: i64,
    limit: i64,
) -> Result<Vec<Version>, ClientError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM versions v
         WHERE v.target_id = ? AND +v.valid_from <= ?
           AND v.valid_until > ? AND ({condition})
           AND v.vid > ? ORDER BY v.target_id, v.vid LIMIT ?"
    );
    let mut params = vec![Value::Int(target.id), Value::Int(t), Value::Int(t)];
    params.extend(condition_params);
    params.extend([Value::Int(after_vid), Value::Int(limit)]);
    let rows = store.select(&sql, &params).await?;
    rows.iter().map(|r| Version::read(r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Queries read their own columns after [`COLUMNS`] at
    /// [`COLUMN_COUNT`]: the two must agree.
    #[test]
    fn column_count_counts_the_columns() {
        let (mut depth, mut columns) = (0, 1);
        for c in COLUMNS.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => columns += 1,
                _ => {}
            }
        }
        assert_eq!(columns, COLUMN_COUNT);
    }
}
