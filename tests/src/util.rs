//! Small helpers shared by the other modules: unique ids, temporary files,
//! bounded polling and signals.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A number unique within this process.
pub fn next_id() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A fresh path in the temporary directory: `rwt-<pid>-<n>-<tag>`.
pub fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("rwt-{}-{}-{}", std::process::id(), next_id(), tag))
}

/// A scratch directory's path (not created), removed with everything in
/// it when dropped: state dirs of big churns are hundreds of megabytes.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        TempDir(temp_path(tag))
    }
}

impl std::ops::Deref for TempDir {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl AsRef<std::path::Path> for TempDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Calls `f` every `interval` until it returns `Some`, or `None` once
/// `timeout` has passed (`f` is always called at least once, and once more
/// at the deadline).
pub fn poll<T>(
    timeout: Duration,
    interval: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::sleep(interval.min(deadline - now));
    }
}

/// Sends a signal (by name, e.g. "TERM") to a process with `kill(1)`.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Waits for `child` to exit for at most `timeout`.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    poll(timeout, Duration::from_millis(20), || {
        child.try_wait().ok().flatten()
    })
}

/// Stops a child: SIGTERM, up to `grace` to exit, then SIGKILL. Never panics.
pub fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    signal(child.id(), "TERM");
    if let Some(status) = wait_timeout(child, grace) {
        return Some(status);
    }
    let _ = child.kill();
    child.wait().ok()
}

/// The last `max_lines` lines of `text`.
pub fn tail_lines(text: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(max_lines);
    let mut out = String::new();
    if start > 0 {
        out.push_str(&format!("[... {start} earlier lines omitted ...]\n"));
    }
    for l in &lines[start..] {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// Reads a file as (lossy) UTF-8; empty if it cannot be read.
pub fn read_lossy(path: &std::path::Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// What [`run_measured`] saw of a finished process.
#[derive(Debug)]
pub struct Measured {
    pub status: ExitStatus,
    /// Its peak resident set size (VmHWM), in bytes.
    pub peak_rss: u64,
    /// How many bytes it wrote on stdout (read and dropped as they come).
    pub stdout_bytes: u64,
    pub stderr: String,
}

/// Runs `cmd` to its end, counting its output rather than keeping it, and
/// reads its peak memory (VmHWM in /proc/PID/status) as it exits.
///
/// The process is traced (PTRACE_O_TRACEEXIT) so that it stops on its
/// way out with its memory still mapped: once it is a zombie, /proc shows
/// no memory, and wait4's ru_maxrss is no help either, since it keeps the
/// largest RSS of any image the process ran, the copy of this (large)
/// test process before exec included.
pub fn run_measured(cmd: &mut Command) -> Measured {
    use std::io::Read;
    use std::os::unix::process::{CommandExt, ExitStatusExt};

    // SAFETY: ptrace(PTRACE_TRACEME) is async-signal-safe; the child stops
    // at its exec until this thread lets it go on.
    unsafe {
        cmd.pre_exec(|| {
            if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // Reaped below by waitpid, which tracing needs (Child::wait cannot
    // let a traced child go on from its stops).
    #[allow(clippy::zombie_processes)]
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let counted = thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0u64;
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => return n,
                Ok(k) => n += k as u64,
            }
        }
    });
    let errors = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut peak_rss = None;
    let mut options_set = false;
    let status = loop {
        let mut status = 0;
        // SAFETY: waits for this thread's own traced child.
        let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(reaped, pid, "waitpid: {}", std::io::Error::last_os_error());
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            break ExitStatus::from_raw(status);
        }
        let mut deliver = 0;
        let stop = libc::WSTOPSIG(status);
        if !options_set && stop == libc::SIGTRAP {
            // The stop at exec.
            // SAFETY: the child is stopped and traced by this thread.
            let set = unsafe {
                libc::ptrace(
                    libc::PTRACE_SETOPTIONS,
                    pid,
                    0,
                    libc::PTRACE_O_TRACEEXIT as libc::c_long,
                )
            };
            assert_eq!(
                set,
                0,
                "PTRACE_SETOPTIONS: {}",
                std::io::Error::last_os_error()
            );
            options_set = true;
        } else if status >> 8 == libc::SIGTRAP | (libc::PTRACE_EVENT_EXIT << 8) {
            peak_rss = Some(vm_hwm(pid));
        } else {
            deliver = stop;
        }
        // SAFETY: as above.
        unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, deliver as libc::c_long) };
    };
    Measured {
        status,
        peak_rss: peak_rss.expect("the process never stopped on its way out"),
        stdout_bytes: counted.join().expect("stdout reader"),
        stderr: errors.join().expect("stderr reader"),
    }
}

/// VmHWM of a live process, in bytes.
fn vm_hwm(pid: libc::pid_t) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("its status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmHWM line");
    kib * 1024
}
