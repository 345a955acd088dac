//! `Agent`: `routewatch-agent` running in a test's namespace.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bins::{agent_bin, client_bin};
use crate::netns::Netns;
use crate::tail::Tail;
use crate::util::{read_lossy, tail_lines, temp_path, terminate, wait_timeout};

/// Where the agent listens, inside its namespace.
pub const AGENT_ADDR: &str = "127.0.0.1:50051";

/// How long the agent may take to accept connections after starting.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one `routewatch show` may take.
pub const SHOW_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `routewatch-agent --insecure --listen 127.0.0.1:50051` (or
/// one serving TLS, see [`Agent::start_tls`]) in a namespace, with stdout
/// and stderr captured to a temporary file. Stopped (SIGTERM, then SIGKILL)
/// on drop; its log is printed if the test panics.
pub struct Agent {
    child: Option<Child>,
    ns_name: String,
    log_path: PathBuf,
    addr: String,
    /// What `routewatch show` and `tail` need to reach it.
    client_args: Vec<String>,
}

impl Agent {
    /// Starts the agent in `ns` and waits until it accepts connections.
    pub fn start(ns: &Netns) -> Agent {
        Agent::start_with(ns, &[])
    }

    /// Like [`Agent::start`] with extra arguments (e.g.
    /// `["--netlink-rcvbuf", "4096"]`).
    pub fn start_with(ns: &Netns, extra: &[&str]) -> Agent {
        Agent::start_at(ns, AGENT_ADDR, extra)
    }

    /// Like [`Agent::start_with`], listening on `addr` (inside `ns`).
    pub fn start_at(ns: &Netns, addr: &str, extra: &[&str]) -> Agent {
        Agent::start_via(ns, &[], addr, extra)
    }

    /// Like [`Agent::start_at`], run through `wrapper` (a command that
    /// execs its last argument with the rest, e.g. `setpriv ... --`).
    pub fn start_via(ns: &Netns, wrapper: &[&str], addr: &str, extra: &[&str]) -> Agent {
        let mut args = vec!["--insecure"];
        args.extend_from_slice(extra);
        Agent::spawn(ns, wrapper, addr, &args, &["--insecure"])
    }

    /// An agent on [`AGENT_ADDR`] started with `agent_args` (its TLS flags
    /// and any others, no `--insecure`); its `show` and `tail` connect with
    /// `client_args` (e.g. `--ca`, `--cert`, `--key`).
    pub fn start_tls(ns: &Netns, agent_args: &[&str], client_args: &[&str]) -> Agent {
        Agent::spawn(ns, &[], AGENT_ADDR, agent_args, client_args)
    }

    fn spawn(
        ns: &Netns,
        wrapper: &[&str],
        addr: &str,
        extra: &[&str],
        client_args: &[&str],
    ) -> Agent {
        let log_path = temp_path("agent.log");
        let log = File::create(&log_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log_path.display()));
        let log2 = log.try_clone().expect("cloning the log file handle");
        let agent = agent_bin().to_string_lossy().into_owned();
        let mut args: Vec<&str> = wrapper.to_vec();
        args.extend_from_slice(&[agent.as_str(), "--listen", addr]);
        args.extend_from_slice(extra);
        let child = ns
            .command(args[0], &args[1..])
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", agent_bin().display()));
        let mut agent = Agent {
            child: Some(child),
            ns_name: ns.name().to_owned(),
            log_path,
            addr: addr.to_owned(),
            client_args: client_args.iter().map(|a| a.to_string()).collect(),
        };
        agent.wait_ready(ns, READY_TIMEOUT);
        agent
    }

    fn wait_ready(&mut self, ns: &Netns, timeout: Duration) {
        let start = Instant::now();
        let (host, port) = self.addr.rsplit_once(':').expect("addr is host:port");
        let probe = format!("exec 3<>/dev/tcp/{host}/{port}");
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "routewatch-agent exited ({status}) before accepting connections\n--- agent log ---\n{}",
                    self.log()
                );
            }
            let out = ns.output("bash", &["-c", &probe]);
            if out.status.success() {
                return;
            }
            if start.elapsed() >= timeout {
                panic!(
                    "routewatch-agent did not accept connections on {} within {timeout:?}\n--- agent log ---\n{}",
                    self.addr,
                    tail_lines(&self.log(), 200)
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The address the agent listens on (inside its namespace).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("agent running").id()
    }

    /// Everything the agent logged so far.
    pub fn log(&self) -> String {
        read_lossy(&self.log_path)
    }

    /// The exit status, if the agent has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Panics (with the log) if the agent has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.exit_status() {
            panic!(
                "routewatch-agent exited unexpectedly ({status})\n--- agent log ---\n{}",
                tail_lines(&self.log(), 200)
            );
        }
    }

    /// `routewatch show --insecure -o json ADDR` (or with the agent's TLS
    /// client arguments) run in the agent's namespace; `Err` describes a
    /// failure (exit status, stderr, bad JSON).
    pub fn try_show(&self) -> Result<Vec<Value>, String> {
        let client_args: Vec<&str> = self.client_args.iter().map(String::as_str).collect();
        self.try_show_with(&client_args)
    }

    /// `routewatch show -o json CLIENT_ARGS ADDR` in the agent's namespace.
    pub fn try_show_with(&self, client_args: &[&str]) -> Result<Vec<Value>, String> {
        let mut args = vec!["show", "-o", "json"];
        args.extend_from_slice(client_args);
        args.push(&self.addr);
        run_show(&self.ns_name, &args)
    }

    /// Like [`Agent::try_show`], panicking (with the agent's log) on failure.
    pub fn show(&self) -> Vec<Value> {
        self.try_show()
            .unwrap_or_else(|e| panic!("{e}\n--- agent log ---\n{}", tail_lines(&self.log(), 100)))
    }

    /// A `routewatch tail` connected to this agent.
    pub fn tail(&self, ns: &Netns) -> Tail {
        let client_args: Vec<&str> = self.client_args.iter().map(String::as_str).collect();
        self.tail_with(ns, &client_args)
    }

    /// A `routewatch tail -o json CLIENT_ARGS ADDR` connected to this agent.
    pub fn tail_with(&self, ns: &Netns, client_args: &[&str]) -> Tail {
        let mut args = vec!["tail", "-o", "json"];
        args.extend_from_slice(client_args);
        args.push(&self.addr);
        Tail::with_args(ns, &args)
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit; returns the
    /// exit status (panics if the agent does not exit in time).
    pub fn stop(self, timeout: Duration) -> ExitStatus {
        self.stop_with("TERM", timeout)
    }

    /// Sends `signal` (e.g. "INT") and waits up to `timeout` for the exit;
    /// returns the exit status (panics if the agent does not exit in time).
    pub fn stop_with(mut self, signal: &str, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("agent running");
        crate::util::signal(child.id(), signal);
        match wait_timeout(&mut child, timeout) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "routewatch-agent did not exit within {timeout:?} of SIG{signal}\n--- agent log ---\n{}",
                    tail_lines(&self.log(), 100)
                );
            }
        }
    }
}

/// Runs `routewatch ARGS` in namespace `ns_name` with a deadline and parses
/// its stdout as JSON lines.
pub fn run_show(ns_name: &str, args: &[&str]) -> Result<Vec<Value>, String> {
    let description = format!(
        "ip netns exec {ns_name} {} {}",
        client_bin().display(),
        args.join(" ")
    );
    let stdout_path = temp_path("show.stdout");
    let stderr_path = temp_path("show.stderr");
    let result = (|| {
        let mut child = std::process::Command::new("ip")
            .args(["netns", "exec", ns_name])
            .arg(client_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout_path).map_err(|e| e.to_string())?)
            .stderr(File::create(&stderr_path).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("cannot spawn `{description}`: {e}"))?;
        let status = match wait_timeout(&mut child, SHOW_TIMEOUT) {
            Some(s) => s,
            None => {
                terminate(&mut child, Duration::from_secs(1));
                return Err(format!(
                    "`{description}` did not exit within {SHOW_TIMEOUT:?}\n--- stderr ---\n{}",
                    tail_lines(&read_lossy(&stderr_path), 40)
                ));
            }
        };
        let stdout = read_lossy(&stdout_path);
        let stderr = read_lossy(&stderr_path);
        if !status.success() {
            return Err(format!(
                "`{description}` failed ({status})\n--- stderr ---\n{}",
                tail_lines(&stderr, 40)
            ));
        }
        let mut out = Vec::new();
        for (i, line) in stdout.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line).map_err(|e| {
                format!(
                    "`{description}` printed a line that is not JSON (line {}: {e}): {line}",
                    i + 1
                )
            })?;
            out.push(v);
        }
        Ok(out)
    })();
    let _ = std::fs::remove_file(&stdout_path);
    let _ = std::fs::remove_file(&stderr_path);
    result
}

/// `routewatch show -o json` without a target, run inside `ns`: the
/// pipeline runs in the client process on that namespace.
pub fn show_in_process(ns: &Netns) -> Vec<Value> {
    run_show(ns.name(), &["show", "-o", "json"]).unwrap_or_else(|e| panic!("{e}"))
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(5));
        }
        if thread::panicking() {
            eprintln!(
                "--- routewatch-agent log ({}) ---\n{}",
                self.log_path.display(),
                tail_lines(&self.log(), 200)
            );
        } else {
            let _ = std::fs::remove_file(&self.log_path);
        }
    }
}
