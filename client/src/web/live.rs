//! Changes as they are stored: the page lists the latest, and a stream of
//! server-sent events carries each change the collector stores after it,
//! with the same filters as the host page.
//!
//! New rows are found by the targets' stored cursors: a target whose
//! cursor moved has new log rows up to it, in stream order. (The log's
//! times are the agents', so a late target's rows may be older than rows
//! already shown: a time cursor would miss them.) A target that appears
//! after the page opened (a host collect began to follow) is followed from
//! its first row when the page's hosts name it (no hosts: every host).
//!
//! Each change carries who made it (`changed_by`, as `tail -o json` spells
//! it, as far as the store knows it: an add's from the version it opened, a
//! delete's from its log row) and a reconcile's `reason`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use routewatch_proto::v1::{event, Action, Change, Event, Origin};
use serde_json::{json, Value as Json};

use super::attribution::{self, Attribution};
use super::html::{self, esc};
use super::page::{flags, question, Page, Params};
use super::pool::Pool;
use crate::printer::{event_json, TimeText};
use crate::query::narrow::Narrowed;
use crate::query::row::Row;
use crate::query::targets::{self, Target};
use crate::query::version::{self, Version};
use crate::query::Question;
use crate::store::{Store, Value};
use crate::ClientError;

/// Changes the page opens with.
const RECENT: i64 = 50;
/// How often the store is asked for new rows.
const POLL: Duration = Duration::from_secs(1);
/// Rows sent for one target at one poll at most (a burst beyond is
/// summarised by a `skipped` event; the history pages have it all).
const BURST: i64 = 1000;

/// What a live view keeps: its hosts and filters.
struct Watch {
    /// The hosts the page names (none: every host).
    wanted: Vec<String>,
    /// The targets followed, those of `wanted` the store held when last
    /// looked at.
    targets: Vec<Target>,
    narrowed: Narrowed,
}

impl Watch {
    async fn new(store: &mut Store, params: &Params) -> Result<(Watch, Vec<String>), ClientError> {
        let mut words = vec!["routes".to_owned()];
        words.extend(flags(params, &super::host::FILTERS));
        let Question::Routes(args) = question(&words)?.command else {
            unreachable!("the words ask `routes`")
        };
        let narrowed = Narrowed::new(&args.filter)?;
        let all = targets::load(store).await?;
        let mut notes = Vec::new();
        let wanted: Vec<String> = match params.get("host") {
            "" => Vec::new(),
            h => h.split(',').map(|s| s.trim().to_owned()).collect(),
        };
        let chosen: Vec<Target> = targets::chosen(&all, &wanted, &mut notes)?
            .into_iter()
            .cloned()
            .collect();
        Ok((
            Watch {
                wanted,
                targets: chosen,
                narrowed,
            },
            super::page::note_lines(&notes),
        ))
    }

    /// Follows the targets of `ids` (the store's, now) that were not there
    /// before and that the page's hosts name.
    async fn add_new(
        &mut self,
        store: &mut Store,
        ids: impl Iterator<Item = i64>,
        known: &HashMap<i64, (String, i64)>,
    ) -> Result<(), ClientError> {
        let mut ids = ids.filter(|id| !known.contains_key(id)).peekable();
        if ids.peek().is_none() {
            return Ok(());
        }
        let all = targets::load(store).await?;
        let chosen = targets::chosen(&all, &self.wanted, &mut std::io::sink())?;
        for t in chosen {
            if !self.targets.iter().any(|f| f.id == t.id) {
                self.targets.push(t.clone());
            }
        }
        Ok(())
    }

    fn label(&self, id: i64) -> &str {
        self.targets
            .iter()
            .find(|t| t.id == id)
            .map_or("", |t| t.label())
    }

    /// Rows of `events e JOIN versions v` as the lines `tail -o json`
    /// prints, those the filters keep.
    fn lines(&self, rows: &[Vec<Value>]) -> Result<Vec<Json>, ClientError> {
        let mut time = TimeText::default();
        let mut out = Vec::new();
        for row in rows {
            let r = Row(row);
            let v = Version::read(&row[6..])?;
            if !self.narrowed.keeps(&v) {
                continue;
            }
            let add = r.int(4)? == Action::Add as i64;
            // An add's maker is its version's; a delete's is on its log row.
            let by = if add {
                Attribution::read(&v, &row[6 + version::COLUMN_COUNT..])?
            } else {
                Attribution::of_delete(&row[6 + version::COLUMN_COUNT + 3..])?
            };
            let e = Event {
                stream_id: r.text(1)?,
                seq: r.int(2)? as u64,
                time_unix_nano: r.int(3)?,
                netns: v.netns.clone(),
                kind: Some(event::Kind::Change(Change {
                    action: Action::try_from(r.int(4)? as i32).unwrap_or(Action::Add) as i32,
                    origin: Origin::try_from(r.int(5)? as i32).unwrap_or(Origin::Notification)
                        as i32,
                    key: v.key.clone(),
                    object: Some(v.object.clone()),
                    reason: by.reason.clone().unwrap_or_default(),
                    ..Change::default()
                })),
            };
            let mut line = Vec::new();
            if event_json(&mut line, &mut time, self.label(v.target_id), &e) {
                let mut json: Json = serde_json::from_slice(&line)
                    .map_err(|e| ClientError::Record(e.to_string()))?;
                if let (Some(by), Some(m)) = (by.object(), json.as_object_mut()) {
                    m.insert("changed_by".into(), by);
                }
                out.push(json);
            }
        }
        Ok(out)
    }
}

/// The log's rows with their versions.
fn select(condition: &str) -> String {
    format!(
        "SELECT e.target_id, e.stream_id, e.seq, e.time, e.action, e.origin, {}, {},
             e.changed_by, e.changed_by_pid, e.changed_by_comm, e.changed_by_pod, e.reason
         FROM events e JOIN versions v ON v.target_id = e.target_id AND v.vid = e.vid
         {} WHERE {condition}",
        version::COLUMNS,
        attribution::COLUMNS,
        attribution::JOIN
    )
}

pub async fn page(store: &mut Store, params: &Params, _now: i64) -> Result<Page, ClientError> {
    let (watch, notes) = Watch::new(store, params).await?;
    let refs: Vec<&Target> = watch.targets.iter().collect();
    let mut rows = Vec::new();
    if !refs.is_empty() {
        let (list, mut values) = targets::ids(&refs);
        values.push(Value::Int(RECENT));
        rows = store
            .select(
                &format!(
                    "{} ORDER BY e.time DESC, e.seq DESC LIMIT ?",
                    select(&format!("e.target_id IN ({list})"))
                ),
                &values,
            )
            .await?;
        rows.reverse();
    }
    let lines = watch.lines(&rows)?;
    let mut body = String::from("<form method=\"get\" class=\"filters\">");
    body.push_str(&html::input(
        "host",
        "Host",
        params.get("host"),
        "every host",
    ));
    for (name, label, hint) in [
        ("family", "Family", "inet, inet6"),
        ("table", "Table", "main"),
        ("proto", "Protocol", "static"),
        ("within", "Within", "10.0.0.0/8"),
        ("dev", "Device", "eth0"),
    ] {
        body.push_str(&html::input(name, label, params.get(name), hint));
    }
    body.push_str("<button type=\"submit\">Follow</button></form>");
    body.push_str("<p class=\"count\"><span id=\"live-state\">connecting…</span></p>");
    let cells: Vec<Vec<String>> = lines.iter().map(row_cells).collect();
    body.push_str(&html::table(
        "live",
        &["Time", "Host", "Action", "Changed by", "Change"],
        &cells,
    ));
    Ok(Page {
        active: "live",
        title: "Live".into(),
        notes,
        html: body,
        json: json!({ "changes": lines }),
    })
}

/// A change's cells (the script builds the same from each event).
fn row_cells(l: &Json) -> Vec<String> {
    let mut by = by_text(&l["changed_by"]);
    if let Some(reason) = l["reason"].as_str() {
        if !by.is_empty() {
            by.push(' ');
        }
        by.push_str(&format!("({reason})"));
    }
    vec![
        esc(l["time"].as_str().unwrap_or("")),
        esc(l["host"].as_str().unwrap_or("")),
        esc(l["action"].as_str().unwrap_or("")),
        esc(&by),
        format!(
            "<code>{}</code>",
            esc(&super::page::describe(
                l,
                &[
                    "time",
                    "host",
                    "action",
                    "origin",
                    "seq",
                    "stream_id",
                    "netns",
                    "key",
                    "object",
                    "family",
                    "changed_by",
                    "reason"
                ]
            ))
        ),
    ]
}

/// Who made a change, from its `changed_by` object, as the other pages
/// show it (`ip[4242]`, `kernel`, `kubelet[812] pod <uid>`, `port 77
/// (exited)`); the script spells it alike.
fn by_text(by: &Json) -> String {
    if by["kernel"] == true {
        return "kernel".into();
    }
    if let (Some(comm), Some(pid)) = (by["comm"].as_str(), by["pid"].as_i64()) {
        let mut s = format!("{comm}[{pid}]");
        if let Some(pod) = by["pod_uid"].as_str() {
            s.push_str(&format!(" pod {pod}"));
        }
        return s;
    }
    match (by["port_id"].as_i64(), by["how"].as_str()) {
        (Some(port), Some("exited")) => format!("port {port} (exited)"),
        (Some(port), _) => format!("port {port}"),
        _ => String::new(),
    }
}

/// The stream of changes stored from now on, one event (`change`, its
/// data a line of `tail -o json`) per change.
pub async fn events(
    pool: Arc<Pool>,
    params: Params,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ClientError> {
    let (watch, positions) = {
        let mut store = pool.get().await?;
        let (watch, _) = Watch::new(&mut store, &params).await?;
        let positions = positions(&mut store).await?;
        (watch, positions)
    };
    let state = (pool, watch, positions);
    let stream = futures::stream::unfold(state, |(pool, mut watch, mut seen)| async move {
        tokio::time::sleep(POLL).await;
        let out = match poll(&pool, &mut watch, &mut seen).await {
            Ok(lines) => lines
                .into_iter()
                .map(|l| Ok(SseEvent::default().event("change").data(l.to_string())))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "live: cannot read the store");
                vec![Ok(SseEvent::default().event("problem").data(e.to_string()))]
            }
        };
        Some((futures::stream::iter(out), (pool, watch, seen)))
    });
    use futures::StreamExt;
    Ok(Sse::new(stream.flatten()).keep_alive(KeepAlive::default()))
}

/// Every target's stored cursor.
async fn positions(store: &mut Store) -> Result<HashMap<i64, (String, i64)>, ClientError> {
    let rows = store
        .select("SELECT id, stream_id, seq FROM targets", &[])
        .await?;
    rows.iter()
        .map(|r| {
            let r = Row(r);
            Ok((r.int(0)?, (r.text(1)?, r.int(2)?)))
        })
        .collect()
}

/// The changes stored since `seen`, which moves on.
async fn poll(
    pool: &Pool,
    watch: &mut Watch,
    seen: &mut HashMap<i64, (String, i64)>,
) -> Result<Vec<Json>, ClientError> {
    let mut store = pool.get().await?;
    let now = positions(&mut store).await?;
    watch.add_new(&mut store, now.keys().copied(), seen).await?;
    let mut lines = Vec::new();
    for t in &watch.targets {
        let Some((stream, seq)) = now.get(&t.id) else {
            continue;
        };
        let from = match seen.get(&t.id) {
            Some((s, n)) if s == stream => *n,
            // A new stream (the agent restarted): its log from the start.
            _ => 0,
        };
        if *seq <= from || stream.is_empty() {
            continue;
        }
        let rows = store
            .select(
                &format!(
                    "{} ORDER BY e.seq LIMIT ?",
                    select("e.target_id = ? AND e.stream_id = ? AND e.seq > ? AND e.seq <= ?")
                ),
                &[
                    Value::Int(t.id),
                    Value::Text(stream.clone()),
                    Value::Int(from),
                    Value::Int(*seq),
                    Value::Int(BURST),
                ],
            )
            .await?;
        lines.extend(watch.lines(&rows)?);
    }
    *seen = now;
    Ok(lines)
}
