//! A namespace's netlink socket table through NETLINK_SOCK_DIAG: the inode
//! of the rtnetlink socket bound to a port id. The diag socket is created in
//! the namespace it reads (beside the rtnetlink socket), because the kernel
//! answers with the sockets of the asking socket's namespace.

use std::io;
use std::time::Duration;

use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const AF_NETLINK: u8 = libc::AF_NETLINK as u8;
const NETLINK_ROUTE: u8 = 0;
/// The kernel answers at once; a reply this late means something is wrong,
/// and the change is attributed to its port id alone.
const TIMEOUT: Duration = Duration::from_millis(200);

/// A NETLINK_SOCK_DIAG socket of one namespace.
pub struct SockDiag {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl SockDiag {
    /// A diag socket in the calling thread's namespace.
    pub fn open() -> io::Result<SockDiag> {
        let socket = Socket::new(NETLINK_SOCK_DIAG)?;
        set_timeout(&socket, TIMEOUT)?;
        Ok(SockDiag {
            socket,
            seq: 0,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// The inode of the rtnetlink socket bound to `port`, or `None` when no
    /// socket is (its process closed it or exited).
    pub fn inode_of(&mut self, port: u32) -> io::Result<Option<u64>> {
        self.seq = self.seq.wrapping_add(1);
        let mut req = [0u8; 16 + 20];
        req[0..4].copy_from_slice(&36u32.to_ne_bytes());
        req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        req[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        // struct netlink_diag_req: family, protocol, pad, ino, show, cookie.
        req[16] = AF_NETLINK;
        req[17] = NETLINK_ROUTE;
        self.socket.send_to(&req, &SocketAddr::new(0, 0), 0)?;
        let mut found = None;
        loop {
            self.buf.clear();
            let n = self.socket.recv(&mut self.buf, 0)?;
            let mut at = &self.buf[..n];
            while at.len() >= 16 {
                let len = u32::from_ne_bytes(at[0..4].try_into().expect("4 bytes")) as usize;
                let kind = u16::from_ne_bytes(at[4..6].try_into().expect("2 bytes"));
                let seq = u32::from_ne_bytes(at[8..12].try_into().expect("4 bytes"));
                if len < 16 || len > at.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "malformed sock_diag reply",
                    ));
                }
                if seq == self.seq {
                    match kind {
                        NLMSG_DONE => return Ok(found),
                        NLMSG_ERROR => {
                            let errno = at
                                .get(16..20)
                                .map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")))
                                .unwrap_or(0);
                            return Err(io::Error::from_raw_os_error(-errno));
                        }
                        SOCK_DIAG_BY_FAMILY => {
                            if let Some((p, inode)) = port_and_inode(&at[16..len]) {
                                if p == port {
                                    found = Some(inode);
                                }
                            }
                        }
                        _ => {}
                    }
                }
                at = at.get((len + 3) & !3..).unwrap_or(&[]);
            }
        }
    }
}

/// `struct netlink_diag_msg`: family, type, protocol, state (a byte each),
/// portid, dst_portid, dst_group, ino, cookie[2].
fn port_and_inode(body: &[u8]) -> Option<(u32, u64)> {
    let word = |at: usize| {
        body.get(at..at + 4)
            .map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")))
    };
    Some((word(4)?, u64::from(word(16)?)))
}

pub(super) fn set_timeout(socket: &Socket, timeout: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    crate::socket::set_option(socket, libc::SO_RCVTIMEO, &tv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_socket_of_this_process_and_not_a_closed_one() {
        let mut diag = SockDiag::open().expect("sock_diag socket");
        let mut route = Socket::new(netlink_sys::protocols::NETLINK_ROUTE).unwrap();
        let addr = route.bind_auto().unwrap();
        let port = addr.port_number();
        let inode = diag.inode_of(port).expect("dump").expect("listed");
        use std::os::fd::AsRawFd;
        let link = std::fs::read_link(format!("/proc/self/fd/{}", route.as_raw_fd())).unwrap();
        assert_eq!(link.to_str(), Some(format!("socket:[{inode}]").as_str()));
        drop(route);
        assert_eq!(diag.inode_of(port).expect("dump"), None);
    }

    #[test]
    fn reads_a_diag_message() {
        let mut body = [0u8; 28];
        body[4..8].copy_from_slice(&4242u32.to_ne_bytes());
        body[16..20].copy_from_slice(&987654u32.to_ne_bytes());
        assert_eq!(port_and_inode(&body), Some((4242, 987654)));
        assert_eq!(port_and_inode(&body[..12]), None);
    }
}
