//! `Tail`: a long-running `routewatch tail -o json` whose output is
//! collected line by line and can be replayed at any moment.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::Value;

use crate::bins::client_bin;
use crate::netns::Netns;
use crate::replay::Replay;
use crate::util::{poll, read_lossy, tail_lines, temp_path};

/// A running `routewatch tail -o json`, killed on drop.
pub struct Tail {
    child: Mutex<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    stderr_path: PathBuf,
    description: String,
}

impl Tail {
    /// `routewatch tail --insecure -o json TARGET`, run inside `ns`.
    pub fn remote(ns: &Netns, target: &str) -> Tail {
        Tail::spawn(ns, &["tail", "--insecure", "-o", "json", target])
    }

    /// `routewatch tail -o json` without a target: the pipeline runs in the
    /// client process, on `ns`.
    pub fn in_process(ns: &Netns) -> Tail {
        Tail::spawn(ns, &["tail", "-o", "json"])
    }

    /// `routewatch ARGS` (a `tail -o json` with any options), run inside `ns`.
    pub fn with_args(ns: &Netns, args: &[&str]) -> Tail {
        Tail::spawn(ns, args)
    }

    fn spawn(ns: &Netns, args: &[&str]) -> Tail {
        let stderr_path = temp_path("tail.stderr");
        let stderr = File::create(&stderr_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", stderr_path.display()));
        let description = format!(
            "ip netns exec {} {} {}",
            ns.name(),
            client_bin().display(),
            args.join(" ")
        );
        let mut child = ns
            .command(client_bin(), args)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn `{description}`: {e}"));
        let stdout = child.stdout.take().expect("stdout piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let reader = thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                        sink.lock().unwrap().push(line);
                    }
                }
            }
        });
        Tail {
            child: Mutex::new(child),
            lines,
            reader: Some(reader),
            stderr_path,
            description,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap().id()
    }

    /// Sends `sig` (e.g. "STOP", "CONT") to the process.
    pub fn signal(&self, sig: &str) {
        crate::util::signal(self.pid(), sig);
    }

    /// Sends SIGTERM and waits up to `timeout` for a clean exit (which, for
    /// a tail with `--cursor-file`, saves the cursors).
    pub fn stop(&self, timeout: Duration) -> ExitStatus {
        self.signal("TERM");
        match crate::util::poll(timeout, Duration::from_millis(20), || self.exit_status()) {
            Some(status) => status,
            None => panic!(
                "tail did not exit within {timeout:?} of SIGTERM\n{}",
                self.report()
            ),
        }
    }

    /// Waits up to `timeout` for the process to exit on its own (`--count`,
    /// `--until`, `--retries`); panics if it does not.
    pub fn wait_exit(&self, timeout: Duration) -> ExitStatus {
        match crate::util::poll(timeout, Duration::from_millis(20), || self.exit_status()) {
            Some(status) => {
                // The reader thread may still be taking the last lines.
                std::thread::sleep(Duration::from_millis(100));
                status
            }
            None => panic!("tail did not exit within {timeout:?}\n{}", self.report()),
        }
    }

    /// A copy of every stdout line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Number of stdout lines so far.
    pub fn line_count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// The state obtained by applying every line so far.
    pub fn replay(&self) -> Replay {
        let lines = self.lines.lock().unwrap();
        Replay::from_lines(&lines)
    }

    /// The process's stderr so far.
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr_path)
    }

    /// The exit status, if the process has exited (it should not: tail runs
    /// until killed).
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.child.lock().unwrap().try_wait().ok().flatten()
    }

    /// A description of the process's state for failure messages.
    pub fn report(&self) -> String {
        let lines = self.lines();
        let last: Vec<&str> = lines
            .iter()
            .rev()
            .take(15)
            .rev()
            .map(String::as_str)
            .collect();
        format!(
            "tail `{}`: {}, {} lines; last lines:\n{}\n--- tail stderr ---\n{}",
            self.description,
            match self.exit_status() {
                Some(s) => format!("EXITED ({s})"),
                None => "running".to_owned(),
            },
            lines.len(),
            last.join("\n"),
            tail_lines(&self.stderr(), 40)
        )
    }

    /// Waits until `pred` holds for the replay (checked every 50 ms) and
    /// returns that replay; panics with the process's state after `timeout`.
    pub fn wait_for(&self, pred: impl Fn(&Replay) -> bool, timeout: Duration) -> Replay {
        match poll(timeout, Duration::from_millis(50), || {
            let r = self.replay();
            pred(&r).then_some(r)
        }) {
            Some(r) => r,
            None => panic!(
                "tail: condition not reached within {timeout:?}\n{}",
                self.report()
            ),
        }
    }

    /// Waits for the end of the snapshot (a `sync` marker as the last marker
    /// of every host).
    pub fn wait_synced(&self, timeout: Duration) -> Replay {
        self.wait_for(Replay::is_synced, timeout)
    }

    /// Every object the replay currently holds. Panics if the process has
    /// exited or printed lines that break the contract, so that a dead tail
    /// fails at once instead of at a comparison's deadline.
    pub fn objects(&self) -> Vec<Value> {
        if let Some(status) = self.exit_status() {
            panic!(
                "tail exited ({status}) although it must run until killed\n{}",
                self.report()
            );
        }
        let r = self.replay();
        if !r.errors.is_empty() {
            panic!(
                "tail printed {} bad lines, first: {}\n{}",
                r.errors.len(),
                r.errors[0],
                self.report()
            );
        }
        r.objects()
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.report());
        }
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}
