//! Lightweight-tunnel encapsulations (RTA_ENCAP_TYPE + RTA_ENCAP on routes
//! and on each path of RTA_MULTIPATH, NHA_ENCAP_TYPE + NHA_ENCAP on nexthop
//! objects) into the API's [`Encap`].
//!
//! netlink-packet-route decodes the inner attributes of mpls, ip, ip6,
//! seg6, seg6local, rpl, ioam6 and xfrm. It leaves the rest as raw
//! attributes: bpf and ila entirely, seg6local's bpf/counters/flavors, and
//! anything newer than it. Those are parsed here from the raw bytes; what is
//! still unknown goes to `Encap.unknown`, so two encapsulations that differ
//! in any attribute never look the same.
//!
//! netlink-packet-route parses a path's RTA_ENCAP with the *route's*
//! encapsulation type (none, for a multipath route), so every attribute of
//! a per-path encapsulation arrives raw; [`from_attributes`] parses it again
//! with the path's own RTA_ENCAP_TYPE.

use std::net::Ipv6Addr;

use netlink_packet_core::{
    DefaultNla, Emitable, Nla, NlaBuffer, NlasIterator, ParseableParametrized, NLA_TYPE_MASK,
};
use netlink_packet_route::route::{
    RouteAttribute, RouteErspanOpt, RouteIoam6Tunnel, RouteIp6Tunnel, RouteIpTunnel,
    RouteLwEnCapType, RouteLwTunnelEncap, RouteLwTunnelOpt, RouteMplsIpTunnel, RouteRplIpTunnel,
    RouteSeg6IpTunnel, RouteSeg6LocalTunnel, RouteVxlanOpt, RouteXfrmTunnel,
};
use routewatch_proto::v1::{
    encap::Kind, Encap, EncapBpf, EncapBpfProgram, EncapErspanOpt, EncapGeneveOpt, EncapIla,
    EncapIoam6, EncapIp, EncapIp6, EncapMpls, EncapRpl, EncapSeg6, EncapSeg6Local,
    EncapSeg6LocalCounters, EncapTunnelOpts, EncapXfrm, RawAttribute,
};

/// LWTUNNEL_ENCAP_* numbers (include/uapi/linux/lwtunnel.h).
pub const LWTUNNEL_ENCAP_MPLS: u32 = 1;
pub const LWTUNNEL_ENCAP_IP: u32 = 2;
pub const LWTUNNEL_ENCAP_ILA: u32 = 3;
pub const LWTUNNEL_ENCAP_IP6: u32 = 4;
pub const LWTUNNEL_ENCAP_SEG6: u32 = 5;
pub const LWTUNNEL_ENCAP_BPF: u32 = 6;
pub const LWTUNNEL_ENCAP_SEG6_LOCAL: u32 = 7;
pub const LWTUNNEL_ENCAP_RPL: u32 = 8;
pub const LWTUNNEL_ENCAP_IOAM6: u32 = 9;
pub const LWTUNNEL_ENCAP_XFRM: u32 = 10;

// LWT_BPF_* and LWT_BPF_PROG_* (lwtunnel.h).
const LWT_BPF_IN: u16 = 1;
const LWT_BPF_OUT: u16 = 2;
const LWT_BPF_XMIT: u16 = 3;
const LWT_BPF_XMIT_HEADROOM: u16 = 4;
const LWT_BPF_PROG_FD: u16 = 1;
const LWT_BPF_PROG_NAME: u16 = 2;

// ILA_ATTR_* (ila.h).
const ILA_ATTR_LOCATOR: u16 = 1;
const ILA_ATTR_PAD: u16 = 6;
const ILA_ATTR_CSUM_MODE: u16 = 7;
const ILA_ATTR_IDENT_TYPE: u16 = 8;
const ILA_ATTR_HOOK_TYPE: u16 = 9;

// SEG6_LOCAL_* attributes netlink-packet-route leaves raw (seg6_local.h).
const SEG6_LOCAL_BPF: u16 = 8;
const SEG6_LOCAL_COUNTERS: u16 = 10;
const SEG6_LOCAL_FLAVORS: u16 = 11;
const SEG6_LOCAL_CNT_PAD: u16 = 1;
const SEG6_LOCAL_CNT_PACKETS: u16 = 2;
const SEG6_LOCAL_CNT_BYTES: u16 = 3;
const SEG6_LOCAL_CNT_ERRORS: u16 = 4;
const SEG6_LOCAL_FLV_OPERATION: u16 = 1;
const SEG6_LOCAL_FLV_LCBLOCK_BITS: u16 = 2;
const SEG6_LOCAL_FLV_LCNODE_FN_BITS: u16 = 3;

/// The encapsulation among a route's (or one path's) attributes, if any.
pub fn from_attributes(attrs: &[RouteAttribute]) -> Option<Encap> {
    let mut kind = None;
    let mut inner = None;
    for attr in attrs {
        match attr {
            RouteAttribute::EncapType(t) => kind = Some(u32::from(u16::from(*t))),
            RouteAttribute::Encap(attrs) => inner = Some(attrs),
            _ => {}
        }
    }
    // The kernel always sends both; an encapsulation without its type is
    // still shown (type 0, every attribute unknown) rather than dropped.
    let (kind, inner) = match (kind, inner) {
        (None, None) => return None,
        (kind, inner) => (kind.unwrap_or(0), inner.map(Vec::as_slice).unwrap_or(&[])),
    };
    let mut builder = Builder::new(kind);
    for attr in inner {
        match attr {
            // Parsed with another type (a path's encapsulation) or left raw.
            RouteLwTunnelEncap::Other(nla) => builder.reparse(nla),
            typed => builder.add(typed),
        }
    }
    Some(builder.encap)
}

/// The encapsulation of a nexthop object: NHA_ENCAP_TYPE's value `kind`
/// and NHA_ENCAP's value `value` (its nested attributes).
pub fn from_raw(kind: u16, value: &[u8]) -> Encap {
    let mut builder = Builder::new(u32::from(kind));
    let mut offset = 0;
    for nla in NlasIterator::new(value) {
        match nla {
            Ok(nla) => {
                offset += align(usize::from(nla.length()));
                builder.parse(&nla);
            }
            Err(_) => {
                // A broken tail: kept whole rather than lost.
                builder.unknown(0, value.get(offset..).unwrap_or_default().to_vec());
                break;
            }
        }
    }
    builder.encap
}

fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// One encapsulation being filled attribute by attribute.
struct Builder {
    encap: Encap,
}

impl Builder {
    fn new(kind: u32) -> Builder {
        let decoded = match kind {
            LWTUNNEL_ENCAP_MPLS => Some(Kind::Mpls(EncapMpls::default())),
            LWTUNNEL_ENCAP_IP => Some(Kind::Ip(EncapIp::default())),
            LWTUNNEL_ENCAP_ILA => Some(Kind::Ila(EncapIla::default())),
            LWTUNNEL_ENCAP_IP6 => Some(Kind::Ip6(EncapIp6::default())),
            LWTUNNEL_ENCAP_SEG6 => Some(Kind::Seg6(EncapSeg6::default())),
            LWTUNNEL_ENCAP_BPF => Some(Kind::Bpf(EncapBpf::default())),
            LWTUNNEL_ENCAP_SEG6_LOCAL => Some(Kind::Seg6local(EncapSeg6Local::default())),
            LWTUNNEL_ENCAP_RPL => Some(Kind::Rpl(EncapRpl::default())),
            LWTUNNEL_ENCAP_IOAM6 => Some(Kind::Ioam6(EncapIoam6::default())),
            LWTUNNEL_ENCAP_XFRM => Some(Kind::Xfrm(EncapXfrm::default())),
            _ => None,
        };
        Builder {
            encap: Encap {
                r#type: kind,
                kind: decoded,
                unknown: Vec::new(),
            },
        }
    }

    fn lw_type(&self) -> RouteLwEnCapType {
        RouteLwEnCapType::from(u16::try_from(self.encap.r#type).unwrap_or(u16::MAX))
    }

    /// Parses one raw inner attribute with this encapsulation's type.
    fn parse(&mut self, nla: &NlaBuffer<&[u8]>) {
        match RouteLwTunnelEncap::parse_with_param(nla, self.lw_type()) {
            Ok(RouteLwTunnelEncap::Other(_)) => self.raw(nla.kind(), nla.value()),
            Ok(typed) => self.add(&typed),
            // A value netlink-packet-route refuses (a bad length): shown as
            // it came.
            Err(_) => self.unknown(nla.kind(), nla.value().to_vec()),
        }
    }

    /// An attribute netlink-packet-route could not type: parsed again with
    /// this encapsulation's type, else decoded here.
    fn reparse(&mut self, nla: &DefaultNla) {
        let mut bytes = vec![0; nla.buffer_len()];
        nla.emit(&mut bytes);
        match NlaBuffer::new_checked(bytes.as_slice()) {
            Ok(buf) => self.parse(&buf),
            Err(_) => self.unknown(nla.kind(), value_of(nla)),
        }
    }

    fn unknown(&mut self, kind: u16, value: Vec<u8>) {
        self.encap.unknown.push(RawAttribute {
            kind: u32::from(kind & NLA_TYPE_MASK),
            value,
        });
    }

    /// A typed attribute from netlink-packet-route.
    fn add(&mut self, attr: &RouteLwTunnelEncap) {
        let Some(kind) = self.encap.kind.as_mut() else {
            self.unknown(attr.kind(), encap_value(attr));
            return;
        };
        let mut unknown: Vec<(u16, Vec<u8>)> = Vec::new();
        let mut keep = |nla: &dyn NlaValue| unknown.push((nla.nla_kind(), nla.nla_value()));
        match (kind, attr) {
            (Kind::Mpls(m), RouteLwTunnelEncap::Mpls(a)) => match a {
                RouteMplsIpTunnel::Destination(labels) => {
                    m.labels = labels.iter().map(|l| l.label).collect();
                }
                RouteMplsIpTunnel::Ttl(t) => m.ttl = Some(u32::from(*t)),
                other => keep(other),
            },
            (Kind::Ip(e), RouteLwTunnelEncap::Ip(a)) => match a {
                RouteIpTunnel::Id(id) => e.id = *id,
                RouteIpTunnel::Destination(ip) => e.dst = ip.to_string(),
                RouteIpTunnel::Source(ip) => e.src = ip.to_string(),
                RouteIpTunnel::Ttl(t) => e.ttl = u32::from(*t),
                RouteIpTunnel::Tos(t) => e.tos = u32::from(*t),
                RouteIpTunnel::Flags(f) => e.flags = u32::from(f.bits()),
                RouteIpTunnel::Opts(opts) => e.opts = Some(tunnel_opts(opts, &mut keep)),
                RouteIpTunnel::Other(nla) => keep(nla),
                other => keep(other),
            },
            (Kind::Ip6(e), RouteLwTunnelEncap::Ip6(a)) => match a {
                RouteIp6Tunnel::Id(id) => e.id = *id,
                RouteIp6Tunnel::Destination(ip) => e.dst = ip.to_string(),
                RouteIp6Tunnel::Source(ip) => e.src = ip.to_string(),
                RouteIp6Tunnel::Hoplimit(t) => e.hoplimit = u32::from(*t),
                RouteIp6Tunnel::Tc(t) => e.tc = u32::from(*t),
                RouteIp6Tunnel::Flags(f) => e.flags = u32::from(f.bits()),
                RouteIp6Tunnel::Opts(opts) => e.opts = Some(tunnel_opts(opts, &mut keep)),
                RouteIp6Tunnel::Other(nla) => keep(nla),
                other => keep(other),
            },
            (Kind::Seg6(e), RouteLwTunnelEncap::Seg6(a)) => match a {
                RouteSeg6IpTunnel::Seg6(h) => {
                    e.mode = u32::from(h.mode);
                    // netlink-packet-route lists them in visiting order.
                    e.segs = h.segments.iter().map(Ipv6Addr::to_string).collect();
                    e.hmac = h.hmac;
                }
                RouteSeg6IpTunnel::Src(ip) => e.tunsrc = ip.to_string(),
                other => keep(other),
            },
            (Kind::Seg6local(e), RouteLwTunnelEncap::Seg6Local(a)) => match a {
                RouteSeg6LocalTunnel::Action(action) => e.action = u32::from(*action),
                RouteSeg6LocalTunnel::Srh(srh) => {
                    // Wire order is the reverse of the visiting order.
                    e.srh_segs = srh.segments.iter().rev().map(Ipv6Addr::to_string).collect();
                }
                RouteSeg6LocalTunnel::Table(t) => e.table = Some(*t),
                RouteSeg6LocalTunnel::VrfTable(t) => e.vrftable = Some(*t),
                RouteSeg6LocalTunnel::Nh4(ip) => e.nh4 = ip.to_string(),
                RouteSeg6LocalTunnel::Nh6(ip) => e.nh6 = ip.to_string(),
                RouteSeg6LocalTunnel::Iif(i) => e.iif = *i,
                RouteSeg6LocalTunnel::Oif(i) => e.oif = *i,
                RouteSeg6LocalTunnel::Other(nla) => {
                    if !seg6local_raw(e, nla.kind() & NLA_TYPE_MASK, &value_of(nla)) {
                        keep(nla);
                    }
                }
                other => keep(other),
            },
            (Kind::Rpl(e), RouteLwTunnelEncap::Rpl(a)) => match a {
                RouteRplIpTunnel::Srh(srh) => {
                    e.segs = srh.segments.iter().rev().map(Ipv6Addr::to_string).collect();
                }
                other => keep(other),
            },
            (Kind::Ioam6(e), RouteLwTunnelEncap::Ioam6(a)) => match a {
                RouteIoam6Tunnel::Mode(m) => e.mode = u32::from(u8::from(*m)),
                RouteIoam6Tunnel::Dst(ip) => e.tundst = ip.to_string(),
                RouteIoam6Tunnel::Src(ip) => e.tunsrc = ip.to_string(),
                RouteIoam6Tunnel::FreqK(k) => e.freq_k = *k,
                RouteIoam6Tunnel::FreqN(n) => e.freq_n = *n,
                RouteIoam6Tunnel::Trace(t) => {
                    e.trace_type = t.trace_type;
                    e.trace_ns = u32::from(t.namespace_id);
                    e.trace_size = u32::from(t.remlen) * 4;
                }
                other => keep(other),
            },
            (Kind::Xfrm(e), RouteLwTunnelEncap::Xfrm(a)) => match a {
                RouteXfrmTunnel::IfId(id) => e.if_id = *id,
                RouteXfrmTunnel::Link(link) => e.link = *link,
                RouteXfrmTunnel::Other(nla) => keep(nla),
                other => keep(other),
            },
            (_, other) => unknown.push((other.kind(), encap_value(other))),
        }
        for (kind, value) in unknown {
            self.unknown(kind, value);
        }
    }

    /// An attribute of a type netlink-packet-route does not decode.
    fn raw(&mut self, kind: u16, value: &[u8]) {
        let known = match self.encap.kind.as_mut() {
            Some(Kind::Bpf(e)) => bpf_raw(e, kind, value),
            Some(Kind::Ila(e)) => ila_raw(e, kind, value),
            Some(Kind::Seg6local(e)) => seg6local_raw(e, kind, value),
            _ => false,
        };
        if !known {
            self.unknown(kind, value.to_vec());
        }
    }
}

/// A typed attribute's (type, value), for keeping it raw.
trait NlaValue {
    fn nla_kind(&self) -> u16;
    fn nla_value(&self) -> Vec<u8>;
}

impl<T: Nla> NlaValue for T {
    fn nla_kind(&self) -> u16 {
        self.kind()
    }
    fn nla_value(&self) -> Vec<u8> {
        value_of(self)
    }
}

/// The value bytes of an attribute netlink-packet-route typed. The
/// catch-all `Other` variants of its ip, ip6 and xfrm attributes report a
/// wrong length (and would panic emitting): callers pass the inner
/// [`DefaultNla`] for those.
fn value_of(nla: &(impl Nla + ?Sized)) -> Vec<u8> {
    let mut value = vec![0; nla.value_len()];
    nla.emit_value(&mut value);
    value
}

/// [`value_of`] for any encapsulation attribute, safe for every variant.
fn encap_value(attr: &RouteLwTunnelEncap) -> Vec<u8> {
    match attr {
        RouteLwTunnelEncap::Ip(RouteIpTunnel::Other(nla))
        | RouteLwTunnelEncap::Ip6(RouteIp6Tunnel::Other(nla))
        | RouteLwTunnelEncap::Xfrm(RouteXfrmTunnel::Other(nla)) => value_of(nla),
        other => value_of(other),
    }
}

fn tunnel_opts(opts: &[RouteLwTunnelOpt], keep: &mut dyn FnMut(&dyn NlaValue)) -> EncapTunnelOpts {
    let mut out = EncapTunnelOpts::default();
    for opt in opts {
        match opt {
            RouteLwTunnelOpt::Geneve(list) => {
                out.geneve.extend(list.iter().map(|g| EncapGeneveOpt {
                    class: u32::from(g.class),
                    r#type: u32::from(g.typ),
                    data: g.data.clone(),
                }));
            }
            RouteLwTunnelOpt::Vxlan(list) => {
                for v in list {
                    match v {
                        RouteVxlanOpt::Gbp(gbp) => out.vxlan_gbp = Some(*gbp),
                        RouteVxlanOpt::Other(nla) => keep(nla),
                        other => keep(other),
                    }
                }
            }
            RouteLwTunnelOpt::Erspan(list) => {
                let mut e = EncapErspanOpt::default();
                for v in list {
                    match v {
                        RouteErspanOpt::Ver(x) => e.ver = u32::from(*x),
                        RouteErspanOpt::Index(x) => e.index = *x,
                        RouteErspanOpt::Dir(x) => e.dir = u32::from(*x),
                        RouteErspanOpt::Hwid(x) => e.hwid = u32::from(*x),
                        RouteErspanOpt::Other(nla) => keep(nla),
                        other => keep(other),
                    }
                }
                out.erspan = Some(e);
            }
            RouteLwTunnelOpt::Other(nla) => keep(nla),
            other => keep(other),
        }
    }
    out
}

/// `encap bpf` attributes; false for one this version does not know.
fn bpf_raw(e: &mut EncapBpf, kind: u16, value: &[u8]) -> bool {
    let slot = match kind {
        LWT_BPF_IN => &mut e.r#in,
        LWT_BPF_OUT => &mut e.out,
        LWT_BPF_XMIT => &mut e.xmit,
        LWT_BPF_XMIT_HEADROOM => {
            return match u32_of(value) {
                Some(h) => {
                    e.headroom = Some(h);
                    true
                }
                None => false,
            }
        }
        _ => return false,
    };
    match bpf_program(value) {
        Some(p) => {
            *slot = Some(p);
            true
        }
        None => false,
    }
}

/// LWT_BPF_PROG_*: the kernel reports only the name; a program whose
/// nested attributes are not all understood is kept raw instead.
fn bpf_program(value: &[u8]) -> Option<EncapBpfProgram> {
    let mut program = EncapBpfProgram::default();
    for nla in NlasIterator::new(value) {
        let nla = nla.ok()?;
        match nla.kind() {
            LWT_BPF_PROG_NAME => program.name = c_string(nla.value())?,
            // Requests only: a file descriptor means nothing off the host.
            LWT_BPF_PROG_FD => {}
            _ => return None,
        }
    }
    Some(program)
}

fn ila_raw(e: &mut EncapIla, kind: u16, value: &[u8]) -> bool {
    match (kind, value) {
        (ILA_ATTR_LOCATOR, v) => match <[u8; 8]>::try_from(v) {
            // Network byte order on the wire (the kernel's __be64).
            Ok(b) => e.locator = u64::from_be_bytes(b),
            Err(_) => return false,
        },
        (ILA_ATTR_CSUM_MODE, [m]) => e.csum_mode = u32::from(*m),
        (ILA_ATTR_IDENT_TYPE, [t]) => e.ident_type = u32::from(*t),
        (ILA_ATTR_HOOK_TYPE, [t]) => e.hook_type = u32::from(*t),
        // Alignment filler for the 64-bit locator: no information.
        (ILA_ATTR_PAD, _) => {}
        _ => return false,
    }
    true
}

/// The seg6local attributes netlink-packet-route leaves raw.
fn seg6local_raw(e: &mut EncapSeg6Local, kind: u16, value: &[u8]) -> bool {
    match kind {
        SEG6_LOCAL_BPF => match bpf_program(value) {
            Some(p) => e.endpoint = Some(p),
            None => return false,
        },
        SEG6_LOCAL_COUNTERS => {
            let mut c = EncapSeg6LocalCounters::default();
            for nla in NlasIterator::new(value) {
                let Ok(nla) = nla else { return false };
                let slot = match nla.kind() {
                    SEG6_LOCAL_CNT_PACKETS => &mut c.packets,
                    SEG6_LOCAL_CNT_BYTES => &mut c.bytes,
                    SEG6_LOCAL_CNT_ERRORS => &mut c.errors,
                    SEG6_LOCAL_CNT_PAD => continue,
                    _ => return false,
                };
                let Ok(b) = <[u8; 8]>::try_from(nla.value()) else {
                    return false;
                };
                *slot = u64::from_ne_bytes(b);
            }
            e.counters = Some(c);
        }
        SEG6_LOCAL_FLAVORS => {
            let (mut flavors, mut lblen, mut nflen) = (None, None, None);
            for nla in NlasIterator::new(value) {
                let Ok(nla) = nla else { return false };
                match (nla.kind(), nla.value()) {
                    (SEG6_LOCAL_FLV_OPERATION, v) => match u32_of(v) {
                        Some(f) => flavors = Some(f),
                        None => return false,
                    },
                    (SEG6_LOCAL_FLV_LCBLOCK_BITS, [b]) => lblen = Some(u32::from(*b)),
                    (SEG6_LOCAL_FLV_LCNODE_FN_BITS, [b]) => nflen = Some(u32::from(*b)),
                    _ => return false,
                }
            }
            (e.flavors, e.lblen, e.nflen) = (flavors, lblen, nflen);
        }
        _ => return false,
    }
    true
}

fn u32_of(value: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(value).ok().map(u32::from_ne_bytes)
}

/// A NUL-terminated string attribute.
fn c_string(value: &[u8]) -> Option<String> {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8(value[..end].to_vec()).ok()
}

#[cfg(test)]
#[path = "encap_tests.rs"]
mod tests;
