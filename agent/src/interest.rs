//! What a filtered subscriber receives of the journal.
//!
//! The request's filters are compiled once, when the session starts; a bad
//! value fails the call there. The picture stays exact within the filter:
//!
//! - the snapshot holds the objects that pass;
//! - an add that passes and a delete of an object that passed go out as the
//!   journal's shared records, untouched;
//! - an add that does not pass, of a key whose previous version did (so
//!   the subscriber holds it), goes out as a delete of that version, if
//!   such a delete passes: the object left the filter. Only these are
//!   encoded for the one session.
//!
//! Everything else is dropped; the session's cursor moves past it all the
//! same, and heartbeats carry it to the subscriber.

use bytes::Bytes;
use routewatch_proto::filter::{self, Filters, InvalidFilter, Subject};
use routewatch_proto::v1::{self as api, SubscribeRequest};
use routewatch_proto::Names;

use crate::journal::{change_record, Entry, StreamInfo};
use crate::state::{Action, Change, Object, Previous};

/// A session's compiled filters.
#[derive(Debug)]
pub struct Interest {
    filters: Filters,
}

/// What the subscriber gets of one journal entry.
#[derive(Debug, PartialEq)]
pub enum Pass {
    /// The entry as it is: its shared record.
    Shared(Bytes),
    /// A delete standing in for the entry, encoded for this session.
    Left(Bytes),
    /// Nothing.
    Dropped,
}

impl Interest {
    /// The request's filters, read with the host's `names`; `None` when it
    /// has none (every event passes and the session sends the journal's
    /// records as they are).
    pub fn of(
        request: &SubscribeRequest,
        names: &Names,
    ) -> Result<Option<Interest>, InvalidFilter> {
        let filters = Filters::of(request, names)?;
        Ok((!filters.is_empty()).then_some(Interest { filters }))
    }

    /// Whether a snapshot object of namespace `netns` passes.
    pub fn keeps(&self, netns: &str, change: &Change) -> bool {
        self.passes(netns, Action::Add, api::Origin::Dump, None, &change.object)
    }

    /// What the subscriber gets of `entry`.
    pub fn pass(&self, info: &StreamInfo, entry: &Entry) -> Pass {
        let change = &entry.change;
        let netns = &*entry.netns;
        let by = entry.changed_by();
        if self.passes(netns, change.action, entry.origin, by, &change.object) {
            return Pass::Shared(entry.record());
        }
        if change.action == Action::Delete {
            return Pass::Dropped;
        }
        let held = match &change.previous {
            Previous::None => return Pass::Dropped,
            Previous::Was(old)
                if self.passes(netns, Action::Add, entry.origin, by, old)
                    && self.passes(netns, Action::Delete, entry.origin, by, old) =>
            {
                old
            }
            Previous::Was(_) => return Pass::Dropped,
            // Recovered from the state dir without its history: the
            // subscriber may hold some version of the key. A delete of a
            // key it does not hold changes nothing for it.
            Previous::Unknown => &change.object,
        };
        let delete = Change {
            action: Action::Delete,
            key: change.key,
            object: held.clone(),
            previous: Previous::None,
        };
        Pass::Left(change_record(
            info,
            netns,
            entry.seq,
            entry.time_unix_nano,
            &delete,
            entry.origin,
            entry.cause.as_deref(),
        ))
    }

    fn passes(
        &self,
        netns: &str,
        action: Action,
        origin: api::Origin,
        changed_by: Option<&api::ChangedBy>,
        object: &Object,
    ) -> bool {
        let route;
        let object = match object {
            Object::Route(record) => {
                route = record.route();
                filter::Object::Route(&route)
            }
            Object::Nexthop(n) => filter::Object::Nexthop(n),
            Object::Rule(r) => filter::Object::Rule(r),
        };
        self.filters.matches(&Subject {
            action: match action {
                Action::Add => api::Action::Add,
                Action::Delete => api::Action::Delete,
            },
            origin,
            netns,
            object,
            changed_by,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::state::{Key, Record};

    use routewatch_proto::batch::record;
    use routewatch_proto::v1::{Filter, Route};

    use super::*;
    use crate::journal::change_kind;

    fn info() -> StreamInfo {
        StreamInfo::new("s".into(), String::new())
    }

    fn bgp_only() -> Interest {
        let request = SubscribeRequest {
            allow: vec![Filter {
                protocol: vec!["bgp".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        Interest::of(&request, &Names::builtin())
            .unwrap()
            .expect("filtered")
    }

    fn route(protocol: u32) -> Object {
        Object::Route(Record::new(
            Key::test(1),
            &Route {
                family: 1,
                dst: "10.0.0.0/8".into(),
                protocol,
                ..Default::default()
            },
        ))
    }

    fn entry(action: Action, object: Object, previous: Previous) -> Entry {
        let change = Change {
            action,
            key: Key::test(1),
            object,
            previous,
        };
        let record = change_record(&info(), "", 7, 99, &change, api::Origin::Notification, None);
        Entry::new(
            7,
            99,
            api::Origin::Notification,
            "".into(),
            change,
            None,
            record,
        )
    }

    fn left(object: Object) -> Pass {
        let delete = Change {
            action: Action::Delete,
            key: Key::test(1),
            object,
            previous: Previous::None,
        };
        let kind = change_kind(&info(), &delete, api::Origin::Notification);
        let mut event = info().event(7, 99, kind);
        crate::journal::lean(&mut event);
        Pass::Left(record(&event))
    }

    #[test]
    fn no_filter_means_no_interest() {
        assert!(
            Interest::of(&SubscribeRequest::default(), &Names::builtin())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn matching_changes_keep_their_shared_record() {
        let i = bgp_only();
        for e in [
            entry(Action::Add, route(186), Previous::None),
            entry(Action::Add, route(186), Previous::Was(route(4))),
            entry(Action::Delete, route(186), Previous::None),
        ] {
            assert_eq!(i.pass(&info(), &e), Pass::Shared(e.record()));
        }
    }

    #[test]
    fn an_object_that_leaves_the_filter_becomes_a_delete_of_what_matched() {
        let i = bgp_only();
        let e = entry(Action::Add, route(4), Previous::Was(route(186)));
        assert_eq!(i.pass(&info(), &e), left(route(186)));
    }

    #[test]
    fn changes_outside_the_filter_are_dropped() {
        let i = bgp_only();
        for e in [
            entry(Action::Add, route(4), Previous::None),
            entry(Action::Add, route(4), Previous::Was(route(2))),
            entry(Action::Delete, route(4), Previous::None),
        ] {
            assert_eq!(i.pass(&info(), &e), Pass::Dropped);
        }
    }

    #[test]
    fn updates_are_not_deletes_to_a_subscriber_of_deletes() {
        let request = SubscribeRequest {
            allow: vec![Filter {
                action: vec!["delete".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let i = Interest::of(&request, &Names::builtin()).unwrap().unwrap();
        let e = entry(Action::Add, route(4), Previous::Was(route(186)));
        assert_eq!(i.pass(&info(), &e), Pass::Dropped);
        let e = entry(Action::Delete, route(4), Previous::None);
        assert_eq!(i.pass(&info(), &e), Pass::Shared(e.record()));
    }

    #[test]
    fn without_history_a_non_matching_add_is_a_delete() {
        let i = bgp_only();
        let e = entry(Action::Add, route(4), Previous::Unknown);
        assert_eq!(i.pass(&info(), &e), left(route(4)));
    }

    #[test]
    fn snapshots_keep_matching_objects() {
        let i = bgp_only();
        let keep = |protocol| {
            i.keeps(
                "",
                &Change {
                    action: Action::Add,
                    key: Key::test(1),
                    object: route(protocol),
                    previous: Previous::None,
                },
            )
        };
        assert!(keep(186));
        assert!(!keep(4));
    }
}
