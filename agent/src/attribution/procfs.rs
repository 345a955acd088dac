//! Processes and their open files, from `/proc`: which process holds a
//! socket inode, and what that process is.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use routewatch_proto::v1::ChangedBy;

use super::cgroup;

/// The longest command line reported, in bytes.
pub const CMDLINE_MAX: usize = 256;

/// The text `/proc/<pid>/fd/<n>` links to for socket `inode`.
fn socket_link(inode: u64) -> String {
    format!("socket:[{inode}]")
}

/// Whether process `pid`'s descriptor `fd` is socket `inode`: one readlink,
/// the check a cached answer gets before each use.
pub fn holds_fd(pid: u32, fd: u32, inode: u64) -> bool {
    fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .is_ok_and(|l| l.as_os_str().as_bytes() == socket_link(inode).as_bytes())
}

/// Process `pid`'s descriptor `fd` as a descriptor of this process, if it
/// is still socket `inode` (`pidfd_open` and `pidfd_getfd`: CAP_SYS_PTRACE,
/// Linux 5.6). While the agent holds it the socket lives on, bound to its
/// port id, which therefore names no other socket.
pub fn pin(pid: u32, fd: u32, inode: u64) -> Option<OwnedFd> {
    let taken = take(pid, fd)?;
    // The descriptor may have been closed and reused since it was read.
    (taken.inode == inode).then_some(taken.file)
}

/// A process, and one of its open files taken as a descriptor of this
/// process.
pub struct Taken {
    /// The process: it cannot be mistaken for another while this is open.
    pub pidfd: OwnedFd,
    /// Its file, which lives on while this is open, whatever the process
    /// does with its own descriptor.
    pub file: OwnedFd,
    /// The file's inode.
    pub inode: u64,
}

/// Process `pid` and its descriptor `fd`, in three system calls
/// (`pidfd_open`, `pidfd_getfd`, `fstat`; CAP_SYS_PTRACE, Linux 5.6): the
/// quickest hold on what a process that is about to exit has open.
pub fn take(pid: u32, fd: u32) -> Option<Taken> {
    // SAFETY: pidfd_open with a pid and no flags returns a new descriptor
    // or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    let pidfd = (pidfd >= 0).then(|| unsafe {
        // SAFETY: a descriptor just returned to us, owned from here.
        OwnedFd::from_raw_fd(pidfd as RawFd)
    })?;
    // SAFETY: pidfd_getfd with a valid pidfd, a descriptor number and no
    // flags returns a new descriptor or -1.
    let file = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd as RawFd, 0) };
    let file = (file >= 0).then(|| unsafe {
        // SAFETY: as above.
        OwnedFd::from_raw_fd(file as RawFd)
    })?;
    // SAFETY: fstat on a descriptor we own, into a zeroed stat buffer.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(file.as_raw_fd(), &mut stat) } != 0 {
        return None;
    }
    Some(Taken {
        pidfd,
        file,
        inode: stat.st_ino,
    })
}

/// Whether the process of `pidfd` has not been reaped: while it has not,
/// its pid names no other process, so what `/proc/<pid>` showed was its.
/// (A reaped process is ESRCH; EPERM, a process of another user without
/// CAP_KILL, says it is still there.)
pub fn not_reaped(pidfd: &OwnedFd) -> bool {
    // SAFETY: pidfd_send_signal with a valid pidfd and signal 0 (a check,
    // nothing sent), no info and no flags.
    let sent = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    sent == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The descriptor of process `pid` that is socket `inode`, if it holds it.
pub fn holder_fd(pid: u32, inode: u64) -> Option<u32> {
    let want = socket_link(inode);
    fd_of(&format!("/proc/{pid}/fd"), want.as_bytes())
}

/// Every socket process `pid` holds: `(descriptor, inode)`.
pub fn sockets(pid: u32) -> Vec<(u32, u64)> {
    let dir = format!("/proc/{pid}/fd");
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(fd) = number(&name) else {
            continue;
        };
        let Ok(link) = fs::read_link(format!("{dir}/{fd}")) else {
            continue;
        };
        let inode = link
            .as_os_str()
            .as_bytes()
            .strip_prefix(b"socket:[")
            .and_then(|l| l.strip_suffix(b"]"))
            .and_then(|n| std::str::from_utf8(n).ok()?.parse().ok());
        if let Some(inode) = inode {
            out.push((fd, inode));
        }
    }
    out
}

/// What must be read of process `pid` before it can exit, when a port id
/// is taken for its pid: the sockets it holds and, if any, its comm.
pub fn first_guess(pid: u32) -> (Vec<(u32, u64)>, Option<String>) {
    let sockets = sockets(pid);
    let comm = (!sockets.is_empty()).then(|| comm(pid)).flatten();
    (sockets, comm)
}

/// Whether process `pid` exists and has no open descriptor left: it is
/// exiting (its files are closed before its sockets are released).
pub fn exiting(pid: u32) -> bool {
    fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|mut d| d.next().is_none())
}

/// A process holding socket `inode` and its descriptor: every process's
/// open files, read until one is found.
pub fn find_holder(inode: u64) -> Option<(u32, u32)> {
    let want = socket_link(inode);
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = number(&entry.file_name()) else {
            continue;
        };
        if let Some(fd) = fd_of(&format!("/proc/{pid}/fd"), want.as_bytes()) {
            return Some((pid, fd));
        }
    }
    None
}

fn fd_of(dir: &str, want: &[u8]) -> Option<u32> {
    let mut path = String::with_capacity(dir.len() + 12);
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name();
        path.clear();
        path.push_str(dir);
        path.push('/');
        path.push_str(name.to_str()?);
        if fs::read_link(&path).is_ok_and(|l| l.as_os_str().as_bytes() == want) {
            return number(&name);
        }
    }
    None
}

fn number(name: &OsStr) -> Option<u32> {
    std::str::from_utf8(name.as_bytes()).ok()?.parse().ok()
}

/// Fills in what `/proc/<pid>` says of process `pid`: comm, executable,
/// command line, cgroup, container and pod. What cannot be read (the
/// executable of a process of another user without CAP_SYS_PTRACE) stays
/// empty.
pub fn describe(pid: u32, by: &mut ChangedBy) {
    by.pid = pid;
    if let Some(comm) = comm(pid) {
        by.comm = comm;
    }
    if let Ok(exe) = fs::read_link(format!("/proc/{pid}/exe")) {
        by.exe = exe.to_string_lossy().into_owned();
    }
    if let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) {
        by.cmdline = command_line(&cmdline);
    }
    if let Ok(text) = fs::read_to_string(format!("/proc/{pid}/cgroup")) {
        let path = cgroup::path_of(&text);
        by.container_id = cgroup::container_id(path).unwrap_or("").to_string();
        by.pod_uid = cgroup::pod_uid(path).unwrap_or_default();
        by.cgroup = path.to_string();
    }
}

/// Process `pid`'s command name (`/proc/<pid>/comm`).
pub fn comm(pid: u32) -> Option<String> {
    let comm = fs::read(format!("/proc/{pid}/comm")).ok()?;
    Some(String::from_utf8_lossy(comm.strip_suffix(b"\n").unwrap_or(&comm)).into_owned())
}

/// `/proc/<pid>/cmdline` (arguments ending in NUL) as one line of at most
/// [`CMDLINE_MAX`] bytes, cut at a character boundary.
pub fn command_line(raw: &[u8]) -> String {
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    let mut line: String = String::from_utf8_lossy(raw).replace('\0', " ");
    if line.len() > CMDLINE_MAX {
        let mut end = CMDLINE_MAX;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_command_line_is_one_bounded_line() {
        assert_eq!(command_line(b"ip\0-batch\0-\0"), "ip -batch -");
        assert_eq!(command_line(b""), "");
        let long = "é".repeat(200);
        let cut = command_line(long.as_bytes());
        assert!(cut.len() <= CMDLINE_MAX && cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn finds_the_holder_of_a_socket_by_pid_and_not_a_closed_one() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let fd = socket.as_raw_fd() as u32;
        let link = fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        let inode: u64 = link.to_str().unwrap()[8..]
            .trim_end_matches(']')
            .parse()
            .unwrap();
        let pid = std::process::id();
        assert_eq!(holder_fd(pid, inode), Some(fd));
        assert!(sockets(pid).contains(&(fd, inode)));
        assert!(holds_fd(pid, fd, inode));
        let mut by = ChangedBy::default();
        describe(pid, &mut by);
        assert_eq!(by.pid, pid);
        assert!(!by.comm.is_empty() && by.exe.starts_with('/'), "{by:?}");
        drop(socket);
        assert!(!holds_fd(pid, fd, inode));
        assert_eq!(holder_fd(pid, inode), None);
    }

    /// A process's descriptor is taken with the process; the process is
    /// "not reaped" while it runs and while it is a zombie, and no longer
    /// once its parent has waited for it.
    #[test]
    fn takes_a_descriptor_and_tells_a_zombie_from_a_reaped_process() {
        use std::process::{Command, Stdio};
        let mut child = Command::new("sleep")
            .arg("0.3")
            .stdin(Stdio::piped())
            .spawn()
            .expect("sleep");
        let pid = child.id();
        // Its descriptor 0 is the pipe this process writes to.
        let taken = take(pid, 0).expect("the child's stdin taken");
        let ours = child.stdin.as_ref().unwrap().as_raw_fd();
        let link = fs::read_link(format!("/proc/self/fd/{ours}")).unwrap();
        let theirs = fs::read_link(format!("/proc/self/fd/{}", taken.file.as_raw_fd())).unwrap();
        assert_eq!(link, theirs);
        assert!(not_reaped(&taken.pidfd));
        // A zombie until waited for.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z ")) {
            assert!(
                std::time::Instant::now() < deadline,
                "the child never exited"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(not_reaped(&taken.pidfd), "a zombie is not reaped");
        assert!(take(pid, 0).is_none(), "a zombie has no descriptors");
        child.wait().unwrap();
        assert!(!not_reaped(&taken.pidfd));
    }
}
