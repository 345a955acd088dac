//! Lightweight-tunnel encapsulations in iproute2's words: the text `ip -d
//! route show` prints after `encap` (its `lwtunnel_print_*` functions,
//! iproute2 6.1, with runs of spaces made one), and for JSON the same
//! fields under the same names and value spellings, nested in an `encap`
//! object (`ip -j` prints them flat beside the route's, where `encap ip`'s
//! `dst` collides with the route's). One key differs for that reason:
//! ioam6's trace `type` is `trace_type`, as `type` names the encapsulation.
//!
//! Each type lists its fields once ([`fields`]); text and JSON are two
//! views of that list.

use std::fmt::Write as _;

use routewatch_proto::names::{self, TABLES};
use routewatch_proto::v1::{encap::Kind, Encap, EncapBpfProgram, EncapTunnelOpts};
use serde_json::{json, Map, Value};

use super::unknown::{hex, unknown_json, unknown_text};

/// iproute2's names of the LWTUNNEL_ENCAP_* types; another number prints
/// as itself.
const TYPES: &[(u32, &str)] = &[
    (1, "mpls"),
    (2, "ip"),
    (3, "ila"),
    (4, "ip6"),
    (5, "seg6"),
    (6, "bpf"),
    (7, "seg6local"),
    (8, "rpl"),
    (9, "ioam6"),
    (10, "xfrm"),
];

/// SEG6_IPTUN_MODE_*.
const SEG6_MODES: &[&str] = &["inline", "encap", "l2encap", "encap.red", "l2encap.red"];

/// SEG6_LOCAL_ACTION_* (index = number).
const SEG6_ACTIONS: &[&str] = &[
    "",
    "End",
    "End.X",
    "End.T",
    "End.DX2",
    "End.DX6",
    "End.DX4",
    "End.DT6",
    "End.DT4",
    "End.B6",
    "End.B6.Encaps",
    "End.BM",
    "End.S",
    "End.AS",
    "End.AM",
    "End.BPF",
    "End.DT46",
];

/// SEG6_LOCAL_FLV_OP_* by bit.
const SEG6_FLAVORS: &[(u32, &str)] = &[(1, "psp"), (2, "usp"), (3, "usd"), (4, "next-csid")];

const IOAM6_MODES: &[(u32, &str)] = &[(1, "inline"), (2, "encap"), (3, "auto")];
const IOAM6_MODE_INLINE: u32 = 1;

const ILA_CSUM_MODES: &[(u32, &str)] = &[
    (0, "adj-transport"),
    (1, "neutral-map"),
    (2, "no-action"),
    (3, "neutral-map-auto"),
];
const ILA_IDENT_TYPES: &[(u32, &str)] = &[
    (0, "iid"),
    (1, "luid"),
    (2, "virt-v4"),
    (3, "virt-uni-v6"),
    (4, "virt-multi-v6"),
    (5, "nonlocal-addr"),
    (32, "use-format"),
];
const ILA_HOOK_TYPES: &[(u32, &str)] = &[(0, "output"), (1, "input")];

/// TUNNEL_* flags as iproute2 tests them.
const TUNNEL_FLAGS: &[(u32, &str)] = &[(0x4, "key"), (0x1, "csum"), (0x8, "seq")];

/// One printed field: its JSON key and value, and its text (`None`: not
/// in the text).
struct Field {
    key: &'static str,
    json: Value,
    text: Option<String>,
}

fn both(key: &'static str, json: impl Into<Value>, text: String) -> Field {
    Field {
        key,
        json: json.into(),
        text: Some(text),
    }
}

/// `key VALUE` in the text, `"key":VALUE` in the JSON.
fn named(key: &'static str, value: impl Into<Value> + std::fmt::Display + Clone) -> Field {
    both(key, value.clone(), format!("{key} {value}"))
}

/// The type's name (`ip`, `seg6local`, ...).
pub fn type_name(e: &Encap) -> String {
    TYPES
        .iter()
        .find(|(n, _)| *n == e.r#type)
        .map_or_else(|| e.r#type.to_string(), |(_, name)| (*name).to_owned())
}

/// Appends ` encap TYPE FIELDS...` as `ip -d route show` prints it.
pub fn encap_text(e: &Encap, s: &mut String) {
    let _ = write!(s, " encap {}", type_name(e));
    for f in fields(e) {
        if let Some(text) = f.text {
            s.push(' ');
            s.push_str(&text);
        }
    }
    unknown_text(&e.unknown, s);
}

/// `{"type":TYPE, FIELDS..., "unknown":[...]}`.
pub fn encap_json(e: &Encap) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), type_name(e).into());
    for f in fields(e) {
        m.insert(f.key.into(), f.json);
    }
    unknown_json(&e.unknown, &mut m);
    Value::Object(m)
}

fn fields(e: &Encap) -> Vec<Field> {
    let mut out = Vec::new();
    match &e.kind {
        Some(Kind::Mpls(m)) => {
            let labels: Vec<String> = m.labels.iter().map(u32::to_string).collect();
            out.push(both("dst", labels.join("/"), labels.join("/")));
            if let Some(ttl) = m.ttl {
                out.push(named("ttl", ttl));
            }
        }
        Some(Kind::Ip(ip)) => {
            out.push(named("id", ip.id));
            out.push(named("src", ip.src.clone()));
            out.push(named("dst", ip.dst.clone()));
            out.push(named("ttl", ip.ttl));
            out.push(named("tos", ip.tos));
            tunnel_flags(ip.flags, &mut out);
            if let Some(opts) = &ip.opts {
                tunnel_opts(opts, &mut out);
            }
        }
        Some(Kind::Ip6(ip)) => {
            out.push(named("id", ip.id));
            out.push(named("src", ip.src.clone()));
            out.push(named("dst", ip.dst.clone()));
            out.push(named("hoplimit", ip.hoplimit));
            out.push(named("tc", ip.tc));
            tunnel_flags(ip.flags, &mut out);
            if let Some(opts) = &ip.opts {
                tunnel_opts(opts, &mut out);
            }
        }
        Some(Kind::Ila(ila)) => {
            let l = ila.locator;
            let locator = format!(
                "{:x}:{:x}:{:x}:{:x}",
                l >> 48,
                (l >> 32) & 0xffff,
                (l >> 16) & 0xffff,
                l & 0xffff
            );
            out.push(both("locator", locator.clone(), locator));
            let csum = name_or_unknown(ILA_CSUM_MODES, ila.csum_mode);
            out.push(both("csum_mode", csum, format!("csum-mode {csum}")));
            let ident = name_or_unknown(ILA_IDENT_TYPES, ila.ident_type);
            out.push(both("ident_type", ident, format!("ident-type {ident}")));
            let hook = name_or_unknown(ILA_HOOK_TYPES, ila.hook_type);
            out.push(both("hook_type", hook, format!("hook-type {hook}")));
        }
        Some(Kind::Seg6(seg6)) => {
            let mode = SEG6_MODES
                .get(seg6.mode as usize)
                .copied()
                .unwrap_or("<unknown>");
            out.push(named("mode", mode));
            if !seg6.tunsrc.is_empty() {
                out.push(named("tunsrc", seg6.tunsrc.clone()));
            }
            segs(&seg6.segs, &mut out);
            if let Some(hmac) = seg6.hmac {
                out.push(both("hmac", format!("{hmac:#x}"), format!("hmac {hmac:X}")));
            }
        }
        Some(Kind::Seg6local(l)) => {
            let action = match SEG6_ACTIONS.get(l.action as usize) {
                Some(&"") => "<unknown>",
                Some(name) => name,
                None => "<invalid>",
            };
            out.push(named("action", action));
            if !l.srh_segs.is_empty() {
                let mut srh = Vec::new();
                segs(&l.srh_segs, &mut srh);
                let text = srh.iter().filter_map(|f| f.text.clone()).collect();
                let json: Map<String, Value> = srh
                    .into_iter()
                    .map(|f| (f.key.to_owned(), f.json))
                    .collect();
                out.push(both("srh", json, text));
            }
            if let Some(t) = l.table {
                out.push(named("table", names::name(TABLES, t).into_owned()));
            }
            if let Some(t) = l.vrftable {
                out.push(named("vrftable", names::name(TABLES, t).into_owned()));
            }
            if !l.nh4.is_empty() {
                out.push(named("nh4", l.nh4.clone()));
            }
            if !l.nh6.is_empty() {
                out.push(named("nh6", l.nh6.clone()));
            }
            if l.iif != 0 {
                out.push(named("iif", dev(&l.iif_dev, l.iif)));
            }
            if l.oif != 0 {
                out.push(named("oif", dev(&l.oif_dev, l.oif)));
            }
            if let Some(p) = &l.endpoint {
                out.push(program("endpoint", p));
            }
            // Counters are printed by `ip -s` only; so here, never.
            if let Some(bits) = l.flavors {
                let list: Vec<&str> = SEG6_FLAVORS
                    .iter()
                    .filter(|(bit, _)| bits & (1 << bit) != 0)
                    .map(|(_, name)| *name)
                    .collect();
                out.push(both(
                    "flavors",
                    list.clone(),
                    format!("flavors {}", list.join(",")),
                ));
            }
            if let Some(n) = l.lblen {
                out.push(named("lblen", n));
            }
            if let Some(n) = l.nflen {
                out.push(named("nflen", n));
            }
        }
        Some(Kind::Bpf(bpf)) => {
            for (key, p) in [("in", &bpf.r#in), ("out", &bpf.out), ("xmit", &bpf.xmit)] {
                if let Some(p) = p {
                    out.push(program(key, p));
                }
            }
            if let Some(h) = bpf.headroom {
                out.push(both("headroom", h, h.to_string()));
            }
        }
        Some(Kind::Rpl(rpl)) => segs(&rpl.segs, &mut out),
        Some(Kind::Ioam6(io)) => {
            out.push(Field {
                key: "freqk",
                json: io.freq_k.into(),
                text: Some(format!("freq {}/{}", io.freq_k, io.freq_n)),
            });
            out.push(Field {
                key: "freqn",
                json: io.freq_n.into(),
                text: None,
            });
            // iproute2 stops here when an encap/auto mode lacks its
            // tunnel destination.
            if io.tundst.is_empty() && io.mode != IOAM6_MODE_INLINE {
                return out;
            }
            let mode = IOAM6_MODES
                .iter()
                .find(|(n, _)| *n == io.mode)
                .map_or("<unknown>", |(_, name)| name);
            out.push(named("mode", mode));
            if io.mode != IOAM6_MODE_INLINE {
                if !io.tunsrc.is_empty() {
                    out.push(named("tunsrc", io.tunsrc.clone()));
                }
                out.push(named("tundst", io.tundst.clone()));
            }
            out.push(both("trace", Value::Null, "trace".into()));
            out.push(both("prealloc", Value::Null, "prealloc".into()));
            // C's "%#08x" writes 0 without the 0x.
            let t = io.trace_type;
            let text = if t == 0 {
                "00000000".to_owned()
            } else {
                format!("{t:#08x}")
            };
            // iproute2's key is `type`, which the nested object uses for
            // the encapsulation's own type.
            out.push(both("trace_type", format!("{t:x}"), format!("type {text}")));
            out.push(named("ns", io.trace_ns));
            out.push(named("size", io.trace_size));
        }
        Some(Kind::Xfrm(x)) => {
            out.push(named("if_id", x.if_id));
            if x.link != 0 {
                out.push(named("link_dev", dev(&x.link_dev, x.link)));
            }
        }
        None => {}
    }
    out
}

fn name_or_unknown(table: &'static [(u32, &'static str)], n: u32) -> &'static str {
    table
        .iter()
        .find(|(v, _)| *v == n)
        .map_or("unknown", |(_, name)| name)
}

/// A device as `ip` names it: its name, else `if<index>`.
fn dev(name: &str, index: u32) -> String {
    if name.is_empty() {
        format!("if{index}")
    } else {
        name.to_owned()
    }
}

/// `segs N [ A B ]` / `"segs":["A","B"]`.
fn segs(list: &[String], out: &mut Vec<Field>) {
    out.push(both(
        "segs",
        list.to_vec(),
        format!("segs {} [ {} ]", list.len(), list.join(" ")),
    ));
}

/// `KEY NAME` / `"KEY":"NAME"` (`<unknown>` for a program without a name,
/// which the text leaves out).
fn program(key: &'static str, p: &EncapBpfProgram) -> Field {
    if p.name.is_empty() {
        both(key, "<unknown>", key.to_owned())
    } else {
        both(key, p.name.clone(), format!("{key} {}", p.name))
    }
}

fn tunnel_flags(flags: u32, out: &mut Vec<Field>) {
    for (bit, name) in TUNNEL_FLAGS {
        if flags & bit != 0 {
            out.push(both(name, true, (*name).to_owned()));
        }
    }
}

fn tunnel_opts(opts: &EncapTunnelOpts, out: &mut Vec<Field>) {
    if !opts.geneve.is_empty() {
        let text: Vec<String> = opts
            .geneve
            .iter()
            .map(|g| format!("{}:{}:{}", g.class, g.r#type, hex(&g.data)))
            .collect();
        let json: Vec<Value> = opts
            .geneve
            .iter()
            .map(|g| json!({"class": g.class, "type": g.r#type, "data": hex(&g.data)}))
            .collect();
        out.push(both(
            "geneve_opts",
            json,
            format!("geneve_opts {}", text.join(",")),
        ));
    } else if let Some(gbp) = opts.vxlan_gbp {
        out.push(both(
            "vxlan_opts",
            json!([{ "gbp": gbp }]),
            format!("vxlan_opts {gbp}"),
        ));
    } else if let Some(e) = &opts.erspan {
        out.push(both(
            "erspan_opts",
            json!([{"ver": e.ver, "index": e.index, "dir": e.dir, "hwid": e.hwid}]),
            format!("erspan_opts {}:{}:{}:{}", e.ver, e.index, e.dir, e.hwid),
        ));
    }
}

#[cfg(test)]
#[path = "encap_tests.rs"]
mod tests;
