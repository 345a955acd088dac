//! The few facts about a link the agent needs: its name (routes name their
//! device), whether it is up with carrier (the kernel flushes IPv4 routes
//! silently when either goes away), and for a VRF device the table it is
//! bound to (routes of that table are labelled with the VRF's name).

use netlink_packet_route::link::{
    InfoData, InfoVrf, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// IFF_UP and IFF_LOWER_UP (carrier), the bits whose change flushes routes.
    pub up: bool,
    pub carrier: bool,
    /// The table of a `vrf` link (IFLA_VRF_TABLE); `None` for other links.
    pub vrf_table: Option<u32>,
}

impl Link {
    pub fn from_message(m: &LinkMessage) -> Link {
        let mut name = String::new();
        let mut vrf_table = None;
        for attribute in &m.attributes {
            match attribute {
                LinkAttribute::IfName(n) => name.clone_from(n),
                LinkAttribute::LinkInfo(infos) => vrf_table = vrf_table_of(infos),
                _ => {}
            }
        }
        Link {
            index: m.header.index,
            name,
            up: m.header.flags.contains(LinkFlags::Up),
            carrier: m.header.flags.contains(LinkFlags::LowerUp),
            vrf_table,
        }
    }
}

/// IFLA_INFO_DATA of kind `vrf`: its IFLA_VRF_TABLE.
fn vrf_table_of(infos: &[LinkInfo]) -> Option<u32> {
    infos.iter().find_map(|info| match info {
        LinkInfo::Data(InfoData::Vrf(data)) => data.iter().find_map(|d| match d {
            InfoVrf::TableId(table) => Some(*table),
            _ => None,
        }),
        _ => None,
    })
}
