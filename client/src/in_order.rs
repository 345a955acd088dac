//! Items of many hosts, each with its place's [`Rank`], given back in
//! `show`'s order: hosts by name, one host's items as
//! [`order`](crate::order) sorts them, items of one place in the order they
//! came.
//!
//! Each item is kept with its rank and its arrival number in the rank's
//! free low bits, which makes every key unique: a full table's million
//! items sort as pairs of integers, without a stable sort's merging or a
//! comparison reading fields one by one.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::order::{Rank, RANK_FREE_BITS};

/// Each host's items with their ranks, in the order they came.
pub struct InOrder<T> {
    hosts: BTreeMap<Arc<str>, Vec<(Rank, T)>>,
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
        Batch {
            items: self.hosts.entry(host.clone()).or_default(),
        }
    }

    /// Every item with its host, in order.
    pub fn into_sorted(self) -> impl Iterator<Item = (Arc<str>, T)> {
        self.hosts.into_iter().flat_map(|(host, mut items)| {
            // The arrival numbers make every key unique: what the order
            // cannot tell apart keeps its arrival order, as the kernel's
            // own listing does for its table.
            items.sort_unstable_by_key(|(rank, _)| *rank);
            items.into_iter().map(move |(_, item)| (host.clone(), item))
        })
    }
}

/// Where one batch of a host's items goes.
pub struct Batch<'a, T> {
    items: &'a mut Vec<(Rank, T)>,
}

impl<T> Batch<'_, T> {
    /// Adds `item`, which sorts by `rank` (its free low bits zero, as
    /// [`order::rank`](crate::order::rank) makes it).
    pub fn push(&mut self, rank: Rank, item: T) {
        let arrival = self.items.len() as u128;
        assert!(
            arrival < 1 << RANK_FREE_BITS,
            "more than 2^32 items from one host"
        );
        self.items.push(((rank.0, rank.1 | arrival), item));
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
                batch.push(crate::order::rank(&nexthop(id)), label);
            }
        }
        let order: Vec<&str> = held.into_sorted().map(|(_, label)| label).collect();
        assert_eq!(
            order,
            ["a0", "a1", "a2", "a3", "a3 again", "a3 third", "b1", "b2", "b3"]
        );
    }
}
