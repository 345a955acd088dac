//! The few facts about a link the agent needs: its name (routes name their
//! device) and whether it is up with carrier (the kernel flushes IPv4 routes
//! silently when either goes away).

use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// IFF_UP and IFF_LOWER_UP (carrier), the bits whose change flushes routes.
    pub up: bool,
    pub carrier: bool,
}

impl Link {
    pub fn from_message(m: &LinkMessage) -> Link {
        let name = m
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            })
            .unwrap_or_default();
        Link {
            index: m.header.index,
            name,
            up: m.header.flags.contains(LinkFlags::Up),
            carrier: m.header.flags.contains(LinkFlags::LowerUp),
        }
    }
}
