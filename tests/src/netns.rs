//! `Netns`: a network namespace owned by one test, deleted on drop.

use std::ffi::OsStr;
use std::io::{ErrorKind, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::thread;

use serde_json::Value;

use crate::util::next_id;

/// Prefix of every namespace these tests create (`rwt-<pid>-<n>`).
pub const NETNS_PREFIX: &str = "rwt-";

/// A uniquely named network namespace with `lo` up. Deleted on drop, also
/// when the test panics. Processes started in it keep running after the name
/// is deleted, so guards that own processes must be dropped first (declare
/// them after the `Netns`).
pub struct Netns {
    name: String,
}

fn run_ip_raw(args: &[&OsStr], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new("ip");
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "cannot run `ip`: iproute2 is not installed or not in PATH. \
             The end-to-end tests need iproute2 (`apt-get install iproute2`) and root."
        ),
        Err(e) => panic!("cannot run `ip {}`: {e}", show_args(args)),
    };
    let writer = stdin.map(|text| {
        let mut pipe = child.stdin.take().expect("stdin piped");
        let text = text.to_owned();
        thread::spawn(move || {
            let _ = pipe.write_all(text.as_bytes());
        })
    });
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for `ip {}`: {e}", show_args(args)));
    if let Some(w) = writer {
        let _ = w.join();
    }
    out
}

fn show_args(args: &[&OsStr]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Deletes namespaces `rwt-<pid>-<n>` left behind by test processes that no
/// longer exist (e.g. killed by a timeout), once per process.
fn sweep_stale() {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| {
        let Ok(entries) = std::fs::read_dir("/run/netns") else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(NETNS_PREFIX) else {
                continue;
            };
            let mut parts = rest.splitn(2, '-');
            let (Some(pid), Some(n)) = (parts.next(), parts.next()) else {
                continue;
            };
            let (Ok(pid), true) = (pid.parse::<u32>(), n.chars().all(|c| c.is_ascii_digit()))
            else {
                continue;
            };
            if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = run_ip_raw(
                    &[OsStr::new("netns"), OsStr::new("del"), OsStr::new(&name)],
                    None,
                );
                let _ = std::fs::remove_dir_all(std::path::Path::new("/etc/netns").join(&name));
            }
        }
    });
}

impl Netns {
    /// Creates a fresh namespace and brings `lo` up. Panics with a clear
    /// message when namespaces cannot be created: a test must fail, never
    /// pass by skipping.
    pub fn new() -> Netns {
        sweep_stale();
        let name = format!("{NETNS_PREFIX}{}-{}", std::process::id(), next_id());
        let out = run_ip_raw(
            &[OsStr::new("netns"), OsStr::new("add"), OsStr::new(&name)],
            None,
        );
        if !out.status.success() {
            panic!(
                "cannot create network namespace {name}: `ip netns add` failed ({}): {}\n\
                 The end-to-end tests need root (CAP_SYS_ADMIN and CAP_NET_ADMIN), \
                 iproute2 and a kernel with network namespaces.",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let ns = Netns { name };
        ns.ip("link set lo up");
        ns.reserve_test_ports();
        ns
    }

    /// Keeps the ports the tests listen on (agents on 50051 and up, fixed
    /// targets below 51000) out of the namespace's ephemeral range. Without
    /// it a connection made before a listener starts (a readiness probe to
    /// the first agent, say) may be given 50052 as its source port; its
    /// TIME_WAIT then holds the port and the second agent cannot listen.
    fn reserve_test_ports(&self) {
        let out = self.output(
            "sh",
            &[
                "-c",
                "echo 50000-50999 > /proc/sys/net/ipv4/ip_local_reserved_ports",
            ],
        );
        assert!(
            out.status.success(),
            "cannot reserve ports 50000-50999 in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    /// The namespace's name (for `ip netns exec` / `ip -n`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS` with `args` split on whitespace; returns stdout.
    /// Panics with stderr on failure.
    pub fn ip(&self, args: &str) -> String {
        self.ip_args(&args.split_whitespace().collect::<Vec<_>>())
    }

    /// Like [`Netns::ip`] with the arguments given one by one.
    pub fn ip_args<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        match self.try_ip_args(args) {
            Ok(out) => out,
            Err(e) => panic!("{e}"),
        }
    }

    /// Runs `ip -n NAME ARGS`; `Err` carries the command and its stderr.
    pub fn try_ip(&self, args: &str) -> Result<String, String> {
        self.try_ip_args(&args.split_whitespace().collect::<Vec<_>>())
    }

    /// Like [`Netns::try_ip`] with the arguments given one by one.
    pub fn try_ip_args<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<String, String> {
        let mut full: Vec<&OsStr> = vec![OsStr::new("-n"), OsStr::new(&self.name)];
        full.extend(args.iter().map(|a| a.as_ref()));
        let out = run_ip_raw(&full, None);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "`ip {}` failed ({}): {}",
                show_args(&full),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Runs `ip -n NAME -batch -` with `text` on stdin (one command a line).
    /// Panics with stderr on failure (ip stops at the first failing line).
    pub fn ip_batch(&self, text: &str) {
        let full = [
            OsStr::new("-n"),
            OsStr::new(&self.name),
            OsStr::new("-batch"),
            OsStr::new("-"),
        ];
        let out = run_ip_raw(&full, Some(text));
        if !out.status.success() {
            panic!(
                "`ip {}` failed ({}): {}",
                show_args(&full),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }

    /// Runs `ip -n NAME -j ARGS` and parses its output (empty output is
    /// `[]`).
    pub fn ip_json(&self, args: &str) -> Value {
        let mut full = vec!["-j"];
        full.extend(args.split_whitespace());
        let out = self.ip_args(&full);
        if out.trim().is_empty() {
            return Value::Array(Vec::new());
        }
        serde_json::from_str(&out).unwrap_or_else(|e| {
            panic!(
                "`ip -n {} -j {args}` printed invalid JSON ({e}): {out}",
                self.name
            )
        })
    }

    /// A `Command` running `program args` inside the namespace via
    /// `ip netns exec` (which execs: the child's pid is the program's).
    /// Stdin is null; set stdout/stderr as needed.
    pub fn command<P: AsRef<OsStr>, S: AsRef<OsStr>>(&self, program: P, args: &[S]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.arg("netns")
            .arg("exec")
            .arg(&self.name)
            .arg(program)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Spawns `program args` in the namespace with stdout and stderr piped.
    pub fn spawn<P: AsRef<OsStr>, S: AsRef<OsStr>>(&self, program: P, args: &[S]) -> Child {
        let mut cmd = self.command(&program, args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot spawn `ip netns exec {} {}`: {e}",
                self.name,
                program.as_ref().to_string_lossy()
            )
        })
    }

    /// Runs `program args` in the namespace to completion and returns its
    /// output (whatever the exit status).
    pub fn output<P: AsRef<OsStr>, S: AsRef<OsStr>>(&self, program: P, args: &[S]) -> Output {
        self.spawn(program, args)
            .wait_with_output()
            .expect("waiting for a process in the namespace")
    }

    /// Replaces the hosts file that programs started in the namespace (with
    /// [`Netns::command`], i.e. `ip netns exec`) read as /etc/hosts: `ip
    /// netns exec` bind-mounts /etc/netns/NAME/hosts over it. Programs
    /// already running see the new contents too, as long as the file is
    /// rewritten in place (as here) rather than replaced. Names missing
    /// from it are asked of a resolver on the namespace's loopback, where
    /// none listens: nothing is looked up beyond the namespace.
    pub fn write_hosts(&self, text: &str) {
        let dir = self.etc_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        for (file, contents) in [("hosts", text), ("resolv.conf", "nameserver 127.0.0.1\n")] {
            let path = dir.join(file);
            std::fs::write(&path, contents)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        }
    }

    /// /etc/netns/NAME, the namespace's overrides of /etc files.
    fn etc_dir(&self) -> std::path::PathBuf {
        std::path::Path::new("/etc/netns").join(&self.name)
    }

    /// Runs `f` on a thread that entered the namespace, and returns what it
    /// returns. Sockets `f` opens belong to the namespace, and stay there
    /// wherever they are used afterwards.
    pub fn in_ns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        use std::os::fd::AsRawFd;
        let path = std::path::Path::new("/run/netns").join(&self.name);
        thread::scope(|scope| {
            scope
                .spawn(|| {
                    let file = std::fs::File::open(&path)
                        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
                    // SAFETY: setns with a valid namespace fd; it changes
                    // only this thread, which ends with the scope.
                    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        panic!(
                            "cannot enter network namespace {} (setns needs CAP_SYS_ADMIN: run as root): {}",
                            self.name,
                            std::io::Error::last_os_error()
                        );
                    }
                    f()
                })
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// Writes a sysctl inside the namespace (e.g. `net/ipv6/conf/all/accept_dad`).
    pub fn sysctl(&self, key: &str, value: &str) {
        let out = self.output("sh", &["-c", &format!("echo {value} > /proc/sys/{key}")]);
        if !out.status.success() {
            panic!(
                "setting sysctl {key}={value} in {} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

impl Default for Netns {
    fn default() -> Self {
        Netns::new()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.etc_dir());
        let out = run_ip_raw(
            &[
                OsStr::new("netns"),
                OsStr::new("del"),
                OsStr::new(&self.name),
            ],
            None,
        );
        if !out.status.success() {
            eprintln!(
                "warning: `ip netns del {}` failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
}
