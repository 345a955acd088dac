//! `Collector`: a running `routewatch collect`, and `TestStore`: the store
//! it writes to (a SQLite file or a PostgreSQL database of its own), read
//! back with plain SQL and with `routewatch query`.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::agent::run_show;
use crate::bins::client_bin;
use crate::netns::Netns;
use crate::postgres::TestDatabase;
use crate::util::{poll, read_lossy, signal, tail_lines, temp_path, terminate, wait_timeout};

/// How long a collector may take to store what an agent numbered.
pub const STORE_SETTLE: Duration = Duration::from_secs(90);

/// The agent's current position, from `routewatch info`.
pub fn agent_cursor(ns: &Netns, addr: &str) -> (String, u64) {
    let info = run_show(ns.name(), &["info", "--insecure", "-o", "json", addr])
        .unwrap_or_else(|e| panic!("{e}"));
    let info = &info[0];
    (
        info["stream_id"].as_str().expect("stream_id").to_owned(),
        info["seq"].as_u64().expect("seq"),
    )
}

/// A running `routewatch collect --insecure --store URL ...` inside a
/// namespace, stderr captured; stopped on drop, its log printed if the
/// test panics.
pub struct Collector {
    child: Option<Child>,
    log_path: PathBuf,
    description: String,
}

impl Collector {
    /// Starts `routewatch collect --insecure --store STORE ARGS` in `ns`
    /// (ARGS: the targets and any options).
    pub fn start(ns: &Netns, store: &TestStore, args: &[&str]) -> Collector {
        Collector::start_via(ns, store, &[], args)
    }

    /// Like [`Collector::start`], run through `wrapper` (a command that
    /// execs its last argument with the rest, e.g. `prlimit --nofile=80 --`).
    pub fn start_via(ns: &Netns, store: &TestStore, wrapper: &[&str], args: &[&str]) -> Collector {
        let log_path = temp_path("collect.log");
        let log = File::create(&log_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log_path.display()));
        let log2 = log.try_clone().expect("cloning the log file handle");
        let url = store.url();
        let mut all = vec!["collect", "--insecure", "--store", url.as_str()];
        all.extend_from_slice(args);
        let bin = client_bin().display().to_string();
        let mut command: Vec<&str> = wrapper.to_vec();
        command.push(&bin);
        command.extend_from_slice(&all);
        let description = format!("ip netns exec {} {}", ns.name(), command.join(" "));
        let child = ns
            .command(command[0], &command[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn `{description}`: {e}"));
        Collector {
            child: Some(child),
            log_path,
            description,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("collector running").id()
    }

    /// What it printed so far.
    pub fn log(&self) -> String {
        read_lossy(&self.log_path)
    }

    /// `kill -9`, and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM; its exit status (killed after `timeout`).
    pub fn stop(mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("collector running");
        signal(child.id(), "TERM");
        match wait_timeout(&mut child, timeout) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                panic!(
                    "`{}` did not exit within {timeout:?} of SIGTERM\n--- log ---\n{}",
                    self.description,
                    tail_lines(&self.log(), 60)
                );
            }
        }
    }

    /// Waits for it to exit on its own; its status (panics after
    /// `timeout`).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("collector running");
        match wait_timeout(child, timeout) {
            Some(status) => {
                self.child = None;
                status
            }
            None => panic!(
                "`{}` still runs after {timeout:?}\n--- log ---\n{}",
                self.description,
                tail_lines(&self.log(), 60)
            ),
        }
    }

    /// Panics (with the log) unless it is still running.
    pub fn assert_running(&mut self) {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            panic!(
                "`{}` exited ({status})\n--- log ---\n{}",
                self.description,
                tail_lines(&self.log(), 60)
            );
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(5));
        }
        if thread::panicking() {
            eprintln!(
                "--- {} ---\n{}",
                self.description,
                tail_lines(&self.log(), 80)
            );
        }
        let _ = std::fs::remove_file(&self.log_path);
    }
}

/// A store for one test: removed (file or database) on drop.
pub enum TestStore {
    Sqlite(PathBuf),
    Postgres(TestDatabase),
}

impl TestStore {
    /// A SQLite file that does not exist yet.
    pub fn sqlite() -> TestStore {
        TestStore::Sqlite(temp_path("store.db"))
    }

    /// A fresh PostgreSQL database.
    pub fn postgres(hint: &str) -> TestStore {
        TestStore::Postgres(TestDatabase::create(hint))
    }

    /// The `--store` URL.
    pub fn url(&self) -> String {
        match self {
            TestStore::Sqlite(path) => format!("sqlite://{}", path.display()),
            TestStore::Postgres(db) => db.url().to_owned(),
        }
    }

    /// Runs `sql` and returns every value as text (NULL as `None`).
    pub fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.try_rows(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Like [`TestStore::rows`], failing (not panicking) while the store or
    /// its tables do not exist yet.
    pub fn try_rows(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        match self {
            TestStore::Sqlite(path) => {
                if !path.exists() {
                    return Err(format!("{} does not exist", path.display()));
                }
                let conn = rusqlite::Connection::open_with_flags(
                    path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .map_err(|e| format!("opening {}: {e}", path.display()))?;
                conn.busy_timeout(Duration::from_secs(10))
                    .map_err(|e| e.to_string())?;
                let mut statement = conn.prepare(sql).map_err(|e| e.to_string())?;
                let columns = statement.column_count();
                let mut rows = statement.query([]).map_err(|e| e.to_string())?;
                let mut out = Vec::new();
                while let Some(row) = rows.next().map_err(|e| e.to_string())? {
                    let values = (0..columns)
                        .map(|i| match row.get_ref(i) {
                            Ok(rusqlite::types::ValueRef::Null) | Err(_) => None,
                            Ok(rusqlite::types::ValueRef::Integer(n)) => Some(n.to_string()),
                            Ok(rusqlite::types::ValueRef::Real(f)) => Some(f.to_string()),
                            Ok(rusqlite::types::ValueRef::Text(t)) => {
                                Some(String::from_utf8_lossy(t).into_owned())
                            }
                            Ok(rusqlite::types::ValueRef::Blob(b)) => Some(format!("{b:?}")),
                        })
                        .collect();
                    out.push(values);
                }
                Ok(out)
            }
            TestStore::Postgres(db) => db.try_rows(sql),
        }
    }

    /// Runs `sql`, which changes the store (a test damaging a record on
    /// purpose); panics on an error.
    pub fn execute(&self, sql: &str) {
        match self {
            TestStore::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path)
                    .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
                conn.busy_timeout(Duration::from_secs(10))
                    .expect("setting the busy timeout");
                conn.execute_batch(sql)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            TestStore::Postgres(db) => {
                db.try_rows(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }

    /// The stored cursor of `target` (the address collected), if any.
    pub fn cursor(&self, target: &str) -> Option<(String, u64)> {
        let rows = self
            .try_rows(&format!(
                "SELECT stream_id, seq FROM targets WHERE COALESCE(address, name) = '{target}' AND stream_id <> ''"
            ))
            .ok()?;
        rows.first().map(|r| {
            (
                r[0].clone().unwrap_or_default(),
                r[1].as_deref().unwrap_or("0").parse().unwrap(),
            )
        })
    }

    /// Waits until the store holds everything the agent at `addr` (in
    /// `ns`) numbered so far; returns that position.
    pub fn wait_stored(&self, ns: &Netns, addr: &str) -> (String, u64) {
        let want = agent_cursor(ns, addr);
        self.wait_cursor(addr, &want, STORE_SETTLE);
        want
    }

    /// Waits until the stored cursor of `target` is `(stream, seq)`.
    pub fn wait_cursor(&self, target: &str, want: &(String, u64), timeout: Duration) {
        let reached = poll(timeout, Duration::from_millis(100), || {
            (self.cursor(target).as_ref() == Some(want)).then_some(())
        });
        if reached.is_none() {
            panic!(
                "the store's cursor of {target} did not reach {}:{} within {timeout:?} (it is {:?})",
                want.0,
                want.1,
                self.cursor(target)
            );
        }
    }

    /// The log's `(stream_id, seq)` of `target`, in order, duplicates kept
    /// (there must be none).
    pub fn log(&self, target: &str) -> Vec<(String, u64)> {
        self.rows(&format!(
            "SELECT e.stream_id, e.seq FROM events e JOIN targets t ON t.id = e.target_id
             WHERE COALESCE(t.address, t.name) = '{target}' ORDER BY e.stream_id, e.seq"
        ))
        .into_iter()
        .map(|r| {
            (
                r[0].clone().unwrap_or_default(),
                r[1].as_deref().unwrap_or("0").parse().unwrap(),
            )
        })
        .collect()
    }

    /// `routewatch query ARGS --store URL -o json`, run in `ns`: one JSON
    /// value per line.
    pub fn query(&self, ns: &Netns, args: &[&str]) -> Vec<Value> {
        let url = self.url();
        let mut all = vec!["query", "--store", url.as_str(), "-o", "json"];
        all.extend_from_slice(args);
        run_show(ns.name(), &all).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let TestStore::Sqlite(path) = self {
            for suffix in ["", "-wal", "-shm", ".collector-lock"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(PathBuf::from(p));
            }
        }
    }
}
