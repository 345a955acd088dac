//! `--state-dir`: the agent continues its stream across restarts.
//!
//! Consumers hold cursors `(stream_id, seq)`. An agent that restarted with a
//! new stream would force every one of them through a full snapshot; with a
//! state dir it reloads its stream id, sequence number, table and recent
//! changes, dumps the kernel, and sends what changed while it was down as
//! ordinary changes (origin `reconcile`) continuing the same stream.
//!
//! Two files, both of checksummed records of the API's own encoding (each
//! an event as a field-1 record of a `SubscribeResponse`) behind a header
//! that names the format's version ([`crate::state_file`]):
//!
//! - `state.pb`: the table as adds at seq S, a Sync marker at S (its
//!   presence proves the file complete), then the journal's recent changes
//!   (seq <= S) so that consumers a little behind can still resume.
//!   Replaced atomically: written to `state.pb.tmp`, fsynced, renamed.
//! - `journal.log`: every change after S, appended with one write(2) per
//!   batch *before* any session can send it. A consumer can therefore never
//!   hold a cursor the log does not know, even if the agent is killed with
//!   SIGKILL at any instant (the page cache survives a process crash; an
//!   operating system crash may lose the unsynced tail, and then consumers
//!   ahead of it get an explicit resync). A torn last record is cut off.
//!
//! Anything else that does not read -- a checksum that does not match
//! anywhere in either file, a header of another format or version -- means
//! the files no longer say which changes the stream's numbers stand for:
//! continuing it could hand out a seq again for a different change. The
//! agent starts a new stream instead (every consumer resyncs), says what it
//! found where, counts it, and keeps the files aside as `*.discarded`.
//!
//! When the log grows past a bound the table is written to `state.pb` again
//! and the log restarts empty.
//!
//! `boot_id` records the kernel boot the files were written in. After a
//! reboot a non-empty log may have lost its unsynced tail -- changes that
//! consumers may already hold -- so the stream cannot be continued: the
//! agent starts a new one and every consumer resyncs explicitly.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use routewatch_proto::batch::record;
use routewatch_proto::v1::{self as api, event};

use crate::cause::Cause;
use crate::error::AgentError;
use crate::journal::{
    self, encode_snapshot, now_unix_nano, whole_responses, Core, Entry, Sink, StreamInfo,
};
use crate::labelled::unlabelled;
use crate::state::{Action, Change, Key, Object, Previous, Record, StateTable};
use crate::state_file::{self, Tail, Unusable, HEADER};

const STATE: &str = "state.pb";
const STATE_TMP: &str = "state.pb.tmp";
const LOG: &str = "journal.log";
const BOOT_ID: &str = "boot_id";
/// What files the agent could not use are renamed to end with.
const DISCARDED: &str = "discarded";
/// Rewrite `state.pb` once the log holds this much.
const COMPACT_AFTER: u64 = 64 << 20;
/// Most snapshot changes `state.pb` holds in one record.
const SNAPSHOT_RECORD: usize = 1024;

/// What a state dir held.
pub struct Recovered {
    pub info: StreamInfo,
    pub last_seq: u64,
    /// Each namespace's table, by name.
    pub tables: BTreeMap<Arc<str>, StateTable>,
    /// Recent changes, oldest first, ending at `last_seq`.
    pub recent: Vec<Entry>,
}

/// Why (part of) a state dir was not used. The label values of
/// `routewatch_state_dir_discarded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Discarded {
    /// A record the agent was killed while appending, cut off; the stream
    /// continues.
    TornTail,
    /// A record that does not read anywhere else, or files that disagree;
    /// a new stream.
    Damaged,
    /// Files of another format or version; a new stream.
    UnknownFormat,
    /// A log written before the machine rebooted; a new stream.
    Reboot,
    /// Files that could not be read, or appended to; a new stream.
    Unreadable,
}

impl Discarded {
    pub const ALL: [Discarded; 5] = [
        Discarded::TornTail,
        Discarded::Damaged,
        Discarded::UnknownFormat,
        Discarded::Reboot,
        Discarded::Unreadable,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Discarded::TornTail => "torn_tail",
            Discarded::Damaged => "damaged",
            Discarded::UnknownFormat => "unknown_format",
            Discarded::Reboot => "reboot",
            Discarded::Unreadable => "unreadable",
        }
    }
}

/// How often the state dir was (partly) discarded, by [`Discarded`].
#[derive(Debug, Default)]
pub struct StateDirStats {
    discarded: Mutex<BTreeMap<Discarded, u64>>,
}

impl StateDirStats {
    fn count(&self, why: Discarded) {
        *self
            .discarded
            .lock()
            .expect("state dir stats lock")
            .entry(why)
            .or_default() += 1;
    }

    /// Every reason, with how often (0 for those that never happened).
    pub fn discarded(&self) -> Vec<(Discarded, u64)> {
        let counts = self.discarded.lock().expect("state dir stats lock");
        Discarded::ALL
            .iter()
            .map(|&why| (why, counts.get(&why).copied().unwrap_or(0)))
            .collect()
    }
}

/// Why the files cannot continue the stream.
struct Refusal {
    why: Discarded,
    what: String,
}

impl Refusal {
    fn new(why: Discarded, what: impl Into<String>) -> Refusal {
        Refusal {
            why,
            what: what.into(),
        }
    }

    /// `file` cannot be used as it is.
    fn of(file: &str, unusable: Unusable) -> Refusal {
        match unusable {
            Unusable::Damaged(what) => {
                Refusal::new(Discarded::Damaged, format!("{file} is damaged: {what}"))
            }
            Unusable::UnknownFormat(what) => Refusal::new(
                Discarded::UnknownFormat,
                format!("{file} is not in a format this agent reads: {what}"),
            ),
        }
    }
}

/// An open state dir.
pub struct StateDir {
    dir: PathBuf,
    log: Arc<Mutex<Log>>,
    stats: Arc<StateDirStats>,
}

struct Log {
    file: File,
    bytes: u64,
    /// A write failed: the dir no longer describes the stream.
    broken: bool,
}

impl StateDir {
    /// Opens (creating) `dir` and recovers what it holds. A dir that does
    /// not describe a complete stream is emptied, with an error in the log:
    /// the agent then starts a new stream and its consumers resync.
    pub fn open(dir: &Path, netns: &str) -> Result<(StateDir, Option<Recovered>), AgentError> {
        let err = |step: &'static str| {
            let dir = dir.to_path_buf();
            move |source| AgentError::StateDir { dir, step, source }
        };
        fs::create_dir_all(dir).map_err(err("create"))?;
        let stats = Arc::new(StateDirStats::default());
        let boot = current_boot_id();
        let recovered = match check_boot(dir, &boot).and_then(|()| recover(dir, netns, &stats)) {
            Ok(r) => r,
            Err(Refusal { why, what }) => {
                stats.count(why);
                if matches!(why, Discarded::Reboot) {
                    let _ = fs::remove_file(dir.join(STATE));
                    let _ = fs::remove_file(dir.join(LOG));
                    tracing::error!(dir = %dir.display(), reason = %what, "state dir not continued; starting a new stream (consumers will resync)");
                } else {
                    // Kept for a post-mortem, out of the way of the next start.
                    for name in [STATE, LOG] {
                        let _ = fs::rename(dir.join(name), dir.join(format!("{name}.{DISCARDED}")));
                    }
                    tracing::error!(dir = %dir.display(), reason = %what, kept_as = %format!("{STATE}.{DISCARDED}, {LOG}.{DISCARDED}"), "state dir unusable; starting a new stream (consumers will resync)");
                }
                None
            }
        };
        fs::write(dir.join(BOOT_ID), &boot).map_err(err("write boot_id"))?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(LOG))
            .map_err(err("open journal.log"))?;
        let mut bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        if bytes == 0 {
            file.write_all(&HEADER).map_err(err("write journal.log"))?;
            bytes = HEADER.len() as u64;
        }
        let log = Log {
            file,
            bytes,
            broken: false,
        };
        let state_dir = StateDir {
            dir: dir.to_path_buf(),
            log: Arc::new(Mutex::new(log)),
            stats,
        };
        Ok((state_dir, recovered))
    }

    /// What was discarded, for the metrics.
    pub fn stats(&self) -> Arc<StateDirStats> {
        self.stats.clone()
    }

    /// The journal's sink: appends each batch to the log.
    pub fn sink(&self) -> Sink {
        let log = self.log.clone();
        let dir = self.dir.clone();
        let stats = self.stats.clone();
        Box::new(move |info: &StreamInfo, entries: &[Entry]| {
            let mut log = log.lock().expect("state dir log lock");
            if log.broken {
                return;
            }
            let mut buf = Vec::with_capacity(
                state_file::FRAME
                    + info.stream_record().len()
                    + entries.iter().map(Entry::record_len).sum::<usize>(),
            );
            for response in whole_responses(info, entries) {
                state_file::frame(&response, &mut buf);
            }
            match log.file.write_all(&buf) {
                Ok(()) => log.bytes += buf.len() as u64,
                Err(e) => {
                    // Keeping the files would let a restarted agent continue
                    // a stream with a hole in it; removing them makes the
                    // restart explicit (a new stream, consumers resync).
                    tracing::error!(dir = %dir.display(), error = %e, "cannot append to the state dir's journal; it will not be used again");
                    log.broken = true;
                    stats.count(Discarded::Unreadable);
                    let _ = fs::remove_file(dir.join(STATE));
                    let _ = fs::remove_file(dir.join(LOG));
                }
            }
        })
    }

    /// Whether the log has grown enough to rewrite `state.pb`.
    pub fn wants_compaction(&self) -> bool {
        let log = self.log.lock().expect("state dir log lock");
        !log.broken && log.bytes > COMPACT_AFTER
    }

    /// Writes the table, a Sync marker and the recent changes to `state.pb`
    /// and empties the log. Called with the journal locked, so nothing is
    /// appended meanwhile.
    pub fn compact(&self, core: &Core) -> io::Result<()> {
        let mut log = self.log.lock().expect("state dir log lock");
        if log.broken {
            return Ok(());
        }
        let info = core.info();
        let seq = core.last_seq();
        let time = now_unix_nano();
        let tmp = self.dir.join(STATE_TMP);
        {
            let mut out = io::BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
            out.write_all(&HEADER)?;
            let mut buf = bytes::BytesMut::new();
            let mut framed = Vec::new();
            let mut write = |parts: &[&[u8]]| {
                framed.clear();
                state_file::frame(parts, &mut framed);
                out.write_all(&framed)
            };
            let stream = &info.stream_record()[..];
            for (netns, table) in core.tables() {
                let mut changes = table.changes().peekable();
                while changes.peek().is_some() {
                    buf.clear();
                    let all = |_: &Change| true;
                    encode_snapshot(
                        info,
                        netns,
                        seq,
                        time,
                        &mut changes,
                        SNAPSHOT_RECORD,
                        all,
                        &mut buf,
                    );
                    write(&[stream, &buf])?;
                }
            }
            write(&[&record(&info.event(
                seq,
                time,
                event::Kind::Sync(api::Sync {}),
            ))])?;
            for response in whole_responses(info, core.recent()) {
                let parts: Vec<&[u8]> = response.iter().map(|p| &p[..]).collect();
                write(&parts)?;
            }
            out.flush()?;
            out.get_ref().sync_all()?;
        }
        fs::rename(&tmp, self.dir.join(STATE))?;
        File::open(&self.dir)?.sync_all()?;
        log.file.set_len(0)?;
        log.file.write_all(&HEADER)?;
        log.bytes = HEADER.len() as u64;
        Ok(())
    }
}

/// This boot of the kernel (empty where /proc does not tell).
fn current_boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Refuses a log written before a reboot: its unsynced tail may be gone.
fn check_boot(dir: &Path, boot: &str) -> Result<(), Refusal> {
    let written_in = fs::read_to_string(dir.join(BOOT_ID)).unwrap_or_default();
    let log_len = fs::metadata(dir.join(LOG)).map(|m| m.len()).unwrap_or(0);
    if written_in.trim() != boot && log_len > HEADER.len() as u64 {
        return Err(Refusal::new(Discarded::Reboot, format!(
            "the machine rebooted since {LOG} was written, and changes sent before the reboot may not have reached the disk"
        )));
    }
    Ok(())
}

/// Reads `state.pb` and `journal.log`. `Ok(None)`: nothing there yet.
fn recover(dir: &Path, netns: &str, stats: &StateDirStats) -> Result<Option<Recovered>, Refusal> {
    let unreadable = |file: &str, e: io::Error| {
        Refusal::new(Discarded::Unreadable, format!("cannot read {file}: {e}"))
    };
    let damaged = |what: String| Refusal::new(Discarded::Damaged, what);
    let state = match fs::read(dir.join(STATE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(STATE, e)),
    };
    let events = state_file::read(&state, Tail::Complete)
        .map_err(|u| Refusal::of(STATE, u))?
        .events;
    let sync_at = events
        .iter()
        .position(|e| matches!(e.kind, Some(event::Kind::Sync(_))))
        .ok_or_else(|| damaged(format!("{STATE} has no sync marker")))?;
    let sync = &events[sync_at];
    let info = StreamInfo::new(sync.stream_id.clone(), netns.to_string());
    let mut last_seq = sync.seq;
    let mut tables: BTreeMap<Arc<str>, StateTable> = BTreeMap::new();
    for ev in &events[..sync_at] {
        let change = change_of(ev).ok_or_else(|| {
            damaged(format!(
                "{STATE}: a snapshot event without a readable change"
            ))
        })?;
        table_for(&mut tables, &ev.netns).restore(&change);
    }
    let mut recent: Vec<Entry> = Vec::new();
    let mut last_cause = None;
    for ev in &events[sync_at + 1..] {
        let mut entry = entry_of(ev, &mut last_cause)
            .ok_or_else(|| damaged(format!("{STATE}: a recent event without a readable change")))?;
        // These came before the table above; what each replaced is gone.
        if entry.change.action == Action::Add {
            entry.change.previous = Previous::Unknown;
        }
        recent.push(entry);
    }
    // The journal counts its ring back from its position: the recent
    // changes must be the ones just before the marker, one after another.
    if recent.len() as u64 > sync.seq
        || (recent.iter().rev())
            .zip((0..=sync.seq).rev())
            .any(|(entry, seq)| entry.seq != seq)
    {
        return Err(damaged(format!(
            "{STATE}'s recent changes are not the ones up to its sync marker at seq {}",
            sync.seq
        )));
    }
    let log_path = dir.join(LOG);
    let log = match fs::read(&log_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(unreadable(LOG, e)),
    };
    let contents = state_file::read(&log, Tail::MayBeTorn).map_err(|u| Refusal::of(LOG, u))?;
    if contents.torn > 0 {
        stats.count(Discarded::TornTail);
        tracing::warn!(
            at = contents.good,
            dropped = contents.torn,
            "journal.log ends in a torn record (the agent died while writing it); cutting it off and continuing the stream"
        );
        OpenOptions::new()
            .write(true)
            .open(&log_path)
            .and_then(|f| f.set_len(contents.good as u64))
            .map_err(|e| Refusal::new(Discarded::Unreadable, format!("cannot cut {LOG}: {e}")))?;
    }
    for ev in contents.events {
        if ev.stream_id != info.stream_id {
            return Err(damaged(format!(
                "{LOG} holds another stream ({}) than {STATE} ({})",
                ev.stream_id, info.stream_id
            )));
        }
        if ev.seq <= last_seq {
            // Written before a compaction that finished but could not
            // empty the log.
            continue;
        }
        if ev.seq != last_seq + 1 {
            return Err(damaged(format!(
                "{LOG} jumps from seq {last_seq} to {}",
                ev.seq
            )));
        }
        let mut entry = entry_of(&ev, &mut last_cause)
            .ok_or_else(|| damaged(format!("{LOG}: seq {} without a readable change", ev.seq)))?;
        let table = table_for(&mut tables, &ev.netns);
        if entry.change.action == Action::Add {
            entry.change.previous = table
                .held(&entry.change)
                .map_or(Previous::None, Previous::Was);
        }
        table.restore(&entry.change);
        recent.push(entry);
        last_seq = ev.seq;
    }
    if last_seq == u64::MAX {
        return Err(damaged(format!(
            "the stream is at seq {last_seq}, the last there is: it cannot continue"
        )));
    }
    Ok(Some(Recovered {
        info,
        last_seq,
        tables,
        recent,
    }))
}

fn change_of(ev: &api::Event) -> Option<Change> {
    let Some(event::Kind::Change(c)) = &ev.kind else {
        return None;
    };
    let action = if c.action == api::Action::Delete as i32 {
        Action::Delete
    } else {
        Action::Add
    };
    let mut object = c.object.clone()?;
    // The names were the agent's of the day; the table holds numbers.
    unlabelled(&mut object);
    let key = Key::parse(&c.key)?;
    let object = match object {
        api::change::Object::Route(r) => Object::Route(Record::new(key, &r)),
        api::change::Object::Nexthop(n) => Object::Nexthop(Arc::new(n)),
        api::change::Object::Rule(r) => Object::Rule(Arc::new(r)),
    };
    Some(Change {
        action,
        key,
        object,
        previous: Previous::None,
    })
}

/// The table of namespace `netns`, created empty when new.
fn table_for<'a>(
    tables: &'a mut BTreeMap<Arc<str>, StateTable>,
    netns: &str,
) -> &'a mut StateTable {
    if !tables.contains_key(netns) {
        tables.insert(netns.into(), StateTable::default());
    }
    tables.get_mut(netns).expect("inserted above")
}

/// The entry of a change read back; `last` is the cause of the one before,
/// shared again when the same (a run of changes from one requester keeps
/// one definition).
fn entry_of(ev: &api::Event, last: &mut Option<Arc<Cause>>) -> Option<Entry> {
    let Some(event::Kind::Change(c)) = &ev.kind else {
        return None;
    };
    let origin = api::Origin::try_from(c.origin).unwrap_or(api::Origin::Unspecified);
    let cause = match (Cause::of(c), last.as_ref()) {
        (Some(read), Some(held))
            if read.changed_by == held.changed_by && read.reason == held.reason =>
        {
            Some(held.clone())
        }
        (read, _) => read,
    };
    last.clone_from(&cause);
    // Encoded as the journal encodes a change, the cause referred to by id.
    let mut lean = ev.clone();
    journal::lean(&mut lean);
    if let Some(event::Kind::Change(c)) = &mut lean.kind {
        c.changed_by = None;
        c.reason.clear();
        c.cause = cause.as_ref().map_or(0, |cause| cause.id());
    }
    Some(Entry::new(
        ev.seq,
        ev.time_unix_nano,
        origin,
        ev.netns.as_str().into(),
        change_of(ev)?,
        cause,
        record(&lean),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Journal, RingLimits};
    use routewatch_proto::v1::Route;

    fn route(n: u32) -> Change {
        Change {
            action: Action::Add,
            key: Key::test(n),
            object: Object::Route(Record::new(
                Key::test(n),
                &Route {
                    family: 1,
                    dst: format!("10.0.{n}.0/24"),
                    ..Default::default()
                },
            )),
            previous: Previous::None,
        }
    }

    fn limits() -> RingLimits {
        RingLimits {
            changes: 1000,
            bytes: usize::MAX,
        }
    }

    fn journal_in(dir: &Path) -> (Journal, StateDir) {
        let (sd, recovered) = StateDir::open(dir, "").unwrap();
        let journal = match recovered {
            Some(r) => Journal::resume(r.info, r.last_seq, r.tables, r.recent, limits()),
            None => Journal::new("stream-a".into(), String::new(), limits()),
        };
        journal.lock().set_sink(sd.sink());
        (journal, sd)
    }

    fn tempdir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("routewatch-persist-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_restart_continues_the_stream_with_table_and_ring() {
        let dir = tempdir("restart");
        {
            let (j, sd) = journal_in(&dir);
            let mut core = j.lock();
            core.publish((0..3).map(route).collect(), api::Origin::Notification);
            sd.compact(&core).unwrap();
            core.publish((3..5).map(route).collect(), api::Origin::Notification);
            // Dropped without any shutdown: like SIGKILL after the writes.
        }
        let (j, _) = journal_in(&dir);
        let core = j.lock();
        assert_eq!(core.info().stream_id, "stream-a");
        assert_eq!(core.last_seq(), 5);
        assert_eq!(
            core.recent().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn who_made_each_change_survives_a_restart_in_state_pb_and_the_log() {
        let dir = tempdir("causes");
        let by = |comm: &str| {
            Some(Cause::new(
                Some(api::ChangedBy {
                    comm: comm.into(),
                    ..Default::default()
                }),
                format!("asked by {comm}"),
            ))
        };
        let publish = |core: &mut Core, from: u32, causes: &[(usize, Option<Arc<Cause>>)]| {
            core.publish_caused(
                &"".into(),
                (from..from + 3).map(route).collect(),
                &[],
                causes,
                api::Origin::Notification,
            );
        };
        {
            let (j, sd) = journal_in(&dir);
            let mut core = j.lock();
            publish(&mut core, 0, &[(1, by("ip")), (3, by("bird"))]);
            sd.compact(&core).unwrap();
            publish(&mut core, 3, &[(2, None), (3, by("zebra"))]);
        }
        let (j, _) = journal_in(&dir);
        let core = j.lock();
        let (_, mut parts) = core
            .read_records_after(0, 100, usize::MAX)
            .unwrap()
            .unwrap();
        parts.insert(0, core.info().stream_record().clone());
        let events = routewatch_proto::v1::SubscribeResponse::from_records(parts)
            .into_events()
            .expect("every cause defined");
        let who = crate::journal::test_makers(&events);
        let at = |seq: u64, comm: &str| {
            let reason = if comm == "-" {
                String::new()
            } else {
                format!("asked by {comm}")
            };
            (seq, "stream-a".to_string(), comm.to_string(), reason)
        };
        assert_eq!(
            who,
            vec![
                at(1, "ip"),
                at(2, "bird"),
                at(3, "bird"),
                at(4, "-"),
                at(5, "-"),
                at(6, "zebra")
            ]
        );
        // A run of one requester's changes read back shares one cause,
        // defined once.
        let causes: Vec<_> = core.recent().map(|e| e.cause.clone()).collect();
        assert!(Arc::ptr_eq(
            causes[1].as_ref().unwrap(),
            causes[2].as_ref().unwrap()
        ));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_namespace_keeps_its_own_table_across_a_restart() {
        let dir = tempdir("netns");
        let a: Arc<str> = "a".into();
        let b: Arc<str> = "b".into();
        {
            let (j, sd) = journal_in(&dir);
            let mut core = j.lock();
            for ns in [&a, &b] {
                for n in 0..3 {
                    core.table_mut(ns).restore(&route(n));
                }
            }
            sd.compact(&core).unwrap();
            core.publish_in(&a, vec![route(7)], api::Origin::Notification);
            core.drop_namespace("b");
        }
        let (j, _) = journal_in(&dir);
        let core = j.lock();
        assert_eq!(core.last_seq(), 4, "one add, then three deletes");
        assert_eq!(core.table("a").map(|t| t.route_count()), Some(4));
        assert_eq!(core.table("b").map(|t| t.route_count()), Some(0));
        let netns: Vec<&str> = core.recent().map(|e| &*e.netns).collect();
        assert_eq!(netns, vec!["a", "b", "b", "b"]);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn restored_objects_hold_numbers_only_as_a_fresh_dump_does() {
        let dir = tempdir("names");
        {
            let (j, sd) = journal_in(&dir);
            let mut core = j.lock();
            core.table_mut(&"".into()).restore(&route(1));
            // Both files hold the changes with their names.
            sd.compact(&core).unwrap();
            core.publish(vec![route(2)], api::Origin::Notification);
        }
        let (j, _) = journal_in(&dir);
        let core = j.lock();
        let table = core.table("").expect("restored");
        for n in [1, 2] {
            let held = table.held(&route(n));
            assert_eq!(held, Some(route(n).object), "route {n} equals its dump");
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn recovered_adds_know_what_they_replaced_where_the_log_tells() {
        let dir = tempdir("previous");
        {
            let (j, sd) = journal_in(&dir);
            let mut core = j.lock();
            core.publish(vec![route(1), route(1)], api::Origin::Notification);
            // What the table holds after those changes.
            core.table_mut(&"".into()).restore(&route(1));
            sd.compact(&core).unwrap();
            let mut again = route(1);
            again.object = route(7).object;
            core.publish(vec![again, route(2)], api::Origin::Notification);
        }
        let (j, _) = journal_in(&dir);
        let core = j.lock();
        let previous: Vec<Previous> = core.recent().map(|e| e.change.previous.clone()).collect();
        assert_eq!(
            previous,
            vec![
                // Before the snapshot in state.pb: the history is gone.
                Previous::Unknown,
                Previous::Unknown,
                // In the log, after the snapshot: the table knows.
                Previous::Was(route(1).object),
                Previous::None,
            ]
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_log_from_before_a_reboot_starts_a_new_stream() {
        let dir = tempdir("reboot");
        {
            let (j, sd) = journal_in(&dir);
            let mut core = j.lock();
            sd.compact(&core).unwrap();
            core.publish((0..2).map(route).collect(), api::Origin::Notification);
        }
        fs::write(dir.join(BOOT_ID), "another-boot").unwrap();
        let (_, recovered) = StateDir::open(&dir, "").unwrap();
        assert!(recovered.is_none());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_clean_shutdown_survives_a_reboot() {
        let dir = tempdir("clean-reboot");
        {
            let (j, sd) = journal_in(&dir);
            let mut core = j.lock();
            core.publish((0..2).map(route).collect(), api::Origin::Notification);
            sd.compact(&core).unwrap();
        }
        fs::write(dir.join(BOOT_ID), "another-boot").unwrap();
        let (_, recovered) = StateDir::open(&dir, "").unwrap();
        assert_eq!(recovered.expect("continues").last_seq, 2);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_last_record_is_cut_off() {
        let dir = tempdir("torn");
        {
            let (j, sd) = journal_in(&dir);
            let mut core = j.lock();
            sd.compact(&core).unwrap();
            core.publish((0..2).map(route).collect(), api::Origin::Notification);
            core.publish((2..4).map(route).collect(), api::Origin::Notification);
        }
        let log = dir.join(LOG);
        let len = fs::metadata(&log).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        // A batch is one record: it is there whole or not at all.
        let (j, _) = journal_in(&dir);
        assert_eq!(j.lock().last_seq(), 2);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_gap_in_the_log_starts_a_new_stream() {
        let dir = tempdir("gap");
        {
            let (j, sd) = journal_in(&dir);
            let core = j.lock();
            sd.compact(&core).unwrap();
        }
        let other = api::Event {
            stream_id: "stream-a".into(),
            seq: 7,
            kind: Some(event::Kind::Change(api::Change {
                action: 1,
                origin: 1,
                key: "k".into(),
                object: Some(api::change::Object::Route(Route::default())),
                ..Default::default()
            })),
            ..Default::default()
        };
        let mut log = HEADER.to_vec();
        state_file::frame(&[record(&other)], &mut log);
        fs::write(dir.join(LOG), log).unwrap();
        let (sd, recovered) = StateDir::open(&dir, "").unwrap();
        assert!(recovered.is_none());
        assert!(!dir.join(STATE).exists());
        assert_eq!(discarded(&sd, Discarded::Damaged), 1);
        let _ = fs::remove_dir_all(&dir);
    }

    fn discarded(sd: &StateDir, why: Discarded) -> u64 {
        sd.stats()
            .discarded()
            .into_iter()
            .find(|(w, _)| *w == why)
            .map_or(0, |(_, n)| n)
    }

    /// A state dir with `state.pb` and 20 changes in the log.
    fn written(name: &str) -> PathBuf {
        let dir = tempdir(name);
        let (j, sd) = journal_in(&dir);
        let mut core = j.lock();
        core.publish((0..3).map(route).collect(), api::Origin::Notification);
        sd.compact(&core).unwrap();
        for n in 3..23 {
            core.publish(vec![route(n)], api::Origin::Notification);
        }
        dir
    }

    fn overwrite(path: &Path, at: u64, bytes: &[u8]) {
        use std::io::{Seek, SeekFrom};
        let mut f = OpenOptions::new().write(true).open(path).unwrap();
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(bytes).unwrap();
    }

    #[test]
    fn damage_in_the_middle_of_the_log_starts_a_new_stream_and_keeps_the_files() {
        let dir = written("middle");
        let len = fs::metadata(dir.join(LOG)).unwrap().len();
        overwrite(&dir.join(LOG), len / 2, &[0xde, 0xad, 0xbe, 0xef]);
        let (sd, recovered) = StateDir::open(&dir, "").unwrap();
        assert!(recovered.is_none(), "not continued");
        assert_eq!(discarded(&sd, Discarded::Damaged), 1);
        assert_eq!(discarded(&sd, Discarded::TornTail), 0);
        assert_eq!(
            fs::metadata(dir.join(format!("{LOG}.{DISCARDED}")))
                .unwrap()
                .len(),
            len,
            "kept aside as it was"
        );
        assert!(dir.join(format!("{STATE}.{DISCARDED}")).exists());
        // The new stream's log starts afresh.
        assert_eq!(fs::read(dir.join(LOG)).unwrap(), HEADER);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn damage_in_state_pb_starts_a_new_stream() {
        let dir = written("state-damage");
        let len = fs::metadata(dir.join(STATE)).unwrap().len();
        overwrite(&dir.join(STATE), len / 2, &[0xde, 0xad, 0xbe, 0xef]);
        let (sd, recovered) = StateDir::open(&dir, "").unwrap();
        assert!(recovered.is_none());
        assert_eq!(discarded(&sd, Discarded::Damaged), 1);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_tail_is_counted_and_the_stream_continues() {
        let dir = written("torn-counted");
        let len = fs::metadata(dir.join(LOG)).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(dir.join(LOG))
            .unwrap()
            .set_len(len - 1)
            .unwrap();
        let (sd, recovered) = StateDir::open(&dir, "").unwrap();
        assert_eq!(recovered.expect("continued").last_seq, 22);
        assert_eq!(discarded(&sd, Discarded::TornTail), 1);
        assert_eq!(discarded(&sd, Discarded::Damaged), 0);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn files_of_an_unknown_format_start_a_new_stream() {
        let dir = written("format");
        // What the format without a header looked like: bare records.
        let mut old = fs::read(dir.join(STATE)).unwrap();
        old.drain(..HEADER.len());
        fs::write(dir.join(STATE), &old).unwrap();
        let (sd, recovered) = StateDir::open(&dir, "").unwrap();
        assert!(recovered.is_none());
        assert_eq!(discarded(&sd, Discarded::UnknownFormat), 1);
        drop(sd);
        let _ = fs::remove_dir_all(&dir);
        // A future version.
        let dir = written("version");
        overwrite(&dir.join(LOG), 7, &[3]);
        let (sd, recovered) = StateDir::open(&dir, "").unwrap();
        assert!(recovered.is_none());
        assert_eq!(discarded(&sd, Discarded::UnknownFormat), 1);
        let _ = fs::remove_dir_all(&dir);
    }
}
