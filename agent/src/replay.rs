//! Where a stream that replays the journal starts (`replay_last`,
//! `replay_since_unix_nano`), and whether the journal reaches back as far
//! as asked. A replay that is shorter than asked says so in its marker:
//! never silently shorter.

use crate::journal::Core;

/// The start of a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// The changes after this seq are replayed.
    pub after: u64,
    /// The journal held everything asked for.
    pub complete: bool,
    /// What was asked and what the journal holds, in words.
    pub reason: String,
}

/// Where to start for the last `last` changes (when not 0), else for the
/// changes observed at or after `since_unix_nano`, at `now_unix_nano`.
pub fn start(core: &Core, last: u64, since_unix_nano: i64, now_unix_nano: i64) -> Start {
    let last_seq = core.last_seq();
    let oldest = core.oldest_seq();
    let held = last_seq + 1 - oldest;
    if last > 0 {
        let after = last_seq.saturating_sub(last);
        if after + 1 >= oldest {
            let replayed = last_seq - after;
            return Start {
                after,
                complete: true,
                reason: if replayed < last {
                    format!("all {replayed} changes of this stream (asked for the last {last})")
                } else {
                    format!("the last {last} changes")
                },
            };
        }
        return Start {
            after: oldest - 1,
            complete: false,
            reason: format!(
                "asked for the last {last} changes, but the journal holds only the last {held} (from seq {oldest}): the {} before are no longer held",
                last - held
            ),
        };
    }
    let ago = |t: i64| (now_unix_nano.saturating_sub(t)) as f64 / 1e9;
    let first = core.recent().find(|e| e.time_unix_nano >= since_unix_nano);
    let after = first.map_or(last_seq, |e| e.seq - 1);
    let oldest_time = core.recent().next().map(|e| e.time_unix_nano);
    // Complete when nothing since `since` can be missing: the journal
    // holds the stream from its start, or a change older than `since`.
    let complete = oldest == 1 || oldest_time.is_some_and(|t| t < since_unix_nano);
    let reason = if complete {
        format!(
            "the {} changes since {:.1} s ago",
            last_seq - after,
            ago(since_unix_nano)
        )
    } else {
        match oldest_time {
            Some(t) => format!(
                "asked for the changes since {:.1} s ago, but the journal's oldest change held (seq {oldest}) is from {:.1} s ago: earlier ones are no longer held",
                ago(since_unix_nano),
                ago(t)
            ),
            None => format!(
                "asked for the changes since {:.1} s ago, but the journal holds no change before seq {oldest}: whether any came in that time cannot be told",
                ago(since_unix_nano)
            ),
        }
    };
    Start {
        after,
        complete,
        reason,
    }
}
