//! `--cursor-file`: where each target's tail stopped, kept across runs.
//!
//! ```json
//! {"version":1,"cursors":{"10.0.0.1:50051":{"stream_id":"9f0c…","seq":1234}}}
//! ```
//!
//! A filtered tail also records its filters (`"filter":{"allow":[…]}`, in
//! the API's JSON): a position is only worth resuming with the filters
//! whose picture it continues.
//!
//! The file is replaced atomically (written beside it, synced, renamed over
//! it), so a crash or power cut leaves the old cursors or the new ones,
//! never a torn file. Cursors of targets not watched in this run are kept.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use routewatch_proto::v1::Cursor;
use serde_json::{json, Map, Value};

use crate::ClientError;

/// The format version this client reads and writes.
const VERSION: u64 = 1;

/// The cursors of one `--cursor-file`, by target (`HOST:PORT` as given).
#[derive(Debug, Clone)]
pub struct CursorFile {
    path: PathBuf,
    cursors: BTreeMap<String, Cursor>,
    /// The filters the cursors were written with (none: unfiltered).
    filter: Option<Value>,
}

impl CursorFile {
    /// Reads `path`; a file that does not exist yet holds no cursors.
    pub fn load(path: &Path) -> Result<CursorFile, ClientError> {
        let bad = |problem: String| ClientError::CursorFile {
            path: path.to_owned(),
            problem,
        };
        let (cursors, filter) = match fs::read_to_string(path) {
            Ok(text) => (parse(&text).map_err(bad)?, parse_filter(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (BTreeMap::new(), None),
            Err(e) => return Err(bad(e.to_string())),
        };
        Ok(CursorFile {
            path: path.to_owned(),
            cursors,
            filter,
        })
    }

    /// Keeps the cursors only if they were written with `filter` (none:
    /// unfiltered), and records it; otherwise says what differs.
    pub fn use_filter(&mut self, filter: Option<Value>) -> Result<(), ClientError> {
        if !self.cursors.is_empty() && self.filter != filter {
            let describe = |f: &Option<Value>| match f {
                Some(f) => f.to_string(),
                None => "no filter".to_owned(),
            };
            return Err(ClientError::CursorFile {
                path: self.path.clone(),
                problem: format!(
                    "its positions were written with {}, this tail has {}: use the same filters",
                    describe(&self.filter),
                    describe(&filter)
                ),
            });
        }
        self.filter = filter;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where `target` stopped last time.
    pub fn get(&self, target: &str) -> Option<&Cursor> {
        self.cursors.get(target)
    }

    /// Every target's cursor.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Cursor)> {
        self.cursors.iter().map(|(t, c)| (t.as_str(), c))
    }

    /// Records `target`'s cursor; true when it changed.
    pub fn set(&mut self, target: &str, cursor: &Cursor) -> bool {
        if self.cursors.get(target) == Some(cursor) {
            return false;
        }
        self.cursors.insert(target.to_owned(), cursor.clone());
        true
    }

    /// The file's contents.
    pub fn contents(&self) -> Vec<u8> {
        let cursors: Map<String, Value> = self
            .cursors
            .iter()
            .map(|(target, c)| {
                (
                    target.clone(),
                    json!({ "stream_id": c.stream_id, "seq": c.seq }),
                )
            })
            .collect();
        let mut root = json!({ "version": VERSION, "cursors": cursors });
        if let Some(filter) = &self.filter {
            root["filter"] = filter.clone();
        }
        let mut text = root.to_string();
        text.push('\n');
        text.into_bytes()
    }

    /// Writes the file (see [`replace`]).
    pub fn save(&self) -> Result<(), ClientError> {
        replace(&self.path, &self.contents()).map_err(|source| ClientError::CursorSave {
            path: self.path.clone(),
            source,
        })
    }
}

/// The cursors in a cursor file's text; the error says what is wrong.
pub fn parse(text: &str) -> Result<BTreeMap<String, Cursor>, String> {
    let root: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let root = root
        .as_object()
        .ok_or("expected a JSON object with \"version\" and \"cursors\"")?;
    match root.get("version").and_then(Value::as_u64) {
        Some(VERSION) => {}
        Some(other) => {
            return Err(format!(
                "version {other} is not supported (this routewatch reads version {VERSION})"
            ))
        }
        None => return Err("\"version\" is missing or not a number".into()),
    }
    let entries = root
        .get("cursors")
        .and_then(Value::as_object)
        .ok_or("\"cursors\" is missing or not an object")?;
    entries
        .iter()
        .map(|(target, entry)| {
            let stream_id = entry
                .get("stream_id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    format!("cursor of {target:?}: \"stream_id\" is missing or empty")
                })?;
            let seq = entry.get("seq").and_then(Value::as_u64).ok_or_else(|| {
                format!("cursor of {target:?}: \"seq\" is missing or not a non-negative integer")
            })?;
            let cursor = Cursor {
                stream_id: stream_id.to_owned(),
                seq,
            };
            Ok((target.clone(), cursor))
        })
        .collect()
}

/// The filters a cursor file's text records.
fn parse_filter(text: &str) -> Option<Value> {
    let root: Value = serde_json::from_str(text).ok()?;
    root.get("filter").cloned()
}

/// Replaces `path` with `contents` atomically: written to `PATH.tmp`,
/// synced, renamed over `path`, and the directory synced so that the rename
/// itself survives a power cut.
pub fn replace(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = fs::File::create(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Some filesystems cannot sync a directory; the file itself is safe.
    if let Ok(dir) = fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Scratch;
    use std::os::unix::fs::MetadataExt;

    fn cursor(stream: &str, seq: u64) -> Cursor {
        Cursor {
            stream_id: stream.into(),
            seq,
        }
    }

    #[test]
    fn a_missing_file_holds_no_cursors() {
        let dir = Scratch::new("cursor");
        let f = CursorFile::load(&dir.path().join("absent.json")).unwrap();
        assert_eq!(f.get("10.0.0.1:50051"), None);
    }

    #[test]
    fn cursors_round_trip_through_the_file() {
        let dir = Scratch::new("cursor");
        let path = dir.path().join("cursors.json");
        let mut f = CursorFile::load(&path).unwrap();
        assert!(f.set("10.0.0.1:50051", &cursor("9f0c", 12)));
        assert!(f.set("[::1]:50051", &cursor("77aa", u64::MAX)));
        assert!(
            !f.set("[::1]:50051", &cursor("77aa", u64::MAX)),
            "unchanged"
        );
        f.save().unwrap();

        let text = fs::read_to_string(&path).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["cursors"]["10.0.0.1:50051"]["stream_id"], "9f0c");
        assert_eq!(v["cursors"]["10.0.0.1:50051"]["seq"], 12);

        let back = CursorFile::load(&path).unwrap();
        assert_eq!(back.get("10.0.0.1:50051"), Some(&cursor("9f0c", 12)));
        assert_eq!(back.get("[::1]:50051"), Some(&cursor("77aa", u64::MAX)));
        assert_eq!(back.contents(), f.contents());
    }

    #[test]
    fn saving_replaces_the_file_atomically() {
        let dir = Scratch::new("cursor");
        let path = dir.path().join("cursors.json");
        let tmp = dir.path().join("cursors.json.tmp");
        let mut f = CursorFile::load(&path).unwrap();
        f.set("a:1", &cursor("s", 1));
        f.save().unwrap();
        let before = fs::metadata(&path).unwrap().ino();
        let old = fs::read(&path).unwrap();
        // A reader that opened the old file keeps reading it whole.
        let mut reader = fs::File::open(&path).unwrap();
        // A temporary file left by an earlier crash does not matter.
        fs::write(&tmp, b"{torn").unwrap();

        f.set("a:1", &cursor("s", 2));
        f.save().unwrap();
        assert_ne!(
            fs::metadata(&path).unwrap().ino(),
            before,
            "a new file was renamed over the old one, not rewritten in place"
        );
        assert!(!tmp.exists(), "the temporary file was renamed away");
        let mut seen = Vec::new();
        io::Read::read_to_end(&mut reader, &mut seen).unwrap();
        assert_eq!(seen, old);
        assert_eq!(
            CursorFile::load(&path).unwrap().get("a:1"),
            Some(&cursor("s", 2))
        );
    }

    #[test]
    fn cursors_of_other_targets_are_kept() {
        let dir = Scratch::new("cursor");
        let path = dir.path().join("cursors.json");
        fs::write(
            &path,
            r#"{"version":1,"cursors":{"other:1":{"stream_id":"x","seq":5}}}"#,
        )
        .unwrap();
        let mut f = CursorFile::load(&path).unwrap();
        f.set("mine:1", &cursor("y", 6));
        f.save().unwrap();
        let back = CursorFile::load(&path).unwrap();
        assert_eq!(back.get("other:1"), Some(&cursor("x", 5)));
        assert_eq!(back.get("mine:1"), Some(&cursor("y", 6)));
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let cases = [
            ("{not json", "not JSON"),
            ("[1]", "expected a JSON object"),
            (r#"{"cursors":{}}"#, "\"version\" is missing"),
            (
                r#"{"version":2,"cursors":{}}"#,
                "version 2 is not supported",
            ),
            (r#"{"version":1}"#, "\"cursors\" is missing"),
            (
                r#"{"version":1,"cursors":{"h:1":{"seq":1}}}"#,
                "cursor of \"h:1\": \"stream_id\" is missing",
            ),
            (
                r#"{"version":1,"cursors":{"h:1":{"stream_id":"s","seq":-1}}}"#,
                "cursor of \"h:1\": \"seq\" is missing or not a non-negative integer",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).expect_err(text);
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = Scratch::new("cursor");
        let path = dir.path().join("cursors.json");
        fs::write(&path, "{\"version\":1,").unwrap();
        let err = CursorFile::load(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("not JSON"), "{err}");
    }

    #[test]
    fn cursors_are_kept_only_for_the_filters_they_were_written_with() {
        let dir = Scratch::new("cursor");
        let path = dir.path().join("filtered.json");
        let bgp = Some(json!({"allow":[{"protocol":["bgp"]}]}));
        let mut f = CursorFile::load(&path).unwrap();
        f.use_filter(bgp.clone()).unwrap();
        f.set("h:1", &cursor("s", 3));
        f.save().unwrap();
        let mut back = CursorFile::load(&path).unwrap();
        back.use_filter(bgp.clone()).unwrap();
        assert_eq!(back.get("h:1"), Some(&cursor("s", 3)));
        let e = CursorFile::load(&path)
            .unwrap()
            .use_filter(None)
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(
                r#"written with {"allow":[{"protocol":["bgp"]}]}, this tail has no filter"#
            ),
            "{text}"
        );
        let other = Some(json!({"allow":[{"protocol":["ospf"]}]}));
        assert!(CursorFile::load(&path).unwrap().use_filter(other).is_err());
    }
}
