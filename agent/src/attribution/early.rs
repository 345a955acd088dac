//! Who asked, read while the requester still lives.
//!
//! A short-lived requester (`ip route add`) exits right after the kernel
//! acknowledges its request, and the agent's source, busy or not yet
//! scheduled, often comes to the notification too late to see the process
//! holding its socket. So each watched namespace has a thread of its own,
//! blocked on a second rtnetlink socket of the same groups, which the
//! kernel wakes with the notification itself: it reads the process whose
//! pid the port id is (its descriptors, then the socket table), and keeps
//! what it verified for the [`Resolver`](super::Resolver) to take.
//!
//! The thread costs nothing per change of a requester already known: a
//! socket filter in the kernel drops the kernel's own notifications (port
//! id 0) and those of the last ports looked at, so a long-lived requester
//! (`ip -batch`, a routing daemon) wakes it once.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netlink_sys::{protocols::NETLINK_ROUTE, Socket};
use routewatch_proto::v1::{ChangedBy, ChangedByHow};

use super::procfs;
use super::sock_diag::{self, SockDiag};

/// Port ids the kernel's filter drops besides 0: the last ones looked at.
const RECENT: usize = 8;
/// How long the thread waits in `recv` before it checks whether to stop.
const WAKE: Duration = Duration::from_millis(500);
/// Answers nobody took are forgotten after this long, or beyond
/// [`KEPT_MAX`] of them.
const KEEP: Duration = Duration::from_secs(30);
const KEPT_MAX: usize = 1024;

/// A process seen holding the socket bound to a port id.
#[derive(Debug, Clone)]
pub struct Found {
    pub pid: u32,
    pub fd: u32,
    pub inode: u64,
    pub by: ChangedBy,
    at: Instant,
}

/// The second socket and the socket table of one namespace, created in it
/// (beside the source's socket) before the thread starts.
pub struct Parts {
    socket: Socket,
    diag: SockDiag,
}

impl Parts {
    /// The parts in the calling thread's namespace: a socket joined to
    /// `groups`, filtered as the thread starts.
    pub fn open(groups: &[u32]) -> io::Result<Parts> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        for &group in groups {
            socket.add_membership(group)?;
        }
        sock_diag::set_timeout(&socket, WAKE)?;
        attach_filter(&socket, &[])?;
        Ok(Parts {
            socket,
            diag: SockDiag::open()?,
        })
    }
}

struct Shared {
    found: Mutex<HashMap<u32, Found>>,
    /// The last port ids the thread read, in order (its filter's list):
    /// what it verified of them is in `found` before they are here.
    recent: Mutex<Vec<u32>>,
    stop: AtomicBool,
}

/// One namespace's thread; it ends soon after this is dropped.
pub struct Early {
    shared: Arc<Shared>,
}

impl Early {
    /// Starts the thread of `netns` (a name for its thread and its log).
    pub fn spawn(parts: Parts, netns: &str) -> io::Result<Early> {
        let shared = Arc::new(Shared {
            found: Mutex::new(HashMap::new()),
            recent: Mutex::new(Vec::with_capacity(RECENT)),
            stop: AtomicBool::new(false),
        });
        let theirs = shared.clone();
        let netns = netns.to_owned();
        std::thread::Builder::new()
            .name("attribution".into())
            .spawn(move || run(parts, &theirs, &netns))?;
        Ok(Early { shared })
    }

    /// What the thread verified of `port`, if it did; waits up to `wait`
    /// for the thread to come to `port` if it has not yet (a port it read
    /// a while ago, no longer among its last ones, waits in vain).
    pub fn take(&self, port: u32, wait: Duration) -> Option<Found> {
        let until = Instant::now() + wait;
        loop {
            let done = self.shared.recent.lock().ok()?.contains(&port);
            if let Some(found) = self.shared.found.lock().ok()?.remove(&port) {
                return Some(found);
            }
            if done || Instant::now() >= until {
                return None;
            }
            std::thread::yield_now();
        }
    }
}

impl Drop for Early {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
    }
}

/// Wakes the thread ahead of ordinary work: a requester that exits right
/// after its acknowledgement is otherwise often gone before the thread has
/// run, on a busy host. The lowest real-time priority (it sleeps except for
/// the first change of each new requester), else a raised nice value, else
/// none (without CAP_SYS_NICE).
fn raise_priority(netns: &str) {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: plain system calls on the calling thread (pid 0), with a
    // valid sched_param.
    let fifo = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0;
    if !fifo {
        // SAFETY: as above; PRIO_PROCESS with 0 is the calling thread.
        let niced = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -10) } == 0;
        tracing::debug!(
            netns,
            niced,
            "the early reader runs without real-time priority"
        );
    }
}

fn run(mut parts: Parts, shared: &Shared, netns: &str) {
    raise_priority(netns);
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut recent: Vec<u32> = Vec::with_capacity(RECENT);
    let publish = |recent: &Vec<u32>| {
        if let Ok(mut shared) = shared.recent.lock() {
            shared.clone_from(recent);
        }
    };
    while !shared.stop.load(Ordering::Acquire) {
        buf.clear();
        match parts.socket.recv(&mut buf, 0) {
            Ok(_) => {}
            // The timeout, or notifications lost to a full buffer: the
            // source's own lookups answer for those.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) || e.raw_os_error() == Some(libc::ENOBUFS) =>
            {
                continue
            }
            Err(e) => {
                tracing::warn!(netns, error = %e, "attribution's early reader stopped; short-lived requesters may be reported as exited");
                return;
            }
        }
        let mut at = &buf[..];
        let mut changed = false;
        while at.len() >= 16 {
            let word = |i: usize| u32::from_ne_bytes([at[i], at[i + 1], at[i + 2], at[i + 3]]);
            let len = word(0) as usize;
            let port = word(12);
            if port != 0 && !recent.contains(&port) {
                let found = verify(port, &mut parts.diag);
                if let (Some(found), Ok(mut kept)) = (found, shared.found.lock()) {
                    if kept.len() >= KEPT_MAX {
                        kept.retain(|_, f| f.at.elapsed() < KEEP);
                        if kept.len() >= KEPT_MAX {
                            kept.clear();
                        }
                    }
                    kept.insert(port, found);
                }
                if recent.len() == RECENT {
                    recent.remove(0);
                }
                recent.push(port);
                publish(&recent);
                changed = true;
            }
            if len < 16 {
                break;
            }
            at = at.get((len + 3) & !3..).unwrap_or(&[]);
        }
        if changed {
            if let Err(e) = attach_filter(&parts.socket, &recent) {
                tracing::debug!(netns, error = %e, "cannot update the early reader's filter");
            }
        }
    }
}

/// The process whose pid `port` is, if it holds the socket bound to
/// `port`: the socket table says which inode that socket is, then the
/// process's descriptor 3 (where a small tool's first socket usually is)
/// or else all its descriptors are read for it, and its comm, all before
/// it can exit.
pub fn verify(port: u32, diag: &mut SockDiag) -> Option<Found> {
    let inode = diag.inode_of(port).ok()??;
    let fd = if procfs::holds_fd(port, 3, inode) {
        3
    } else {
        procfs::holder_fd(port, inode)?
    };
    let comm = procfs::comm(port);
    let mut by = ChangedBy {
        port_id: port,
        ..Default::default()
    };
    procfs::describe(port, &mut by);
    if by.comm.is_empty() {
        by.comm = comm.unwrap_or_default();
    }
    by.how = ChangedByHow::Pid as i32;
    Some(Found {
        pid: port,
        fd,
        inode,
        by,
        at: Instant::now(),
    })
}

/// A classic BPF filter that drops notifications whose (first) message's
/// `nlmsg_pid` is 0 or one of `ports`. Its loads read in network order, so
/// the constants are the host-order port ids' bytes read that way.
fn attach_filter(socket: &Socket, ports: &[u32]) -> io::Result<()> {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    let insn = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let dropped: Vec<u32> = std::iter::once(0).chain(ports.iter().copied()).collect();
    let n = dropped.len();
    let mut program = vec![insn(LD_W_ABS, 0, 0, 12)];
    for (i, port) in dropped.iter().enumerate() {
        // From instruction i + 1 to the last one (drop): n - i ahead.
        let to_drop = (n - i) as u8;
        program.push(insn(
            JEQ_K,
            to_drop,
            0,
            u32::from_be_bytes(port.to_ne_bytes()),
        ));
    }
    program.push(insn(RET_K, 0, 0, u32::MAX));
    program.push(insn(RET_K, 0, 0, 0));
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // The kernel copies the program before the call returns.
    crate::socket::set_option(socket, libc::SO_ATTACH_FILTER, &fprog)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filter lets a notification of a new port through and drops the
    /// kernel's and those of the ports it lists: checked on a real socket
    /// with messages this process sends itself.
    #[test]
    fn the_filter_drops_the_kernel_and_known_ports() {
        use netlink_sys::SocketAddr;
        let mut receiver = Socket::new(NETLINK_ROUTE).unwrap();
        let to = receiver.bind_auto().unwrap();
        sock_diag::set_timeout(&receiver, Duration::from_millis(200)).unwrap();
        let mut sender = Socket::new(NETLINK_ROUTE).unwrap();
        sender.bind_auto().unwrap();
        // A message stamped with `pid` as its nlmsg_pid, sent to the receiver.
        let send = |pid: u32| {
            let mut msg = vec![0u8; 16];
            msg[0..4].copy_from_slice(&16u32.to_ne_bytes());
            msg[4..6].copy_from_slice(&3u16.to_ne_bytes()); // NLMSG_DONE
            msg[12..16].copy_from_slice(&pid.to_ne_bytes());
            sender
                .send_to(&msg, &SocketAddr::new(to.port_number(), 0), 0)
                .unwrap();
        };
        let received = |receiver: &Socket| -> Vec<u32> {
            let mut got = Vec::new();
            let mut buf = Vec::with_capacity(4096);
            loop {
                buf.clear();
                match receiver.recv(&mut buf, 0) {
                    Ok(_) => got.push(u32::from_ne_bytes(buf[12..16].try_into().unwrap())),
                    Err(_) => return got,
                }
            }
        };
        attach_filter(&receiver, &[4242, 70000]).unwrap();
        for pid in [0, 4242, 17, 70000, 18] {
            send(pid);
        }
        assert_eq!(received(&receiver), [17, 18]);
        attach_filter(&receiver, &[17]).unwrap();
        for pid in [17, 4242, 0] {
            send(pid);
        }
        assert_eq!(received(&receiver), [4242]);
    }

    /// A process's first socket, bound to its pid (`ip monitor` here), is
    /// verified as held by it; a port nobody holds is not.
    #[test]
    fn a_first_socket_is_verified_by_its_pid() {
        struct Kill(std::process::Child);
        impl Drop for Kill {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let child = std::process::Command::new("ip")
            .args(["monitor", "route"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ip monitor (iproute2) must be installed");
        let monitor = Kill(child);
        let pid = monitor.0.id();
        let mut diag = SockDiag::open().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let found = loop {
            if let Some(found) = verify(pid, &mut diag) {
                break found;
            }
            assert!(
                Instant::now() < deadline,
                "ip monitor's socket never verified"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!((found.pid, found.by.pid), (pid, pid));
        assert_eq!(found.by.comm, "ip");
        assert_eq!(found.by.how, ChangedByHow::Pid as i32);
        assert!(procfs::holds_fd(pid, found.fd, found.inode));
        // No process has this pid (above PID_MAX_LIMIT).
        assert!(verify((1 << 22) + 5, &mut diag).is_none());
    }

    /// The reader runs at real-time priority 1 (these tests run as root,
    /// with CAP_SYS_NICE), and its thread ends once it is dropped.
    #[test]
    fn the_reader_runs_at_real_time_priority_until_dropped() {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "this test needs root (CAP_SYS_NICE)"
        );
        // This process's attribution threads: (tid, scheduling policy).
        let readers = || -> Vec<(u32, u32)> {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .flatten()
                .filter_map(|t| {
                    let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
                    let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
                    // Fields after the comm's closing parenthesis; the
                    // policy is field 41 of the line, 39 of these.
                    let rest = stat.rsplit_once(')')?.1;
                    let policy = rest.split_whitespace().nth(38)?.parse().ok()?;
                    let tid = t.file_name().to_str()?.parse().ok()?;
                    (comm.trim_end() == "attribution").then_some((tid, policy))
                })
                .collect()
        };
        let before: Vec<u32> = readers().into_iter().map(|(tid, _)| tid).collect();
        let early = Early::spawn(Parts::open(&[]).unwrap(), "test").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        // The thread sets its own policy as it starts.
        let tid = loop {
            let now = readers();
            let new = now.iter().find(|(tid, _)| !before.contains(tid));
            if let Some(&(tid, policy)) = new {
                if policy == libc::SCHED_FIFO as u32 {
                    break tid;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no new attribution thread at SCHED_FIFO: {new:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        drop(early);
        let deadline = Instant::now() + WAKE * 4;
        while readers().iter().any(|&(t, _)| t == tid) {
            assert!(Instant::now() < deadline, "the reader outlived its handle");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
