//! The state table's rules for policy rules, driven by messages the kernel
//! sent for real `ip rule` commands (`agent/tests/fixtures/README.md`).

use routewatch_proto::v1::Rule;

use super::tests::apply;
use super::{Action, Change, Object, Previous, Recheck, StateTable};
use crate::decode::{decode_message, Link, Message};

fn rule_of(c: &Change) -> &Rule {
    match &c.object {
        Object::Rule(r) => r,
        other => panic!("expected a rule, got {other:?}"),
    }
}

#[test]
fn added_then_deleted_by_the_same_key() {
    let mut t = StateTable::new();
    let (added, recheck) = apply(&mut t, &msg!("rule_v4_from_lookup.bin"));
    assert_eq!(recheck, Recheck::No);
    assert_eq!(added.len(), 1);
    assert_eq!(added[0].action, Action::Add);
    assert_eq!(added[0].previous, Previous::None);
    assert_eq!(rule_of(&added[0]).priority, 100);
    assert_eq!(t.rule_count(), 1);

    let (deleted, recheck) = apply(&mut t, &msg!("rule_v4_del.bin"));
    assert_eq!(recheck, Recheck::No);
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].action, Action::Delete);
    assert_eq!(deleted[0].key, added[0].key);
    assert_eq!(t.rule_count(), 0);
}

#[test]
fn a_delete_of_an_unknown_rule_asks_for_a_dump() {
    let mut t = StateTable::new();
    let (out, recheck) = apply(&mut t, &msg!("rule_v4_del.bin"));
    assert!(out.is_empty());
    assert!(matches!(recheck, Recheck::Yes(_)));
}

#[test]
fn an_identical_twin_asks_for_a_dump_which_keeps_both() {
    let mut t = StateTable::new();
    let twin = msg!("rule_v4_from_lookup.bin");
    apply(&mut t, &twin);
    let (out, recheck) = apply(&mut t, &twin);
    assert!(out.is_empty());
    assert!(matches!(recheck, Recheck::Yes(_)));

    let mut fresh = StateTable::new();
    fresh.insert_dumped(twin.clone());
    fresh.insert_dumped(twin.clone());
    fresh.end_dump();
    assert_eq!(fresh.rule_count(), 2);
    let changes = t.reconcile(fresh);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].action, Action::Add);
    assert_eq!(t.rule_count(), 2);
}

#[test]
fn a_goto_target_coming_or_going_asks_for_a_dump() {
    let mut t = StateTable::new();
    // goto 350, unresolved.
    apply(&mut t, &msg!("rule_v4_goto_unresolved.bin"));
    let mut target = match msg!("rule_v4_from_lookup.bin") {
        Message::NewRule(r) => r,
        other => panic!("{other:?}"),
    };
    target.priority = 350;
    let (_, recheck) = apply(&mut t, &Message::NewRule(target.clone()));
    assert!(matches!(recheck, Recheck::Yes(_)));
    let (_, recheck) = apply(&mut t, &Message::DelRule(target.clone()));
    assert!(matches!(recheck, Recheck::Yes(_)));
    // Another family's rule of that priority is no target.
    target.family = routewatch_proto::v1::Family::Inet6 as i32;
    target.src = "2001:db8::/32".into();
    let (_, recheck) = apply(&mut t, &Message::NewRule(target));
    assert_eq!(recheck, Recheck::No);
}

#[test]
fn a_device_named_by_a_rule_appearing_asks_for_a_dump() {
    let mut t = StateTable::new();
    // iif nosuch, detached.
    apply(&mut t, &msg!("rule_v4_iif_detached.bin"));
    let link = |index, name: &str| {
        Message::NewLink(Link {
            index,
            name: name.into(),
            up: false,
            carrier: false,
            vrf_table: None,
        })
    };
    assert_eq!(apply(&mut t, &link(7, "other")).1, Recheck::No);
    assert!(matches!(
        apply(&mut t, &link(8, "nosuch")).1,
        Recheck::Yes(_)
    ));
}

#[test]
fn the_detached_state_is_not_part_of_the_key() {
    let detached = match msg!("rule_v4_iif_detached.bin") {
        Message::NewRule(r) => r,
        other => panic!("{other:?}"),
    };
    let attached = Rule {
        iif_detached: false,
        flags: detached.flags & !0x8,
        ..detached.clone()
    };
    assert_eq!(super::rule_key(&detached), super::rule_key(&attached));
    // A reconcile sends the new state as a change of the same rule.
    let mut t = StateTable::new();
    t.insert_dumped(Message::NewRule(detached));
    t.end_dump();
    let mut fresh = StateTable::new();
    fresh.insert_dumped(Message::NewRule(attached));
    fresh.end_dump();
    let changes = t.reconcile(fresh);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].action, Action::Add);
    assert!(!rule_of(&changes[0]).iif_detached);
    assert!(matches!(
        changes[0].previous,
        Previous::Was(Object::Rule(_))
    ));
}

#[test]
fn the_snapshot_lists_rules_after_nexthop_objects_and_before_routes() {
    let mut t = StateTable::new();
    t.insert_dumped(msg!("nexthop_blackhole.bin"));
    t.insert_dumped(msg!("rule_v4_from_lookup.bin"));
    t.insert_dumped(msg!("route_v4_blackhole.bin"));
    t.end_dump();
    let kinds: Vec<&str> = t
        .snapshot()
        .iter()
        .map(|c| match c.object {
            Object::Nexthop(_) => "nexthop",
            Object::Rule(_) => "rule",
            Object::Route(_) => "route",
        })
        .collect();
    assert_eq!(kinds, ["nexthop", "rule", "route"]);
}
