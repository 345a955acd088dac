//! `routewatch show`: every target's snapshot, sorted as `ip route show`
//! sorts (or as it arrives, `--unsorted`), or counted (`--summary`).
//!
//! Sorted output needs the whole snapshot first. What is kept meanwhile is
//! each event's printed line and a small [`order::Rank`] to sort it by, not the
//! decoded event: the lines are written as the events arrive, while the
//! next ones are still being received and decoded.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use routewatch_proto::v1::{Event, SubscribeRequest};
use tokio_util::sync::CancellationToken;

use crate::cli::Show;
use crate::in_order::InOrder;
use crate::order;
use crate::printer::{printer, Format, Mode, Origin, Paint, Printer};
use crate::subscription::{fan_in, Delivery, Options};
use crate::summary::Summary;
use crate::{ClientError, Failures};

/// Prints every target's snapshot once all have arrived (as it arrives
/// with `--unsorted`).
pub async fn run(args: Show, shutdown: CancellationToken) -> Result<(), ClientError> {
    let watch = args.watch;
    let targets = crate::targets(&watch)?;
    let many = crate::many_hosts(&targets);
    let mut remaining = targets.len();
    let request = SubscribeRequest {
        snapshot: true,
        follow: false,
        resume_from: None,
        allow: args.filter.allow,
        deny: args.filter.deny,
        replay_last: 0,
        replay_since_unix_nano: 0,
        digest: false,
    };
    // A snapshot that cannot be had now is an error, not something to wait
    // for; only an agent that answers busy is asked again (--retry-for).
    let options = Options {
        reconnect: false,
        compression: watch.reach.compression,
        security: crate::security(&watch, &targets)?,
        resume: Default::default(),
        dns_refresh: Duration::from_secs(watch.reach.dns_refresh.max(1)),
        claims: None,
        iproute2_dir: watch.iproute2_dir.clone(),
        connect_timeout: watch.reach.connect_timeout(),
        retries: None,
        restarts: Default::default(),
        busy_retry: args.retry_for,
    };
    let mut rx = fan_in(targets, request, options, shutdown);
    let mut failures = Failures::new(remaining);
    let mut out = io::BufWriter::with_capacity(1 << 16, io::stdout());
    let mut print = printer(watch.format, Mode::Show, Paint::NONE);
    let mut held = if args.summary {
        Held::Summary(Summary::default())
    } else if args.unsorted {
        Held::Nothing
    } else if matches!(watch.format, Format::Table | Format::JsonArray) {
        Held::Events(InOrder::default())
    } else {
        Held::Lines {
            text: Text::default(),
            lines: InOrder::default(),
        }
    };
    while remaining > 0 {
        match rx.recv().await {
            Some(Delivery::Events { host, events, .. }) => {
                let from = Origin { host: &host, many };
                held.take(&host, events, &from, &mut *print, &mut out)?;
            }
            Some(Delivery::Added { .. }) => {
                remaining += 1;
                failures.add_one();
            }
            Some(Delivery::Ended { .. }) => remaining -= 1,
            // Only `tail` reconnects.
            Some(Delivery::Connected { .. } | Delivery::Disconnected { .. }) => {}
            Some(Delivery::Failed(e)) => {
                failures.note(e);
                remaining -= 1;
            }
            None => break,
        }
    }
    held.finish(watch.format, many, &mut *print, &mut out)?;
    out.flush()?;
    failures.result()
}

/// What `show` keeps until every target is done.
enum Held {
    /// `--summary`: the counts.
    Summary(Summary),
    /// `--unsorted`: nothing; each line is printed as its event arrives (a
    /// table's rows still wait for the widest value).
    Nothing,
    /// Each event's line, written as the event arrives, and where it goes:
    /// the decoded event itself is not kept.
    Lines { text: Text, lines: InOrder<Span> },
    /// `-o table`: the events, whose rows are aligned only at the end;
    /// `-o json-array`: the events, whose elements are separated only
    /// once they are in order.
    Events(InOrder<Event>),
}

impl Held {
    /// Takes one batch of `host`'s events.
    fn take(
        &mut self,
        host: &Arc<str>,
        events: Vec<Event>,
        from: &Origin<'_>,
        print: &mut dyn Printer,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        match self {
            Held::Summary(summary) => events.iter().for_each(|e| summary.add(host, e)),
            Held::Nothing => {
                for e in &events {
                    print.print(out, from, e)?;
                }
            }
            Held::Lines { text, lines } => {
                let mut lines = lines.batch(host);
                for e in &events {
                    let (chunk, buf) = text.room();
                    let start = buf.len();
                    print.print(buf, from, e)?;
                    if buf.len() > start {
                        lines.push(order::rank(e), Span::new(chunk, start, buf.len()));
                    }
                }
            }
            Held::Events(held) => {
                let mut held = held.batch(host);
                for e in events {
                    held.push(order::rank(&e), e);
                }
            }
        }
        Ok(())
    }

    /// Prints what was held.
    fn finish(
        self,
        format: Format,
        many: bool,
        print: &mut dyn Printer,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        match self {
            Held::Summary(summary) => return summary.print(out, format),
            Held::Nothing => {}
            Held::Lines { text, lines } => {
                for (_, line) in lines.into_sorted() {
                    out.write_all(text.get(line))?;
                }
            }
            Held::Events(held) => {
                for (host, e) in held.into_sorted() {
                    print.print(out, &Origin { host: &host, many }, &e)?;
                }
            }
        }
        print.finish(out)
    }
}

/// The lines `show` holds, in chunks of about [`Text::CHUNK`] bytes: half
/// a gigabyte of a full table's JSON then never moves as it grows (one
/// buffer was copied each time it doubled, all of it with an allocator
/// that does not remap).
#[derive(Default)]
struct Text {
    chunks: Vec<Vec<u8>>,
}

/// Where a line is in [`Text`].
#[derive(Debug, Clone, Copy)]
struct Span {
    chunk: u32,
    start: u32,
    end: u32,
}

impl Span {
    fn new(chunk: usize, start: usize, end: usize) -> Span {
        let n = |x: usize| u32::try_from(x).expect("a chunk holds less than 4 GiB");
        Span {
            chunk: n(chunk),
            start: n(start),
            end: n(end),
        }
    }
}

impl Text {
    const CHUNK: usize = 1 << 20;
    /// A chunk with less room than this left is closed: lines are much
    /// shorter (a longer one grows its chunk).
    const SLACK: usize = 16 << 10;

    /// The chunk the next line goes into, and its index.
    fn room(&mut self) -> (usize, &mut Vec<u8>) {
        let full = self
            .chunks
            .last()
            .is_none_or(|c| c.len() + Self::SLACK > Self::CHUNK);
        if full {
            self.chunks.push(Vec::with_capacity(Self::CHUNK));
        }
        let last = self.chunks.len() - 1;
        (last, &mut self.chunks[last])
    }

    fn get(&self, span: Span) -> &[u8] {
        &self.chunks[span.chunk as usize][span.start as usize..span.end as usize]
    }
}
