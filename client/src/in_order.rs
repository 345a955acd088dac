//! Items of many hosts, each with its [`Place`], given back in `show`'s
//! order: hosts by name, one host's items as [`order`](crate::order) sorts
//! them, items of one place in the order they came.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::order::Place;

pub struct InOrder<T> {
    hosts: BTreeMap<Arc<str>, Vec<(Place<'static>, T)>>,
}

impl<T> Default for InOrder<T> {
    fn default() -> Self {
        InOrder {
            hosts: BTreeMap::new(),
        }
    }
}

impl<T> InOrder<T> {
    /// Where `host`'s items go (looked up once per batch, not per item).
    pub fn host(&mut self, host: &Arc<str>) -> &mut Vec<(Place<'static>, T)> {
        if !self.hosts.contains_key(host) {
            self.hosts.insert(host.clone(), Vec::new());
        }
        self.hosts.get_mut(host).expect("inserted above")
    }

    /// Every item with its host, in order.
    pub fn into_sorted(self) -> impl Iterator<Item = (Arc<str>, T)> {
        self.hosts.into_iter().flat_map(|(host, mut items)| {
            // Stable: what the order cannot tell apart keeps its arrival
            // order, as the kernel's own listing does for its table.
            items.sort_by(|a, b| a.0.cmp(&b.0));
            items.into_iter().map(move |(_, item)| (host.clone(), item))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use routewatch_proto::v1::{change, event, Change, Event, Nexthop};

    fn nexthop(id: u32) -> Event {
        Event {
            kind: Some(event::Kind::Change(Change {
                object: Some(change::Object::Nexthop(Nexthop {
                    id,
                    ..Default::default()
                })),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn hosts_by_name_then_places_then_arrival() {
        let mut held = InOrder::default();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        for (host, id, label) in [
            (&b, 2, "b2"),
            (&a, 3, "a3"),
            (&a, 1, "a1"),
            (&b, 1, "b1"),
            (&a, 3, "a3 again"),
        ] {
            let place = Place::of(&nexthop(id)).into_owned();
            held.host(host).push((place, label));
        }
        let order: Vec<&str> = held.into_sorted().map(|(_, label)| label).collect();
        assert_eq!(order, ["a1", "a3", "a3 again", "b1", "b2"]);
    }
}
