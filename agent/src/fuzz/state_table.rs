//! Netlink messages, mutated from the fixtures, applied to a state table
//! in any order: the table never panics, and a consumer applying the
//! changes it emits holds what the table holds (the stream's promise).

use proptest::prelude::*;

use super::netlink::message;
use crate::decode::decode_message;
use crate::state::StateTable;

/// What a table holds, comparable.
fn contents(table: &StateTable) -> Vec<String> {
    let mut out: Vec<String> = table
        .objects()
        .map(|(key, object)| format!("{key:?} {object:?}"))
        .collect();
    out.sort();
    out
}

proptest! {
    #![proptest_config(routewatch_proto::fuzzing::config(1000))]

    #[test]
    fn fuzz_state_table_follows_its_changes(
        messages in proptest::collection::vec(message(std::sync::Arc::new(super::fixtures())), 1..12)
    ) {
        let mut table = StateTable::new();
        let mut consumer = StateTable::new();
        for bytes in &messages {
            let Ok(decoded) = decode_message(bytes) else { continue };
            let mut out = Vec::new();
            let _ = table.apply(decoded.message, &mut out);
            for change in &out {
                consumer.restore(change);
            }
            prop_assert_eq!(contents(&consumer), contents(&table), "after {:02x?}", bytes);
        }
    }
}
