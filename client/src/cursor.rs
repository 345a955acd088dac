//! Where a consumer stands in an agent's stream: the cursor it resumes from.
//!
//! The cursor is the last event whose state the consumer fully holds. Live
//! changes and Sync/Heartbeat markers carry such a position; snapshot adds
//! carry the position the *whole* snapshot is valid at, so resuming from one
//! of them after a disconnect mid-snapshot would skip the rest of it. A
//! Resync does not move the cursor either: until the new stream's Sync the
//! consumer holds no complete state of it, and resuming from the old cursor
//! makes the agent resync again, which is exactly what is needed.

use routewatch_proto::v1::{event, Cursor, Event, Origin};

/// What to do with an event, as far as the stream's order goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Print and apply it.
    Apply,
    /// A change this consumer already applied (the agent replayed it): drop
    /// it, so that no line is printed twice.
    Duplicate,
}

/// A consumer's position in one agent's stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    cursor: Option<Cursor>,
    /// A Resync arrived and its snapshot's Sync has not: that Sync is the
    /// new position, wherever it is.
    resyncing: bool,
    /// The subscription is filtered: the agent skips the changes the
    /// filter drops, so a jump in the numbers is no loss.
    filtered: bool,
}

impl Position {
    /// Starting at `cursor` (none: from a fresh snapshot).
    pub fn new(cursor: Option<Cursor>) -> Position {
        Position {
            cursor,
            resyncing: false,
            filtered: false,
        }
    }

    /// The same position in a filtered stream, where numbers jump.
    pub fn filtered(self) -> Position {
        Position {
            filtered: true,
            ..self
        }
    }

    /// Forgets the cursor: the next subscription starts from a snapshot
    /// (the consumer's picture is being started over).
    pub fn forget(&mut self) {
        self.cursor = None;
    }

    /// The cursor to resume from, if the consumer holds a complete state.
    pub fn cursor(&self) -> Option<&Cursor> {
        self.cursor.as_ref()
    }

    /// Notes that `event` arrived next; says whether to apply it.
    pub fn advance(&mut self, event: &Event) -> Step {
        match &event.kind {
            Some(event::Kind::Change(c)) if c.origin == Origin::Dump as i32 => Step::Apply,
            Some(event::Kind::Change(_)) => {
                if let Some(cur) = self.same_stream(event) {
                    if event.seq <= cur.seq {
                        tracing::warn!(
                            stream = %event.stream_id,
                            seq = event.seq,
                            cursor = cur.seq,
                            "the agent sent a change again; dropping the duplicate"
                        );
                        return Step::Duplicate;
                    }
                    if !self.filtered {
                        warn_on_gap(cur, event);
                    }
                }
                self.move_to(event);
                Step::Apply
            }
            // A replay's marker: the changes after it follow.
            Some(event::Kind::Heartbeat(_) | event::Kind::Replay(_) | event::Kind::Digest(_)) => {
                match self.same_stream(event) {
                    // Never sent by a correct agent; the consumer must not
                    // replay what it holds.
                    Some(cur) if event.seq < cur.seq => {}
                    Some(cur) => {
                        if !self.filtered {
                            warn_on_gap(cur, event);
                        }
                        self.move_to(event);
                    }
                    None => self.move_to(event),
                }
                Step::Apply
            }
            Some(event::Kind::Sync(_)) => {
                // A snapshot's Sync may be ahead of the cursor by any amount
                // (the snapshot holds those changes). Behind it only after a
                // resync: an agent that lost the end of its stream (a
                // crash) and numbers anew from an earlier position.
                if self.resyncing
                    || self
                        .same_stream(event)
                        .is_none_or(|cur| event.seq >= cur.seq)
                {
                    self.move_to(event);
                }
                self.resyncing = false;
                Step::Apply
            }
            Some(event::Kind::Resync(_)) => {
                self.resyncing = true;
                Step::Apply
            }
            None => Step::Apply,
        }
    }

    fn same_stream(&self, event: &Event) -> Option<&Cursor> {
        self.cursor
            .as_ref()
            .filter(|c| c.stream_id == event.stream_id)
    }

    fn move_to(&mut self, event: &Event) {
        match &mut self.cursor {
            Some(c) if c.stream_id == event.stream_id => c.seq = event.seq,
            _ => {
                self.cursor = Some(Cursor {
                    stream_id: event.stream_id.clone(),
                    seq: event.seq,
                })
            }
        }
    }
}

/// Changes carry contiguous numbers: an event further ahead than the next
/// one means the agent skipped some. Nothing the client can repair (the
/// agent alone can resync); say so loudly.
fn warn_on_gap(cursor: &Cursor, event: &Event) {
    // Saturating: an agent's heartbeat may carry the cursor's own seq,
    // u64::MAX included.
    if event.seq > cursor.seq.saturating_add(1) {
        tracing::warn!(
            stream = %event.stream_id,
            missing_from = cursor.seq + 1,
            missing_to = event.seq - 1,
            "changes are missing from the agent's stream"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use routewatch_proto::v1::{Change, Heartbeat, Resync, Sync};

    fn ev(stream: &str, seq: u64, kind: event::Kind) -> Event {
        Event {
            stream_id: stream.into(),
            seq,
            kind: Some(kind),
            ..Default::default()
        }
    }

    fn add(stream: &str, seq: u64, origin: Origin) -> Event {
        let change = Change {
            action: 1,
            origin: origin as i32,
            key: format!("k{seq}"),
            object: None,
            ..Default::default()
        };
        ev(stream, seq, event::Kind::Change(change))
    }

    fn sync(stream: &str, seq: u64) -> Event {
        ev(stream, seq, event::Kind::Sync(Sync {}))
    }

    fn cursor(stream: &str, seq: u64) -> Option<Cursor> {
        Some(Cursor {
            stream_id: stream.into(),
            seq,
        })
    }

    #[test]
    fn snapshot_adds_do_not_move_the_cursor_but_its_sync_does() {
        let mut p = Position::default();
        for _ in 0..3 {
            assert_eq!(p.advance(&add("a", 7, Origin::Dump)), Step::Apply);
            assert_eq!(p.cursor(), None, "no complete state yet");
        }
        p.advance(&sync("a", 7));
        assert_eq!(p.cursor().cloned(), cursor("a", 7));
    }

    #[test]
    fn live_changes_and_heartbeats_move_the_cursor() {
        let mut p = Position::new(cursor("a", 7));
        assert_eq!(p.advance(&add("a", 8, Origin::Notification)), Step::Apply);
        assert_eq!(p.cursor().cloned(), cursor("a", 8));
        p.advance(&add("a", 9, Origin::Reconcile));
        assert_eq!(p.cursor().cloned(), cursor("a", 9));
        p.advance(&ev("a", 9, event::Kind::Heartbeat(Heartbeat {})));
        assert_eq!(p.cursor().cloned(), cursor("a", 9));
        // The agent's word is the position, even where it skipped changes
        // (which is warned about).
        p.advance(&ev("a", 12, event::Kind::Heartbeat(Heartbeat {})));
        assert_eq!(p.cursor().cloned(), cursor("a", 12));
    }

    #[test]
    fn a_replayed_change_is_a_duplicate_and_a_stale_marker_does_not_rewind() {
        let mut p = Position::new(cursor("a", 9));
        assert_eq!(
            p.advance(&add("a", 9, Origin::Notification)),
            Step::Duplicate
        );
        assert_eq!(
            p.advance(&add("a", 3, Origin::Notification)),
            Step::Duplicate
        );
        p.advance(&sync("a", 5));
        assert_eq!(p.cursor().cloned(), cursor("a", 9));
        assert_eq!(p.advance(&add("a", 10, Origin::Notification)), Step::Apply);
        assert_eq!(p.cursor().cloned(), cursor("a", 10));
    }

    #[test]
    fn resync_then_snapshot_then_sync_switches_stream() {
        let mut p = Position::new(cursor("old", 40));
        let resync = Resync {
            reason: "agent restarted".into(),
            cause: 1,
        };
        p.advance(&ev("new", 3, event::Kind::Resync(resync)));
        assert_eq!(
            p.cursor().cloned(),
            cursor("old", 40),
            "not before the sync"
        );
        p.advance(&add("new", 3, Origin::Dump));
        p.advance(&add("new", 3, Origin::Dump));
        assert_eq!(p.cursor().cloned(), cursor("old", 40), "not mid-snapshot");
        p.advance(&sync("new", 3));
        assert_eq!(p.cursor().cloned(), cursor("new", 3));
        // The new stream's changes are not compared with the old cursor.
        assert_eq!(p.advance(&add("new", 4, Origin::Notification)), Step::Apply);
        assert_eq!(p.cursor().cloned(), cursor("new", 4));
    }

    #[test]
    fn after_a_resync_the_sync_is_the_position_even_behind_the_cursor() {
        // The agent lost changes 31..40 of stream "a" (its state dir's
        // unsynced tail) and continues "a" from 30: the consumer must take
        // the new 31 onwards, not drop them as replays.
        let mut p = Position::new(cursor("a", 40));
        let resync = Resync {
            reason: "unknown position".into(),
            cause: 1,
        };
        p.advance(&ev("a", 30, event::Kind::Resync(resync)));
        p.advance(&add("a", 30, Origin::Dump));
        p.advance(&sync("a", 30));
        assert_eq!(p.cursor().cloned(), cursor("a", 30));
        assert_eq!(p.advance(&add("a", 31, Origin::Notification)), Step::Apply);
        // Without a resync, a Sync behind the cursor is ignored again.
        p.advance(&sync("a", 5));
        assert_eq!(p.cursor().cloned(), cursor("a", 31));
    }

    #[test]
    fn a_lagged_resync_on_the_same_stream_moves_on_at_its_sync() {
        let mut p = Position::new(cursor("a", 10));
        let resync = Resync {
            reason: "lagged".into(),
            cause: 3,
        };
        p.advance(&ev("a", 500, event::Kind::Resync(resync)));
        p.advance(&add("a", 500, Origin::Dump));
        assert_eq!(p.cursor().cloned(), cursor("a", 10));
        p.advance(&sync("a", 500));
        assert_eq!(p.cursor().cloned(), cursor("a", 500));
    }
}
