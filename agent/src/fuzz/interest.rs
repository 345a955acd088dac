//! Filtered subscribers: any filters on the fields that describe a route,
//! any sequence of route notifications; a subscriber applying what its
//! interest lets through holds exactly the table's routes that pass its
//! filters (the stream's promise, restricted to the filter).

use std::collections::BTreeMap;

use proptest::prelude::*;
use prost::Message as _;
use routewatch_proto::v1::{self as api, change, event, Family, Filter, Route, SubscribeRequest};
use routewatch_proto::Names;

use crate::decode::{Link, Message};
use crate::interest::{Interest, Pass};
use crate::journal::{change_record, Entry, StreamInfo};
use crate::state::StateTable;

/// One route notification, its fields drawn from a few values each so
/// that keys repeat, replace and append meet.
#[derive(Debug, Clone)]
struct Notification {
    /// IPv6, where one key holds every path of a multipath route: paths
    /// come and go under it, and with them its devices and gateways.
    v6: bool,
    delete: bool,
    flags: u16,
    dst: u8,
    metric: u32,
    protocol: u32,
    ifindex: u32,
    gateway: u8,
    table: u32,
}

fn notification() -> impl Strategy<Value = Notification> {
    (
        any::<bool>(),
        proptest::bool::weighted(0.3),
        proptest::sample::select(&[0x600u16, 0x100, 0xc00][..]),
        0u8..3,
        proptest::sample::select(&[0u32, 100][..]),
        proptest::sample::select(&[2u32, 4, 186][..]),
        3u32..5,
        1u8..3,
        proptest::sample::select(&[254u32, 100][..]),
    )
        .prop_map(
            |(v6, delete, flags, dst, metric, protocol, ifindex, gateway, table)| Notification {
                v6,
                delete,
                flags,
                dst,
                metric,
                protocol,
                ifindex,
                gateway,
                table,
            },
        )
}

impl Notification {
    fn message(&self) -> Message {
        let (family, dsts, gateway) = if self.v6 {
            (
                Family::Inet6,
                ["2001:db8:1::/64", "2001:db8:1:2::/64", "2001:db9::/32"],
                format!("fe80::{}", self.gateway),
            )
        } else {
            (
                Family::Inet,
                ["10.1.0.0/16", "10.1.2.0/24", "192.168.0.0/16"],
                format!("10.9.0.{}", self.gateway),
            )
        };
        let route = Box::new(Route {
            family: family as i32,
            dst: dsts[usize::from(self.dst)].into(),
            metric: self.metric,
            protocol: self.protocol,
            r#type: 1,
            table: self.table,
            ifindex: self.ifindex,
            gateway,
            ..Default::default()
        });
        if self.delete {
            Message::DelRoute(route)
        } else {
            Message::NewRoute {
                route,
                flags: self.flags,
            }
        }
    }
}

/// A filter on what describes a route (not on the action or origin: those
/// make a log of events, not a picture).
fn filter() -> impl Strategy<Value = Filter> {
    let field = |values: &'static [&'static str]| {
        proptest::option::weighted(
            0.3,
            proptest::collection::vec(proptest::sample::select(values), 1..3),
        )
        .prop_map(|v| {
            v.unwrap_or_default()
                .into_iter()
                .map(String::from)
                .collect()
        })
    };
    (
        field(&["bgp", "static", "kernel"]),
        field(&["main", "100"]),
        field(&[
            "10.0.0.0/8",
            "10.1.0.0/16",
            "2001:db8::/32",
            "2001:db8:1::/64",
        ]),
        field(&["10.1.2.0/24", "10.1.2.3", "2001:db8:1:2::1"]),
        field(&["0", "100-", "50-150"]),
        field(&["va", "vb"]),
        field(&["10.9.0.1", "10.9.0.0/24", "fe80::1", "fe80::/64"]),
    )
        .prop_map(
            |(protocol, table, within, contains, metric, dev, gateway_within)| Filter {
                protocol,
                table,
                within,
                contains,
                metric,
                dev,
                gateway_within,
                ..Default::default()
            },
        )
}

fn info() -> StreamInfo {
    StreamInfo::new("s".into(), String::new())
}

/// The change a record carries, as a subscriber reads it.
fn read(record: &[u8]) -> (String, api::Action, change::Object) {
    let event = api::SubscribeResponse::decode(record)
        .expect("a record")
        .events
        .remove(0);
    let Some(event::Kind::Change(c)) = event.kind else {
        panic!("not a change: {event:?}")
    };
    let action = c.action();
    (c.key, action, c.object.expect("an object"))
}

proptest! {
    #![proptest_config(routewatch_proto::fuzzing::config(500))]

    #[test]
    fn fuzz_interest_keeps_the_filtered_picture(
        allow in proptest::collection::vec(filter(), 0..3),
        deny in proptest::collection::vec(filter(), 0..2),
        notifications in proptest::collection::vec(notification(), 1..16),
    ) {
        let request = SubscribeRequest { allow, deny, ..Default::default() };
        // No filters: every change goes out as it is.
        let interest = Interest::of(&request, &Names::builtin()).expect("valid filters");
        let info = info();
        let mut table = StateTable::new();
        let mut ignored = Vec::new();
        for (index, name) in [(3, "va"), (4, "vb")] {
            let link = Link { index, name: name.into(), up: true, carrier: true, vrf_table: None };
            table.apply(Message::NewLink(link), &mut ignored);
        }
        let mut held: BTreeMap<String, change::Object> = BTreeMap::new();
        for (seq, n) in (1..).zip(&notifications) {
            let mut changes = Vec::new();
            table.apply(n.message(), &mut changes);
            for c in changes {
                let record = change_record(&info, "", seq, 0, &c, api::Origin::Notification, None);
                let entry = Entry::new(seq, 0, api::Origin::Notification, "".into(), c, None, record);
                let pass = interest.as_ref().map_or_else(|| Pass::Shared(entry.record()), |i| i.pass(&info, &entry));
                let bytes = match pass {
                    Pass::Shared(b) | Pass::Left(b) => b,
                    Pass::Dropped => continue,
                };
                let (key, action, object) = read(&bytes);
                match action {
                    api::Action::Delete => held.remove(&key),
                    _ => held.insert(key, object),
                };
            }
            let expected: BTreeMap<String, change::Object> = table
                .changes()
                .filter(|c| interest.as_ref().is_none_or(|i| i.keeps("", c)))
                .map(|c| {
                    let (key, _, object) = read(&change_record(&info, "", seq, 0, &c, api::Origin::Dump, None));
                    (key, object)
                })
                .collect();
            prop_assert_eq!(&held, &expected, "after {:?}", n);
        }
    }
}
