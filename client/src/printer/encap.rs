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

use std::borrow::Cow;
use std::fmt::{self, Display, Write as _};

use routewatch_proto::names::{self, TABLES};
use routewatch_proto::v1::{encap::Kind, Encap, EncapBpfProgram, EncapTunnelOpts};

use super::json_writer::{JsonObject, JsonValue};
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

/// One field's JSON value.
enum Json<'a> {
    Str(&'a str),
    U64(u64),
    True,
    Null,
    /// An array of strings.
    Strs(&'a [String]),
    /// Anything else, written by the function.
    With(&'a dyn Fn(JsonValue<'_>)),
}

/// Where [`fields`] puts each field: the text's words or the JSON object.
trait Fields {
    /// `json` under `key` in the JSON; `text`, when there is any, in the text.
    fn field(&mut self, key: &'static str, json: Json<'_>, text: Option<fmt::Arguments<'_>>);
}

/// The words after ` encap TYPE`, each after a space.
struct TextFields<'a>(&'a mut String);

impl Fields for TextFields<'_> {
    fn field(&mut self, _key: &'static str, _json: Json<'_>, text: Option<fmt::Arguments<'_>>) {
        if let Some(text) = text {
            self.0.push(' ');
            let _ = self.0.write_fmt(text);
        }
    }
}

/// The fields of the `encap` object.
struct JsonFields<'a, 'b>(&'a mut JsonObject<'b>);

impl Fields for JsonFields<'_, '_> {
    fn field(&mut self, key: &'static str, json: Json<'_>, _text: Option<fmt::Arguments<'_>>) {
        let value = self.0.key(key);
        match json {
            Json::Str(s) => value.str(s),
            Json::U64(n) => value.u64(n),
            Json::True => value.bool(true),
            Json::Null => value.null(),
            Json::Strs(list) => {
                let mut array = value.array();
                for s in list {
                    array.item().str(s);
                }
            }
            Json::With(write) => write(value),
        }
    }
}

/// `key VALUE` in the text, `"key":"VALUE"` in the JSON.
fn named(f: &mut dyn Fields, key: &'static str, value: &str) {
    f.field(key, Json::Str(value), Some(format_args!("{key} {value}")));
}

/// `key N` in the text, `"key":N` in the JSON.
fn number(f: &mut dyn Fields, key: &'static str, value: impl Into<u64> + Display + Copy) {
    f.field(
        key,
        Json::U64(value.into()),
        Some(format_args!("{key} {value}")),
    );
}

/// `items` with `sep` between them.
struct Joined<'a, T>(&'a [T], &'static str);

impl<T: Display> Display for Joined<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(self.1)?;
            }
            item.fmt(f)?;
        }
        Ok(())
    }
}

/// The type's name (`ip`, `seg6local`, ...).
pub fn type_name(e: &Encap) -> Cow<'static, str> {
    TYPES
        .iter()
        .find(|(n, _)| *n == e.r#type)
        .map_or_else(|| e.r#type.to_string().into(), |(_, name)| (*name).into())
}

/// Appends ` encap TYPE FIELDS...` as `ip -d route show` prints it.
pub fn encap_text(e: &Encap, s: &mut String) {
    s.push_str(" encap ");
    s.push_str(&type_name(e));
    fields(e, &mut TextFields(s));
    unknown_text(&e.unknown, s);
}

/// `{"type":TYPE, FIELDS..., "unknown":[...]}`.
pub fn encap_json(e: &Encap, value: JsonValue<'_>) {
    let mut o = value.object();
    o.str("type", &type_name(e));
    fields(e, &mut JsonFields(&mut o));
    unknown_json(&e.unknown, &mut o);
}

fn fields(e: &Encap, f: &mut dyn Fields) {
    match &e.kind {
        Some(Kind::Mpls(m)) => {
            let labels = Joined(&m.labels, "/").to_string();
            f.field("dst", Json::Str(&labels), Some(format_args!("{labels}")));
            if let Some(ttl) = m.ttl {
                number(f, "ttl", ttl);
            }
        }
        Some(Kind::Ip(ip)) => tunnel(
            f,
            (ip.id, &ip.src, &ip.dst),
            [("ttl", ip.ttl), ("tos", ip.tos)],
            ip.flags,
            ip.opts.as_ref(),
        ),
        Some(Kind::Ip6(ip)) => tunnel(
            f,
            (ip.id, &ip.src, &ip.dst),
            [("hoplimit", ip.hoplimit), ("tc", ip.tc)],
            ip.flags,
            ip.opts.as_ref(),
        ),
        Some(Kind::Ila(ila)) => {
            let l = ila.locator;
            let locator = format!(
                "{:x}:{:x}:{:x}:{:x}",
                l >> 48,
                (l >> 32) & 0xffff,
                (l >> 16) & 0xffff,
                l & 0xffff
            );
            f.field(
                "locator",
                Json::Str(&locator),
                Some(format_args!("{locator}")),
            );
            let csum = name_or_unknown(ILA_CSUM_MODES, ila.csum_mode);
            f.field(
                "csum_mode",
                Json::Str(csum),
                Some(format_args!("csum-mode {csum}")),
            );
            let ident = name_or_unknown(ILA_IDENT_TYPES, ila.ident_type);
            f.field(
                "ident_type",
                Json::Str(ident),
                Some(format_args!("ident-type {ident}")),
            );
            let hook = name_or_unknown(ILA_HOOK_TYPES, ila.hook_type);
            f.field(
                "hook_type",
                Json::Str(hook),
                Some(format_args!("hook-type {hook}")),
            );
        }
        Some(Kind::Seg6(seg6)) => {
            let mode = SEG6_MODES
                .get(seg6.mode as usize)
                .copied()
                .unwrap_or("<unknown>");
            named(f, "mode", mode);
            if !seg6.tunsrc.is_empty() {
                named(f, "tunsrc", &seg6.tunsrc);
            }
            segs(&seg6.segs, f);
            if let Some(hmac) = seg6.hmac {
                let json = format!("{hmac:#x}");
                f.field(
                    "hmac",
                    Json::Str(&json),
                    Some(format_args!("hmac {hmac:X}")),
                );
            }
        }
        Some(Kind::Seg6local(l)) => {
            let action = match SEG6_ACTIONS.get(l.action as usize) {
                Some(&"") => "<unknown>",
                Some(name) => name,
                None => "<invalid>",
            };
            named(f, "action", action);
            if !l.srh_segs.is_empty() {
                let list = &l.srh_segs;
                f.field(
                    "srh",
                    Json::With(&|value| {
                        let mut srh = value.object();
                        let mut array = srh.array("segs");
                        for s in list {
                            array.item().str(s);
                        }
                    }),
                    Some(format_args!(
                        "segs {} [ {} ]",
                        list.len(),
                        Joined(list, " ")
                    )),
                );
            }
            if let Some(t) = l.table {
                named(f, "table", &names::name(TABLES, t));
            }
            if let Some(t) = l.vrftable {
                named(f, "vrftable", &names::name(TABLES, t));
            }
            if !l.nh4.is_empty() {
                named(f, "nh4", &l.nh4);
            }
            if !l.nh6.is_empty() {
                named(f, "nh6", &l.nh6);
            }
            if l.iif != 0 {
                named(f, "iif", &dev(&l.iif_dev, l.iif));
            }
            if l.oif != 0 {
                named(f, "oif", &dev(&l.oif_dev, l.oif));
            }
            if let Some(p) = &l.endpoint {
                program("endpoint", p, f);
            }
            // Counters are printed by `ip -s` only; so here, never.
            if let Some(bits) = l.flavors {
                let list: Vec<&str> = SEG6_FLAVORS
                    .iter()
                    .filter(|(bit, _)| bits & (1 << bit) != 0)
                    .map(|(_, name)| *name)
                    .collect();
                f.field(
                    "flavors",
                    Json::With(&|value| {
                        let mut array = value.array();
                        for name in &list {
                            array.item().str(name);
                        }
                    }),
                    Some(format_args!("flavors {}", Joined(&list, ","))),
                );
            }
            if let Some(n) = l.lblen {
                number(f, "lblen", n);
            }
            if let Some(n) = l.nflen {
                number(f, "nflen", n);
            }
        }
        Some(Kind::Bpf(bpf)) => {
            for (key, p) in [("in", &bpf.r#in), ("out", &bpf.out), ("xmit", &bpf.xmit)] {
                if let Some(p) = p {
                    program(key, p, f);
                }
            }
            if let Some(h) = bpf.headroom {
                f.field("headroom", Json::U64(h.into()), Some(format_args!("{h}")));
            }
        }
        Some(Kind::Rpl(rpl)) => segs(&rpl.segs, f),
        Some(Kind::Ioam6(io)) => {
            f.field(
                "freqk",
                Json::U64(io.freq_k.into()),
                Some(format_args!("freq {}/{}", io.freq_k, io.freq_n)),
            );
            f.field("freqn", Json::U64(io.freq_n.into()), None);
            // iproute2 stops here when an encap/auto mode lacks its
            // tunnel destination.
            if io.tundst.is_empty() && io.mode != IOAM6_MODE_INLINE {
                return;
            }
            let mode = IOAM6_MODES
                .iter()
                .find(|(n, _)| *n == io.mode)
                .map_or("<unknown>", |(_, name)| name);
            named(f, "mode", mode);
            if io.mode != IOAM6_MODE_INLINE {
                if !io.tunsrc.is_empty() {
                    named(f, "tunsrc", &io.tunsrc);
                }
                named(f, "tundst", &io.tundst);
            }
            f.field("trace", Json::Null, Some(format_args!("trace")));
            f.field("prealloc", Json::Null, Some(format_args!("prealloc")));
            // C's "%#08x" writes 0 without the 0x.
            let t = io.trace_type;
            let text = if t == 0 {
                "00000000".to_owned()
            } else {
                format!("{t:#08x}")
            };
            // iproute2's key is `type`, which the nested object uses for
            // the encapsulation's own type.
            let json = format!("{t:x}");
            f.field(
                "trace_type",
                Json::Str(&json),
                Some(format_args!("type {text}")),
            );
            number(f, "ns", io.trace_ns);
            number(f, "size", io.trace_size);
        }
        Some(Kind::Xfrm(x)) => {
            number(f, "if_id", x.if_id);
            if x.link != 0 {
                named(f, "link_dev", &dev(&x.link_dev, x.link));
            }
        }
        None => {}
    }
}

fn name_or_unknown(table: &'static [(u32, &'static str)], n: u32) -> &'static str {
    table
        .iter()
        .find(|(v, _)| *v == n)
        .map_or("unknown", |(_, name)| name)
}

/// A device as `ip` names it: its name, else `if<index>`.
fn dev(name: &str, index: u32) -> Cow<'_, str> {
    if name.is_empty() {
        format!("if{index}").into()
    } else {
        name.into()
    }
}

/// `segs N [ A B ]` / `"segs":["A","B"]`.
fn segs(list: &[String], f: &mut dyn Fields) {
    f.field(
        "segs",
        Json::Strs(list),
        Some(format_args!(
            "segs {} [ {} ]",
            list.len(),
            Joined(list, " ")
        )),
    );
}

/// `KEY NAME` / `"KEY":"NAME"` (`<unknown>` for a program without a name,
/// which the text leaves out).
fn program(key: &'static str, p: &EncapBpfProgram, f: &mut dyn Fields) {
    if p.name.is_empty() {
        f.field(key, Json::Str("<unknown>"), Some(format_args!("{key}")));
    } else {
        named(f, key, &p.name);
    }
}

/// `ip` and `ip6`: id, source and destination, then the hop limit and
/// traffic class under each family's names, the flags and the options.
fn tunnel(
    f: &mut dyn Fields,
    (id, src, dst): (u64, &str, &str),
    hops_and_class: [(&'static str, u32); 2],
    flags: u32,
    opts: Option<&EncapTunnelOpts>,
) {
    number(f, "id", id);
    named(f, "src", src);
    named(f, "dst", dst);
    for (key, value) in hops_and_class {
        number(f, key, value);
    }
    tunnel_flags(flags, f);
    if let Some(opts) = opts {
        tunnel_opts(opts, f);
    }
}

fn tunnel_flags(flags: u32, f: &mut dyn Fields) {
    for (bit, name) in TUNNEL_FLAGS {
        if flags & bit != 0 {
            f.field(name, Json::True, Some(format_args!("{name}")));
        }
    }
}

fn tunnel_opts(opts: &EncapTunnelOpts, f: &mut dyn Fields) {
    if !opts.geneve.is_empty() {
        let list = &opts.geneve;
        let text: Vec<String> = list
            .iter()
            .map(|g| format!("{}:{}:{}", g.class, g.r#type, hex(&g.data)))
            .collect();
        f.field(
            "geneve_opts",
            Json::With(&|value| {
                let mut array = value.array();
                for g in list {
                    let mut opt = array.item().object();
                    opt.u64("class", g.class);
                    opt.u64("type", g.r#type);
                    opt.str("data", &hex(&g.data));
                }
            }),
            Some(format_args!("geneve_opts {}", Joined(&text, ","))),
        );
    } else if let Some(gbp) = opts.vxlan_gbp {
        f.field(
            "vxlan_opts",
            Json::With(&|value| {
                value.array().item().object().u64("gbp", gbp);
            }),
            Some(format_args!("vxlan_opts {gbp}")),
        );
    } else if let Some(e) = &opts.erspan {
        f.field(
            "erspan_opts",
            Json::With(&|value| {
                let mut array = value.array();
                let mut opt = array.item().object();
                opt.u64("ver", e.ver);
                opt.u64("index", e.index);
                opt.u64("dir", e.dir);
                opt.u64("hwid", e.hwid);
            }),
            Some(format_args!(
                "erspan_opts {}:{}:{}:{}",
                e.ver, e.index, e.dir, e.hwid
            )),
        );
    }
}

#[cfg(test)]
#[path = "encap_tests.rs"]
mod tests;
