//! `--cursor-file`: any text read without a panic, and what the client
//! writes read back the same.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use routewatch_proto::fuzzing::{self, bounded};
use routewatch_proto::v1::Cursor;
use serde_json::json;

use crate::cursor_file::{parse, CursorFile};

/// Cursor files as the client writes them, with and without filters.
fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let filters = [
        None,
        Some(json!({"allow": [{"protocol": ["bgp"], "within": ["10.0.0.0/8"]}]})),
    ];
    for filter in filters {
        let mut file = CursorFile::load(&scratch()).expect("no file yet");
        file.use_filter(filter)
            .expect("an empty file takes any filter");
        out.push(file.contents());
        file.set(
            "10.0.0.1:50051",
            &Cursor {
                stream_id: "9f0c2b1a00000000".into(),
                seq: 1234,
            },
        );
        file.set(
            "[2001:db8::1]:50051",
            &Cursor {
                stream_id: "abc".into(),
                seq: u64::MAX,
            },
        );
        out.push(file.contents());
    }
    out
}

/// A path no other case uses, in the temporary dir.
fn scratch() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "routewatch-fuzz-cursors-{}-{}.json",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter),
        1 => proptest::sample::select(&["", "\"", "\\", "\u{0}", "é", "10.0.0.1:50051", "dns:///x"][..])
            .prop_map(str::to_owned),
    ]
}

fn cursors() -> impl Strategy<Value = Vec<(String, String, u64)>> {
    proptest::collection::vec(
        (
            text(),
            text().prop_filter("the agent's stream ids are not empty", |s| !s.is_empty()),
            prop_oneof![Just(0), Just(u64::MAX), any::<u64>()],
        ),
        0..5,
    )
}

proptest! {
    #![proptest_config(fuzzing::config(2000))]

    /// Any text is read without a panic; what is accepted holds only
    /// cursors that can be resumed from (a stream id).
    #[test]
    fn fuzz_cursor_file_text(bytes in fuzzing::mutated(seeds(), 256)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(cursors) = bounded(&bytes, || parse(&text)) {
            prop_assert!(cursors.values().all(|c| !c.stream_id.is_empty()));
        }
    }
}

proptest! {
    #![proptest_config(fuzzing::config(300))]

    /// What a tail saves is what the next one loads: every target's cursor
    /// (any target text, any position) and the filters they belong to.
    #[test]
    fn fuzz_cursor_file_round_trip(
        entries in cursors(),
        filter in proptest::option::of(text()),
    ) {
        let path = scratch();
        let mut file = CursorFile::load(&path).expect("no file yet");
        let filter = filter.map(|f| json!({"allow": [{"dev": [f]}]}));
        file.use_filter(filter.clone()).expect("an empty file takes any filter");
        for (target, stream_id, seq) in &entries {
            file.set(target, &Cursor { stream_id: stream_id.clone(), seq: *seq });
        }
        file.save().expect("save");
        let loaded = CursorFile::load(&path);
        let _ = std::fs::remove_file(&path);
        let mut loaded = loaded.expect("what was saved loads");
        let saved: Vec<(&str, &Cursor)> = file.entries().collect();
        prop_assert_eq!(loaded.entries().collect::<Vec<_>>(), saved);
        if !entries.is_empty() {
            prop_assert!(loaded.use_filter(filter).is_ok(), "the same filters are accepted");
        }
    }
}
