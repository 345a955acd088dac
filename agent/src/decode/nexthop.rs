//! Decoder for rtnetlink nexthop-object messages (`RTM_NEWNEXTHOP` /
//! `RTM_DELNEXTHOP`).
//!
//! Since Linux 5.3 routes can point at shared nexthop objects (`ip nexthop`,
//! `ip route ... nhid N`) instead of carrying their gateways inline, and FRR
//! and other routing daemons install routes that way. To follow where such a
//! route actually forwards, the agent has to track the objects themselves, but
//! netlink-packet-route 0.34 has no `RTM_*NEXTHOP` support at all: it does not
//! even recognise the message types. This module fills that gap by decoding
//! the message body directly, using netlink-packet-core only for the generic
//! attribute walk.
//!
//! # Group weights
//!
//! A group member is a `struct nexthop_grp { u32 id; u8 weight; u8
//! weight_high; u16 resvd2; }`. The kernel stores `weight - 1` so that a
//! zeroed byte still means weight 1. Linux 6.12 widened weights to 16 bits by
//! giving the former `resvd1` byte the high bits, so the real weight is
//! `((weight_high << 8) | weight) + 1`, from 1 to 65535 (the kernel rejects a
//! wire value of 0xffff).
//!
//! Kernels before 6.12 did not zero the reserved bytes when filling in a
//! group, so `weight_high` can only be trusted when the message also carries
//! `NHA_OP_FLAGS` with [`NHA_OP_FLAG_RESP_GRP_RESVD_0`] set: that is how the
//! kernel says "the reserved fields are zeroed", and iproute2 applies the same
//! rule. Without it only the low byte counts, which is all such kernels
//! supported anyway.

use std::net::IpAddr;

use netlink_packet_core::{DecodeError, NlasIterator, NLA_ALIGNTO};
use routewatch_proto::v1::Encap;
use thiserror::Error;

use super::encap;

/// `nlmsg_type` of a nexthop object being created or changed.
pub const RTM_NEWNEXTHOP: u16 = 104;
/// `nlmsg_type` of a nexthop object being deleted.
pub const RTM_DELNEXTHOP: u16 = 105;
/// Multicast group that carries nexthop notifications.
pub const RTNLGRP_NEXTHOP: u32 = 32;

/// Size of `struct nhmsg`, the fixed header before the attributes.
pub const NHMSG_LEN: usize = 8;

/// u32: nexthop id.
pub const NHA_ID: u16 = 1;
/// Array of `struct nexthop_grp`.
pub const NHA_GROUP: u16 = 2;
/// u16: one of `NEXTHOP_GRP_TYPE_*`.
pub const NHA_GROUP_TYPE: u16 = 3;
/// Flag: the nexthop drops packets.
pub const NHA_BLACKHOLE: u16 = 4;
/// u32: outgoing interface index.
pub const NHA_OIF: u16 = 5;
/// Gateway address, 4 or 16 bytes depending on the family.
pub const NHA_GATEWAY: u16 = 6;
/// u16: lightweight-tunnel encapsulation type.
pub const NHA_ENCAP_TYPE: u16 = 7;
/// Nested: lightweight-tunnel encapsulation.
pub const NHA_ENCAP: u16 = 8;
/// Flag: dump filter for groups only (requests).
pub const NHA_GROUPS: u16 = 9;
/// u32: dump filter by master device (requests).
pub const NHA_MASTER: u16 = 10;
/// Flag: the nexthop is used by the bridge FDB.
pub const NHA_FDB: u16 = 11;
/// Nested: resilient-group parameters.
pub const NHA_RES_GROUP: u16 = 12;
/// Nested: one resilient-group bucket.
pub const NHA_RES_BUCKET: u16 = 13;
/// u32: operation flags (request) / response flags (notification).
pub const NHA_OP_FLAGS: u16 = 14;
/// Nested: per-member group statistics.
pub const NHA_GROUP_STATS: u16 = 15;
/// u32: hardware statistics enabled.
pub const NHA_HW_STATS_ENABLE: u16 = 16;
/// u32: hardware statistics in use.
pub const NHA_HW_STATS_USED: u16 = 17;

/// `NHA_GROUP_TYPE` value of a hash-threshold group (the default).
pub const NEXTHOP_GRP_TYPE_MPATH: u16 = 0;
/// `NHA_GROUP_TYPE` value of a resilient group.
pub const NEXTHOP_GRP_TYPE_RES: u16 = 1;

/// Response bit in `NHA_OP_FLAGS`: the kernel zeroed the reserved bytes of
/// every `struct nexthop_grp`, so `weight_high` is meaningful.
pub const NHA_OP_FLAG_RESP_GRP_RESVD_0: u32 = 1 << 31;

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const NEXTHOP_GRP_LEN: usize = 8;

/// One decoded nexthop object message.
#[derive(Debug, Clone, PartialEq)]
pub struct NexthopMessage {
    /// `nh_family`: AF_INET, AF_INET6, or AF_UNSPEC for groups and blackholes
    /// created without a family.
    pub family: u8,
    /// `nh_scope` (RT_SCOPE_*).
    pub scope: u8,
    /// `nh_protocol` (RTPROT_*).
    pub protocol: u8,
    /// `nh_flags` (RTNH_F_*).
    pub flags: u32,
    /// `NHA_ID`.
    pub id: u32,
    /// `NHA_GROUP` members in kernel order; empty for a plain nexthop.
    pub group: Vec<GroupMember>,
    /// `NHA_GROUP_TYPE` (see `NEXTHOP_GRP_TYPE_*`).
    pub group_type: Option<u16>,
    /// `NHA_BLACKHOLE` present.
    pub blackhole: bool,
    /// `NHA_FDB` present.
    pub fdb: bool,
    /// `NHA_OIF`.
    pub oif: Option<u32>,
    /// `NHA_GATEWAY`.
    pub gateway: Option<IpAddr>,
    /// `NHA_ENCAP_TYPE` + `NHA_ENCAP`.
    pub encap: Option<Encap>,
    /// Every other attribute as (type with the NLA_F_NESTED and
    /// NLA_F_NET_BYTEORDER bits cleared, raw value), in message order.
    pub other: Vec<(u16, Vec<u8>)>,
}

/// One member of a nexthop group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupMember {
    /// Id of the member nexthop.
    pub id: u32,
    /// Real weight (1..=65535), not the kernel's `weight - 1` encoding.
    pub weight: u16,
}

/// Why a nexthop message could not be decoded.
#[derive(Debug, Error)]
pub enum NexthopDecodeError {
    /// The payload is shorter than `struct nhmsg`.
    #[error("nexthop message body is {len} bytes, shorter than the {NHMSG_LEN}-byte struct nhmsg")]
    TruncatedHeader {
        /// Length of the payload that was given.
        len: usize,
    },
    /// The attribute stream is broken: a header cut short, a length below the
    /// 4-byte header, or a length running past the end of the payload.
    ///
    /// The reason is part of the message rather than a `source()` because
    /// callers log these with `to_string()`.
    #[error("malformed netlink attribute at payload offset {offset}: {reason}")]
    MalformedAttribute {
        /// Offset of the bad attribute from the start of the payload.
        offset: usize,
        /// What netlink-packet-core found wrong.
        reason: DecodeError,
    },
    /// An attribute this module decodes has a value of the wrong size.
    #[error("attribute {name} (type {kind}) has a {len}-byte value, expected {expected}")]
    BadAttributeLength {
        /// Attribute type.
        kind: u16,
        /// Attribute name, e.g. `NHA_OIF`.
        name: &'static str,
        /// Actual value length.
        len: usize,
        /// What the length should have been.
        expected: &'static str,
    },
    /// `NHA_GATEWAY` does not fit the message's address family.
    #[error(
        "NHA_GATEWAY is {len} bytes but nh_family {family} needs 4 (AF_INET) or 16 (AF_INET6)"
    )]
    GatewayLength {
        /// `nh_family` from the header.
        family: u8,
        /// Gateway value length.
        len: usize,
    },
    /// A group member encodes weight 65536, which the kernel refuses to create
    /// and which does not fit the `u16` weight.
    #[error("NHA_GROUP entry {index} (nexthop id {id}) encodes weight 65536")]
    WeightOverflow {
        /// Position of the entry in `NHA_GROUP`.
        index: usize,
        /// Member nexthop id.
        id: u32,
    },
    /// No `NHA_ID`: the kernel always sends one, and without it the message
    /// cannot be matched to an object.
    #[error("nexthop message has no NHA_ID attribute")]
    MissingId,
}

/// Decodes the body of an `RTM_NEWNEXTHOP` / `RTM_DELNEXTHOP` message, i.e.
/// everything after the 16-byte `nlmsghdr`.
pub fn parse(payload: &[u8]) -> Result<NexthopMessage, NexthopDecodeError> {
    if payload.len() < NHMSG_LEN {
        return Err(NexthopDecodeError::TruncatedHeader { len: payload.len() });
    }
    let family = payload[0];
    let mut msg = NexthopMessage {
        family,
        scope: payload[1],
        protocol: payload[2],
        flags: u32::from_ne_bytes([payload[4], payload[5], payload[6], payload[7]]),
        id: 0,
        group: Vec::new(),
        group_type: None,
        blackhole: false,
        fdb: false,
        oif: None,
        gateway: None,
        encap: None,
        other: Vec::new(),
    };
    let mut id = None;
    // NHA_ENCAP comes before the NHA_ENCAP_TYPE that says how to read it.
    let mut encap_type = None;
    let mut encap_value = None;
    // (id, weight, weight_high) as sent: NHA_OP_FLAGS follows NHA_GROUP in
    // the kernel's output, so weights can only be finished after the walk.
    let mut raw_group: Vec<(u32, u8, u8)> = Vec::new();
    let mut op_flags = 0u32;

    let mut offset = NHMSG_LEN;
    for nla in NlasIterator::new(&payload[NHMSG_LEN..]) {
        let nla =
            nla.map_err(|reason| NexthopDecodeError::MalformedAttribute { offset, reason })?;
        offset += align(usize::from(nla.length()));
        let kind = nla.kind();
        let value = nla.value();
        match kind {
            NHA_ID => id = Some(read_u32(kind, "NHA_ID", value)?),
            NHA_GROUP => raw_group = read_group(value)?,
            NHA_GROUP_TYPE => msg.group_type = Some(read_u16(kind, "NHA_GROUP_TYPE", value)?),
            NHA_BLACKHOLE => msg.blackhole = read_flag(kind, "NHA_BLACKHOLE", value)?,
            NHA_FDB => msg.fdb = read_flag(kind, "NHA_FDB", value)?,
            NHA_OIF => msg.oif = Some(read_u32(kind, "NHA_OIF", value)?),
            NHA_GATEWAY => msg.gateway = Some(read_gateway(family, value)?),
            NHA_ENCAP_TYPE => encap_type = Some(read_u16(kind, "NHA_ENCAP_TYPE", value)?),
            NHA_ENCAP => encap_value = Some(value.to_vec()),
            NHA_OP_FLAGS => {
                // Consulted for the group weights, but not a field of its own.
                op_flags = read_u32(kind, "NHA_OP_FLAGS", value)?;
                msg.other.push((kind, value.to_vec()));
            }
            _ => msg.other.push((kind, value.to_vec())),
        }
    }

    msg.id = id.ok_or(NexthopDecodeError::MissingId)?;
    if encap_type.is_some() || encap_value.is_some() {
        // Without its type an encapsulation is still shown (type 0, all
        // attributes unknown) rather than dropped.
        msg.encap = Some(encap::from_raw(
            encap_type.unwrap_or(0),
            &encap_value.unwrap_or_default(),
        ));
    }
    let trust_high = op_flags & NHA_OP_FLAG_RESP_GRP_RESVD_0 != 0;
    msg.group = raw_group
        .into_iter()
        .enumerate()
        .map(|(index, (id, low, high))| {
            let high = if trust_high { high } else { 0 };
            ((u16::from(high) << 8) | u16::from(low))
                .checked_add(1)
                .map(|weight| GroupMember { id, weight })
                .ok_or(NexthopDecodeError::WeightOverflow { index, id })
        })
        .collect::<Result<_, _>>()?;
    Ok(msg)
}

impl NexthopMessage {
    /// The attributes the API's `Nexthop` does not carry, to be kept raw:
    /// everything in `other` but NHA_OP_FLAGS (a promise about this
    /// message's encoding, already applied to the weights), and the group
    /// type when it is not the default hash-threshold one (the API has no
    /// field for it).
    pub fn undecoded(&self) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        if let Some(t) = self.group_type.filter(|&t| t != NEXTHOP_GRP_TYPE_MPATH) {
            out.push((NHA_GROUP_TYPE, t.to_ne_bytes().to_vec()));
        }
        out.extend(
            self.other
                .iter()
                .filter(|(kind, _)| *kind != NHA_OP_FLAGS)
                .cloned(),
        );
        out
    }
}

fn align(len: usize) -> usize {
    (len + NLA_ALIGNTO - 1) & !(NLA_ALIGNTO - 1)
}

fn bad_len(
    kind: u16,
    name: &'static str,
    len: usize,
    expected: &'static str,
) -> NexthopDecodeError {
    NexthopDecodeError::BadAttributeLength {
        kind,
        name,
        len,
        expected,
    }
}

fn read_u32(kind: u16, name: &'static str, value: &[u8]) -> Result<u32, NexthopDecodeError> {
    let bytes: [u8; 4] = value
        .try_into()
        .map_err(|_| bad_len(kind, name, value.len(), "4"))?;
    Ok(u32::from_ne_bytes(bytes))
}

fn read_u16(kind: u16, name: &'static str, value: &[u8]) -> Result<u16, NexthopDecodeError> {
    let bytes: [u8; 2] = value
        .try_into()
        .map_err(|_| bad_len(kind, name, value.len(), "2"))?;
    Ok(u16::from_ne_bytes(bytes))
}

fn read_flag(kind: u16, name: &'static str, value: &[u8]) -> Result<bool, NexthopDecodeError> {
    if value.is_empty() {
        Ok(true)
    } else {
        Err(bad_len(kind, name, value.len(), "0 (flag)"))
    }
}

fn read_gateway(family: u8, value: &[u8]) -> Result<IpAddr, NexthopDecodeError> {
    // The family decides the size: an AF_INET6 nexthop (also usable by IPv4
    // routes) always carries a 16-byte gateway, so length alone is not proof.
    let addr = match family {
        AF_INET => <[u8; 4]>::try_from(value).ok().map(IpAddr::from),
        AF_INET6 => <[u8; 16]>::try_from(value).ok().map(IpAddr::from),
        _ => None,
    };
    addr.ok_or(NexthopDecodeError::GatewayLength {
        family,
        len: value.len(),
    })
}

fn read_group(value: &[u8]) -> Result<Vec<(u32, u8, u8)>, NexthopDecodeError> {
    let entries = value.chunks_exact(NEXTHOP_GRP_LEN);
    if !entries.remainder().is_empty() {
        return Err(bad_len(
            NHA_GROUP,
            "NHA_GROUP",
            value.len(),
            "a multiple of 8 (struct nexthop_grp)",
        ));
    }
    Ok(entries
        .map(|e| (u32::from_ne_bytes([e[0], e[1], e[2], e[3]]), e[4], e[5]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SINGLE: &[u8] = include_bytes!("../../tests/fixtures/nexthop_single.bin");
    const V6: &[u8] = include_bytes!("../../tests/fixtures/nexthop_v6.bin");
    const BLACKHOLE: &[u8] = include_bytes!("../../tests/fixtures/nexthop_blackhole.bin");
    const GROUP: &[u8] = include_bytes!("../../tests/fixtures/nexthop_group.bin");
    const RESILIENT: &[u8] = include_bytes!("../../tests/fixtures/nexthop_resilient.bin");
    const WEIGHT256: &[u8] = include_bytes!("../../tests/fixtures/nexthop_group_weight256.bin");
    const WIDE_WEIGHT: &[u8] = include_bytes!("../../tests/fixtures/nexthop_group_wide_weight.bin");
    const REPLACE: &[u8] = include_bytes!("../../tests/fixtures/nexthop_replace.bin");
    const DEL: &[u8] = include_bytes!("../../tests/fixtures/nexthop_del.bin");
    const MEMBER_REMOVED: &[u8] =
        include_bytes!("../../tests/fixtures/nexthop_group_member_removed.bin");

    const ALL: &[&[u8]] = &[
        SINGLE,
        V6,
        BLACKHOLE,
        GROUP,
        RESILIENT,
        WEIGHT256,
        WIDE_WEIGHT,
        REPLACE,
        DEL,
        MEMBER_REMOVED,
    ];

    /// The fixtures were captured with `va` as ifindex 3 (`vb` was created
    /// first as the veth peer).
    const VA: u32 = 3;
    const RT_SCOPE_LINK: u8 = 253;
    /// What a 6.12+ kernel always appends to a group message.
    const RESP_FLAGS: (u16, [u8; 4]) = (NHA_OP_FLAGS, NHA_OP_FLAG_RESP_GRP_RESVD_0.to_ne_bytes());

    /// Checks the captured nlmsghdr and returns the body that `parse` takes.
    fn body(msg: &[u8], nlmsg_type: u16) -> &[u8] {
        let len = u32::from_ne_bytes(msg[0..4].try_into().unwrap());
        assert_eq!(len as usize, msg.len(), "fixture holds exactly one message");
        assert_eq!(
            u16::from_ne_bytes(msg[4..6].try_into().unwrap()),
            nlmsg_type
        );
        &msg[16..]
    }

    fn resp_flags() -> (u16, Vec<u8>) {
        (RESP_FLAGS.0, RESP_FLAGS.1.to_vec())
    }

    #[test]
    fn single_ipv4() {
        // ip nexthop add id 1 via 10.1.0.2 dev va
        let nh = parse(body(SINGLE, RTM_NEWNEXTHOP)).unwrap();
        assert_eq!(
            nh,
            NexthopMessage {
                family: AF_INET,
                scope: RT_SCOPE_LINK,
                protocol: 0,
                flags: 0,
                id: 1,
                group: vec![],
                group_type: None,
                blackhole: false,
                fdb: false,
                oif: Some(VA),
                gateway: Some("10.1.0.2".parse().unwrap()),
                encap: None,
                other: vec![],
            }
        );
    }

    #[test]
    fn single_ipv6() {
        // ip nexthop add id 4 via 2001:db8:1::2 dev va
        let nh = parse(body(V6, RTM_NEWNEXTHOP)).unwrap();
        assert_eq!(
            nh,
            NexthopMessage {
                family: AF_INET6,
                scope: RT_SCOPE_LINK,
                protocol: 0,
                flags: 0,
                id: 4,
                group: vec![],
                group_type: None,
                blackhole: false,
                fdb: false,
                oif: Some(VA),
                gateway: Some("2001:db8:1::2".parse().unwrap()),
                encap: None,
                other: vec![],
            }
        );
    }

    #[test]
    fn blackhole() {
        // ip nexthop add id 3 blackhole
        let nh = parse(body(BLACKHOLE, RTM_NEWNEXTHOP)).unwrap();
        assert_eq!(
            nh,
            NexthopMessage {
                family: AF_INET,
                scope: 0,
                protocol: 0,
                flags: 0,
                id: 3,
                group: vec![],
                group_type: None,
                blackhole: true,
                fdb: false,
                oif: None,
                gateway: None,
                encap: None,
                other: vec![],
            }
        );
    }

    #[test]
    fn group() {
        // ip nexthop add id 10 group 1/2,3
        let nh = parse(body(GROUP, RTM_NEWNEXTHOP)).unwrap();
        assert_eq!(
            nh,
            NexthopMessage {
                family: 0,
                scope: 0,
                protocol: 0,
                flags: 0,
                id: 10,
                group: vec![
                    GroupMember { id: 1, weight: 1 },
                    GroupMember { id: 2, weight: 3 }
                ],
                group_type: Some(NEXTHOP_GRP_TYPE_MPATH),
                blackhole: false,
                fdb: false,
                oif: None,
                gateway: None,
                encap: None,
                other: vec![resp_flags()],
            }
        );
    }

    #[test]
    fn resilient_group() {
        // ip nexthop add id 11 group 1/2 type resilient buckets 8
        let nh = parse(body(RESILIENT, RTM_NEWNEXTHOP)).unwrap();
        // NHA_RES_GROUP, nested: BUCKETS u16 8, IDLE_TIMER u32 12000 (120 s
        // in clock_t), UNBALANCED_TIMER u32 0, UNBALANCED_TIME u64 0.
        let mut res_group = Vec::new();
        res_group.extend_from_slice(&[6, 0, 1, 0, 8, 0, 0, 0]);
        res_group.extend_from_slice(&[8, 0, 2, 0]);
        res_group.extend_from_slice(&12000u32.to_ne_bytes());
        res_group.extend_from_slice(&[8, 0, 3, 0, 0, 0, 0, 0]);
        res_group.extend_from_slice(&[12, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            nh,
            NexthopMessage {
                family: 0,
                scope: 0,
                protocol: 0,
                flags: 0,
                id: 11,
                group: vec![
                    GroupMember { id: 1, weight: 1 },
                    GroupMember { id: 2, weight: 1 }
                ],
                group_type: Some(NEXTHOP_GRP_TYPE_RES),
                blackhole: false,
                fdb: false,
                oif: None,
                gateway: None,
                encap: None,
                // Sent with NLA_F_NESTED, which `other` strips from the type.
                other: vec![(NHA_RES_GROUP, res_group), resp_flags()],
            }
        );
    }

    #[test]
    fn group_weight_256_is_the_iproute2_maximum() {
        // ip nexthop add id 13 group 1,256/2
        let nh = parse(body(WEIGHT256, RTM_NEWNEXTHOP)).unwrap();
        assert_eq!(
            nh,
            NexthopMessage {
                family: 0,
                scope: 0,
                protocol: 0,
                flags: 0,
                id: 13,
                group: vec![
                    GroupMember { id: 1, weight: 256 },
                    GroupMember { id: 2, weight: 1 }
                ],
                group_type: Some(NEXTHOP_GRP_TYPE_MPATH),
                blackhole: false,
                fdb: false,
                oif: None,
                gateway: None,
                encap: None,
                other: vec![resp_flags()],
            }
        );
    }

    #[test]
    fn group_weight_above_256_uses_weight_high() {
        // Raw RTM_NEWNEXTHOP request (iproute2 6.1 caps weights at 256):
        // id 12, NHA_GROUP [{id 1, weight 0x2b, weight_high 0x01}, {id 2}],
        // i.e. the equivalent of `ip nexthop add id 12 group 1,300/2`.
        let nh = parse(body(WIDE_WEIGHT, RTM_NEWNEXTHOP)).unwrap();
        assert_eq!(
            nh,
            NexthopMessage {
                family: 0,
                scope: 0,
                protocol: 0,
                flags: 0,
                id: 12,
                group: vec![
                    GroupMember { id: 1, weight: 300 },
                    GroupMember { id: 2, weight: 1 }
                ],
                group_type: Some(NEXTHOP_GRP_TYPE_MPATH),
                blackhole: false,
                fdb: false,
                oif: None,
                gateway: None,
                encap: None,
                other: vec![resp_flags()],
            }
        );
    }

    #[test]
    fn replace() {
        // ip nexthop replace id 2 via 10.1.0.4 dev va   (was via 10.1.0.3)
        let nh = parse(body(REPLACE, RTM_NEWNEXTHOP)).unwrap();
        assert_eq!(
            nh,
            NexthopMessage {
                family: AF_INET,
                scope: RT_SCOPE_LINK,
                protocol: 0,
                flags: 0,
                id: 2,
                group: vec![],
                group_type: None,
                blackhole: false,
                fdb: false,
                oif: Some(VA),
                gateway: Some("10.1.0.4".parse().unwrap()),
                encap: None,
                other: vec![],
            }
        );
    }

    #[test]
    fn delete_carries_the_full_object() {
        // ip nexthop del id 2   (after the replace above)
        let nh = parse(body(DEL, RTM_DELNEXTHOP)).unwrap();
        assert_eq!(
            nh,
            NexthopMessage {
                family: AF_INET,
                scope: RT_SCOPE_LINK,
                protocol: 0,
                flags: 0,
                id: 2,
                group: vec![],
                group_type: None,
                blackhole: false,
                fdb: false,
                oif: Some(VA),
                gateway: Some("10.1.0.4".parse().unwrap()),
                encap: None,
                other: vec![],
            }
        );
    }

    #[test]
    fn group_shrunk_by_member_delete() {
        // ip nexthop del id 2   (member of group 10 = 1/2,3); the kernel follows
        // the RTM_DELNEXTHOP for 2 with this RTM_NEWNEXTHOP for group 10.
        let nh = parse(body(MEMBER_REMOVED, RTM_NEWNEXTHOP)).unwrap();
        assert_eq!(
            nh,
            NexthopMessage {
                family: 0,
                scope: 0,
                protocol: 0,
                flags: 0,
                id: 10,
                group: vec![GroupMember { id: 1, weight: 1 }],
                group_type: Some(NEXTHOP_GRP_TYPE_MPATH),
                blackhole: false,
                fdb: false,
                oif: None,
                gateway: None,
                encap: None,
                other: vec![resp_flags()],
            }
        );
    }

    // ---- hand-built messages for the error paths ----

    use crate::decode::test_bytes::{garbage, nla};

    fn msg(family: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![family, 0, 0, 0, 0, 0, 0, 0];
        for a in attrs {
            out.extend_from_slice(a);
        }
        out
    }

    fn grp_entry(id: u32, weight: u8, weight_high: u8) -> Vec<u8> {
        let mut out = id.to_ne_bytes().to_vec();
        out.extend_from_slice(&[weight, weight_high, 0, 0]);
        out
    }

    #[test]
    fn short_header_is_an_error() {
        for len in 0..NHMSG_LEN {
            assert!(matches!(
                parse(&SINGLE[16..16 + len]),
                Err(NexthopDecodeError::TruncatedHeader { len: l }) if l == len
            ));
        }
    }

    /// Cut points that leave only whole attributes: the end of `nhmsg`, and
    /// the end of each attribute anywhere within its alignment padding.
    fn clean_cuts(payload: &[u8]) -> Vec<usize> {
        let mut cuts = vec![NHMSG_LEN];
        let mut start = NHMSG_LEN;
        while start < payload.len() {
            let len = usize::from(u16::from_ne_bytes([payload[start], payload[start + 1]]));
            cuts.extend(start + len..=start + align(len));
            start += align(len);
        }
        cuts
    }

    #[test]
    fn every_truncation_of_every_fixture_is_an_error() {
        for fixture in ALL {
            let payload = &fixture[16..];
            let clean = clean_cuts(payload);
            for len in 0..payload.len() {
                let result = parse(&payload[..len]);
                if !clean.contains(&len) {
                    assert!(result.is_err(), "cut at {len} decoded: {result:?}");
                }
            }
        }
    }

    #[test]
    fn attribute_length_below_header_is_malformed() {
        let mut m = msg(AF_INET, &[nla(NHA_ID, &1u32.to_ne_bytes())]);
        m.extend_from_slice(&[2, 0, 5, 0]);
        let err = parse(&m).unwrap_err();
        assert!(
            matches!(
                err,
                NexthopDecodeError::MalformedAttribute { offset: 16, .. }
            ),
            "{err:?}"
        );
        // netlink-packet-core's own wording follows the offset.
        let text = err.to_string();
        assert!(
            text.starts_with("malformed netlink attribute at payload offset 16: ")
                && text.contains("invalid length: 2"),
            "{text}"
        );
    }

    #[test]
    fn attribute_length_past_end_is_malformed() {
        let mut m = msg(AF_INET, &[nla(NHA_ID, &1u32.to_ne_bytes())]);
        m.extend_from_slice(&[200, 0, 5, 0, 3, 0, 0, 0]);
        assert!(matches!(
            parse(&m),
            Err(NexthopDecodeError::MalformedAttribute { offset: 16, .. })
        ));
    }

    #[test]
    fn trailing_bytes_are_malformed() {
        let mut m = msg(AF_INET, &[nla(NHA_ID, &1u32.to_ne_bytes())]);
        m.extend_from_slice(&[0, 0]);
        assert!(matches!(
            parse(&m),
            Err(NexthopDecodeError::MalformedAttribute { offset: 16, .. })
        ));
    }

    #[test]
    fn wrong_fixed_lengths_are_reported_with_the_attribute() {
        let id = nla(NHA_ID, &1u32.to_ne_bytes());
        let cases = [
            (nla(NHA_ID, &[1, 0, 0]), NHA_ID, 3),
            (nla(NHA_OIF, &[1, 0, 0, 0, 0, 0, 0, 0]), NHA_OIF, 8),
            (nla(NHA_GROUP_TYPE, &[0, 0, 0, 0]), NHA_GROUP_TYPE, 4),
            (nla(NHA_BLACKHOLE, &[1]), NHA_BLACKHOLE, 1),
            (nla(NHA_FDB, &[1, 0, 0, 0]), NHA_FDB, 4),
            (nla(NHA_GROUP, &[0; 12]), NHA_GROUP, 12),
            (nla(NHA_OP_FLAGS, &[0; 2]), NHA_OP_FLAGS, 2),
        ];
        for (attr, want_kind, want_len) in cases {
            let err = parse(&msg(AF_INET, &[id.clone(), attr])).unwrap_err();
            match err {
                NexthopDecodeError::BadAttributeLength { kind, len, .. } => {
                    assert_eq!((kind, len), (want_kind, want_len));
                }
                other => panic!("attribute {want_kind}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn gateway_must_match_family() {
        let id = nla(NHA_ID, &1u32.to_ne_bytes());
        for (family, gw_len) in [(AF_INET, 16), (AF_INET6, 4), (0, 4), (AF_INET, 5)] {
            let m = msg(family, &[id.clone(), nla(NHA_GATEWAY, &vec![1; gw_len])]);
            assert!(matches!(
                parse(&m),
                Err(NexthopDecodeError::GatewayLength { family: f, len }) if f == family && len == gw_len
            ));
        }
    }

    #[test]
    fn missing_id_is_an_error() {
        assert!(matches!(
            parse(&msg(0, &[])),
            Err(NexthopDecodeError::MissingId)
        ));
        let m = msg(0, &[nla(NHA_BLACKHOLE, &[])]);
        assert!(matches!(parse(&m), Err(NexthopDecodeError::MissingId)));
    }

    #[test]
    fn weight_high_ignored_without_response_flag() {
        // A pre-6.12 kernel may leave junk in weight_high and never sends
        // NHA_OP_FLAGS.
        let mut grp = grp_entry(7, 4, 0xaa);
        grp.extend(grp_entry(8, 0, 0x55));
        let m = msg(0, &[nla(NHA_ID, &9u32.to_ne_bytes()), nla(NHA_GROUP, &grp)]);
        let nh = parse(&m).unwrap();
        assert_eq!(
            nh.group,
            vec![
                GroupMember { id: 7, weight: 5 },
                GroupMember { id: 8, weight: 1 }
            ]
        );
        assert!(nh.other.is_empty());
    }

    #[test]
    fn largest_weight_decodes_and_one_more_overflows() {
        let flags = nla(NHA_OP_FLAGS, &RESP_FLAGS.1);
        let id = nla(NHA_ID, &9u32.to_ne_bytes());
        let ok = msg(
            0,
            &[
                id.clone(),
                nla(NHA_GROUP, &grp_entry(7, 0xfe, 0xff)),
                flags.clone(),
            ],
        );
        assert_eq!(
            parse(&ok).unwrap().group,
            vec![GroupMember {
                id: 7,
                weight: 65535
            }]
        );

        let mut grp = grp_entry(6, 0, 0);
        grp.extend(grp_entry(7, 0xff, 0xff));
        let bad = msg(0, &[id, nla(NHA_GROUP, &grp), flags]);
        assert!(matches!(
            parse(&bad),
            Err(NexthopDecodeError::WeightOverflow { index: 1, id: 7 })
        ));
    }

    #[test]
    fn unknown_and_undecoded_attributes_are_kept_raw() {
        let m = msg(
            AF_INET,
            &[
                nla(NHA_ID, &5u32.to_ne_bytes()),
                nla(NHA_ENCAP_TYPE, &1u16.to_ne_bytes()),
                // MPLS_IPTUNNEL_DST label 100 (bottom of stack), then an
                // attribute type 9 that mpls does not define.
                nla(
                    0x8000 | NHA_ENCAP,
                    &[8, 0, 1, 0, 0x00, 0x06, 0x41, 0x00, 5, 0, 9, 0, 7, 0, 0, 0],
                ),
                nla(99, &[1, 2, 3]),
            ],
        );
        let nh = parse(&m).unwrap();
        assert_eq!(nh.other, vec![(99, vec![1, 2, 3])]);
        let encap = nh.encap.expect("NHA_ENCAP decoded");
        assert_eq!(encap.r#type, 1);
        assert_eq!(
            encap.kind,
            Some(routewatch_proto::v1::encap::Kind::Mpls(
                routewatch_proto::v1::EncapMpls {
                    labels: vec![100],
                    ttl: None
                }
            ))
        );
        // Kept raw inside the encapsulation, not among the object's own.
        assert_eq!(
            encap.unknown,
            vec![routewatch_proto::v1::RawAttribute {
                kind: 9,
                value: vec![7]
            }]
        );
    }

    #[test]
    fn garbage_never_panics() {
        // The first attribute follows the 8-byte nhmsg.
        for buf in garbage(0x9e37_79b9, 20_000, 96, NHMSG_LEN, 18) {
            let _ = parse(&buf);
        }
        // Mutate real messages byte by byte as well.
        for fixture in ALL {
            let payload = &fixture[16..];
            for i in 0..payload.len() {
                for v in [0u8, 1, 3, 0x7f, 0xff] {
                    let mut m = payload.to_vec();
                    m[i] = v;
                    let _ = parse(&m);
                }
            }
        }
    }
}
