//! The framing of the state dir's files (`state.pb`, `journal.log`): a
//! header naming the format and its version, then checksummed records.
//!
//! ```text
//! header:  "rwstate" version(u8)
//! record:  len(u32 LE) payload_crc(u32 LE) header_crc(u32 LE) payload[len]
//! ```
//!
//! The payload is a whole `SubscribeResponse` (as a session sends one): one
//! or more events, with the stream id and the causes its changes leave to
//! the response. Version 1 wrote one event per record, which reads the same
//! way. `header_crc` covers `len` and `payload_crc`, so a damaged length is
//! told apart from a record cut short by the end of the file.
//!
//! The log is appended with one write(2) per batch. A process killed in the
//! middle of one leaves a prefix of the bytes it meant to write, never
//! different bytes: a record that runs past the end of the file is torn
//! (and only the last one can be). Anything else that does not read -- a
//! checksum that does not match, a record that does not decode, an unknown
//! header -- is damage, wherever it is, including in the last record.

use prost::Message;
use routewatch_proto::v1 as api;

/// Identifies the format; the byte after it is the version.
const MAGIC: &[u8; 7] = b"rwstate";
/// The version this agent writes; it reads this one and the one before.
pub const VERSION: u8 = 2;
/// What every file starts with.
pub const HEADER: [u8; 8] = {
    let mut h = [0u8; 8];
    let mut i = 0;
    while i < MAGIC.len() {
        h[i] = MAGIC[i];
        i += 1;
    }
    h[7] = VERSION;
    h
};
/// Bytes in front of each record's payload.
pub const FRAME: usize = 12;

/// Appends the payload made of `parts`, side by side, as one framed record
/// to `out`.
pub fn frame(parts: &[impl AsRef<[u8]>], out: &mut Vec<u8>) {
    let len: usize = parts.iter().map(|p| p.as_ref().len()).sum();
    let len = u32::try_from(len).expect("a record under 4 GiB");
    let mut payload_crc = crc32fast::Hasher::new();
    for part in parts {
        payload_crc.update(part.as_ref());
    }
    let mut head = [0u8; 8];
    head[..4].copy_from_slice(&len.to_le_bytes());
    head[4..].copy_from_slice(&payload_crc.finalize().to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&crc32fast::hash(&head).to_le_bytes());
    for part in parts {
        out.extend_from_slice(part.as_ref());
    }
}

/// A file's records, all intact.
#[derive(Debug)]
pub struct Contents {
    pub events: Vec<api::Event>,
    /// Length of the intact part (header included; 0 for an empty file).
    pub good: usize,
    /// Bytes after `good`: a torn last record (only where allowed).
    pub torn: usize,
}

/// Why a file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// Not this format, or a version this agent does not read.
    UnknownFormat(String),
    /// A record that does not read, other than a torn last one.
    Damaged(String),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::UnknownFormat(s) | Unusable::Damaged(s) => f.write_str(s),
        }
    }
}

/// Where a torn last record may be: only the log, which is appended to; a
/// state file is written whole and renamed into place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    MayBeTorn,
    Complete,
}

/// Reads a whole file. An empty file holds no records.
pub fn read(bytes: &[u8], tail: Tail) -> Result<Contents, Unusable> {
    let torn_allowed = tail == Tail::MayBeTorn;
    if bytes.is_empty() {
        return Ok(Contents {
            events: Vec::new(),
            good: 0,
            torn: 0,
        });
    }
    if bytes.len() < HEADER.len() {
        // A header cut short by the end of the file is torn; any other
        // short file is not ours.
        if torn_allowed && HEADER.starts_with(bytes) {
            return Ok(Contents {
                events: Vec::new(),
                good: 0,
                torn: bytes.len(),
            });
        }
        return Err(Unusable::UnknownFormat(format!(
            "{} bytes that are not a routewatch state file header",
            bytes.len()
        )));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(Unusable::UnknownFormat(
            "it does not start with a routewatch state file header (written by a version that had none, or not by routewatch)".into(),
        ));
    }
    let version = bytes[MAGIC.len()];
    if !(1..=VERSION).contains(&version) {
        return Err(Unusable::UnknownFormat(format!(
            "format version {version}; this agent reads versions 1 to {VERSION}"
        )));
    }
    let mut events = Vec::new();
    let mut at = HEADER.len();
    let mut index = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let damaged = |what: &str| {
            Unusable::Damaged(format!(
                "record {index} at byte {at} of {}: {what}",
                bytes.len()
            ))
        };
        // Only the end of the file may cut a record short, and only where
        // the file is appended to.
        let torn = |what: &str| {
            if torn_allowed {
                Ok(())
            } else {
                Err(damaged(what))
            }
        };
        if rest.len() < FRAME {
            torn("the file ends inside its frame")?;
            return Ok(Contents {
                events,
                good: at,
                torn: rest.len(),
            });
        }
        let head: [u8; 8] = rest[..8].try_into().expect("8 bytes");
        let header_crc = u32::from_le_bytes(rest[8..12].try_into().expect("4 bytes"));
        if crc32fast::hash(&head) != header_crc {
            return Err(damaged("its frame's checksum does not match"));
        }
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        let payload_crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        let Some(payload) = rest.get(FRAME..FRAME + len) else {
            torn("the file ends inside it")?;
            return Ok(Contents {
                events,
                good: at,
                torn: rest.len(),
            });
        };
        if crc32fast::hash(payload) != payload_crc {
            return Err(damaged("its checksum does not match"));
        }
        let response = api::SubscribeResponse::decode(payload).map_err(|e| {
            damaged(&format!(
                "its checksum matches but it does not decode ({e})"
            ))
        })?;
        if response.events.is_empty() {
            return Err(damaged("its checksum matches but it holds no event"));
        }
        events.extend(response.events);
        at += FRAME + len;
        index += 1;
    }
    Ok(Contents {
        events,
        good: at,
        torn: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use routewatch_proto::batch::record;

    fn event(seq: u64) -> api::Event {
        api::Event {
            stream_id: "s".into(),
            seq,
            netns: "some-namespace".into(),
            ..Default::default()
        }
    }

    /// A file of `n` events, with the offset where each record starts.
    fn file(n: u64) -> (Vec<u8>, Vec<usize>) {
        let mut out = HEADER.to_vec();
        let mut starts = Vec::new();
        for seq in 1..=n {
            starts.push(out.len());
            frame(&[record(&event(seq))], &mut out);
        }
        (out, starts)
    }

    fn seqs(c: &Contents) -> Vec<u64> {
        c.events.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn an_intact_file_reads_whole() {
        let (bytes, _) = file(3);
        let c = read(&bytes, Tail::Complete).unwrap();
        assert_eq!(seqs(&c), vec![1, 2, 3]);
        assert_eq!((c.good, c.torn), (bytes.len(), 0));
    }

    #[test]
    fn a_record_holds_a_whole_response() {
        use routewatch_proto::batch::{cause_record, stream_record};
        let by = api::ChangedBy {
            comm: "ip".into(),
            ..Default::default()
        };
        let change = |cause| {
            let mut e = event(0);
            e.stream_id.clear();
            e.kind = Some(api::event::Kind::Change(api::Change {
                cause,
                ..Default::default()
            }));
            e
        };
        let mut bytes = HEADER.to_vec();
        let parts = [
            stream_record("s"),
            record(&change(7)),
            record(&change(0)),
            cause_record(&api::Cause {
                id: 7,
                changed_by: Some(by.clone()),
                reason: String::new(),
            }),
        ];
        frame(&parts, &mut bytes);
        let c = read(&bytes, Tail::Complete).unwrap();
        assert_eq!(c.events.len(), 2);
        assert!(c.events.iter().all(|e| e.stream_id == "s"));
        let Some(api::event::Kind::Change(first)) = &c.events[0].kind else {
            panic!("a change");
        };
        assert_eq!((first.changed_by.as_ref(), first.cause), (Some(&by), 0));
        // A change whose cause is not in its record is damage.
        let mut bytes = HEADER.to_vec();
        frame(&parts[..3], &mut bytes);
        let err = read(&bytes, Tail::Complete).unwrap_err();
        assert!(
            matches!(&err, Unusable::Damaged(w) if w.contains("cause 7")),
            "{err:?}"
        );
    }

    #[test]
    fn an_empty_file_holds_nothing() {
        let c = read(&[], Tail::MayBeTorn).unwrap();
        assert!(c.events.is_empty());
        assert_eq!((c.good, c.torn), (0, 0));
        let c = read(&HEADER, Tail::Complete).unwrap();
        assert_eq!((c.events.len(), c.good, c.torn), (0, 8, 0));
    }

    #[test]
    fn a_torn_last_record_is_cut_wherever_the_write_stopped() {
        let (bytes, starts) = file(3);
        // Inside the frame, and inside the payload.
        for cut in [starts[2] + 5, bytes.len() - 1] {
            let c = read(&bytes[..cut], Tail::MayBeTorn).unwrap();
            assert_eq!(seqs(&c), vec![1, 2], "cut at {cut}");
            assert_eq!((c.good, c.torn), (starts[2], cut - starts[2]));
        }
        // A torn header: nothing was ever written after it.
        let c = read(&HEADER[..3], Tail::MayBeTorn).unwrap();
        assert_eq!((c.events.len(), c.good, c.torn), (0, 0, 3));
    }

    #[test]
    fn a_state_file_cut_short_is_damaged() {
        let (bytes, _) = file(3);
        let err = read(&bytes[..bytes.len() - 1], Tail::Complete).unwrap_err();
        assert!(matches!(err, Unusable::Damaged(_)), "{err:?}");
    }

    #[test]
    fn damage_in_the_middle_is_not_a_torn_tail() {
        let (bytes, starts) = file(5);
        // In a payload, in a length, in a checksum.
        for at in [starts[2] + 20, starts[2], starts[2] + 4, starts[2] + 8] {
            let mut damaged = bytes.clone();
            damaged[at..at + 4].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
            let err = read(&damaged, Tail::MayBeTorn).unwrap_err();
            let Unusable::Damaged(what) = err else {
                panic!("damage at {at} taken for {err:?}");
            };
            assert!(
                what.starts_with(&format!("record 2 at byte {}", starts[2])),
                "says where: {what}"
            );
        }
    }

    #[test]
    fn damage_in_the_last_complete_record_is_damage() {
        let (mut bytes, _) = file(2);
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        let err = read(&bytes, Tail::MayBeTorn).unwrap_err();
        assert!(matches!(err, Unusable::Damaged(_)), "{err:?}");
    }

    #[test]
    fn a_record_that_checks_but_does_not_decode_is_damage() {
        let mut bytes = HEADER.to_vec();
        frame(&[[0x0a, 0x05, 0xff]], &mut bytes);
        let err = read(&bytes, Tail::MayBeTorn).unwrap_err();
        assert!(
            matches!(&err, Unusable::Damaged(w) if w.contains("does not decode")),
            "{err:?}"
        );
    }

    #[test]
    fn a_damaged_or_foreign_header_is_an_unknown_format() {
        let (bytes, _) = file(2);
        let mut other_version = bytes.clone();
        other_version[7] = 3;
        let err = read(&other_version, Tail::MayBeTorn).unwrap_err();
        assert_eq!(
            err,
            Unusable::UnknownFormat("format version 3; this agent reads versions 1 to 2".into())
        );
        other_version[7] = 1;
        assert_eq!(
            seqs(&read(&other_version, Tail::Complete).unwrap()),
            vec![1, 2]
        );
        let mut damaged = bytes.clone();
        damaged[1] = b'x';
        assert!(matches!(
            read(&damaged, Tail::MayBeTorn),
            Err(Unusable::UnknownFormat(_))
        ));
        // The format before headers: bare field-1 records.
        let old = record(&event(1));
        assert!(matches!(
            read(&old, Tail::MayBeTorn),
            Err(Unusable::UnknownFormat(_))
        ));
        assert!(matches!(
            read(&old[..3], Tail::MayBeTorn),
            Err(Unusable::UnknownFormat(_))
        ));
    }
}
