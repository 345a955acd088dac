//! What a filter looks at: one change of one object, with its event's
//! context.

use crate::v1::{Action, ChangedBy, Nexthop, Origin, Route, Rule};

/// One change as filters see it.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub action: Action,
    pub origin: Origin,
    /// The network namespace ("" for the agent's own).
    pub netns: &'a str,
    pub object: Object<'a>,
    /// Who asked the kernel for the change, when known.
    pub changed_by: Option<&'a ChangedBy>,
}

/// The object a change is about.
#[derive(Debug, Clone, Copy)]
pub enum Object<'a> {
    Route(&'a Route),
    Nexthop(&'a Nexthop),
    Rule(&'a Rule),
}

impl<'a> Object<'a> {
    /// The route, when it is one.
    pub fn route(self) -> Option<&'a Route> {
        match self {
            Object::Route(r) => Some(r),
            Object::Nexthop(_) | Object::Rule(_) => None,
        }
    }

    /// The routing table: a route's, or the one a rule looks up (none for
    /// `goto`, `nop`, l3mdev and the rules that refuse packets).
    pub fn table(self) -> Option<u32> {
        match self {
            Object::Route(r) => Some(r.table),
            Object::Rule(r) if r.table != 0 => Some(r.table),
            Object::Rule(_) | Object::Nexthop(_) => None,
        }
    }

    /// The address family (a `Family` number).
    pub fn family(self) -> i32 {
        match self {
            Object::Route(r) => r.family,
            Object::Nexthop(n) => n.family,
            Object::Rule(r) => r.family,
        }
    }

    pub fn protocol(self) -> u32 {
        match self {
            Object::Route(r) => r.protocol,
            Object::Nexthop(n) => n.protocol,
            Object::Rule(r) => r.protocol,
        }
    }

    /// The scope; rules have none.
    pub fn scope(self) -> Option<u32> {
        match self {
            Object::Route(r) => Some(r.scope),
            Object::Nexthop(n) => Some(n.scope),
            Object::Rule(_) => None,
        }
    }

    /// Every output device the object names: a route's, each of its
    /// paths', or a nexthop object's.
    pub fn devs(self) -> impl Iterator<Item = &'a str> {
        let (own, hops) = match self {
            Object::Route(r) => (r.dev.as_str(), r.nexthops.as_slice()),
            Object::Nexthop(n) => (n.dev.as_str(), &[][..]),
            Object::Rule(_) => ("", &[][..]),
        };
        std::iter::once(own)
            .chain(hops.iter().map(|h| h.dev.as_str()))
            .filter(|d| !d.is_empty())
    }

    /// Every gateway the object names, like [`Object::devs`].
    pub fn gateways(self) -> impl Iterator<Item = &'a str> {
        let (own, hops) = match self {
            Object::Route(r) => (r.gateway.as_str(), r.nexthops.as_slice()),
            Object::Nexthop(n) => (n.gateway.as_str(), &[][..]),
            Object::Rule(_) => ("", &[][..]),
        };
        std::iter::once(own)
            .chain(hops.iter().map(|h| h.gateway.as_str()))
            .filter(|g| !g.is_empty())
    }
}
