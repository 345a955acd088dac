//! `show`'s order: the order `ip route show table all` prints in.
//!
//! Measured on Linux 6.18: IPv4 routes before IPv6; within a family, tables
//! in the order of the kernel's table hash (`id & 255`, so 256 comes before
//! 2, and main (254) and local (255) come after 1000); within a table:
//!
//! - IPv4 (the fib trie): by network address, a longer prefix first for
//!   the same address (10.0.0.0/24 before 10.0.0.0/8, both before
//!   10.0.0.128/25), then by TOS, highest first, then by metric;
//! - IPv6 (the fib6 tree, walked children first): a prefix after every
//!   prefix inside it (2001:db8:5::/64 before 2001:db8::/32, the default
//!   route last), otherwise by address; then by metric.
//!
//! Nexthop objects come first, by id, as `ip nexthop show` lists them;
//! then rules, IPv4 before IPv6, by priority as `ip rule show` lists them;
//! markers last.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::net::IpAddr;

use routewatch_proto::v1::{change, event, Event, Family, Route};

/// How two of one host's events sort.
pub fn compare(a: &Event, b: &Event) -> Ordering {
    Place::of(a).cmp(&Place::of(b))
}

/// An event's place as one number: events sort as their ranks do, and
/// ranks compare as two integers, not field by field. `show` sorts a full
/// table's lines by rank. The low [`RANK_FREE_BITS`] bits are zero, for the
/// caller to number events of one place in their arrival order.
pub fn rank(e: &Event) -> Rank {
    Place::of(e).rank()
}

/// See [`rank`].
pub type Rank = (u128, u128);

/// The low bits of a [`Rank`] that [`rank`] leaves zero.
pub const RANK_FREE_BITS: u32 = 32;

/// Writes fields into a [`Rank`] from its highest bit down.
struct RankBits {
    rank: Rank,
    used: u32,
}

impl RankBits {
    fn new() -> RankBits {
        RankBits {
            rank: (0, 0),
            used: 0,
        }
    }

    /// Appends the low `bits` bits of `value` (at most 128).
    fn push(mut self, value: u128, bits: u32) -> RankBits {
        debug_assert!(bits <= 128 && self.used + bits <= 256 - RANK_FREE_BITS);
        let value = if bits == 128 {
            value
        } else {
            value & ((1 << bits) - 1)
        };
        let end = self.used + bits;
        if end <= 128 {
            if bits > 0 {
                self.rank.0 |= value << (128 - end);
            }
        } else if self.used >= 128 {
            self.rank.1 |= value << (256 - end);
        } else {
            // Split across the two halves.
            let low_bits = end - 128;
            self.rank.0 |= value >> low_bits;
            self.rank.1 |= value << (128 - low_bits);
        }
        self.used = end;
        self
    }
}

/// Where an event goes in this order: what the order looks at, read from
/// the event once (a destination is parsed here, not at every
/// comparison), and small enough to keep one per route of a full table.
///
/// The variants are in the order they sort in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place<'a> {
    Nexthop(u32),
    /// A rule's family and priority, and its key (the tie-break between
    /// rules of one priority).
    Rule(i32, u32, Cow<'a, str>),
    Route(RoutePlace),
    Marker,
}

impl Place<'_> {
    pub fn of(e: &Event) -> Place<'_> {
        let Some(event::Kind::Change(c)) = &e.kind else {
            return Place::Marker;
        };
        match &c.object {
            Some(change::Object::Nexthop(n)) => Place::Nexthop(n.id),
            Some(change::Object::Route(r)) => Place::Route(RoutePlace::of(r)),
            Some(change::Object::Rule(r)) => {
                Place::Rule(r.family, r.priority, c.key.as_str().into())
            }
            None => Place::Marker,
        }
    }

    /// This place as a number (see [`rank`]): the variant, then what it
    /// sorts by, in the order it sorts by it.
    pub fn rank(&self) -> Rank {
        let bits = RankBits::new();
        match self {
            Place::Nexthop(id) => bits.push(0, 2).push(u128::from(*id), 32),
            Place::Rule(family, priority, key) => bits
                .push(1, 2)
                .push(u128::from(*family as u32), 32)
                .push(u128::from(*priority), 32)
                // A rule's key is 32 hex digits: as a number it sorts as
                // the text does.
                .push(u128::from_str_radix(key, 16).unwrap_or(0), 128),
            Place::Route(r) => r.rank(bits.push(2, 2)),
            Place::Marker => bits.push(3, 2),
        }
        .rank
    }
}

/// A route's family, table and destination (see [`RoutePlace::destination`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination {
    inet6: bool,
    table: u32,
    addr: [u64; 2],
    len: u8,
}

/// What orders a route: the `ip route show table all` order.
#[derive(Debug, Clone, Copy)]
pub struct RoutePlace {
    inet6: bool,
    table: u32,
    /// The destination's address bits (an IPv4 address in the low 32), as
    /// two halves to keep the place 8-byte aligned.
    addr: [u64; 2],
    len: u8,
    tos: u32,
    metric: u32,
}

impl RoutePlace {
    pub fn of(r: &Route) -> RoutePlace {
        let (addr, len) = prefix(&r.dst);
        RoutePlace {
            inet6: r.family == Family::Inet6 as i32,
            table: r.table,
            addr: [(addr >> 64) as u64, addr as u64],
            len,
            tos: r.tos,
            metric: r.metric,
        }
    }

    /// What orders the route before its TOS and metric do: its family,
    /// table and destination.
    pub fn destination(&self) -> Destination {
        Destination {
            inet6: self.inet6,
            table: self.table,
            addr: self.addr,
            len: self.len,
        }
    }

    fn addr(&self) -> u128 {
        (u128::from(self.addr[0]) << 64) | u128::from(self.addr[1])
    }

    /// The fields of [`Ord`], as bits: an IPv4 route by network address,
    /// longer prefix, higher TOS, then metric; an IPv6 one by the last
    /// address its prefix covers (a prefix after every prefix inside it,
    /// disjoint ones by address), longer prefix, then metric.
    fn rank(&self, bits: RankBits) -> RankBits {
        let (table_hash, table) = table_order(self.table);
        let bits = bits
            .push(u128::from(self.inet6), 1)
            .push(u128::from(table_hash), 8)
            .push(u128::from(table), 32);
        let len = u32::from(self.len.min(128));
        let (addr, tos) = if self.inet6 {
            let host_bits = u128::MAX.checked_shr(len).unwrap_or(0);
            (self.addr() | host_bits, 0)
        } else {
            (self.addr() << 96, 255 - self.tos.min(255))
        };
        bits.push(addr, 128)
            .push(u128::from(255 - len), 8)
            .push(u128::from(tos), 8)
            .push(u128::from(self.metric), 32)
    }
}

impl Ord for RoutePlace {
    fn cmp(&self, other: &RoutePlace) -> Ordering {
        let (a, b) = (self, other);
        a.inet6
            .cmp(&b.inet6)
            .then_with(|| table_order(a.table).cmp(&table_order(b.table)))
            .then_with(|| {
                let (x, y) = ((a.addr(), a.len), (b.addr(), b.len));
                if a.inet6 {
                    fib6(x, y).then_with(|| a.metric.cmp(&b.metric))
                } else {
                    (x.0, y.1)
                        .cmp(&(y.0, x.1))
                        .then_with(|| b.tos.cmp(&a.tos))
                        .then_with(|| a.metric.cmp(&b.metric))
                }
            })
    }
}

impl PartialOrd for RoutePlace {
    fn partial_cmp(&self, other: &RoutePlace) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Equal where the order cannot tell them apart (an IPv6 route's TOS is
/// not looked at).
impl PartialEq for RoutePlace {
    fn eq(&self, other: &RoutePlace) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for RoutePlace {}

/// The `ip route show table all` order of two routes.
pub fn routes(a: &Route, b: &Route) -> Ordering {
    RoutePlace::of(a).cmp(&RoutePlace::of(b))
}

/// Tables in the kernel's hash order.
fn table_order(id: u32) -> (u32, u32) {
    (id & 255, id)
}

/// IPv6 tree order: compare the bits both prefixes have; when one holds
/// the other, the longer (inner) one first.
fn fib6((a, a_len): (u128, u8), (b, b_len): (u128, u8)) -> Ordering {
    let common = a_len.min(b_len);
    let mask = if common == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(common))
    };
    (a & mask)
        .cmp(&(b & mask))
        .then_with(|| b_len.cmp(&a_len))
        .then_with(|| a.cmp(&b))
}

/// A destination as (address bits, length).
fn prefix(dst: &str) -> (u128, u8) {
    let (addr, len) = dst.split_once('/').unwrap_or((dst, "0"));
    let bits = match addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => u128::from(u32::from(a)),
        Ok(IpAddr::V6(a)) => u128::from(a),
        Err(_) => 0,
    };
    (bits, len.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dst: &str, table: u32, metric: u32, tos: u32) -> Route {
        Route {
            family: if dst.contains(':') {
                Family::Inet6 as i32
            } else {
                Family::Inet as i32
            },
            dst: dst.to_owned(),
            table,
            metric,
            tos,
            ..Default::default()
        }
    }

    fn sorted(mut routes: Vec<Route>) -> Vec<String> {
        routes.sort_by(super::routes);
        routes
            .iter()
            .map(|r| {
                let mut s = format!("{} t{}", r.dst, r.table);
                if r.metric != 0 {
                    s.push_str(&format!(" m{}", r.metric));
                }
                if r.tos != 0 {
                    s.push_str(&format!(" tos{}", r.tos));
                }
                s
            })
            .collect()
    }

    /// Ranks sort exactly as [`compare`] does, ties in arrival order:
    /// routes of both families across tables, prefix lengths from 0 to the
    /// whole address, TOS and metrics, with nexthop objects, rules and
    /// markers among them.
    #[test]
    fn ranks_sort_as_places_compare() {
        use routewatch_proto::v1::{Change, Nexthop, Rule, Sync};
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let event = |object: change::Object, key: String| Event {
            kind: Some(event::Kind::Change(Change {
                object: Some(object),
                key,
                ..Default::default()
            })),
            ..Default::default()
        };
        let mut events = Vec::new();
        for _ in 0..3000 {
            let table = [1, 2, 100, 254, 255, 256, 1000, 4_000_000_000][next(8) as usize];
            let metric = [0, 1, 20, 1024, u32::MAX][next(5) as usize];
            let e = match next(12) {
                0 => event(
                    change::Object::Nexthop(Nexthop {
                        id: next(5) as u32,
                        ..Default::default()
                    }),
                    String::new(),
                ),
                1 => event(
                    change::Object::Rule(Rule {
                        family: 1 + next(2) as i32,
                        priority: [0, 100, 32766, 32767][next(4) as usize],
                        ..Default::default()
                    }),
                    format!("{:032x}", u128::from(next(4)) << 120 | u128::from(next(9))),
                ),
                2 => Event {
                    kind: Some(event::Kind::Sync(Sync {})),
                    ..Default::default()
                },
                3..=6 => {
                    let len = [0, 1, 7, 8, 16, 24, 31, 32][next(8) as usize];
                    let addr =
                        std::net::Ipv4Addr::from((next(4) as u32) << 30 | (next(3) as u32) << 24);
                    let net = ipnet::Ipv4Net::new(addr, len).unwrap().trunc();
                    let mut r = route(
                        &net.to_string(),
                        table,
                        metric,
                        [0, 4, 16, 255][next(4) as usize],
                    );
                    r.family = Family::Inet as i32;
                    event(change::Object::Route(r), String::new())
                }
                _ => {
                    let len = [0, 1, 16, 32, 48, 56, 64, 127, 128][next(9) as usize];
                    let addr = std::net::Ipv6Addr::from(
                        u128::from(next(3)) << 126
                            | u128::from(next(5)) << 80
                            | u128::from(next(2)),
                    );
                    let net = ipnet::Ipv6Net::new(addr, len).unwrap().trunc();
                    let r = route(&net.to_string(), table, metric, [0, 8][next(2) as usize]);
                    event(change::Object::Route(r), String::new())
                }
            };
            events.push(e);
        }
        let mut by_place: Vec<usize> = (0..events.len()).collect();
        by_place.sort_by(|&a, &b| compare(&events[a], &events[b]));
        let mut by_rank: Vec<usize> = (0..events.len()).collect();
        by_rank.sort_by_key(|&i| (rank(&events[i]), i));
        assert_eq!(by_rank, by_place);
    }

    /// The order `ip route show table all` printed for these routes
    /// (see the module's notes).
    #[test]
    fn ipv4_as_ip_route_show_prints_it() {
        let got = sorted(vec![
            route("10.0.0.128/25", 254, 0, 0),
            route("10.0.0.0/8", 254, 0, 0),
            route("10.0.0.0/24", 254, 5, 0),
            route("127.0.0.0/8", 255, 0, 0),
            route("10.0.0.0/16", 254, 0, 0),
            route("10.0.0.0/24", 254, 1, 0),
            route("10.0.0.0/24", 254, 0, 16),
            route("0.0.0.0/0", 254, 0, 0),
            route("10.0.0.0/24", 254, 0, 0),
            route("192.168.0.0/16", 1000, 0, 0),
            route("10.5.0.0/16", 300, 0, 0),
            route("10.5.0.0/16", 2, 0, 0),
            route("9.0.0.0/8", 254, 0, 0),
        ]);
        assert_eq!(
            got,
            vec![
                "10.5.0.0/16 t2",
                "10.5.0.0/16 t300",
                "192.168.0.0/16 t1000",
                "0.0.0.0/0 t254",
                "9.0.0.0/8 t254",
                "10.0.0.0/24 t254 tos16",
                "10.0.0.0/24 t254",
                "10.0.0.0/24 t254 m1",
                "10.0.0.0/24 t254 m5",
                "10.0.0.0/16 t254",
                "10.0.0.0/8 t254",
                "10.0.0.128/25 t254",
                "127.0.0.0/8 t255",
            ]
        );
    }

    #[test]
    fn ipv6_inner_prefixes_first_default_last() {
        let got = sorted(vec![
            route("::/0", 254, 10, 0),
            route("2001:db8::/32", 254, 1024, 0),
            route("fe80::/64", 254, 256, 0),
            route("2001:db8:5::/48", 254, 50, 0),
            route("2001:db8:5::/64", 254, 1024, 0),
            route("::/0", 254, 5, 0),
            route("2001:db8:1::/64", 254, 256, 0),
            route("2001:db8:5::/64", 254, 50, 0),
            route("2001:db8:5::/64", 7, 1024, 0),
            route("10.0.0.0/8", 254, 0, 0),
        ]);
        assert_eq!(
            got,
            vec![
                "10.0.0.0/8 t254",
                "2001:db8:5::/64 t7 m1024",
                "2001:db8:1::/64 t254 m256",
                "2001:db8:5::/64 t254 m50",
                "2001:db8:5::/64 t254 m1024",
                "2001:db8:5::/48 t254 m50",
                "2001:db8::/32 t254 m1024",
                "fe80::/64 t254 m256",
                "::/0 t254 m5",
                "::/0 t254 m10",
            ]
        );
    }
}
