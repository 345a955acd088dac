//! The rtnetlink socket: joined to the route, rule, nexthop, link and
//! address groups, with a large receive buffer. Dump requests go out on the same
//! socket, so dump replies and notifications arrive in one order.

use std::io;
use std::os::fd::AsRawFd;

use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use tokio::io::unix::AsyncFd;

use crate::attribution::{early, SockDiag};
use crate::error::AgentError;
use crate::netns::Namespace;

const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_IPV4_IFADDR: u32 = 5;
const RTNLGRP_IPV4_ROUTE: u32 = 7;
const RTNLGRP_IPV4_RULE: u32 = 8;
const RTNLGRP_IPV6_IFADDR: u32 = 9;
const RTNLGRP_IPV6_ROUTE: u32 = 11;
const RTNLGRP_IPV6_RULE: u32 = 19;
const RTNLGRP_NEXTHOP: u32 = 32;

const RTM_GETLINK: u16 = 18;
const RTM_GETROUTE: u16 = 26;
const RTM_GETRULE: u16 = 34;
const RTM_GETNEXTHOP: u16 = 106;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;

/// What a dump request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpKind {
    Links,
    Nexthops,
    Rules,
    Routes,
}

pub struct NetlinkSocket {
    fd: AsyncFd<Socket>,
    port: u32,
    rcvbuf: usize,
    /// The namespace's netlink socket table, for attribution: created
    /// beside this socket, in the same namespace.
    diag: Option<SockDiag>,
    /// The early reader's parts (see [`crate::attribution::early`]).
    early: Option<early::Parts>,
}

/// One `recv`: its length, or the datagram was larger than the space given.
pub enum Received {
    Datagram(usize),
    Truncated(usize),
}

impl NetlinkSocket {
    /// Opens the socket in the agent's own network namespace and asks for
    /// a receive buffer of `rcvbuf` bytes: SO_RCVBUFFORCE (needs
    /// CAP_NET_ADMIN) beats the rmem_max limit; without the capability,
    /// SO_RCVBUF gets what the limit allows.
    pub fn open(rcvbuf: usize, attribution: bool) -> Result<NetlinkSocket, AgentError> {
        NetlinkSocket::register(create(rcvbuf, attribution)?)
    }

    /// Like [`NetlinkSocket::open`], inside namespace `ns`. A socket stays
    /// in the namespace it was created in, so the agent creates it there
    /// (on a thread of its own, see [`Namespace::run_inside`]) and uses it
    /// from here.
    pub fn open_in(
        ns: &Namespace,
        rcvbuf: usize,
        attribution: bool,
    ) -> Result<NetlinkSocket, AgentError> {
        let created = ns
            .run_inside(|| create(rcvbuf, attribution))
            .map_err(|source| AgentError::Netns {
                name: ns.name().to_string(),
                step: "enter",
                source,
            })??;
        NetlinkSocket::register(created)
    }

    fn register((socket, port, rcvbuf, diag, early): Created) -> Result<NetlinkSocket, AgentError> {
        // SAFETY: the socket is owned by the AsyncFd from here on and is
        // closed only when it is dropped.
        let fd = unsafe { AsyncFd::register(socket) }.map_err(|e| AgentError::Netlink {
            step: "register with the runtime",
            source: e.into(),
        })?;
        Ok(NetlinkSocket {
            fd,
            port,
            rcvbuf,
            diag,
            early,
        })
    }

    /// The NETLINK_SOCK_DIAG socket of this socket's namespace, if the
    /// kernel gave one.
    pub fn take_diag(&mut self) -> Option<SockDiag> {
        self.diag.take()
    }

    /// The early reader's socket and socket table, made beside this socket
    /// when it was opened for attribution.
    pub fn take_early(&mut self) -> Option<early::Parts> {
        self.early.take()
    }

    /// The socket's netlink port id: dump replies carry it.
    pub fn port(&self) -> u32 {
        self.port
    }

    /// The receive buffer the kernel granted (it reports twice the request).
    pub fn rcvbuf(&self) -> usize {
        self.rcvbuf
    }

    /// Sends a dump request for `kind`, tagged with `seq`.
    pub fn request_dump(&self, kind: DumpKind, seq: u32) -> io::Result<()> {
        // nlmsghdr + the family header of the request (ifinfomsg 16 bytes,
        // rtmsg 12, nhmsg 8, fib_rule_hdr 12), all zero: every family,
        // every table.
        let (kind, body) = match kind {
            DumpKind::Links => (RTM_GETLINK, 16),
            DumpKind::Routes => (RTM_GETROUTE, 12),
            DumpKind::Nexthops => (RTM_GETNEXTHOP, 8),
            DumpKind::Rules => (RTM_GETRULE, 12),
        };
        let len = 16 + body;
        let mut msg = vec![0u8; len];
        msg[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
        msg[4..6].copy_from_slice(&kind.to_ne_bytes());
        msg[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        msg[8..12].copy_from_slice(&seq.to_ne_bytes());
        let kernel = SocketAddr::new(0, 0);
        self.fd.get_ref().send_to(&msg, &kernel, 0)?;
        Ok(())
    }

    /// Waits for the next datagram and receives it into the spare capacity
    /// of `buf`. An overflow of the kernel's queue surfaces here as ENOBUFS.
    pub async fn recv(&self, buf: &mut Vec<u8>) -> io::Result<Received> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| recv_once(fd.get_ref(), buf)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Like [`NetlinkSocket::recv`], but `None` when nothing is queued.
    pub fn try_recv(&self, buf: &mut Vec<u8>) -> io::Result<Option<Received>> {
        match recv_once(self.fd.get_ref(), buf) {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The rtnetlink groups the agent follows.
const GROUPS: [u32; 8] = [
    RTNLGRP_LINK,
    RTNLGRP_IPV4_IFADDR,
    RTNLGRP_IPV4_ROUTE,
    RTNLGRP_IPV4_RULE,
    RTNLGRP_IPV6_IFADDR,
    RTNLGRP_IPV6_ROUTE,
    RTNLGRP_IPV6_RULE,
    RTNLGRP_NEXTHOP,
];

/// A configured socket in the calling thread's namespace, with its port,
/// the receive buffer the kernel granted, and a sock_diag socket of the
/// same namespace.
fn create(rcvbuf: usize, attribution: bool) -> Result<Created, AgentError> {
    let err = |step| move |source| AgentError::Netlink { step, source };
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(err("socket"))?;
    let addr = socket.bind_auto().map_err(err("bind"))?;
    // Joining the rtnetlink groups needs no capability.
    for group in GROUPS {
        socket
            .add_membership(group)
            .map_err(err("join multicast group"))?;
    }
    if let Err(e) = set_rcvbuf_force(&socket, rcvbuf) {
        tracing::warn!(error = %e, "SO_RCVBUFFORCE refused (no CAP_NET_ADMIN?); falling back to SO_RCVBUF, capped by net.core.rmem_max");
        socket
            .set_rx_buf_sz(rcvbuf)
            .map_err(err("set receive buffer"))?;
    }
    let granted = socket.get_rx_buf_sz().unwrap_or(0);
    socket
        .set_non_blocking(true)
        .map_err(err("set non-blocking"))?;
    let diag = SockDiag::open()
        .map_err(|e| tracing::warn!(error = %e, "no NETLINK_SOCK_DIAG socket: changes will name their netlink port id, not the process"))
        .ok();
    // The early reader's own socket and socket table (attribution on).
    let early = attribution
        .then(|| {
            early::Parts::open(&GROUPS)
                .map_err(|e| tracing::warn!(error = %e, "no early reader: short-lived requesters may be reported as exited"))
                .ok()
        })
        .flatten();
    Ok((socket, addr.port_number(), granted, diag, early))
}

/// What [`create`] makes: the socket, its port, the receive buffer
/// granted, and for attribution the namespace's socket table and the
/// early reader's parts.
type Created = (Socket, u32, usize, Option<SockDiag>, Option<early::Parts>);

fn recv_once(socket: &Socket, buf: &mut Vec<u8>) -> io::Result<Received> {
    let space = buf.capacity() - buf.len();
    let before = buf.len();
    // MSG_TRUNC makes recv report the datagram's real length.
    let n = socket.recv(buf, libc::MSG_DONTWAIT | libc::MSG_TRUNC)?;
    if n > space {
        buf.truncate(before);
        return Ok(Received::Truncated(n));
    }
    Ok(Received::Datagram(n))
}

fn set_rcvbuf_force(socket: &Socket, size: usize) -> io::Result<()> {
    let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    set_option(socket, libc::SO_RCVBUFFORCE, &size)
}

/// `setsockopt(SOL_SOCKET, name)` with `value` (a plain C struct or int of
/// the type the option takes).
pub(crate) fn set_option<T>(socket: &Socket, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: setsockopt with a valid fd and a pointer to a T of the
    // length passed; the kernel copies it before returning.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
