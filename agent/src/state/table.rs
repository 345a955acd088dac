//! The state table: the only place that knows the kernel's semantics.
//!
//! `apply` turns one kernel notification into the changes a consumer needs;
//! `reconcile` replaces the table with a fresh dump and returns the
//! differences. When a notification cannot be placed with certainty (a delete
//! of a route the table does not hold, a nexthop deletion whose consequences
//! the kernel does not announce) `apply` asks for a re-dump instead of
//! guessing: the consumer then gets precise changes with origin `reconcile`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use routewatch_proto::v1::{
    encap, Encap, Family, NextHop, Nexthop, NexthopGroupMember, RawAttribute, Route, Rule,
};

use rustc_hash::FxHashSet;

use super::key::{is_ecmp_capable, nth_key, route_key, rule_key, Key};
use super::record::Record;
use super::routes::RouteSet;
use crate::decode::nexthop::NexthopMessage;
use crate::decode::{Link, Message};

const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_APPEND: u16 = 0x800;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
/// FR_ACT_GOTO: a rule that jumps to another priority.
const FR_ACT_GOTO: u32 = 2;

/// A route, nexthop object or policy rule as the journal carries it.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// A route, as the table holds it (see [`Record`]).
    Route(Record),
    Nexthop(Arc<Nexthop>),
    Rule(Arc<Rule>),
}

impl Object {
    /// Memory this version takes (for the journal's byte bound).
    pub fn footprint(&self) -> usize {
        use prost::Message;
        match self {
            Object::Route(record) => record.footprint(),
            Object::Nexthop(nh) => std::mem::size_of::<Nexthop>() + nh.encoded_len(),
            Object::Rule(rule) => std::mem::size_of::<Rule>() + rule.encoded_len(),
        }
    }
}

/// Add (upsert by key) or delete (by key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Add,
    Delete,
}

/// One change of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub action: Action,
    pub key: Key,
    pub object: Object,
    /// For an add: what the key held before it. A filtered subscriber needs
    /// it to tell an object that left its filter (a delete for it) from one
    /// it never held (nothing to send).
    pub previous: Previous,
}

/// What a key held before an add replaced it.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Previous {
    /// Nothing: the key is new (and always for a delete).
    #[default]
    None,
    /// This version, which the add replaces.
    Was(Object),
    /// Not known: a change recovered from the state dir whose earlier
    /// history is gone, so a consumer may hold any version of the key.
    Unknown,
}

/// Why `apply` wants the kernel's tables read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recheck {
    /// Nothing to re-read.
    No,
    /// The kernel may have changed routes without saying so, or a message
    /// could not be placed: re-dump and reconcile.
    Yes(&'static str),
}

/// Routes, nexthop objects, policy rules and links of one network namespace.
#[derive(Debug, Default, Clone)]
pub struct StateTable {
    links: HashMap<u32, Link>,
    /// The VRF device bound to each table: table id to the link's index.
    vrfs: HashMap<u32, u32>,
    nexthops: BTreeMap<u32, Arc<Nexthop>>,
    /// Policy rules by key. The kernel has no rule "replace": a rule is
    /// added or deleted whole, so the key is everything but the state bits
    /// the kernel changes on its own (detached, unresolved).
    rules: BTreeMap<Key, Arc<Rule>>,
    routes: RouteSet,
    /// The bases of the routes that use each nexthop object id (8 bytes a
    /// route rather than a 16-byte key: a base's routes are found in
    /// `routes`, and a full table has hundreds of thousands of users).
    pub(super) nh_users: HashMap<u32, FxHashSet<u64>>,
    /// Keys that notifications added while a dump fills this table (see
    /// `insert_dumped`): a few, where the keys the dump delivered would be
    /// all of them (35 MB at the peak of a full table's first dump).
    pub(super) announced: FxHashSet<Key>,
    /// The dump that filled this table has ended (see `end_dump`).
    settled: bool,
}

impl StateTable {
    pub fn new() -> StateTable {
        StateTable::default()
    }

    pub fn route_count(&self) -> usize {
        self.routes.len()
    }

    pub fn nexthop_count(&self) -> usize {
        self.nexthops.len()
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Routes per address family (the API's `Family` numbers).
    pub fn route_families(&self) -> Vec<(i32, usize)> {
        self.routes.families()
    }

    /// Nexthop objects per address family (groups and blackholes have none).
    pub fn nexthop_families(&self) -> Vec<(i32, usize)> {
        count_by(self.nexthops.values().map(|n| n.family))
    }

    /// Policy rules per address family.
    pub fn rule_families(&self) -> Vec<(i32, usize)> {
        count_by(self.rules.values().map(|r| r.family))
    }

    /// Every object as an add: nexthop objects first, so that a consumer
    /// knows an object before the routes that use it, then rules, then
    /// routes.
    pub fn snapshot(&self) -> Vec<Change> {
        self.changes().collect()
    }

    /// [`StateTable::snapshot`], one change at a time.
    pub fn changes(&self) -> impl Iterator<Item = Change> + '_ {
        self.objects().map(|(key, object)| Change {
            action: Action::Add,
            key,
            object,
            previous: Previous::None,
        })
    }

    /// Every object with its key, as [`StateTable::snapshot`] orders them,
    /// without a change around each.
    pub fn objects(&self) -> impl Iterator<Item = (Key, Object)> + '_ {
        let nexthops = self
            .nexthops
            .values()
            .map(|nh| (Key::nexthop(nh.id), Object::Nexthop(nh.clone())));
        let rules = self
            .rules
            .iter()
            .map(|(key, rule)| (*key, Object::Rule(rule.clone())));
        let routes = self
            .routes
            .iter()
            .map(|record| (record.key(), Object::Route(record.clone())));
        nexthops.chain(rules).chain(routes)
    }

    /// How many objects [`StateTable::objects`] yields.
    pub fn object_count(&self) -> usize {
        self.nexthops.len() + self.rules.len() + self.routes.len()
    }

    /// Applies one kernel notification, appending the resulting changes.
    pub fn apply(&mut self, message: Message, out: &mut Vec<Change>) -> Recheck {
        match message {
            Message::NewRoute { route, flags } => self.new_route(route, flags, out),
            Message::DelRoute(route) => self.del_route(route, out),
            Message::NewRule(rule) => self.new_rule(rule, out),
            Message::DelRule(rule) => self.del_rule(rule, out),
            Message::NewNexthop(nh) => {
                self.upsert_nexthop(&nh, out);
                Recheck::No
            }
            Message::DelNexthop(nh) => {
                if let Some(old) = self.nexthops.remove(&nh.id) {
                    out.push(nexthop_change(Action::Delete, old));
                }
                // The kernel removes routes using the object and shrinks the
                // groups holding it; what it announces of that varies.
                Recheck::Yes("nexthop object deleted")
            }
            Message::NewLink(link) => {
                let old = self.set_link(link.clone());
                let link = &link;
                match old {
                    // A VRF's routes carry its name: a VRF that comes,
                    // is renamed or moves to another table relabels every
                    // route of its tables, which only a re-dump reaches.
                    None if link.vrf_table.is_some() => Recheck::Yes("vrf link added"),
                    Some(old)
                        if (old.vrf_table.is_some() || link.vrf_table.is_some())
                            && (old.vrf_table != link.vrf_table || old.name != link.name) =>
                    {
                        Recheck::Yes("vrf link changed")
                    }
                    Some(old) if old.up != link.up || old.carrier != link.carrier => {
                        Recheck::Yes("link state changed")
                    }
                    Some(old) if old.name != link.name => Recheck::Yes("link renamed"),
                    // A rule naming a device that did not exist is detached;
                    // the kernel attaches it when the device appears, and
                    // says nothing about the rule.
                    None if self.names_link(&link.name) => {
                        Recheck::Yes("link named by a rule appeared")
                    }
                    _ => Recheck::No,
                }
            }
            Message::DelLink(link) => {
                self.drop_link(link.index);
                Recheck::Yes("link deleted")
            }
            // IPv4 flushes routes using the address as prefsrc; IPv6 drops
            // the prefsrc from them. Neither says so.
            Message::DelAddress(_) => Recheck::Yes("address removed"),
            Message::Done | Message::Error(_) | Message::Ignored => Recheck::No,
        }
    }

    /// Takes one message of a dump (links, nexthops and routes in that order).
    pub fn insert_dumped(&mut self, message: Message) {
        match message {
            Message::NewLink(link) => {
                self.set_link(link);
            }
            Message::NewNexthop(nh) => {
                self.upsert_nexthop(&nh, &mut Vec::new());
            }
            Message::NewRule(rule) => {
                let mut key = rule_key(&rule);
                if self.rules.contains_key(&key) {
                    if self.announced.contains(&key) {
                        // A notification queued ahead of this reply.
                        self.rules.insert(key, Arc::new(rule));
                        return;
                    }
                    // The kernel keeps identical rules added without
                    // NLM_F_EXCL: keep each, distinctly.
                    key = self.unused_key(key);
                }
                self.rules.insert(key, Arc::new(rule));
            }
            Message::NewRoute { route, .. } => {
                let mut route = route;
                self.resolve(&mut route);
                let mut key = route_key(&route);
                if self.routes.contains(key) {
                    if self.announced.contains(&key) {
                        // A notification queued ahead of this reply already
                        // put the route here; the reply is the newer word.
                        self.upsert(key, &route, &mut Vec::new());
                        return;
                    }
                    // Two dumped routes the key cannot tell apart (it would
                    // take an exotic pair, e.g. IPv4 routes differing only
                    // in metrics): keep both, distinctly.
                    key = self.unused_key(key);
                }
                self.hold(Record::new(key, &route), route.nhid, usize::MAX);
            }
            _ => {}
        }
    }

    /// Applies a change this table once emitted (as kept in the state
    /// dir): add upserts by key, delete removes by key. No kernel rules: the
    /// change already is their result.
    pub fn restore(&mut self, change: &Change) {
        let mut discard = Vec::new();
        match (&change.object, change.action) {
            (Object::Nexthop(nh), Action::Add) => {
                self.nexthops.insert(nh.id, nh.clone());
            }
            (Object::Nexthop(nh), Action::Delete) => {
                self.nexthops.remove(&nh.id);
            }
            (Object::Route(record), Action::Add) => {
                self.remove(change.key, &mut discard);
                let nhid = record.numbers().nhid;
                self.hold(record.clone(), nhid, usize::MAX);
            }
            (Object::Route(_), Action::Delete) => {
                self.remove(change.key, &mut discard);
            }
            (Object::Rule(rule), Action::Add) => {
                self.rules.insert(change.key, rule.clone());
            }
            (Object::Rule(_), Action::Delete) => {
                self.rules.remove(&change.key);
            }
        }
    }

    /// The version of `change`'s object the table holds under its key.
    pub fn held(&self, change: &Change) -> Option<Object> {
        match &change.object {
            Object::Route(_) => self.routes.get(change.key).cloned().map(Object::Route),
            Object::Nexthop(nh) => self.nexthops.get(&nh.id).cloned().map(Object::Nexthop),
            Object::Rule(_) => self.rules.get(&change.key).cloned().map(Object::Rule),
        }
    }

    /// Routes, nexthop objects and rules held, per family number.
    pub fn counts(&self) -> BTreeMap<i32, (u64, u64, u64)> {
        let mut counts: BTreeMap<i32, (u64, u64, u64)> = BTreeMap::new();
        for (family, n) in self.routes.families() {
            counts.entry(family).or_default().0 += n as u64;
        }
        for nh in self.nexthops.values() {
            counts.entry(nh.family).or_default().1 += 1;
        }
        for rule in self.rules.values() {
            counts.entry(rule.family).or_default().2 += 1;
        }
        counts
    }

    /// Ends the dump that filled this table: forgets which keys
    /// notifications added meanwhile, and stops noting them.
    pub fn end_dump(&mut self) {
        self.announced = FxHashSet::default();
        self.settled = true;
    }

    /// Replaces this table with `fresh` (a complete dump) and returns what
    /// differs. The countdown in `expires` alone is not a difference.
    pub fn reconcile(&mut self, fresh: StateTable) -> Vec<Change> {
        let mut out = Vec::new();
        for (id, nh) in &fresh.nexthops {
            match self.nexthops.get(id) {
                Some(old) if old == nh => {}
                old => out.push(
                    nexthop_change(Action::Add, nh.clone())
                        .replacing(old.map(|o| Object::Nexthop(o.clone()))),
                ),
            }
        }
        for (key, rule) in &self.rules {
            if !fresh.rules.contains_key(key) {
                out.push(rule_change(Action::Delete, *key, rule.clone()));
            }
        }
        for (key, rule) in &fresh.rules {
            match self.rules.get(key) {
                Some(old) if old == rule => {}
                old => out.push(
                    rule_change(Action::Add, *key, rule.clone())
                        .replacing(old.map(|o| Object::Rule(o.clone()))),
                ),
            }
        }
        for record in self.routes.iter() {
            if !fresh.routes.contains(record.key()) {
                out.push(route_change(Action::Delete, record.clone()));
            }
        }
        for record in fresh.routes.iter() {
            match self.routes.get(record.key()) {
                Some(old) if same_ignoring_expiry(old, record) => {}
                old => out.push(
                    route_change(Action::Add, record.clone())
                        .replacing(old.map(|o| Object::Route(o.clone()))),
                ),
            }
        }
        for (id, nh) in &self.nexthops {
            if !fresh.nexthops.contains_key(id) {
                out.push(nexthop_change(Action::Delete, nh.clone()));
            }
        }
        *self = fresh;
        self.end_dump();
        out
    }

    fn new_route(&mut self, mut route: Box<Route>, flags: u16, out: &mut Vec<Change>) -> Recheck {
        self.resolve(&mut route);
        let key = route_key(&route);
        if let Some(stored) = self.routes.get(key) {
            // IPv6 multipath append and prepend: the kernel sends the full
            // nexthop set, the new path first, while its dumps (and `ip route
            // show`) list the paths in the order they were added (measured
            // on 6.18, both kept as tests). Keep that order; only a replace
            // sets it anew.
            if flags & NLM_F_REPLACE == 0 && route.family == Family::Inet6 as i32 {
                let merged = merge_paths(&stored.route(), *route);
                self.upsert(key, &merged, out);
            } else {
                self.upsert(key, &route, out);
            }
            return Recheck::No;
        }
        match self.routes.first_of(key.base()) {
            // `ip route replace`: the kernel replaces the first route with
            // this base and sends one RTM_NEWROUTE with NLM_F_REPLACE, no delete.
            Some(old) if flags & NLM_F_REPLACE != 0 => {
                let position = self.remove(old, out);
                self.insert(key, &route, position, out);
            }
            Some(_) if flags & NLM_F_APPEND != 0 => self.insert(key, &route, usize::MAX, out),
            _ => self.insert(key, &route, 0, out),
        }
        Recheck::No
    }

    fn del_route(&mut self, mut gone: Box<Route>, out: &mut Vec<Change>) -> Recheck {
        self.resolve(&mut gone);
        let key = route_key(&gone);
        let Some(stored) = self.routes.get(key) else {
            return Recheck::Yes("delete of a route the table does not hold");
        };
        // Only an IPv6 ECMP route (keyed by its base alone) can lose one
        // path of several: decode only those.
        let multipath = gone.family == Family::Inet6 as i32 && is_ecmp_capable(&gone);
        let stored = if multipath {
            Some(stored.route())
        } else {
            None
        };
        if let Some(stored) = stored.filter(|s| is_ecmp_capable(s) && s.nexthops.len() > 1) {
            // Deleting one path of an IPv6 multipath route names only that
            // path; the route survives with the others.
            let removed = as_hops(&gone);
            let remaining: Vec<NextHop> = stored
                .nexthops
                .iter()
                .filter(|hop| !removed.iter().any(|r| same_path(r, hop)))
                .cloned()
                .collect();
            if remaining.len() == stored.nexthops.len() {
                // The kernel names a path it had; one the table lacks (for
                // paths through one gateway, told apart by encapsulation)
                // means the table is wrong: re-read rather than guess.
                return Recheck::Yes("delete of a path the table does not hold");
            }
            if !remaining.is_empty() {
                let mut survivor = stored;
                if remaining.len() == 1 {
                    let hop = &remaining[0];
                    survivor.gateway = hop.gateway.clone();
                    survivor.dev = hop.dev.clone();
                    survivor.ifindex = hop.ifindex;
                    survivor.flags |= hop.flags;
                    survivor.encap = hop.encap.clone();
                    survivor.nexthops.clear();
                } else {
                    survivor.nexthops = remaining;
                }
                self.upsert(key, &survivor, out);
                return Recheck::No;
            }
        }
        self.remove(key, out);
        Recheck::No
    }

    fn new_rule(&mut self, rule: Rule, out: &mut Vec<Change>) -> Recheck {
        let key = rule_key(&rule);
        let recheck = self.goto_target_changed(&rule);
        let rule = Arc::new(rule);
        match self.rules.get(&key) {
            // The kernel announces only rules it created: one the table
            // holds already is an identical twin (added without
            // NLM_F_EXCL), which the dump keys apart.
            Some(old) if *old == rule => return Recheck::Yes("identical rule added"),
            old => {
                let was = old.map(|o| Object::Rule(o.clone()));
                self.note_announced(key);
                self.rules.insert(key, rule.clone());
                out.push(rule_change(Action::Add, key, rule).replacing(was));
            }
        }
        recheck
    }

    fn del_rule(&mut self, rule: Rule, out: &mut Vec<Change>) -> Recheck {
        let key = rule_key(&rule);
        let Some(old) = self.rules.remove(&key) else {
            return Recheck::Yes("delete of a rule the table does not hold");
        };
        out.push(rule_change(Action::Delete, key, old));
        self.goto_target_changed(&rule)
    }

    /// A `goto` rule is unresolved while no rule of its family has the
    /// priority it jumps to; the kernel flips that state when such a rule
    /// comes or goes, without a message for the `goto` rule.
    fn goto_target_changed(&self, rule: &Rule) -> Recheck {
        let jumps_here = self
            .rules
            .values()
            .any(|r| r.family == rule.family && r.action == FR_ACT_GOTO && r.goto == rule.priority);
        if jumps_here {
            Recheck::Yes("goto target added or deleted")
        } else {
            Recheck::No
        }
    }

    /// Whether a rule matches on device `name` (as `iif` or `oif`).
    fn names_link(&self, name: &str) -> bool {
        !name.is_empty() && self.rules.values().any(|r| r.iif == name || r.oif == name)
    }

    /// `key`, or the first of its numbered variants no route or rule uses.
    fn unused_key(&self, key: Key) -> Key {
        let mut n = 2;
        let mut candidate = key;
        while self.routes.contains(candidate) || self.rules.contains_key(&candidate) {
            candidate = nth_key(key, n);
            n += 1;
        }
        candidate
    }

    fn upsert_nexthop(&mut self, msg: &NexthopMessage, out: &mut Vec<Change>) {
        let nh = Arc::new(self.nexthop_from(msg));
        if self.nexthops.get(&nh.id) == Some(&nh) {
            return;
        }
        let old = self.nexthops.insert(nh.id, nh.clone());
        out.push(nexthop_change(Action::Add, nh.clone()).replacing(old.map(Object::Nexthop)));
        // The kernel changes what routes using the object (directly or via a
        // group) do without any route message: re-resolve and re-send them.
        let mut ids = vec![nh.id];
        ids.extend(
            self.nexthops
                .values()
                .filter(|g| g.group.iter().any(|m| m.id == nh.id))
                .map(|g| g.id),
        );
        for id in ids {
            let users: Vec<Key> = self
                .nh_users
                .get(&id)
                .map(|bases| {
                    bases
                        .iter()
                        .flat_map(|&base| self.routes.of_base(base))
                        .filter(|r| r.numbers().nhid == id)
                        .map(Record::key)
                        .collect()
                })
                .unwrap_or_default();
            for key in users {
                if let Some(old) = self.routes.get(key) {
                    let mut resolved = old.route();
                    self.resolve(&mut resolved);
                    self.upsert(key, &resolved, out);
                }
            }
        }
    }

    fn nexthop_from(&self, msg: &NexthopMessage) -> Nexthop {
        let ifindex = msg.oif.unwrap_or(0);
        Nexthop {
            id: msg.id,
            family: match msg.family {
                AF_INET => Family::Inet as i32,
                AF_INET6 => Family::Inet6 as i32,
                _ => Family::Unspecified as i32,
            },
            gateway: msg.gateway.map(|g| g.to_string()).unwrap_or_default(),
            dev: self.dev_name(ifindex),
            ifindex,
            blackhole: msg.blackhole,
            group: msg
                .group
                .iter()
                .map(|m| NexthopGroupMember {
                    id: m.id,
                    weight: u32::from(m.weight),
                })
                .collect(),
            protocol: u32::from(msg.protocol),
            scope: u32::from(msg.scope),
            flags: msg.flags,
            fdb: msg.fdb,
            encap: msg.encap.clone().map(|e| self.name_encap(Box::new(e))),
            other: msg
                .undecoded()
                .into_iter()
                .map(|(kind, value)| RawAttribute {
                    kind: u32::from(kind),
                    value,
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Fills in the interface names an encapsulation refers to by index.
    fn name_encap(&self, mut encap: Box<Encap>) -> Box<Encap> {
        match encap.kind.as_mut() {
            Some(encap::Kind::Seg6local(e)) => {
                e.iif_dev = self.dev_name(e.iif);
                e.oif_dev = self.dev_name(e.oif);
            }
            Some(encap::Kind::Xfrm(e)) => e.link_dev = self.dev_name(e.link),
            _ => {}
        }
        encap
    }

    /// Holds `link`, returning the version it replaces.
    fn set_link(&mut self, link: Link) -> Option<Link> {
        let vrf = link.vrf_table.is_some();
        let old = self.links.insert(link.index, link);
        if vrf || old.as_ref().is_some_and(|o| o.vrf_table.is_some()) {
            self.index_vrfs();
        }
        old
    }

    fn drop_link(&mut self, index: u32) {
        if let Some(old) = self.links.remove(&index) {
            if old.vrf_table.is_some() {
                self.index_vrfs();
            }
        }
    }

    /// Which VRF labels each table. Should two VRF devices name one table
    /// (the kernel allows it unless net.vrf.strict_mode is set), the one
    /// with the lowest index does, so that the label does not depend on
    /// the order the links were seen in.
    fn index_vrfs(&mut self) {
        self.vrfs.clear();
        for link in self.links.values() {
            if let Some(table) = link.vrf_table {
                let index = self.vrfs.entry(table).or_insert(link.index);
                *index = (*index).min(link.index);
            }
        }
    }

    /// The name of the VRF bound to `table`, empty when none is.
    fn vrf_name(&self, table: u32) -> String {
        if self.vrfs.is_empty() {
            return String::new();
        }
        self.vrfs
            .get(&table)
            .and_then(|index| self.links.get(index))
            .map(|link| link.name.clone())
            .unwrap_or_default()
    }

    /// Fills in device names from the link table, the VRF label of the
    /// route's table and, for a route using a nexthop object, the object's
    /// gateways and devices.
    fn resolve(&self, route: &mut Route) {
        if route.nhid != 0 {
            route.nh_info = self
                .nexthops
                .get(&route.nhid)
                .map(|nh| Box::new((**nh).clone()));
            if let Some(nh) = self.nexthops.get(&route.nhid) {
                if !nh.group.is_empty() {
                    route.gateway.clear();
                    route.ifindex = 0;
                    route.nexthops = nh
                        .group
                        .iter()
                        .filter_map(|m| {
                            let member = self.nexthops.get(&m.id)?;
                            Some(NextHop {
                                gateway: member.gateway.clone(),
                                dev: String::new(),
                                ifindex: member.ifindex,
                                weight: m.weight,
                                flags: member.flags,
                                encap: member.encap.clone(),
                            })
                        })
                        .collect();
                    // An IPv4 route through a group down to one member is
                    // dumped as a single path; IPv6 keeps the list.
                    if route.family == Family::Inet as i32 {
                        if let [only] = route.nexthops.as_slice() {
                            route.gateway = only.gateway.clone();
                            route.ifindex = only.ifindex;
                            route.encap = only.encap.clone();
                            route.nexthops.clear();
                        }
                    }
                } else if !nh.blackhole {
                    route.gateway = nh.gateway.clone();
                    route.ifindex = nh.ifindex;
                    // `ip route show` prints the object's encapsulation on
                    // the route (the kernel sends it there too, with
                    // nexthop_compat_mode on).
                    route.encap = nh.encap.clone();
                    route.nexthops.clear();
                }
            }
        }
        route.dev = if route.ifindex != 0 {
            self.dev_name(route.ifindex)
        } else {
            String::new()
        };
        for hop in &mut route.nexthops {
            hop.dev = self.dev_name(hop.ifindex);
            hop.encap = hop.encap.take().map(|e| self.name_encap(e));
        }
        route.encap = route.encap.take().map(|e| self.name_encap(e));
        route.vrf = self.vrf_name(route.table);
    }

    fn dev_name(&self, ifindex: u32) -> String {
        match self.links.get(&ifindex) {
            Some(link) => link.name.clone(),
            None if ifindex == 0 => String::new(),
            None => format!("if{ifindex}"),
        }
    }

    fn upsert(&mut self, key: Key, route: &Route, out: &mut Vec<Change>) {
        match self.routes.get(key) {
            Some(old) if old.holds(route) => {}
            Some(_) => {
                let record = Record::new(key, route);
                let was = self.routes.replace(record.clone());
                out.push(route_change(Action::Add, record).replacing(was.map(Object::Route)));
            }
            None => self.insert(key, route, 0, out),
        }
    }

    /// Inserts at `position` among the routes sharing its base (clamped).
    fn insert(&mut self, key: Key, route: &Route, position: usize, out: &mut Vec<Change>) {
        self.insert_record(Record::new(key, route), route.nhid, position, out);
    }

    fn insert_record(&mut self, record: Record, nhid: u32, position: usize, out: &mut Vec<Change>) {
        self.note_announced(record.key());
        self.hold(record.clone(), nhid, position);
        out.push(route_change(Action::Add, record));
    }

    /// Notes that a notification added `key`, while a dump fills this
    /// table.
    fn note_announced(&mut self, key: Key) {
        if !self.settled {
            self.announced.insert(key);
        }
    }

    /// Puts a route using nexthop object `nhid` (0: none) in the table (its
    /// key must be new), saying nothing.
    fn hold(&mut self, record: Record, nhid: u32, position: usize) {
        if nhid != 0 {
            self.nh_users
                .entry(nhid)
                .or_default()
                .insert(record.key().base());
        }
        self.routes.insert(record, position);
    }

    /// Removes a route, returning where it stood among its base's routes.
    fn remove(&mut self, key: Key, out: &mut Vec<Change>) -> usize {
        let Some((record, position)) = self.routes.remove(key) else {
            return 0;
        };
        let nhid = record.numbers().nhid;
        let base = key.base();
        if nhid != 0 && !self.routes.of_base(base).any(|r| r.numbers().nhid == nhid) {
            if let Some(users) = self.nh_users.get_mut(&nhid) {
                users.remove(&base);
                if users.is_empty() {
                    self.nh_users.remove(&nhid);
                }
            }
        }
        out.push(route_change(Action::Delete, record));
        position
    }
}

/// `appended` with its paths in kernel order: those of `stored` first, then
/// the new ones.
fn merge_paths(stored: &Route, mut appended: Route) -> Route {
    let old = as_hops(stored);
    let mut hops: Vec<NextHop> = old.clone();
    for hop in as_hops(&appended) {
        if !old.iter().any(|o| same_path(o, &hop)) {
            hops.push(hop);
        }
    }
    if hops.len() > 1 {
        appended.gateway.clear();
        appended.dev.clear();
        appended.ifindex = 0;
        appended.encap = None;
        appended.nexthops = hops;
    }
    appended
}

/// The same path of an IPv6 multipath route: the kernel merges paths through
/// one gateway and device that differ by encapsulation (measured on 6.18),
/// so the encapsulation tells them apart too.
fn same_path(a: &NextHop, b: &NextHop) -> bool {
    a.gateway == b.gateway && a.ifindex == b.ifindex && a.encap == b.encap
}

/// A route's paths as a nexthop list, also for a single-path route.
fn as_hops(r: &Route) -> Vec<NextHop> {
    if !r.nexthops.is_empty() {
        return r.nexthops.clone();
    }
    vec![NextHop {
        gateway: r.gateway.clone(),
        dev: r.dev.clone(),
        ifindex: r.ifindex,
        weight: 1,
        flags: 0,
        encap: r.encap.clone(),
    }]
}

fn same_ignoring_expiry(a: &Record, b: &Record) -> bool {
    a == b || {
        let (a, b) = (a.route(), b.route());
        a.expires != b.expires && Route { expires: 0, ..a } == Route { expires: 0, ..b }
    }
}

impl Change {
    /// This add, replacing `previous` (if anything).
    fn replacing(self, previous: Option<Object>) -> Change {
        Change {
            previous: previous.map_or(Previous::None, Previous::Was),
            ..self
        }
    }
}

fn rule_change(action: Action, key: Key, rule: Arc<Rule>) -> Change {
    Change {
        action,
        key,
        object: Object::Rule(rule),
        previous: Previous::None,
    }
}

fn route_change(action: Action, record: Record) -> Change {
    Change {
        action,
        key: record.key(),
        object: Object::Route(record),
        previous: Previous::None,
    }
}

fn nexthop_change(action: Action, nh: Arc<Nexthop>) -> Change {
    Change {
        action,
        key: Key::nexthop(nh.id),
        object: Object::Nexthop(nh),
        previous: Previous::None,
    }
}

fn count_by(families: impl Iterator<Item = i32>) -> Vec<(i32, usize)> {
    let mut counts: BTreeMap<i32, usize> = BTreeMap::new();
    for family in families {
        *counts.entry(family).or_default() += 1;
    }
    counts.into_iter().collect()
}
