//! The routes of one table, by key, found by their base.
//!
//! One open-addressing hash table holds every route's [`Record`], hashed by
//! its key's base (a route key carries the base hash in its high bits), so a
//! route's siblings -- the routes `ip route replace` and `append` act among
//! -- are those with the same hash, found without a second index. A bucket
//! is one pointer-sized reference; everything else lives in the record.
//!
//! The kernel keeps the routes of one base in an order (`replace` acts on
//! the first, `append` adds at the end, a plain add or prepend at the
//! front). Almost every base has one route; only bases with more keep that
//! order, in a small side map.

use hashbrown::HashTable;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use super::key::Key;
use super::record::Record;

#[derive(Clone, Default)]
pub struct RouteSet {
    records: HashTable<Record>,
    /// The kernel's order of the keys of each base with more than one route.
    order: FxHashMap<u64, SmallVec<[Key; 2]>>,
    /// Routes per family number (the API's `Family`).
    families: [usize; 3],
}

fn hash(record: &Record) -> u64 {
    record.key().base()
}

impl RouteSet {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn get(&self, key: Key) -> Option<&Record> {
        self.records.find(key.base(), |r| r.key() == key)
    }

    pub fn contains(&self, key: Key) -> bool {
        self.get(key).is_some()
    }

    /// The first route of `base` in the kernel's order.
    pub fn first_of(&self, base: u64) -> Option<Key> {
        if let Some(keys) = self.order.get(&base) {
            return keys.first().copied();
        }
        self.siblings(base).next()
    }

    /// The keys of `base`'s routes, in no particular order. The table's
    /// probe for a hash may also meet entries of other hashes: each is
    /// checked.
    fn siblings(&self, base: u64) -> impl Iterator<Item = Key> + '_ {
        self.of_base(base).map(Record::key)
    }

    /// The routes of `base`, in no particular order.
    pub fn of_base(&self, base: u64) -> impl Iterator<Item = &Record> + '_ {
        self.records
            .iter_hash(base)
            .filter(move |r| r.key().base() == base)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Record> {
        self.records.iter()
    }

    /// Routes per family number, counted as they come and go.
    pub fn families(&self) -> Vec<(i32, usize)> {
        (0..3)
            .filter(|&f| self.families[f] > 0)
            .map(|f| (f as i32, self.families[f]))
            .collect()
    }

    fn count(&mut self, record: &Record, delta: isize) {
        let family = (record.family() as usize).min(2);
        self.families[family] = self.families[family].wrapping_add_signed(delta);
    }

    /// Puts `record` at `position` among its base's routes (clamped to the
    /// end). Its key must be new.
    pub fn insert(&mut self, record: Record, position: usize) {
        let key = record.key();
        let base = key.base();
        let siblings: SmallVec<[Key; 2]> = self.siblings(base).collect();
        if !siblings.is_empty() {
            let keys = self.order.entry(base).or_insert(siblings);
            keys.insert(position.min(keys.len()), key);
        }
        self.count(&record, 1);
        self.records.insert_unique(base, record, hash);
    }

    /// Swaps the record under `record`'s key for `record` (in place: the
    /// order is kept), returning the one it replaces.
    pub fn replace(&mut self, record: Record) -> Option<Record> {
        let key = record.key();
        let held = self.records.find_mut(key.base(), |r| r.key() == key)?;
        let old = std::mem::replace(held, record.clone());
        self.count(&old, -1);
        self.count(&record, 1);
        Some(old)
    }

    /// Takes out the route under `key`, with where it stood among its
    /// base's routes.
    pub fn remove(&mut self, key: Key) -> Option<(Record, usize)> {
        let base = key.base();
        let (record, _) = self
            .records
            .find_entry(base, |r| r.key() == key)
            .ok()?
            .remove();
        // The table does not shrink by itself: after a full table is
        // withdrawn its buckets would stay (9 bytes each, twice the routes
        // it once held).
        if self.records.capacity() > 4096 && self.records.len() < self.records.capacity() / 4 {
            self.records.shrink_to(self.records.len() * 2, hash);
        }
        self.count(&record, -1);
        let mut position = 0;
        if let Some(keys) = self.order.get_mut(&base) {
            if let Some(i) = keys.iter().position(|k| *k == key) {
                keys.remove(i);
                position = i;
            }
            if keys.len() < 2 {
                self.order.remove(&base);
            }
        }
        Some((record, position))
    }
}

impl std::fmt::Debug for RouteSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.records.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use routewatch_proto::v1::Route;

    use super::*;
    use crate::state::key::nth_key;

    fn record(key: Key, metric: u32) -> Record {
        Record::new(
            key,
            &Route {
                metric,
                ..Default::default()
            },
        )
    }

    #[test]
    fn routes_of_other_bases_met_on_the_way_are_not_siblings() {
        // Bases that differ only in their low bits share the table's
        // probe tags: looking one up meets the others.
        let mut set = RouteSet::default();
        for n in 1..=5000 {
            set.insert(record(Key::test(n), n), 0);
        }
        assert!(
            set.order.is_empty(),
            "{} bases with siblings",
            set.order.len()
        );
        for n in 1..=5000 {
            assert_eq!(set.first_of(u64::from(n)), Some(Key::test(n)));
        }
        assert_eq!(set.first_of(9999), None);
        assert_eq!(set.len(), 5000);
    }

    #[test]
    fn siblings_keep_the_kernels_order() {
        let a = Key::parse("0000000000000001000000000000000a").unwrap();
        let (b, c) = (nth_key(a, 2), nth_key(a, 3));
        let mut set = RouteSet::default();
        set.insert(record(a, 1), 0);
        assert_eq!(set.first_of(a.base()), Some(a));
        set.insert(record(b, 2), usize::MAX);
        set.insert(record(c, 3), 0);
        assert_eq!(set.first_of(a.base()), Some(c));
        assert_eq!(set.remove(c).map(|(_, at)| at), Some(0));
        assert_eq!(set.first_of(a.base()), Some(a));
        assert_eq!(set.remove(b).map(|(_, at)| at), Some(1));
        assert!(set.order.is_empty());
        let old = set.replace(record(a, 9)).unwrap();
        assert_eq!(old.route().metric, 1);
        assert_eq!(set.get(a).unwrap().route().metric, 9);
        assert_eq!(set.len(), 1);
        assert!(set.remove(b).is_none());
    }
}
