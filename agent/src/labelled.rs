//! The host's iproute2 names beside the numbers, filled in when a change is
//! encoded.
//!
//! The state table holds numbers only: with a million routes, four strings
//! each would cost more memory than the routes' own fields. The names are
//! appended inside the object's message as it is encoded, once per change
//! (the journal shares those bytes with every subscriber), and a consumer
//! decodes them as if they were fields of the object like any other.
//!
//! A route's `nh_info` gets its names the same way: a second `nh_info`
//! field holding only the names, which protobuf decoding merges into the
//! first (a message field that occurs twice is merged, by the spec).

use std::borrow::Cow;

use bytes::BytesMut;
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use routewatch_proto::v1::{self as api};
use routewatch_proto::Names;
use smallvec::SmallVec;

use crate::state::{Object, Record};

/// Fields of `Route` (routewatch.proto).
const ROUTE: u32 = 4;
const ROUTE_NH_INFO: u32 = 21;
const ROUTE_TABLE_NAME: u32 = 25;
const ROUTE_PROTOCOL_NAME: u32 = 26;
const ROUTE_TYPE_NAME: u32 = 27;
const ROUTE_SCOPE_NAME: u32 = 28;
/// Fields of `Nexthop`.
const NEXTHOP: u32 = 5;
const NEXTHOP_PROTOCOL_NAME: u32 = 14;
const NEXTHOP_SCOPE_NAME: u32 = 15;
/// Fields of `Rule`.
const RULE: u32 = 6;
const RULE_TABLE_NAME: u32 = 31;
const RULE_PROTOCOL_NAME: u32 = 32;

/// `(field, name)` pairs appended inside a message.
type Fields<'a> = SmallVec<[(u32, Cow<'a, str>); 4]>;

/// One object of a change, as its `Change.object` field, with its names.
pub struct Labelled<'a> {
    /// The `Change.object` field number.
    tag: u32,
    message: Body<'a>,
    fields: Fields<'a>,
    /// A submessage field to merge names into, and those names.
    nested: Option<(u32, Fields<'a>)>,
}

impl<'a> Labelled<'a> {
    /// `object` with the names `names` gives its numbers. Every kind of
    /// object says here which of its fields carry names; [`unlabelled`]
    /// clears the same fields (the compiler asks for both arms).
    pub fn new(object: &'a Object, names: &'a Names) -> Labelled<'a> {
        match object {
            Object::Route(record) => {
                let r = record.numbers();
                Labelled {
                    tag: ROUTE,
                    message: Body::Record(record),
                    fields: SmallVec::from_iter([
                        (ROUTE_TABLE_NAME, names.table(r.table)),
                        (ROUTE_PROTOCOL_NAME, names.protocol(r.protocol)),
                        (ROUTE_TYPE_NAME, names.route_type(r.r#type)),
                        (ROUTE_SCOPE_NAME, names.scope(r.scope)),
                    ]),
                    nested: r.nh_info.map(|(protocol, scope)| {
                        (ROUTE_NH_INFO, nexthop_fields(protocol, scope, names))
                    }),
                }
            }
            Object::Nexthop(n) => Labelled {
                tag: NEXTHOP,
                message: Body::Message(&**n),
                fields: nexthop_fields(n.protocol, n.scope, names),
                nested: None,
            },
            Object::Rule(r) => {
                let mut fields: Fields<'a> =
                    SmallVec::from_iter([(RULE_PROTOCOL_NAME, names.protocol(r.protocol))]);
                // Table 0 is no table: the rule jumps, does nothing, uses
                // the VRF's table or refuses the packet.
                if r.table != 0 {
                    fields.push((RULE_TABLE_NAME, names.table(r.table)));
                }
                Labelled {
                    tag: RULE,
                    message: Body::Message(&**r),
                    fields,
                    nested: None,
                }
            }
        }
    }

    /// The whole `Change.object` field: key, length and body.
    pub fn encoded_len(&self) -> usize {
        let body = self.body_len();
        key_len(self.tag) + encoded_len_varint(body as u64) + body
    }

    /// Appends the field to `buf`; returns where in `buf` the object's own
    /// fields are, without the names: the form its digest hash is taken
    /// over (see [`routewatch_proto::digest`]).
    pub fn encode(&self, buf: &mut BytesMut) -> std::ops::Range<usize> {
        encode_key(self.tag, WireType::LengthDelimited, buf);
        encode_varint(self.body_len() as u64, buf);
        let start = buf.len();
        self.message.encode_body(buf);
        let unlabelled = start..buf.len();
        encode_fields(&self.fields, buf);
        if let Some((tag, fields)) = &self.nested {
            encode_key(*tag, WireType::LengthDelimited, buf);
            encode_varint(fields_len(fields) as u64, buf);
            encode_fields(fields, buf);
        }
        unlabelled
    }

    fn body_len(&self) -> usize {
        let mut len = self.message.body_len() + fields_len(&self.fields);
        if let Some((tag, fields)) = &self.nested {
            let inner = fields_len(fields);
            len += key_len(*tag) + encoded_len_varint(inner as u64) + inner;
        }
        len
    }
}

fn nexthop_fields(protocol: u32, scope: u32, names: &Names) -> Fields<'_> {
    SmallVec::from_iter([
        (NEXTHOP_PROTOCOL_NAME, names.protocol(protocol)),
        (NEXTHOP_SCOPE_NAME, names.scope(scope)),
    ])
}

fn fields_len(fields: &Fields<'_>) -> usize {
    fields
        .iter()
        .map(|(tag, name)| key_len(*tag) + encoded_len_varint(name.len() as u64) + name.len())
        .sum()
}

fn encode_fields(fields: &Fields<'_>, buf: &mut BytesMut) {
    for (tag, name) in fields {
        encode_key(*tag, WireType::LengthDelimited, buf);
        encode_varint(name.len() as u64, buf);
        buf.extend_from_slice(name.as_bytes());
    }
}

/// A message's fields without its key and length: a generated message, or
/// a route the table keeps encoded.
enum Body<'a> {
    Message(&'a dyn Generated),
    Record(&'a Record),
}

/// A generated message, behind a pointer.
trait Generated {
    fn body_len(&self) -> usize;
    fn encode_body(&self, buf: &mut BytesMut);
}

impl<M: prost::Message> Generated for M {
    fn body_len(&self) -> usize {
        self.encoded_len()
    }

    fn encode_body(&self, buf: &mut BytesMut) {
        self.encode_raw(buf)
    }
}

impl Body<'_> {
    fn body_len(&self) -> usize {
        match self {
            Body::Message(m) => m.body_len(),
            Body::Record(record) => record.body_len(),
        }
    }

    fn encode_body(&self, buf: &mut BytesMut) {
        match self {
            Body::Message(m) => m.encode_body(buf),
            Body::Record(record) => record.write_body(buf),
        }
    }
}

/// The object as the state table holds it: without the names a change
/// carried (a change read back from the state dir must equal a fresh dump
/// of the same object).
pub fn unlabelled(object: &mut api::change::Object) {
    match object {
        api::change::Object::Route(r) => {
            r.table_name.clear();
            r.protocol_name.clear();
            r.type_name.clear();
            r.scope_name.clear();
            if let Some(nh) = &mut r.nh_info {
                unlabel_nexthop(nh);
            }
        }
        api::change::Object::Nexthop(n) => unlabel_nexthop(n),
        api::change::Object::Rule(r) => {
            r.table_name.clear();
            r.protocol_name.clear();
        }
    }
}

fn unlabel_nexthop(n: &mut api::Nexthop) {
    n.protocol_name.clear();
    n.scope_name.clear();
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use prost::Message;

    use super::*;
    use crate::state::{Key, Record};

    fn decoded(object: &Object, names: &Names) -> api::Change {
        let labelled = Labelled::new(object, names);
        let mut buf = BytesMut::new();
        labelled.encode(&mut buf);
        assert_eq!(buf.len(), labelled.encoded_len());
        api::Change::decode(buf.freeze()).unwrap()
    }

    #[test]
    fn a_route_decodes_with_its_names_and_its_own_fields_intact() {
        let route = api::Route {
            family: 1,
            table: 1234,
            dst: "10.0.0.0/24".into(),
            r#type: 1,
            protocol: 186,
            scope: 253,
            nhid: 7,
            nh_info: Some(Box::new(api::Nexthop {
                id: 7,
                protocol: 4,
                gateway: "10.1.0.1".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let object = Object::Route(Record::new(Key::nexthop(1), &route));
        let change = decoded(&object, &Names::builtin());
        let Some(api::change::Object::Route(got)) = change.object else {
            panic!("not a route");
        };
        assert_eq!(
            (
                &*got.table_name,
                &*got.protocol_name,
                &*got.type_name,
                &*got.scope_name
            ),
            ("1234", "bgp", "unicast", "link")
        );
        let nh = got.nh_info.as_ref().unwrap();
        assert_eq!((&*nh.protocol_name, &*nh.scope_name), ("static", "global"));
        assert_eq!(nh.gateway, "10.1.0.1", "merged, not replaced");
        let mut back = api::change::Object::Route(got);
        unlabelled(&mut back);
        assert_eq!(back, api::change::Object::Route(route));
    }

    #[test]
    fn a_nexthop_object_carries_protocol_and_scope_names() {
        let nh = api::Nexthop {
            id: 3,
            protocol: 188,
            scope: 0,
            ..Default::default()
        };
        let change = decoded(&Object::Nexthop(Arc::new(nh.clone())), &Names::builtin());
        let Some(api::change::Object::Nexthop(got)) = change.object else {
            panic!("not a nexthop");
        };
        assert_eq!((&*got.protocol_name, &*got.scope_name), ("ospf", "global"));
        let mut back = api::change::Object::Nexthop(got);
        unlabelled(&mut back);
        assert_eq!(back, api::change::Object::Nexthop(nh));
    }
}
