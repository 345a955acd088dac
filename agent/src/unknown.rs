//! Attributes the agent receives but does not decode. They are carried to
//! consumers raw (`Route.other`, `Nexthop.other`, `Encap.unknown`); here
//! (and `Rule.other`); they are counted by object kind for the metric, and each new kind of
//! attribute is logged once, so that an operator learns that this version
//! is older than the kernel's (or iproute2's) vocabulary.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use netlink_packet_core::NLA_TYPE_MASK;
use routewatch_proto::v1::{Encap, RawAttribute};

use crate::decode::Message;

/// Counts per object kind, and the attribute kinds already logged.
#[derive(Debug, Default)]
pub struct UnknownAttributes {
    routes: AtomicU64,
    nexthops: AtomicU64,
    rules: AtomicU64,
    logged: Mutex<HashSet<(&'static str, &'static str, u32, u32)>>,
}

impl UnknownAttributes {
    /// Counts (and logs, the first time) what `message` carries undecoded.
    /// Dump replies count too: each time an object is read, its attributes
    /// went undecoded again.
    pub fn note(&self, message: &Message) {
        match message {
            Message::NewRoute { route, .. } | Message::DelRoute(route) => {
                let mut n = self.raw("route", &route.other);
                n += self.encap("route", route.encap.as_deref());
                for hop in &route.nexthops {
                    n += self.encap("route", hop.encap.as_deref());
                }
                self.routes.fetch_add(n, Ordering::Relaxed);
            }
            Message::NewNexthop(nh) | Message::DelNexthop(nh) => {
                let other: Vec<RawAttribute> = nh
                    .undecoded()
                    .into_iter()
                    .map(|(kind, value)| RawAttribute {
                        kind: u32::from(kind),
                        value,
                    })
                    .collect();
                let n = self.raw("nexthop", &other) + self.encap("nexthop", nh.encap.as_ref());
                self.nexthops.fetch_add(n, Ordering::Relaxed);
            }
            Message::NewRule(rule) | Message::DelRule(rule) => {
                let n = self.raw("rule", &rule.other);
                self.rules.fetch_add(n, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// Attributes counted so far, by object kind (`route`, `nexthop`,
    /// `rule`).
    pub fn counts(&self) -> [(&'static str, u64); 3] {
        [
            ("route", self.routes.load(Ordering::Relaxed)),
            ("nexthop", self.nexthops.load(Ordering::Relaxed)),
            ("rule", self.rules.load(Ordering::Relaxed)),
        ]
    }

    fn raw(&self, object: &'static str, attrs: &[RawAttribute]) -> u64 {
        for a in attrs {
            self.log_once(object, "attribute", 0, a.kind);
        }
        attrs.len() as u64
    }

    fn encap(&self, object: &'static str, encap: Option<&Encap>) -> u64 {
        let Some(e) = encap else { return 0 };
        for a in &e.unknown {
            self.log_once(object, "encap attribute", e.r#type, a.kind);
        }
        if e.kind.is_none() {
            self.log_once(object, "encap type", 0, e.r#type);
        }
        e.unknown.len() as u64
    }

    fn log_once(&self, object: &'static str, what: &'static str, encap_type: u32, kind: u32) {
        // Types arrive with or without the NLA_F_* bits; log each once.
        let kind = kind & u32::from(NLA_TYPE_MASK);
        let first = self
            .logged
            .lock()
            .expect("unknown attributes lock")
            .insert((object, what, encap_type, kind));
        if first {
            tracing::warn!(
                object,
                what,
                kind,
                encap_type,
                "not decoded by this version; passed on raw (shown as `unknown`)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use routewatch_proto::v1::{encap::Kind, EncapIp, NextHop, Route};

    fn raw(kind: u32) -> RawAttribute {
        RawAttribute {
            kind,
            value: vec![1],
        }
    }

    #[test]
    fn counts_route_paths_and_encapsulations() {
        let encap = |unknown: Vec<RawAttribute>| {
            Some(Box::new(Encap {
                r#type: 2,
                kind: Some(Kind::Ip(EncapIp::default())),
                unknown,
            }))
        };
        let route = Route {
            other: vec![raw(30), raw(0x8000 | 30)],
            encap: encap(vec![raw(42)]),
            nexthops: vec![NextHop {
                encap: encap(vec![raw(43), raw(44)]),
                ..Default::default()
            }],
            ..Default::default()
        };
        let u = UnknownAttributes::default();
        u.note(&Message::NewRoute {
            route: route.into(),
            flags: 0,
        });
        assert_eq!(u.counts(), [("route", 5), ("nexthop", 0), ("rule", 0)]);
        // 30 and 30|NLA_F_NESTED are one kind: logged once.
        assert_eq!(u.logged.lock().unwrap().len(), 4);
    }
}
