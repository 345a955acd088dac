//! A route as the table keeps it: its key and its `Route` message, encoded.
//!
//! With a million routes, the generated `Route` struct (about 400 bytes
//! before its strings) would cost several times what the route says. The
//! table keeps each route as the protobuf bytes it is sent as (without the
//! iproute2 names, which are written beside it as a change is encoded), in
//! one shared allocation: the journal and a snapshot hold the same bytes by
//! reference, and a session copies them to the wire as they are. The few
//! paths that need the fields (nexthop re-resolution, an IPv6 multipath
//! delete, filtered subscribers) decode it.
//!
//! What a record costs (measured on a full table, 1.25M routes): the
//! encoding (about 45 bytes for `1.2.3.0/24 via 192.0.2.1 dev eth0 proto
//! bgp`, more with a nexthop object's details), the key (16), the reference
//! count (8) and glibc's header and 16-byte rounding (8 to 23). Going
//! further would take a format of our own, with addresses as bytes instead
//! of text (about 20 bytes less), or an arena of records instead of an
//! allocation each.

use prost::encoding::{decode_key, decode_varint, WireType};
use prost::Message;
use routewatch_proto::v1::Route;

use super::key::Key;

/// `[key: 16 bytes, little-endian][the route, protobuf-encoded]`, behind a
/// reference count (one word: no weak count).
#[derive(Clone, PartialEq, Eq)]
pub struct Record(triomphe::Arc<[u8]>);

const KEY_LEN: usize = 16;

/// Fields of `Route` (routewatch.proto) that the table reads without
/// decoding the whole message.
const FAMILY: u32 = 1;
const TABLE: u32 = 2;
const TYPE: u32 = 7;
const PROTOCOL: u32 = 8;
const SCOPE: u32 = 9;
const NHID: u32 = 16;
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
        with_encoded(&key.to_le_bytes(), route, len, |record| {
            Record(triomphe::Arc::from(record))
        })
    }

    pub fn key(&self) -> Key {
        let mut bytes = [0u8; KEY_LEN];
        bytes.copy_from_slice(&self.0[..KEY_LEN]);
        Key::from_le_bytes(bytes)
    }

    /// The route's protobuf encoding (the body of a `Route` field).
    pub fn body(&self) -> &[u8] {
        &self.0[KEY_LEN..]
    }

    /// The route's family number (the first field, when it is not 0).
    pub fn family(&self) -> i32 {
        match self.body() {
            [0x08, f, ..] if *f < 0x80 => i32::from(*f),
            _ => self.numbers().family,
        }
    }

    /// The route, decoded.
    pub fn route(&self) -> Route {
        Route::decode(self.body()).expect("the table encoded this route itself")
    }

    /// Whether `route` is what this record holds (the encoding is
    /// deterministic: same fields, same bytes).
    pub fn holds(&self, route: &Route) -> bool {
        let len = route.encoded_len();
        len == self.body().len() && with_encoded(&[], route, len, |body| body == self.body())
    }

    /// Memory this record takes, allocation included (for the journal's
    /// byte bound).
    pub fn footprint(&self) -> usize {
        // The reference count and the allocator's own word.
        self.0.len() + 2 * std::mem::size_of::<usize>()
    }

    /// The fields the table and the names need, read straight from the
    /// bytes.
    pub fn numbers(&self) -> Numbers {
        let mut n = Numbers::default();
        scan(self.body(), |field, value| match (field, value) {
            (FAMILY, Value::Varint(v)) => n.family = v as i32,
            (TABLE, Value::Varint(v)) => n.table = v as u32,
            (TYPE, Value::Varint(v)) => n.r#type = v as u32,
            (PROTOCOL, Value::Varint(v)) => n.protocol = v as u32,
            (SCOPE, Value::Varint(v)) => n.scope = v as u32,
            (NHID, Value::Varint(v)) => n.nhid = v as u32,
            (NH_INFO, Value::Bytes(nh)) => {
                let (mut protocol, mut scope) = (0, 0);
                scan(nh, |field, value| match (field, value) {
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
}

/// Calls `f` with `prefix` and then `route` encoded (`len` bytes), on the
/// stack when they fit: a record is allocated once, at its final size.
fn with_encoded<T>(prefix: &[u8], route: &Route, len: usize, f: impl FnOnce(&[u8]) -> T) -> T {
    const STACK: usize = 256;
    let total = prefix.len() + len;
    if total <= STACK {
        let mut buf = [0u8; STACK];
        buf[..prefix.len()].copy_from_slice(prefix);
        let mut rest = &mut buf[prefix.len()..total];
        route.encode_raw(&mut rest);
        f(&buf[..total])
    } else {
        let mut buf = Vec::with_capacity(total);
        buf.extend_from_slice(prefix);
        route.encode_raw(&mut buf);
        f(&buf)
    }
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
}

/// Calls `f` with each varint and length-delimited field of a message this
/// agent encoded (fixed-width fields are skipped).
fn scan<'a>(mut buf: &'a [u8], mut f: impl FnMut(u32, Value<'a>)) {
    while !buf.is_empty() {
        let Ok((field, wire_type)) = decode_key(&mut buf) else {
            return;
        };
        match wire_type {
            WireType::Varint => match decode_varint(&mut buf) {
                Ok(v) => f(field, Value::Varint(v)),
                Err(_) => return,
            },
            WireType::LengthDelimited => {
                let Ok(len) = decode_varint(&mut buf) else {
                    return;
                };
                let Some((value, rest)) = buf.split_at_checked(len as usize) else {
                    return;
                };
                f(field, Value::Bytes(value));
                buf = rest;
            }
            WireType::SixtyFourBit if buf.len() >= 8 => buf = &buf[8..],
            WireType::ThirtyTwoBit if buf.len() >= 4 => buf = &buf[4..],
            _ => return,
        }
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
        assert!(big.body().len() > 256);
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
}
