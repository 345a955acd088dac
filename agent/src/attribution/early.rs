//! Who asked, read while the requester still lives.
//!
//! A short-lived requester (`ip route add`) exits right after the kernel
//! acknowledges its request, and the agent's source, busy or not yet
//! scheduled, often comes to the notification too late to see the process
//! holding its socket. So each watched namespace has a second rtnetlink
//! socket of the same groups, and the kernel wakes the agent's early
//! readers with the notification itself: one thread per CPU, each pinned
//! to its CPU at the lowest real-time priority, all waiting on every
//! namespace's socket. The request is handled, and the notification sent,
//! in the requester's own system call, on its CPU: the reader of that CPU
//! runs before the requester does again, so it takes hold of the
//! requester's socket (see [`procfs::take`]) before the requester can read
//! its acknowledgement and exit. A reader woken on another CPU, idle and
//! slow to wake (in a virtual machine above all), would often come after
//! the exit: with one thread, about half of a shell loop of `ip route add`
//! was named.
//!
//! The threads cost nothing per change of a requester already known: a
//! socket filter in the kernel drops the kernel's own notifications (port
//! id 0) and those of the last ports looked at, so a long-lived requester
//! (`ip -batch`, a routing daemon) wakes them once. What they verified is
//! kept for the [`Resolver`](super::Resolver) to take.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use netlink_sys::{protocols::NETLINK_ROUTE, Socket};
use routewatch_proto::v1::{ChangedBy, ChangedByHow};

use super::procfs;
use super::sock_diag::SockDiag;

/// Port ids the kernel's filter drops besides 0: the last ones looked at.
const RECENT: usize = 8;
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
/// (beside the source's socket) before it is handed to the readers.
pub struct Parts {
    socket: Socket,
    diag: SockDiag,
}

impl Parts {
    /// The parts in the calling thread's namespace: a socket joined to
    /// `groups`, filtered, that never blocks (every reader is woken, one
    /// takes each datagram).
    pub fn open(groups: &[u32]) -> io::Result<Parts> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        for &group in groups {
            socket.add_membership(group)?;
        }
        socket.set_non_blocking(true)?;
        attach_filter(&socket, &[])?;
        Ok(Parts {
            socket,
            diag: SockDiag::open()?,
        })
    }
}

/// One namespace, as the readers see it.
struct Watched {
    netns: String,
    socket: Socket,
    diag: Mutex<SockDiag>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    found: HashMap<u32, Found>,
    /// The last port ids read, in order (the filter's list): what was
    /// verified of them is in `found` before they are here.
    recent: Vec<u32>,
    /// Port ids a reader is verifying now.
    reading: Vec<u32>,
}

/// The readers: one thread and one epoll instance per CPU, and the
/// namespaces they wait on. Started with the first namespace, they live as
/// long as the agent.
struct Readers {
    /// The CPU of each thread, and its epoll instance.
    cpus: Vec<usize>,
    epolls: Vec<OwnedFd>,
    started: std::sync::Once,
    watched: Mutex<HashMap<u64, Arc<Watched>>>,
    next: AtomicU64,
}

static READERS: OnceLock<Result<Readers, String>> = OnceLock::new();

/// One namespace's registration with the readers; they stop reading its
/// socket once this is dropped.
pub struct Early {
    readers: &'static Readers,
    token: u64,
    watched: Arc<Watched>,
}

impl Early {
    /// Hands namespace `netns`'s parts to the readers (started the first
    /// time).
    pub fn spawn(parts: Parts, netns: &str) -> io::Result<Early> {
        let readers = READERS
            .get_or_init(|| Readers::start().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| io::Error::other(e.clone()))?;
        let watched = Arc::new(Watched {
            netns: netns.to_owned(),
            socket: parts.socket,
            diag: Mutex::new(parts.diag),
            state: Mutex::new(State::default()),
        });
        readers.run();
        let token = readers.next.fetch_add(1, Ordering::Relaxed);
        lock(&readers.watched).insert(token, watched.clone());
        let early = Early {
            readers,
            token,
            watched,
        };
        for epoll in &readers.epolls {
            let mut event = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: token,
            };
            // SAFETY: epoll_ctl on an epoll descriptor we own, with a
            // socket that lives as long as its registration (`Drop`
            // removes it first) and a valid event.
            let added = unsafe {
                libc::epoll_ctl(
                    epoll.as_raw_fd(),
                    libc::EPOLL_CTL_ADD,
                    early.watched.socket.as_raw_fd(),
                    &mut event,
                )
            };
            if added != 0 {
                // Dropping `early` removes what was added.
                return Err(io::Error::last_os_error());
            }
        }
        Ok(early)
    }

    /// What a reader verified of `port`, if one did; waits up to `wait`
    /// for the readers to come to `port` if they have not yet (a port read
    /// a while ago, no longer among the last ones, waits in vain).
    pub fn take(&self, port: u32, wait: Duration) -> Option<Found> {
        let until = Instant::now() + wait;
        loop {
            {
                let mut state = lock(&self.watched.state);
                if let Some(found) = state.found.remove(&port) {
                    return Some(found);
                }
                let done = state.recent.contains(&port) && !state.reading.contains(&port);
                if done || Instant::now() >= until {
                    return None;
                }
            }
            std::thread::yield_now();
        }
    }
}

impl Drop for Early {
    fn drop(&mut self) {
        for epoll in &self.readers.epolls {
            // SAFETY: as in `spawn`; removing a descriptor that was never
            // added fails harmlessly.
            unsafe {
                libc::epoll_ctl(
                    epoll.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    self.watched.socket.as_raw_fd(),
                    std::ptr::null_mut(),
                );
            }
        }
        lock(&self.readers.watched).remove(&self.token);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A reader that panicked left nothing half-done that matters here.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Readers {
    /// One epoll instance and one thread per CPU this process may run on.
    fn start() -> io::Result<Readers> {
        let cpus = allowed_cpus();
        let mut epolls = Vec::with_capacity(cpus.len());
        for _ in &cpus {
            // SAFETY: epoll_create1 returns a new descriptor or -1.
            let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a descriptor just returned to us, owned from here.
            epolls.push(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
        let readers = Readers {
            cpus,
            epolls,
            started: std::sync::Once::new(),
            watched: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
        };
        Ok(readers)
    }

    /// Starts the threads, once.
    fn run(&'static self) {
        self.started.call_once(|| {
            for (i, &cpu) in self.cpus.iter().enumerate() {
                let started = std::thread::Builder::new()
                    .name("attribution".into())
                    .spawn(move || self.read_on(cpu, i));
                if let Err(e) = started {
                    tracing::warn!(cpu, error = %e, "cannot start an early reader: short-lived requesters on that CPU may be reported as exited");
                }
            }
            tracing::debug!(cpus = self.cpus.len(), "attribution's early readers started");
        });
    }

    /// Thread `i`'s life: on `cpu`, woken by any namespace's socket.
    fn read_on(&self, cpu: usize, i: usize) {
        raise_priority(cpu);
        let epoll = self.epolls[i].as_raw_fd();
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 16];
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        loop {
            // SAFETY: epoll_wait on our epoll descriptor into a buffer of
            // the length given.
            let n =
                unsafe { libc::epoll_wait(epoll, events.as_mut_ptr(), events.len() as i32, -1) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::warn!(cpu, error = %e, "an early reader stopped: short-lived requesters on its CPU may be reported as exited");
                return;
            }
            for event in &events[..n as usize] {
                let token = event.u64;
                let watched = lock(&self.watched).get(&token).cloned();
                if let Some(watched) = watched {
                    watched.read(&mut buf);
                }
            }
        }
    }
}

impl Watched {
    /// Reads what the socket has (another reader may have taken it) and
    /// verifies each new requester.
    fn read(&self, buf: &mut Vec<u8>) {
        loop {
            buf.clear();
            match self.socket.recv(buf, 0) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // Notifications lost to a full buffer: the source's own
                // lookups answer for those.
                Err(e)
                    if e.kind() == io::ErrorKind::Interrupted
                        || e.raw_os_error() == Some(libc::ENOBUFS) =>
                {
                    continue
                }
                Err(e) => {
                    tracing::debug!(netns = &*self.netns, error = %e, "an early reader cannot read");
                    return;
                }
            }
            let mut at = &buf[..];
            while at.len() >= 16 {
                let word = |i: usize| u32::from_ne_bytes([at[i], at[i + 1], at[i + 2], at[i + 3]]);
                let len = word(0) as usize;
                let port = word(12);
                if port != 0 {
                    self.verify_new(port);
                }
                if len < 16 {
                    break;
                }
                at = at.get((len + 3) & !3..).unwrap_or(&[]);
            }
        }
    }

    /// Verifies `port` unless it was or is being verified, keeps the
    /// answer and adds `port` to the filter's list.
    fn verify_new(&self, port: u32) {
        {
            let mut state = lock(&self.state);
            if state.recent.contains(&port) || state.reading.contains(&port) {
                return;
            }
            state.reading.push(port);
        }
        let found = verify(port, &self.diag);
        let mut state = lock(&self.state);
        state.reading.retain(|&p| p != port);
        if let Some(found) = found {
            let kept = &mut state.found;
            if kept.len() >= KEPT_MAX {
                kept.retain(|_, f| f.at.elapsed() < KEEP);
                if kept.len() >= KEPT_MAX {
                    kept.clear();
                }
            }
            kept.insert(port, found);
        }
        if state.recent.len() == RECENT {
            state.recent.remove(0);
        }
        state.recent.push(port);
        // Under the lock, so the last list is the one the kernel keeps.
        if let Err(e) = attach_filter(&self.socket, &state.recent) {
            tracing::debug!(netns = &*self.netns, error = %e, "cannot update the early reader's filter");
        }
    }
}

/// Keeps the calling thread on `cpu` and wakes it ahead of ordinary work:
/// at the lowest real-time priority (it sleeps except for the first change
/// of each new requester), else a raised nice value, else neither (without
/// CAP_SYS_NICE).
fn raise_priority(cpu: usize) {
    // SAFETY: a zeroed set with one CPU set, for the calling thread (0).
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut set) };
    let pinned = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) } == 0;
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: plain system calls on the calling thread (pid 0), with a
    // valid sched_param.
    let fifo = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0;
    let niced = !fifo && unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -10) } == 0;
    if !pinned || !fifo {
        tracing::debug!(
            cpu,
            pinned,
            fifo,
            niced,
            "an early reader runs without its CPU or real-time priority"
        );
    }
}

/// The process whose pid `port` is, if it holds the socket bound to
/// `port`.
///
/// A small tool's first socket is usually its descriptor 3, so that is
/// taken first (see [`procfs::take`]), with the process's comm, before the
/// tool can exit: the socket then lives on, so the namespace's socket
/// table, read after, says whether it is the one bound to `port` (its
/// inode). What `/proc/<pid>` shows is the process's only while it has not
/// been reaped (its pid cannot name another one before), which the held
/// process says. When descriptor 3 is not that socket, the process's
/// descriptors are searched for the table's inode, while the process
/// lives. The table is read once either way.
fn verify(port: u32, diag: &Mutex<SockDiag>) -> Option<Found> {
    let taken = procfs::take(port, 3);
    let held_comm = taken
        .as_ref()
        .and_then(|t| procfs::comm(port).filter(|_| procfs::not_reaped(&t.pidfd)));
    let inode = lock(diag).inode_of(port).ok()??;
    let (fd, comm, pidfd) = match taken {
        Some(t) if t.inode == inode => (3, held_comm, Some(t.pidfd)),
        _ => (procfs::holder_fd(port, inode)?, procfs::comm(port), None),
    };
    let mut by = ChangedBy {
        port_id: port,
        ..Default::default()
    };
    procfs::describe(port, &mut by);
    if pidfd.is_some_and(|p| !procfs::not_reaped(&p)) {
        // Reaped since it was taken: the pid may name another process.
        by = ChangedBy {
            port_id: port,
            pid: port,
            ..Default::default()
        };
    }
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

/// The CPUs in this process's affinity mask (all of them, if it cannot be
/// read).
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity on the calling thread into a zeroed set of
    // the size given.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let read = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) } == 0;
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET reads the set within its size.
        .filter(|&cpu| read && unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect();
    if cpus.is_empty() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        (0..n).collect()
    } else {
        cpus
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::sock_diag;

    /// Sends socket `to` a message stamped with `pid` as its nlmsg_pid.
    fn send_stamped(sender: &Socket, to: u32, pid: u32) {
        let mut msg = vec![0u8; 16];
        msg[0..4].copy_from_slice(&16u32.to_ne_bytes());
        msg[4..6].copy_from_slice(&3u16.to_ne_bytes()); // NLMSG_DONE
        msg[12..16].copy_from_slice(&pid.to_ne_bytes());
        sender
            .send_to(&msg, &netlink_sys::SocketAddr::new(to, 0), 0)
            .unwrap();
    }

    /// The filter lets a notification of a new port through and drops the
    /// kernel's and those of the ports it lists: checked on a real socket
    /// with messages this process sends itself.
    #[test]
    fn the_filter_drops_the_kernel_and_known_ports() {
        let mut receiver = Socket::new(NETLINK_ROUTE).unwrap();
        let to = receiver.bind_auto().unwrap();
        sock_diag::set_timeout(&receiver, Duration::from_millis(200)).unwrap();
        let mut sender = Socket::new(NETLINK_ROUTE).unwrap();
        sender.bind_auto().unwrap();
        let send = |pid: u32| send_stamped(&sender, to.port_number(), pid);
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

    /// `ip monitor`, kept running, and killed when dropped.
    struct Monitor(std::process::Child);
    impl Drop for Monitor {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// An `ip monitor` whose socket (bound to its pid) is already open.
    fn monitor() -> Monitor {
        let child = std::process::Command::new("ip")
            .args(["monitor", "route"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ip monitor (iproute2) must be installed");
        let monitor = Monitor(child);
        let mut diag = SockDiag::open().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !matches!(diag.inode_of(monitor.0.id()), Ok(Some(_))) {
            assert!(
                Instant::now() < deadline,
                "ip monitor never bound its socket"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        monitor
    }

    /// A process's first socket, bound to its pid (`ip monitor` here), is
    /// verified as held by it; a port nobody holds is not.
    #[test]
    fn a_first_socket_is_verified_by_its_pid() {
        let monitor = monitor();
        let pid = monitor.0.id();
        let diag = Mutex::new(SockDiag::open().unwrap());
        let found = verify(pid, &diag).expect("ip monitor's socket verified");
        assert_eq!((found.pid, found.by.pid), (pid, pid));
        assert_eq!(found.by.comm, "ip");
        assert!(found.by.exe.ends_with("/ip"), "{:?}", found.by);
        assert_eq!(found.by.how, ChangedByHow::Pid as i32);
        assert!(procfs::holds_fd(pid, found.fd, found.inode));
        // No process has this pid (above PID_MAX_LIMIT).
        assert!(verify((1 << 22) + 5, &diag).is_none());
    }

    /// The readers are woken by a namespace's socket and keep what they
    /// verified for `take`: a message stamped with `ip monitor`'s port id,
    /// sent to the socket, names `ip monitor`. Once the handle is dropped
    /// the socket is no longer among the readers'.
    #[test]
    fn the_readers_verify_a_new_port_and_let_go_of_a_dropped_socket() {
        use netlink_sys::SocketAddr;
        let monitor = monitor();
        let pid = monitor.0.id();
        let parts = Parts::open(&[]).unwrap();
        let mut addr = SocketAddr::new(0, 0);
        parts.socket.get_address(&mut addr).unwrap();
        let early = Early::spawn(parts, "test").unwrap();
        let mut sender = Socket::new(NETLINK_ROUTE).unwrap();
        sender.bind_auto().unwrap();
        send_stamped(&sender, addr.port_number(), pid);
        let found = early
            .take(pid, Duration::from_secs(5))
            .expect("the readers verified the port");
        assert_eq!((found.pid, found.by.comm.as_str()), (pid, "ip"));
        // Taken once: a second take finds it read and answered.
        assert!(early.take(pid, Duration::from_secs(1)).is_none());
        let (readers, token) = (early.readers, early.token);
        assert!(lock(&readers.watched).contains_key(&token));
        drop(early);
        assert!(!lock(&readers.watched).contains_key(&token));
    }

    /// There is one reader per CPU this process may use, each kept on its
    /// CPU at real-time priority 1 (these tests run as root, with
    /// CAP_SYS_NICE).
    #[test]
    fn one_reader_per_cpu_runs_there_at_real_time_priority() {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "this test needs root (CAP_SYS_NICE)"
        );
        let _early = Early::spawn(Parts::open(&[]).unwrap(), "test").unwrap();
        let cpus = allowed_cpus();
        // This process's attribution threads: (scheduling policy, the
        // CPUs they may run on).
        let readers = || -> Vec<(u32, String)> {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .flatten()
                .filter_map(|t| {
                    let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
                    let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
                    let status = std::fs::read_to_string(t.path().join("status")).ok()?;
                    // Fields after the comm's closing parenthesis; the
                    // policy is field 41 of the line, 39 of these.
                    let rest = stat.rsplit_once(')')?.1;
                    let policy = rest.split_whitespace().nth(38)?.parse().ok()?;
                    let allowed = status
                        .lines()
                        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
                        .trim()
                        .to_string();
                    (comm.trim_end() == "attribution").then_some((policy, allowed))
                })
                .collect()
        };
        let want: Vec<(u32, String)> = cpus
            .iter()
            .map(|cpu| (libc::SCHED_FIFO as u32, cpu.to_string()))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        // Each thread sets its own CPU and policy as it starts.
        loop {
            let mut now = readers();
            now.sort_by_key(|(_, cpu)| cpu.parse::<usize>().unwrap_or(usize::MAX));
            if now == want {
                break;
            }
            assert!(Instant::now() < deadline, "readers {now:?}, want {want:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
