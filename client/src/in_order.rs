//! Items of many hosts, each with its [`Place`], given back in `show`'s
//! order: hosts by name, one host's items as [`order`](crate::order) sorts
//! them, items of one place in the order they came.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::order::Place;

/// Each host's items with their places, in the order they came.
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
    /// Where one batch of `host`'s items goes (the host is looked up once
    /// per batch, not per item).
    pub fn batch(&mut self, host: &Arc<str>) -> Batch<'_, T> {
        let items = self.hosts.entry(host.clone()).or_default();
        Batch {
            start: items.len(),
            items,
        }
    }

    /// Every item with its host, in order.
    pub fn into_sorted(self) -> impl Iterator<Item = (Arc<str>, T)> {
        self.hosts.into_iter().flat_map(|(host, mut items)| {
            // Stable: what the order cannot tell apart keeps its arrival
            // order, as the kernel's own listing does for its table. The
            // batches are sorted runs already, so this merges them.
            items.sort_by(|a, b| a.0.cmp(&b.0));
            items.into_iter().map(move |(_, item)| (host.clone(), item))
        })
    }
}

/// One batch of a host's items, sorted when the batch is dropped: while
/// the next batch is still being received, so that the sort at the end,
/// which nothing else overlaps, only merges sorted runs.
pub struct Batch<'a, T> {
    items: &'a mut Vec<(Place<'static>, T)>,
    start: usize,
}

impl<T> Batch<'_, T> {
    pub fn push(&mut self, place: Place<'static>, item: T) {
        self.items.push((place, item));
    }
}

impl<T> Drop for Batch<'_, T> {
    fn drop(&mut self) {
        self.items[self.start..].sort_by(|a, b| a.0.cmp(&b.0));
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
        let batches = [
            (&b, vec![(2, "b2"), (3, "b3")]),
            (&a, vec![(3, "a3"), (1, "a1"), (3, "a3 again")]),
            (&a, vec![(0, "a0"), (3, "a3 third"), (2, "a2")]),
            (&b, vec![(1, "b1")]),
        ];
        for (host, items) in batches {
            let mut batch = held.batch(host);
            for (id, label) in items {
                batch.push(Place::of(&nexthop(id)).into_owned(), label);
            }
        }
        let order: Vec<&str> = held.into_sorted().map(|(_, label)| label).collect();
        assert_eq!(
            order,
            ["a0", "a1", "a2", "a3", "a3 again", "a3 third", "b1", "b2", "b3"]
        );
    }
}
