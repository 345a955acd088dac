//! `--state-dir`: the agent continues its stream across restarts.
//!
//! Consumers hold cursors `(stream_id, seq)`. An agent that restarted with a
//! new stream would force every one of them through a full snapshot; with a
//! state dir it reloads its stream id, sequence number, table and recent
//! changes, dumps the kernel, and sends what changed while it was down as
//! ordinary changes (origin `reconcile`) continuing the same stream.
//!
//! Two files, both in the API's own encoding (a `SubscribeResponse`, i.e.
//! field-1 event records side by side):
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

use bytes::Buf;
use prost::Message;
use routewatch_proto::batch::record;
use routewatch_proto::v1::{self as api, event, SubscribeResponse};

use crate::error::AgentError;
use crate::journal::{encode_change_record, now_unix_nano, Core, Entry, Sink, StreamInfo};
use crate::labelled::unlabelled;
use crate::state::{Action, Change, Key, Object, Previous, Record, StateTable};

const STATE: &str = "state.pb";
const STATE_TMP: &str = "state.pb.tmp";
const LOG: &str = "journal.log";
const BOOT_ID: &str = "boot_id";
/// Rewrite `state.pb` once the log holds this much.
const COMPACT_AFTER: u64 = 64 << 20;

/// What a state dir held.
pub struct Recovered {
    pub info: StreamInfo,
    pub last_seq: u64,
    /// Each namespace's table, by name.
    pub tables: BTreeMap<Arc<str>, StateTable>,
    /// Recent changes, oldest first, ending at `last_seq`.
    pub recent: Vec<Entry>,
}

/// An open state dir.
pub struct StateDir {
    dir: PathBuf,
    log: Arc<Mutex<Log>>,
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
        let boot = current_boot_id();
        let recovered = match check_boot(dir, &boot).and_then(|()| recover(dir, netns)) {
            Ok(r) => r,
            Err(reason) => {
                tracing::error!(dir = %dir.display(), %reason, "state dir unusable; starting a new stream (consumers will resync)");
                let _ = fs::remove_file(dir.join(STATE));
                let _ = fs::remove_file(dir.join(LOG));
                None
            }
        };
        fs::write(dir.join(BOOT_ID), &boot).map_err(err("write boot_id"))?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(LOG))
            .map_err(err("open journal.log"))?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        file.flush().map_err(err("open journal.log"))?;
        let log = Log {
            file,
            bytes,
            broken: false,
        };
        let state_dir = StateDir {
            dir: dir.to_path_buf(),
            log: Arc::new(Mutex::new(log)),
        };
        Ok((state_dir, recovered))
    }

    /// The journal's sink: appends each batch to the log.
    pub fn sink(&self) -> Sink {
        let log = self.log.clone();
        let dir = self.dir.clone();
        Box::new(move |entries: &[Entry]| {
            let mut log = log.lock().expect("state dir log lock");
            if log.broken {
                return;
            }
            let mut buf = Vec::with_capacity(entries.iter().map(Entry::record_len).sum());
            for entry in entries {
                buf.extend_from_slice(&entry.record());
            }
            match log.file.write_all(&buf) {
                Ok(()) => log.bytes += buf.len() as u64,
                Err(e) => {
                    // Keeping the files would let a restarted agent continue
                    // a stream with a hole in it; removing them makes the
                    // restart explicit (a new stream, consumers resync).
                    tracing::error!(dir = %dir.display(), error = %e, "cannot append to the state dir's journal; it will not be used again");
                    log.broken = true;
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
            let mut buf = bytes::BytesMut::new();
            for (netns, table) in core.tables() {
                for change in table.changes() {
                    buf.clear();
                    encode_change_record(
                        info,
                        netns,
                        seq,
                        time,
                        &change,
                        api::Origin::Dump,
                        &mut buf,
                    );
                    out.write_all(&buf)?;
                }
            }
            out.write_all(&record(&info.event(
                seq,
                time,
                event::Kind::Sync(api::Sync {}),
            )))?;
            for entry in core.recent() {
                out.write_all(&entry.record())?;
            }
            out.flush()?;
            out.get_ref().sync_all()?;
        }
        fs::rename(&tmp, self.dir.join(STATE))?;
        File::open(&self.dir)?.sync_all()?;
        log.file.set_len(0)?;
        log.bytes = 0;
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
fn check_boot(dir: &Path, boot: &str) -> Result<(), String> {
    let written_in = fs::read_to_string(dir.join(BOOT_ID)).unwrap_or_default();
    let log_len = fs::metadata(dir.join(LOG)).map(|m| m.len()).unwrap_or(0);
    if written_in.trim() != boot && log_len > 0 {
        return Err(format!(
            "the machine rebooted since {LOG} was written, and changes sent before the reboot may not have reached the disk"
        ));
    }
    Ok(())
}

/// Reads `state.pb` and `journal.log`. `Ok(None)`: nothing there yet.
fn recover(dir: &Path, netns: &str) -> Result<Option<Recovered>, String> {
    let state = match fs::read(dir.join(STATE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {STATE}: {e}")),
    };
    let events = SubscribeResponse::decode(state.as_slice())
        .map_err(|e| format!("{STATE} does not decode: {e}"))?
        .events;
    let sync_at = events
        .iter()
        .position(|e| matches!(e.kind, Some(event::Kind::Sync(_))))
        .ok_or_else(|| format!("{STATE} has no sync marker (incomplete)"))?;
    let sync = &events[sync_at];
    let info = StreamInfo {
        stream_id: sync.stream_id.clone(),
        netns: netns.to_string(),
        names: Default::default(),
    };
    let mut last_seq = sync.seq;
    let mut tables: BTreeMap<Arc<str>, StateTable> = BTreeMap::new();
    for ev in &events[..sync_at] {
        let change = change_of(ev).ok_or("snapshot event without a readable change")?;
        table_for(&mut tables, &ev.netns).restore(&change);
    }
    let mut recent: Vec<Entry> = Vec::new();
    for ev in &events[sync_at + 1..] {
        let mut entry = entry_of(ev).ok_or("recent event without a readable change")?;
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
        return Err(format!(
            "{STATE}'s recent changes are not the ones up to its sync marker at seq {}",
            sync.seq
        ));
    }
    let log_path = dir.join(LOG);
    let log = match fs::read(&log_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("cannot read {LOG}: {e}")),
    };
    let (events, good) = read_records(&log);
    if good < log.len() {
        tracing::warn!(
            dropped = log.len() - good,
            "journal.log ends in a torn record (the agent died while writing it); cutting it off"
        );
        OpenOptions::new()
            .write(true)
            .open(&log_path)
            .and_then(|f| f.set_len(good as u64))
            .map_err(|e| format!("cannot cut {LOG}: {e}"))?;
    }
    for ev in events {
        if ev.stream_id != info.stream_id {
            return Err(format!("{LOG} holds another stream ({})", ev.stream_id));
        }
        if ev.seq <= last_seq {
            // Written before a compaction that finished but could not
            // empty the log.
            continue;
        }
        if ev.seq != last_seq + 1 {
            return Err(format!("{LOG} jumps from seq {last_seq} to {}", ev.seq));
        }
        let mut entry = entry_of(&ev).ok_or("log event without a readable change")?;
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
        return Err(format!(
            "the stream is at seq {last_seq}, the last there is: it cannot continue"
        ));
    }
    Ok(Some(Recovered {
        info,
        last_seq,
        tables,
        recent,
    }))
}

/// Decodes field-1 records until the end or the first incomplete one;
/// returns the events and the length of the good prefix.
fn read_records(bytes: &[u8]) -> (Vec<api::Event>, usize) {
    let mut events = Vec::new();
    let mut buf = bytes;
    let mut good = 0;
    while !buf.is_empty() {
        let before = buf.len();
        let mut cursor = buf;
        if cursor.get_u8() != 0x0a {
            break;
        }
        let Ok(len) = prost::encoding::decode_varint(&mut cursor) else {
            break;
        };
        let len = len as usize;
        if cursor.len() < len {
            break;
        }
        let Ok(ev) = api::Event::decode(&cursor[..len]) else {
            break;
        };
        events.push(ev);
        buf = &cursor[len..];
        good += before - buf.len();
    }
    (events, good)
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

fn entry_of(ev: &api::Event) -> Option<Entry> {
    let Some(event::Kind::Change(c)) = &ev.kind else {
        return None;
    };
    let origin = api::Origin::try_from(c.origin).unwrap_or(api::Origin::Unspecified);
    Some(Entry::new(
        ev.seq,
        ev.time_unix_nano,
        origin,
        ev.netns.as_str().into(),
        change_of(ev)?,
        record(ev),
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
        }
        let log = dir.join(LOG);
        let len = fs::metadata(&log).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (j, _) = journal_in(&dir);
        assert_eq!(j.lock().last_seq(), 1);
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
            })),
            ..Default::default()
        };
        fs::write(dir.join(LOG), record(&other)).unwrap();
        let (_, recovered) = StateDir::open(&dir, "").unwrap();
        assert!(recovered.is_none());
        assert!(!dir.join(STATE).exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
