//! Netlink bytes into the events the state table understands.
//!
//! Routes, policy rules, links and addresses are decoded by
//! netlink-packet-route; nexthop
//! objects by our own [`nexthop`] module, because netlink-packet-route 0.34
//! does not know RTM_*NEXTHOP; lightweight-tunnel encapsulations of both by
//! [`encap`], which completes what netlink-packet-route leaves raw. What is
//! not decoded is kept raw, never dropped. Decoding is pure: it never
//! touches a socket.

pub mod encap;
mod link;
pub mod nexthop;
mod route;
mod rule;

pub use link::Link;
pub use route::decode_route;
pub use rule::decode_rule;

use netlink_packet_core::{NetlinkBuffer, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use routewatch_proto::v1::{Route, Rule};

use crate::error::DecodeFailure;

const RTM_NEWNEXTHOP: u16 = 104;
const RTM_DELNEXTHOP: u16 = 105;
const NLMSG_HEADER_LEN: usize = 16;

/// What one netlink message means to the agent.
#[derive(Debug, Clone)]
pub enum Message {
    /// RTM_NEWROUTE; `flags` are the nlmsg_flags (NLM_F_REPLACE, NLM_F_APPEND).
    /// Routes are boxed: a message moves through decoding, the batch and
    /// the table by pointer, not as several hundred bytes each time.
    NewRoute {
        route: Box<Route>,
        flags: u16,
    },
    DelRoute(Box<Route>),
    NewRule(Rule),
    DelRule(Rule),
    NewNexthop(nexthop::NexthopMessage),
    DelNexthop(nexthop::NexthopMessage),
    NewLink(Link),
    DelLink(Link),
    /// An address went away: the kernel flushes the IPv4 routes that used
    /// it as preferred source, and drops it from IPv6 routes, without a
    /// route message.
    /// The address as `ip` prints it (`198.18.0.1/24`), for the operator.
    DelAddress(String),
    /// End of a dump.
    Done,
    /// An error reply to one of our requests (a negative errno).
    Error(i32),
    /// Valid, but nothing the agent keeps (IPv6 addresses, cloned routes, ...).
    Ignored,
}

/// One message with the header fields the source needs.
#[derive(Debug)]
pub struct Decoded {
    pub sequence: u32,
    pub port: u32,
    pub message: Message,
}

/// Splits a datagram into messages and decodes each. A message that fails
/// to decode yields an error carrying its bytes; the rest still decode.
pub fn decode_datagram(mut bytes: &[u8]) -> Vec<Result<Decoded, DecodeFailure>> {
    let mut out = Vec::new();
    while bytes.len() >= NLMSG_HEADER_LEN {
        let len = match NetlinkBuffer::new_checked(bytes) {
            Ok(buf) => buf.length() as usize,
            Err(e) => {
                out.push(Err(DecodeFailure::new(bytes, e.to_string())));
                return out;
            }
        };
        if len < NLMSG_HEADER_LEN || len > bytes.len() {
            out.push(Err(DecodeFailure::new(
                bytes,
                format!("bad nlmsg_len {len}"),
            )));
            return out;
        }
        out.push(decode_message(&bytes[..len]));
        // Messages are padded to 4 bytes.
        let next = (len + 3) & !3;
        bytes = bytes.get(next..).unwrap_or_default();
    }
    out
}

/// Decodes one complete netlink message (header included).
pub fn decode_message(bytes: &[u8]) -> Result<Decoded, DecodeFailure> {
    let buf =
        NetlinkBuffer::new_checked(bytes).map_err(|e| DecodeFailure::new(bytes, e.to_string()))?;
    let (sequence, port) = (buf.sequence_number(), buf.port_number());
    let kind = buf.message_type();
    if kind == RTM_NEWNEXTHOP || kind == RTM_DELNEXTHOP {
        let nh = nexthop::parse(&bytes[NLMSG_HEADER_LEN..])
            .map_err(|e| DecodeFailure::new(bytes, e.to_string()))?;
        let message = if kind == RTM_NEWNEXTHOP {
            Message::NewNexthop(nh)
        } else {
            Message::DelNexthop(nh)
        };
        return Ok(Decoded {
            sequence,
            port,
            message,
        });
    }
    let flags = buf.flags();
    let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
        .map_err(|e| DecodeFailure::new(bytes, e.to_string()))?;
    let message = match parsed.payload {
        NetlinkPayload::Done(_) => Message::Done,
        NetlinkPayload::Error(e) => match e.code {
            Some(code) => Message::Error(code.get()),
            None => Message::Ignored,
        },
        NetlinkPayload::InnerMessage(inner) => match inner {
            RouteNetlinkMessage::NewRoute(m) => match decode_route(&m) {
                Ok(Some(route)) => Message::NewRoute {
                    route: Box::new(route),
                    flags,
                },
                Ok(None) => Message::Ignored,
                Err(reason) => return Err(DecodeFailure::new(bytes, reason)),
            },
            RouteNetlinkMessage::DelRoute(m) => match decode_route(&m) {
                Ok(Some(route)) => Message::DelRoute(Box::new(route)),
                Ok(None) => Message::Ignored,
                Err(reason) => return Err(DecodeFailure::new(bytes, reason)),
            },
            RouteNetlinkMessage::NewRule(m) => match decode_rule(&m) {
                Ok(Some(rule)) => Message::NewRule(rule),
                Ok(None) => Message::Ignored,
                Err(reason) => return Err(DecodeFailure::new(bytes, reason)),
            },
            RouteNetlinkMessage::DelRule(m) => match decode_rule(&m) {
                Ok(Some(rule)) => Message::DelRule(rule),
                Ok(None) => Message::Ignored,
                Err(reason) => return Err(DecodeFailure::new(bytes, reason)),
            },
            RouteNetlinkMessage::NewLink(m) => Message::NewLink(Link::from_message(&m)),
            RouteNetlinkMessage::DelLink(m) => Message::DelLink(Link::from_message(&m)),
            RouteNetlinkMessage::DelAddress(m) => Message::DelAddress(address_text(&m)),
            _ => Message::Ignored,
        },
        _ => Message::Ignored,
    };
    Ok(Decoded {
        sequence,
        port,
        message,
    })
}

/// An IPv4 or IPv6 routing family: the API's family, its name in errors
/// and its longest prefix; `None` for any other family.
fn ip_family(
    family: netlink_packet_route::AddressFamily,
) -> Option<(routewatch_proto::v1::Family, &'static str, u8)> {
    use netlink_packet_route::AddressFamily;
    use routewatch_proto::v1::Family;
    match family {
        AddressFamily::Inet => Some((Family::Inet, "IPv4", 32)),
        AddressFamily::Inet6 => Some((Family::Inet6, "IPv6", 128)),
        _ => None,
    }
}

/// Fails for a prefix length longer than the addresses of `family`
/// (`longest` bits): the kernel never sends one, and a prefix such as
/// "10.0.0.0/33" would match no filter and no line of `ip`.
fn check_prefix_lengths(family: &str, longest: u8, lengths: [(&str, u8); 2]) -> Result<(), String> {
    match lengths.into_iter().find(|&(_, len)| len > longest) {
        Some((field, len)) => Err(format!(
            "{field} {len} is longer than an {family} prefix can be ({longest})"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod test_bytes;
#[cfg(test)]
mod tests;

/// An address message's address (IFA_LOCAL, else IFA_ADDRESS) and prefix
/// length, as `ip address` prints them.
fn address_text(m: &netlink_packet_route::address::AddressMessage) -> String {
    use netlink_packet_route::address::AddressAttribute;
    let mut address = None;
    for attribute in &m.attributes {
        match attribute {
            AddressAttribute::Local(a) => address = Some(*a),
            AddressAttribute::Address(a) if address.is_none() => address = Some(*a),
            _ => {}
        }
    }
    match address {
        Some(a) => format!("{a}/{}", m.header.prefix_len),
        None => format!("index {} address", m.header.index),
    }
}
