//! A route as the table keeps it: its key and its `Route` message, encoded.
//!
//! With a million routes, the generated `Route` struct (about 400 bytes
//! before its strings) would cost several times what the route says. The
//! table keeps each route as the protobuf bytes it is sent as (without the
//! iproute2 names, which are written beside it as a change is encoded): the
//! journal and a snapshot hold the same record by reference, and a session
//! copies its bytes to the wire as they are. The few paths that need the
//! fields (nexthop re-resolution, an IPv6 multipath delete, filtered
//! subscribers) decode it.
//!
//! Routes of a full table differ in little but their destination: a
//! million BGP routes share a few thousand (table, gateway, device,
//! protocol, nexthop object) tails. A record therefore keeps its `dst` field
//! itself and everything else in a *tail* interned in one process-wide set:
//! the route's encoding is the tail's fields before `dst`, then `dst`, then
//! the rest of the tail (the canonical field order, so the bytes are those
//! of the whole message encoded at once). A tail also keeps the numbers the
//! names are written for, read once. A route with an `expires` time keeps
//! its whole encoding itself: its tail would be its own. A route whose tail
//! no other route shares (a pod's route through its own device) pays for
//! it alone: about 100 bytes more than one allocation would take.
//!
//! What a route costs (measured on a full table, 1.25M routes): an
//! 8-byte bucket in the table, and one allocation of the reference count
//! and length (8), the key (16), the tail reference (8) and `dst` (about
//! 13 bytes for IPv4, 21 for IPv6), which glibc rounds to 64 bytes with its
//! header.

use std::alloc::{self, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::sync::Mutex;

use bytes::BufMut;
use hashbrown::HashTable;
use prost::encoding::{decode_key, decode_varint, WireType};
use prost::Message;
use routewatch_proto::v1::Route;

use super::key::Key;

/// A route's key, its tail, and the rest of its encoding: its `dst`
/// field, or its whole encoding when it has no tail. A thin reference (one
/// word) to one allocation: a 4-byte reference count and length, the
/// [`Head`], then the bytes. (triomphe's `ThinArc` spends a word on each of
/// the first two, which puts an IPv6 record in glibc's 80-byte size class
/// rather than its 64-byte one: 4 MB on a full table.)
pub struct Record(NonNull<Inner>);

#[repr(C)]
struct Inner {
    count: AtomicU32,
    len: u32,
    head: Head,
    // `len` bytes follow.
}

struct Head {
    /// The key, little-endian (in two words: a `u128` would align the
    /// allocation to 16 bytes).
    key: [u64; 2],
    tail: Option<Tail>,
}

/// The fields of a route other than `dst`, shared by every route that has
/// the same ones.
#[derive(Clone)]
struct Tail(triomphe::ThinArc<TailHead, u8>);

struct TailHead {
    /// Where `dst` goes: the length of the fields that precede it.
    split: usize,
    numbers: Numbers,
    hash: u64,
}

/// Fields of `Route` (routewatch.proto) that the table reads without
/// decoding the whole message.
const FAMILY: u32 = 1;
const TABLE: u32 = 2;
const DST: u32 = 3;
const TYPE: u32 = 7;
const PROTOCOL: u32 = 8;
const SCOPE: u32 = 9;
const NHID: u32 = 16;
const EXPIRES: u32 = 19;
const NH_INFO: u32 = 21;
/// Fields of `Nexthop`.
const NH_PROTOCOL: u32 = 8;
const NH_SCOPE: u32 = 9;

/// The numbers a change's names are written for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Numbers {
    pub family: i32,
    pub table: u32,
    pub r#type: u32,
    pub protocol: u32,
    pub scope: u32,
    pub nhid: u32,
    /// The protocol and scope of the route's `nh_info`, when it has one.
    pub nh_info: Option<(u32, u32)>,
}

impl Record {
    pub fn new(key: Key, route: &Route) -> Record {
        let len = route.encoded_len();
        with_encoded(route, len, |body| Record::from_body(key, body))
    }

    fn from_body(key: Key, body: &[u8]) -> Record {
        let key = u128::from_le_bytes(key.to_le_bytes());
        let words = [key as u64, (key >> 64) as u64];
        let (tail, own) = match split(body) {
            Some(dst) => (
                Some(Tail::intern(&body[..dst.start], &body[dst.end..])),
                &body[dst],
            ),
            None => (None, body),
        };
        Record::alloc(Head { key: words, tail }, own)
    }

    pub fn key(&self) -> Key {
        let [low, high] = self.inner().head.key;
        Key::from_le_bytes(((u128::from(high) << 64) | u128::from(low)).to_le_bytes())
    }

    /// The length of the route's protobuf encoding.
    pub fn body_len(&self) -> usize {
        self.own().len() + self.tail().map_or(0, |t| t.bytes().len())
    }

    /// Appends the route's protobuf encoding (the body of a `Route` field).
    pub fn write_body(&self, buf: &mut impl BufMut) {
        match self.tail() {
            Some(tail) => {
                let (before, after) = tail.bytes().split_at(tail.split());
                buf.put_slice(before);
                buf.put_slice(self.own());
                buf.put_slice(after);
            }
            None => buf.put_slice(self.own()),
        }
    }

    /// Calls `f` with the route's protobuf encoding in one piece (put
    /// together on the stack when it fits).
    pub fn with_body<T>(&self, f: impl FnOnce(&[u8]) -> T) -> T {
        if self.tail().is_none() {
            return f(self.own());
        }
        assembled(self.body_len(), |buf| self.write_body(buf), f)
    }

    fn tail(&self) -> Option<&Tail> {
        self.inner().head.tail.as_ref()
    }

    /// The route's family number.
    pub fn family(&self) -> i32 {
        self.numbers().family
    }

    /// The route, decoded.
    pub fn route(&self) -> Route {
        self.with_body(|body| Route::decode(body).expect("the table encoded this route itself"))
    }

    /// Whether `route` is what this record holds (the encoding is
    /// deterministic: same fields, same bytes).
    pub fn holds(&self, route: &Route) -> bool {
        let len = route.encoded_len();
        len == self.body_len() && with_encoded(route, len, |body| self.with_body(|b| b == body))
    }

    /// Memory this record takes, allocation included (for the journal's
    /// byte bound). A tail counts whole, as if no other route shared it:
    /// the bound is an upper bound.
    pub fn footprint(&self) -> usize {
        // The allocation and the allocator's own word; then the tail's:
        // its reference count and length, its head, its bytes and the
        // allocator's word.
        const WORD: usize = std::mem::size_of::<usize>();
        let tail = |t: &Tail| 3 * WORD + std::mem::size_of::<TailHead>() + t.bytes().len();
        std::mem::size_of::<Inner>() + self.own().len() + WORD + self.tail().map_or(0, tail)
    }

    /// The fields the table and the names need: read once per tail, or
    /// straight from the bytes of a record without one.
    pub fn numbers(&self) -> Numbers {
        match self.tail() {
            Some(tail) => tail.0.header.header.numbers,
            None => numbers(self.own()),
        }
    }
}

// The allocation. A `Record` owns one count of its allocation; the last to
// go frees it (the pattern of `std::sync::Arc`, without weak references).

/// The allocation of a record of `len` bytes, and where the bytes start.
fn layout(len: usize) -> (Layout, usize) {
    let bytes = Layout::array::<u8>(len).expect("a route's encoding fits in memory");
    Layout::new::<Inner>()
        .extend(bytes)
        .expect("a route's encoding fits in memory")
}

impl Record {
    fn alloc(head: Head, own: &[u8]) -> Record {
        let len = u32::try_from(own.len()).expect("a route's encoding is under 4 GiB");
        let (layout, offset) = layout(own.len());
        // SAFETY: the layout is not zero-sized (it holds an `Inner`).
        let Some(ptr) = NonNull::new(unsafe { alloc::alloc(layout) }) else {
            alloc::handle_alloc_error(layout)
        };
        // SAFETY: the allocation is `layout`: an `Inner` at its start,
        // aligned, and room for `len` bytes at `offset`.
        unsafe {
            ptr.cast::<Inner>().as_ptr().write(Inner {
                count: AtomicU32::new(1),
                len,
                head,
            });
            std::ptr::copy_nonoverlapping(own.as_ptr(), ptr.as_ptr().add(offset), own.len());
        }
        Record(ptr.cast())
    }

    fn inner(&self) -> &Inner {
        // SAFETY: the allocation lives as long as any `Record` of it.
        unsafe { self.0.as_ref() }
    }

    fn own(&self) -> &[u8] {
        let len = self.inner().len as usize;
        // SAFETY: `alloc` wrote `len` bytes at the layout's offset, and
        // nothing writes them after.
        unsafe { std::slice::from_raw_parts(self.0.cast::<u8>().as_ptr().add(layout(len).1), len) }
    }
}

impl Clone for Record {
    fn clone(&self) -> Record {
        // Relaxed: a new reference is made from one held, which keeps the
        // allocation (as `Arc::clone`).
        let old = self.inner().count.fetch_add(1, Ordering::Relaxed);
        if old > i32::MAX as u32 {
            // More references than memory could hold: a leak of `Record`s.
            std::process::abort();
        }
        Record(self.0)
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if self.inner().count.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Every other reference's use happens before the free (as
        // `Arc::drop`).
        fence(Ordering::Acquire);
        let len = self.inner().len as usize;
        // SAFETY: this was the last reference: nothing else reads the
        // allocation, which `alloc` made with this layout.
        unsafe {
            std::ptr::drop_in_place(&mut (*self.0.as_ptr()).head);
            alloc::dealloc(self.0.cast::<u8>().as_ptr(), layout(len).0);
        }
    }
}

// SAFETY: a record is immutable after `alloc` but for its atomic count, and
// its head (a key and a `Tail`, itself `Send + Sync`) is shared read-only.
unsafe impl Send for Record {}
unsafe impl Sync for Record {}

impl PartialEq for Record {
    fn eq(&self, other: &Record) -> bool {
        self.key() == other.key()
            && self.body_len() == other.body_len()
            && self.with_body(|a| other.with_body(|b| a == b))
    }
}

impl Eq for Record {}

/// The process's tails, each held once.
static TAILS: Mutex<Tails> = Mutex::new(Tails {
    set: HashTable::new(),
    sweep_at: 0,
});

struct Tails {
    set: HashTable<Tail>,
    /// The set's size at which tails no route holds any more are let go
    /// (twice the number alive at the last sweep: the cost is spread over
    /// the tails added meanwhile).
    sweep_at: usize,
}

impl Tails {
    /// The tail of `bytes` with `dst` at `split`: the one held, or a new
    /// one.
    fn get(&mut self, bytes: &[u8], split: usize) -> Tail {
        let hash = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, split as u64);
        if let Some(tail) = self
            .set
            .find(hash, |t| t.split() == split && t.bytes() == bytes)
        {
            return tail.clone();
        }
        if self.set.len() >= self.sweep_at {
            // A tail only the set holds cannot be reached but through the
            // set, which the caller's lock guards: its count cannot rise
            // meanwhile.
            self.set
                .retain(|t| triomphe::ThinArc::strong_count(&t.0) > 1);
            self.sweep_at = (2 * self.set.len()).max(1024);
            if self.set.capacity() > 2 * self.sweep_at {
                // After many tails went (a table of routes each with its
                // own), their buckets go too.
                self.set
                    .shrink_to(self.sweep_at, |t| t.0.header.header.hash);
            }
        }
        let tail = Tail(triomphe::ThinArc::from_header_and_slice(
            TailHead {
                split,
                numbers: numbers(bytes),
                hash,
            },
            bytes,
        ));
        self.set
            .insert_unique(hash, tail.clone(), |t| t.0.header.header.hash);
        tail
    }
}

impl Tail {
    /// The tail of fields `before` and `after` the `dst` field, shared with
    /// every route that has the same.
    fn intern(before: &[u8], after: &[u8]) -> Tail {
        let write = |buf: &mut &mut [u8]| {
            buf.put_slice(before);
            buf.put_slice(after);
        };
        assembled(before.len() + after.len(), write, |bytes| {
            TAILS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(bytes, before.len())
        })
    }

    fn bytes(&self) -> &[u8] {
        &self.0.slice
    }

    fn split(&self) -> usize {
        self.0.header.header.split
    }
}

/// Where a route's `dst` field lies in its encoding, when the route is
/// to have a tail (not when it has an `expires` time). A route without
/// `dst` has an empty one where it would be.
fn split(body: &[u8]) -> Option<std::ops::Range<usize>> {
    let mut dst = None;
    let mut expires = false;
    fields(body, |field, _, range| {
        if field == EXPIRES {
            expires = true;
        }
        if dst.is_none() {
            if field == DST {
                dst = Some(range);
            } else if field > DST {
                dst = Some(range.start..range.start);
            }
        }
    });
    match expires {
        true => None,
        false => Some(dst.unwrap_or(body.len()..body.len())),
    }
}

/// The numbers of a route's encoding (or of its tail).
fn numbers(body: &[u8]) -> Numbers {
    let mut n = Numbers::default();
    fields(body, |field, value, _| match (field, value) {
        (FAMILY, Value::Varint(v)) => n.family = v as i32,
        (TABLE, Value::Varint(v)) => n.table = v as u32,
        (TYPE, Value::Varint(v)) => n.r#type = v as u32,
        (PROTOCOL, Value::Varint(v)) => n.protocol = v as u32,
        (SCOPE, Value::Varint(v)) => n.scope = v as u32,
        (NHID, Value::Varint(v)) => n.nhid = v as u32,
        (NH_INFO, Value::Bytes(nh)) => {
            let (mut protocol, mut scope) = (0, 0);
            fields(nh, |field, value, _| match (field, value) {
                (NH_PROTOCOL, Value::Varint(v)) => protocol = v as u32,
                (NH_SCOPE, Value::Varint(v)) => scope = v as u32,
                _ => {}
            });
            n.nh_info = Some((protocol, scope));
        }
        _ => {}
    });
    n
}

/// Encodings up to this size are put together on the stack.
const STACK: usize = 256;

/// Calls `f` with `route` encoded (`len` bytes): a record is allocated
/// once, at its final size.
fn with_encoded<T>(route: &Route, len: usize, f: impl FnOnce(&[u8]) -> T) -> T {
    assembled(len, |buf| route.encode_raw(buf), f)
}

/// Calls `f` with the `len` bytes `write` writes, in a buffer on the stack
/// when they fit.
fn assembled<T>(len: usize, write: impl FnOnce(&mut &mut [u8]), f: impl FnOnce(&[u8]) -> T) -> T {
    let mut stack = [0u8; STACK];
    let mut heap = Vec::new();
    let buf: &mut [u8] = if len <= STACK {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap
    };
    let mut rest = &mut *buf;
    write(&mut rest);
    debug_assert!(
        rest.is_empty(),
        "{} of {len} bytes written",
        len - rest.len()
    );
    f(buf)
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("key", &self.key())
            .field("route", &self.route())
            .finish()
    }
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// A fixed-width field (none of the ones read here).
    Fixed,
}

/// Calls `f` with each field of a message this agent encoded: its number,
/// its value, and the range of its bytes (key included).
fn fields<'a>(body: &'a [u8], mut f: impl FnMut(u32, Value<'a>, std::ops::Range<usize>)) {
    let mut buf = body;
    while !buf.is_empty() {
        let start = body.len() - buf.len();
        let Ok((field, wire_type)) = decode_key(&mut buf) else {
            return;
        };
        let value = match wire_type {
            WireType::Varint => match decode_varint(&mut buf) {
                Ok(v) => Value::Varint(v),
                Err(_) => return,
            },
            WireType::LengthDelimited => {
                let Ok(len) = decode_varint(&mut buf) else {
                    return;
                };
                let Some((value, rest)) = buf.split_at_checked(len as usize) else {
                    return;
                };
                buf = rest;
                Value::Bytes(value)
            }
            WireType::SixtyFourBit if buf.len() >= 8 => {
                buf = &buf[8..];
                Value::Fixed
            }
            WireType::ThirtyTwoBit if buf.len() >= 4 => {
                buf = &buf[4..];
                Value::Fixed
            }
            _ => return,
        };
        f(field, value, start..body.len() - buf.len());
    }
}

#[cfg(test)]
mod tests {
    use routewatch_proto::v1::{Family, Nexthop};

    use super::*;

    #[test]
    fn a_record_gives_back_its_key_route_and_numbers() {
        let route = Route {
            family: Family::Inet6 as i32,
            table: 1000,
            dst: "2001:db8::/48".into(),
            r#type: 1,
            protocol: 186,
            scope: 0,
            nhid: 7,
            nh_info: Some(Box::new(Nexthop {
                id: 7,
                protocol: 4,
                scope: 253,
                ..Default::default()
            })),
            ..Default::default()
        };
        let key = Key::nexthop(3);
        let record = Record::new(key, &route);
        assert_eq!(record.key(), key);
        assert_eq!(record.route(), route);
        assert!(record.holds(&route));
        assert!(!record.holds(&Route {
            metric: 1,
            ..route.clone()
        }));
        // A route larger than the stack buffer takes the other path.
        let wide = Route {
            nexthops: (0..40)
                .map(|i| routewatch_proto::v1::NextHop {
                    gateway: format!("2001:db8::{i}"),
                    ifindex: i,
                    ..Default::default()
                })
                .collect(),
            ..route.clone()
        };
        let big = Record::new(key, &wide);
        assert!(big.body_len() > 256);
        assert_eq!((big.key(), big.route()), (key, wide.clone()));
        assert!(big.holds(&wide) && !big.holds(&route));
        assert_eq!(
            record.numbers(),
            Numbers {
                family: Family::Inet6 as i32,
                table: 1000,
                r#type: 1,
                protocol: 186,
                scope: 0,
                nhid: 7,
                nh_info: Some((4, 253)),
            }
        );
    }

    #[test]
    fn routes_share_a_tail_and_let_it_go_with_the_last_record() {
        let route = |dst: &str| Route {
            family: Family::Inet as i32,
            table: 4242,
            dst: dst.into(),
            r#type: 1,
            protocol: 186,
            gateway: "192.0.2.1".into(),
            ifindex: 3,
            ..Default::default()
        };
        let a = Record::new(Key::test(1), &route("198.51.100.0/24"));
        let b = Record::new(Key::test(2), &route("203.0.113.0/24"));
        let (ta, tb) = (a.tail().unwrap(), b.tail().unwrap());
        assert!(std::ptr::eq(ta.bytes(), tb.bytes()), "one tail");
        let tail = ta.clone();
        let count = || triomphe::ThinArc::strong_count(&tail.0);
        // The set, `a`, `b`, and `tail`.
        assert_eq!(count(), 4);
        // The bytes are those of the whole message, fields in order.
        assert_eq!(a.body_len(), route("198.51.100.0/24").encoded_len());
        assert_eq!(
            a.with_body(<[u8]>::to_vec),
            route("198.51.100.0/24").encode_to_vec()
        );
        assert_eq!(b.route(), route("203.0.113.0/24"));
        assert_eq!(a.numbers().table, 4242);
        // Clones made and dropped on other threads.
        let clones: Vec<Record> = (0..64).map(|_| a.clone()).collect();
        std::thread::scope(|s| {
            for chunk in clones.chunks(16) {
                let chunk = chunk.to_vec();
                s.spawn(move || {
                    for r in &chunk {
                        assert_eq!(r.key(), Key::test(1));
                    }
                });
            }
        });
        drop(clones);
        assert_eq!(a, a.clone());
        assert_ne!(a, b);
        drop((a, b));
        assert_eq!(count(), 2, "the set and `tail`");
        // A route with an expiry keeps its whole encoding.
        let expiring = Route {
            expires: 300,
            ..route("198.51.100.0/24")
        };
        let c = Record::new(Key::test(3), &expiring);
        assert!(c.tail().is_none());
        assert_eq!((c.route(), c.numbers().table), (expiring, 4242));
    }

    #[test]
    fn a_full_table_route_fits_glibc_s_64_byte_class() {
        // glibc serves requests up to 56 bytes from its 64-byte class
        // (8 bytes of header): the figure the module's cost is given in.
        assert_eq!(std::mem::size_of::<Inner>(), 32);
        for dst in ["203.0.113.0/24", "2001:db8:1234::/48"] {
            let route = Route {
                family: Family::Inet as i32,
                table: 254,
                dst: dst.into(),
                r#type: 1,
                protocol: 186,
                gateway: "192.0.2.1".into(),
                ..Default::default()
            };
            let record = Record::new(Key::test(1), &route);
            let own = record.own().len();
            assert!(layout(own).0.size() <= 56, "{dst}: {own} bytes of its own");
        }
    }

    #[test]
    fn tails_no_route_holds_are_let_go() {
        // A set of its own: the process's is shared with the other tests.
        let mut tails = Tails {
            set: HashTable::new(),
            sweep_at: 0,
        };
        let mut get = |base: u32, n: u32| -> Vec<Tail> {
            (0..n)
                .map(|i| tails.get(format!("{base}/{i}").as_bytes(), 0))
                .collect()
        };
        let gone = get(1, 5000);
        drop(gone);
        // The set sweeps when it has doubled since its last sweep: by the
        // time these are in, the 5000 dead tails are out, and their
        // buckets with them.
        let kept = get(2, 6000);
        assert_eq!(kept.iter().filter(|t| t.bytes() == b"2/7").count(), 1);
        let (len, capacity) = (tails.set.len(), tails.set.capacity());
        assert_eq!(len, 6000, "dead tails still held");
        assert!(capacity < 2 * len, "{capacity} buckets for {len} tails");
        // A tail asked for again is the one held.
        let again = tails.get(b"2/7", 0);
        assert!(std::ptr::eq(again.bytes(), kept[7].bytes()));
        assert_eq!(tails.set.len(), 6000);
    }
}
