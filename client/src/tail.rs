//! `routewatch tail`: prints every target's stream as it arrives, tells the
//! reader about lost and regained subscriptions, and keeps the cursor file
//! no further ahead than stdout.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use routewatch_proto::v1::{event, Cursor, Event, Origin as ApiOrigin, SubscribeRequest};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cli::Tail;
use crate::cursor_file::{self, CursorFile};
use crate::picture::{Pictures, Shown};
use crate::printer::{now_unix_nano, printer, Format, Mode, Notice, Origin, Paint};
use crate::subscription::{fan_in, Delivery, Options};
use crate::target::Target;
use crate::{ClientError, Failures};

/// How often, at most, the cursor file is written while changes flow.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Runs `tail` until every target has ended, `shutdown` is cancelled, or
/// `--count` / `--until` is reached.
pub async fn run(args: Tail, shutdown: CancellationToken) -> Result<(), ClientError> {
    let watch = args.watch;
    if watch.format == Format::JsonArray {
        return Err(ClientError::Usage(
            "-o json-array is for show: tail prints one JSON object per line with -o json (jq -s makes an array of them)".into(),
        ));
    }
    let targets = crate::targets(&watch)?;
    let until = args.until;
    // jsonpb prints the API's events: always as the agent sends them.
    let raw = args.raw || watch.format == Format::Jsonpb;
    if args.last == Some(0) {
        return Err(ClientError::Usage(
            "--last 0 replays nothing: leave it out, or use --no-snapshot for changes from now on"
                .into(),
        ));
    }
    let replay = args.last.is_some() || args.since.is_some();
    if args.verify {
        let filtered = !args.filter.allow.is_empty() || !args.filter.deny.is_empty();
        let without = if filtered {
            Some("filters (a filtered picture holds part of what a digest sums up)")
        } else if raw {
            Some("--raw or -o jsonpb (they keep no picture)")
        } else if replay {
            Some("--last or --since (a replay has no snapshot to start the picture)")
        } else {
            None
        };
        if let Some(without) = without {
            return Err(ClientError::Usage(format!(
                "--verify compares tail's whole picture with the agents' digests: it cannot be used with {without}"
            )));
        }
    }
    let request = SubscribeRequest {
        // Without --raw the snapshot is the picture a later resync is
        // compared with, printed or not. A replay of the journal has none.
        snapshot: !(replay || args.no_snapshot && raw),
        follow: true,
        resume_from: None,
        allow: args.filter.allow,
        deny: args.filter.deny,
        replay_last: args.last.unwrap_or(0),
        replay_since_unix_nano: args.since.unwrap_or(0),
        digest: false,
    };
    let book = match &args.cursor_file {
        Some(path) => {
            let mut book = CursorFile::load(path)?;
            book.use_filter(crate::filter_record(&request))?;
            Some(book)
        }
        None => None,
    };
    let resume = stored_cursors(&targets, book.as_ref());
    let many = crate::many_hosts(&targets);
    let mut remaining = targets.len();
    let restarts = crate::restart::Restarts::default();
    let options = Options {
        reconnect: true,
        compression: watch.reach.compression,
        security: crate::security(&watch, &targets)?,
        resume,
        dns_refresh: Duration::from_secs(watch.reach.dns_refresh.max(1)),
        claims: None,
        iproute2_dir: watch.iproute2_dir.clone(),
        connect_timeout: watch.reach.connect_timeout(),
        retries: args.retries,
        busy_retry: Duration::ZERO,
        restarts: restarts.clone(),
    };
    // --count and --until end the subscriptions, not the process.
    let stop = shutdown.child_token();
    let mut rx = fan_in(targets, request, options, stop.clone());
    let paint = Paint::for_stdout(watch.color);
    let mut print = printer(watch.format, Mode::Tail, paint);
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut failures = Failures::new(remaining);
    let mut saver = book.map(Saver::new);
    let mut pictures = match (raw, args.verify) {
        (true, _) => None,
        (false, false) => Some(Pictures::default()),
        (false, true) => Some(Pictures::verifying(restarts)),
    };
    let mut left = args.count;
    let deadline = until.map(|until| {
        let ahead = until.saturating_sub(now_unix_nano()).max(0);
        Instant::now() + Duration::from_nanos(ahead as u64)
    });
    let printed: Result<(), ClientError> = async {
        while remaining > 0 && left != Some(0) {
            let save_due = saver.as_ref().and_then(Saver::due);
            let delivery = tokio::select! {
                delivery = rx.recv() => delivery,
                _ = sleep_until(save_due), if save_due.is_some() => {
                    if let Some(saver) = saver.as_mut() {
                        saver.save().await?;
                    }
                    continue;
                }
                _ = sleep_until(deadline), if deadline.is_some() => break,
            };
            let Some(delivery) = delivery else { break };
            match delivery {
                Delivery::Events {
                    host,
                    target,
                    events,
                    cursor,
                } => {
                    let from = Origin { host: &host, many };
                    let mut show = |shown: Shown<'_>| -> io::Result<bool> {
                        if left == Some(0) {
                            return Ok(false);
                        }
                        match shown {
                            Shown::Event(event) => {
                                if args.no_snapshot && is_snapshot(event) {
                                    return Ok(true);
                                }
                                print.print(&mut out, &from, event)?;
                                if let (Some(n), true) = (left.as_mut(), is_object(event)) {
                                    *n -= 1;
                                }
                            }
                            Shown::Differences(event) => {
                                print.resync_differences(&mut out, &from, event)?;
                            }
                        }
                        Ok(true)
                    };
                    let whole = match pictures.as_mut() {
                        Some(pictures) => pictures.apply(&target, events, &mut show)?,
                        None => {
                            let mut whole = true;
                            for event in &events {
                                if !show(Shown::Event(event))? {
                                    whole = false;
                                    break;
                                }
                            }
                            whole
                        }
                    };
                    out.flush()?;
                    // Only now: a restarted tail must not skip a line this
                    // one did not get out (nor one --count left unprinted).
                    if let (Some(saver), Some(cursor), true) = (saver.as_mut(), cursor, whole) {
                        saver.note(&target, cursor);
                    }
                }
                Delivery::Connected {
                    host,
                    again,
                    resume_from,
                    ..
                } => {
                    let notice = Notice::Connected {
                        again,
                        resume_from: resume_from.as_ref(),
                    };
                    let from = Origin { host: &host, many };
                    print.notice(&mut out, &from, &notice, now_unix_nano())?;
                    out.flush()?;
                }
                Delivery::Disconnected {
                    host,
                    error,
                    retry_in,
                    ..
                } => {
                    let notice = Notice::Disconnected {
                        error: &error,
                        retry_in,
                    };
                    let from = Origin { host: &host, many };
                    print.notice(&mut out, &from, &notice, now_unix_nano())?;
                    out.flush()?;
                }
                Delivery::Added { .. } => {
                    remaining += 1;
                    failures.add_one();
                }
                Delivery::Ended { host, dropped } => {
                    remaining -= 1;
                    if let Some(reason) = dropped {
                        let from = Origin { host: &host, many };
                        let notice = Notice::Dropped { reason: &reason };
                        print.notice(&mut out, &from, &notice, now_unix_nano())?;
                        out.flush()?;
                    }
                }
                Delivery::Failed(e) => {
                    failures.note(e);
                    remaining -= 1;
                }
            }
        }
        Ok(())
    }
    .await;
    stop.cancel();
    // Whatever stopped the output, the positions noted were printed: keep
    // them for the next run.
    if let Some(saver) = saver.as_mut() {
        if saver.dirty {
            saver.save().await?;
        }
    }
    printed?;
    failures.result()
}

/// A snapshot's object (not printed with --no-snapshot).
fn is_snapshot(event: &Event) -> bool {
    matches!(&event.kind, Some(event::Kind::Change(c)) if c.origin == ApiOrigin::Dump as i32)
}

/// A line about a route, nexthop object or rule (what --count counts).
fn is_object(event: &Event) -> bool {
    matches!(&event.kind, Some(event::Kind::Change(c)) if c.object.is_some())
}

/// The stored cursor of every remote target, by address; with a
/// `dns:///` target, of any address it may resolve to. This host in
/// process starts a new stream in every run: nothing to resume.
fn stored_cursors(targets: &[Target], book: Option<&CursorFile>) -> HashMap<String, Cursor> {
    let Some(book) = book else {
        return HashMap::new();
    };
    if targets.iter().any(|t| matches!(t, Target::Dns { .. })) {
        return book
            .entries()
            .map(|(addr, c)| (addr.to_owned(), c.clone()))
            .collect();
    }
    targets
        .iter()
        .filter_map(|t| match t {
            Target::Remote(addr) => book.get(addr).map(|c| (addr.clone(), c.clone())),
            Target::Local | Target::Dns { .. } => None,
        })
        .collect()
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Writes the cursor file at most every [`SAVE_EVERY`] while positions
/// change.
struct Saver {
    file: CursorFile,
    /// Positions changed since the last write.
    dirty: bool,
    last_save: Option<Instant>,
}

impl Saver {
    fn new(file: CursorFile) -> Saver {
        Saver {
            file,
            dirty: false,
            last_save: None,
        }
    }

    /// `target` (a remote target's address) has printed everything up to
    /// `cursor`.
    fn note(&mut self, target: &str, cursor: Cursor) {
        if self.file.set(target, &cursor) {
            self.dirty = true;
        }
    }

    /// When the next write is due, if one is.
    fn due(&self) -> Option<Instant> {
        if !self.dirty {
            return None;
        }
        Some(match self.last_save {
            Some(last) => last + SAVE_EVERY,
            None => Instant::now(),
        })
    }

    async fn save(&mut self) -> Result<(), ClientError> {
        let path: PathBuf = self.file.path().to_owned();
        let contents = self.file.contents();
        let written = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || cursor_file::replace(&path, &contents)).await
        };
        let written = written.unwrap_or_else(|e| Err(io::Error::other(e.to_string())));
        written.map_err(|source| ClientError::CursorSave { path, source })?;
        self.dirty = false;
        self.last_save = Some(Instant::now());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(seq: u64) -> Cursor {
        Cursor {
            stream_id: "s".into(),
            seq,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_cursor_file_is_written_at_most_once_a_second() {
        let path =
            std::env::temp_dir().join(format!("routewatch-saver-test-{}.json", std::process::id()));
        let mut saver = Saver::new(CursorFile::load(&path).unwrap());
        assert_eq!(saver.due(), None, "nothing to write yet");
        saver.note("h:1", cursor(1));
        let first = saver.due().expect("due");
        assert!(first <= Instant::now(), "the first write is not delayed");
        saver.save().await.unwrap();
        assert_eq!(saver.due(), None);
        saver.note("h:1", cursor(1));
        assert_eq!(
            saver.due(),
            None,
            "an unchanged cursor is not written again"
        );
        saver.note("h:1", cursor(2));
        let saved_at = saver.last_save.unwrap();
        assert_eq!(saver.due(), Some(saved_at + SAVE_EVERY));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            saver.due(),
            Some(saved_at + SAVE_EVERY),
            "overdue: written at once"
        );
        saver.save().await.unwrap();
        let back = CursorFile::load(&path).unwrap();
        assert_eq!(back.get("h:1"), Some(&cursor(2)));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn only_remote_targets_resume_from_the_file() {
        let path = std::env::temp_dir().join("routewatch-absent-cursor-file.json");
        let mut book = CursorFile::load(&path).unwrap();
        book.set("h:1", &cursor(4));
        let targets = vec![
            Target::Local,
            Target::Remote("h:1".into()),
            Target::Remote("h:2".into()),
        ];
        let resume = stored_cursors(&targets, Some(&book));
        assert_eq!(resume.len(), 1);
        assert_eq!(resume["h:1"], cursor(4));
        assert!(stored_cursors(&targets, None).is_empty());
    }
}
