//! Clients that connect and then do nothing: what a scanner, a broken
//! client or an attacker leaves on an agent's port.

use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

use crate::netns::Netns;

/// Opens `n` TCP connections from `from` (a local address of `ns`, e.g.
/// 127.0.0.2) to `to` inside `ns`, and sends nothing on them. Connections
/// the agent does not accept still count (they wait in its queue).
pub fn idle_connections(ns: &Netns, from: Ipv4Addr, to: SocketAddrV4, n: usize) -> Vec<TcpStream> {
    ns.in_ns(|| (0..n).map(|_| connect_from(from, to)).collect())
}

/// One TCP connection from `from` to `to`, made in the calling thread's
/// namespace. Connecting does not wait for the server to accept (the
/// kernel completes the handshake), so a full accept queue blocks only
/// until the connect times out; the socket is non-blocking while it
/// connects and given up after a second.
fn connect_from(from: Ipv4Addr, to: SocketAddrV4) -> TcpStream {
    // SAFETY: plain socket calls on a descriptor this function owns; it
    // is handed to TcpStream, which closes it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = TcpStream::from_raw_fd(fd);
        let bind = sockaddr(SocketAddrV4::new(from, 0));
        if libc::bind(
            fd,
            (&bind as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        ) != 0
        {
            panic!("bind to {from}: {}", std::io::Error::last_os_error());
        }
        stream.set_nonblocking(true).expect("non-blocking");
        let peer = sockaddr(to);
        let r = libc::connect(
            fd,
            (&peer as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        if r != 0 {
            let e = std::io::Error::last_os_error();
            assert_eq!(
                e.raw_os_error(),
                Some(libc::EINPROGRESS),
                "connect {from} -> {to}: {e}"
            );
        }
        stream.set_nonblocking(false).expect("blocking");
        stream
    }
}

fn sockaddr(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// Reads (and discards) what the server sends until it closes `stream`;
/// returns how long that took from `since`, or `None` if it was still
/// open after `within`.
pub fn wait_closed(stream: &mut TcpStream, since: Instant, within: Duration) -> Option<Duration> {
    let mut buf = [0u8; 4096];
    loop {
        let left = within.checked_sub(since.elapsed())?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return Some(since.elapsed()),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if since.elapsed() >= within {
                    return None;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // Reset or refused: closed.
            Err(_) => return Some(since.elapsed()),
        }
    }
}

/// CPU time (user + system) a process has used, from /proc/PID/stat.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/stat: {e}"));
    // The command name (field 2) may hold spaces; fields after it are
    // plain numbers. utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')').expect("stat has (comm)") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}
