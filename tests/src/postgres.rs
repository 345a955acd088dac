//! `TestDatabase`: a PostgreSQL database owned by one test, dropped on drop.
//!
//! The server is the one `ROUTEWATCH_TEST_POSTGRES_URL` names, when set
//! (`.ci/run` starts a scratch server and sets it): a `postgres://` URL of
//! a role that may create databases. Collectors under test run inside
//! network namespaces, so the URL should name the server's Unix socket
//! directory (`postgres://postgres@%2Ftmp%2Fpg:5432/postgres`): 127.0.0.1
//! inside a namespace is that namespace's own loopback. The database in the URL is only used to
//! connect for `CREATE DATABASE` / `DROP DATABASE`.
//!
//! Without it, the first `TestDatabase` of a test process starts a private
//! server from the postgresql package's binaries
//! (`/usr/lib/postgresql/<version>/bin`, the newest): `initdb` into
//! `$TMPDIR/rwt-pg-<pid>` (as the `postgres` user when running as root,
//! since PostgreSQL refuses to run as root), trust authentication, listening
//! on 127.0.0.1 on a free port and on a socket in that directory, which the
//! databases' URLs name, with
//! durability turned off. The postmaster is the test process's child and
//! gets SIGQUIT (immediate shutdown) when the process exits: from an
//! `atexit` handler, which then removes the directory, and from the kernel
//! (`PR_SET_PDEATHSIG`) when the process is killed instead. Directories of
//! processes that no longer exist are removed by the next test process.
//!
//! With neither, creating a `TestDatabase` panics with a message saying what
//! to do: the tests fail, they never skip.

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread;
use std::time::Duration;

use ::postgres::config::Host;
use ::postgres::{Client, Config, NoTls};

use crate::util::{next_id, poll, read_lossy, tail_lines};

/// The variable naming the server to use instead of a private one.
pub const POSTGRES_URL_ENV: &str = "ROUTEWATCH_TEST_POSTGRES_URL";

/// Prefix of every database these tests create (`rwt_<hint>_<pid>_<n>`).
pub const DATABASE_PREFIX: &str = "rwt_";

/// Prefix of the private servers' directories (`rwt-pg-<pid>`).
const PRIVATE_DIR_PREFIX: &str = "rwt-pg-";

/// How long a private server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A uniquely named, empty database on the test server. Dropped on drop
/// (`WITH (FORCE)`, so connections left open do not keep it), also when the
/// test panics.
pub struct TestDatabase {
    name: String,
    url: String,
    server: &'static Server,
}

impl TestDatabase {
    /// Creates a fresh database named `rwt_<hint>_<pid>_<n>` (`name_hint`
    /// lower-cased, other characters than letters and digits replaced by
    /// `_`, cut to 30). Starts the private server on first use when
    /// `ROUTEWATCH_TEST_POSTGRES_URL` is unset. Panics with what to do when
    /// there is no server. May be called from within an async runtime.
    pub fn create(name_hint: &str) -> TestDatabase {
        let server = server();
        let name = format!(
            "{DATABASE_PREFIX}{}_{}_{}",
            sanitize_hint(name_hint),
            std::process::id(),
            next_id()
        );
        if let Err(e) = server.execute(&format!("CREATE DATABASE \"{name}\"")) {
            panic!(
                "cannot create test database {name} on {}: {e}",
                server.origin
            );
        }
        TestDatabase {
            url: with_database(&server.admin_url, &name),
            name,
            server,
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A `postgres://` URL of the database (with the credentials needed).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A blocking client connected to the database. The client runs its own
    /// runtime: use it outside async code (or from `spawn_blocking`).
    pub fn connect(&self) -> Client {
        Client::connect(&self.url, NoTls).unwrap_or_else(|e| {
            panic!(
                "cannot connect to test database {} on {}: {e}",
                self.name, self.server.origin
            )
        })
    }

    /// Runs `sql` (simple query protocol) and returns every value as text.
    pub fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.try_rows(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Like [`TestDatabase::rows`], failing (not panicking) on an error,
    /// e.g. while the tables do not exist yet.
    pub fn try_rows(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        let sql = sql.to_owned();
        blocking(move || {
            let mut client = self.connect();
            let messages = client.simple_query(&sql).map_err(|e| error_text(&e))?;
            Ok(messages
                .into_iter()
                .filter_map(|m| match m {
                    ::postgres::SimpleQueryMessage::Row(row) => Some(
                        (0..row.len())
                            .map(|i| row.get(i).map(str::to_owned))
                            .collect(),
                    ),
                    _ => None,
                })
                .collect())
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Err(e) = self.server.execute(&sql) {
            eprintln!(
                "warning: cannot drop test database {} on {}: {e}",
                self.name, self.server.origin
            );
        }
    }
}

/// `hint` as part of a database name: `[a-z0-9_]`, at most 30 characters.
fn sanitize_hint(hint: &str) -> String {
    let s: String = hint
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(30)
        .collect();
    if s.is_empty() {
        "db".to_owned()
    } else {
        s
    }
}

/// `url` with its database (the path) replaced by `database`; user, host,
/// port and query parameters are kept. `database` must not need escaping.
fn with_database(url: &str, database: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        panic!("not a postgres:// URL: {}", redact(url));
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let after = &rest[authority_end..];
    let query = after.find('?').map_or("", |q| &after[q..]);
    format!(
        "{}{}/{database}{query}",
        &url[..scheme_end + 3],
        &rest[..authority_end]
    )
}

/// `url` with the password (if any) replaced by `***`, for messages.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &authority[..colon],
            &url[scheme_end + 3 + at..]
        ),
        _ => url.to_owned(),
    }
}

/// Runs `f` on a thread of its own: the blocking client starts a runtime,
/// which panics on a thread that is inside one (an async test's).
fn blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// The server the databases are created on.
struct Server {
    /// URL of the database connected to for CREATE/DROP DATABASE.
    admin_url: String,
    /// What the server is, for messages.
    origin: String,
}

impl Server {
    /// Connects to the admin database and runs `sql`.
    fn execute(&self, sql: &str) -> Result<(), String> {
        blocking(|| {
            let mut client = connect_quietly(&self.admin_url)?;
            client.batch_execute(sql).map_err(|e| error_text(&e))
        })
    }
}

fn connect_quietly(url: &str) -> Result<Client, String> {
    let mut config: Config = url.parse().map_err(|e| error_text(&e))?;
    config.connect_timeout(Duration::from_secs(10));
    config.connect(NoTls).map_err(|e| error_text(&e))
}

/// An error with its causes (the client's own message is often only
/// "error connecting to server").
fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// The server for this process, chosen (and a private one started) once.
fn server() -> &'static Server {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    let server = SERVER.get_or_init(|| blocking(choose_server));
    match server {
        Ok(s) => s,
        Err(e) => panic!(
            "no PostgreSQL server for the tests: {e}\n\
             Set {POSTGRES_URL_ENV} to a postgres:// URL of a role that may create \
             databases (.ci/run starts the system cluster and sets it), or install \
             the postgresql package (`apt-get install postgresql`) so that the tests \
             start a private server from /usr/lib/postgresql/<version>/bin."
        ),
    }
}

fn choose_server() -> Result<Server, String> {
    match std::env::var(POSTGRES_URL_ENV) {
        Ok(url) if !url.trim().is_empty() => external_server(url.trim()),
        _ => private_server(),
    }
}

/// The server `ROUTEWATCH_TEST_POSTGRES_URL` names, checked to answer.
fn external_server(url: &str) -> Result<Server, String> {
    let origin = format!("{POSTGRES_URL_ENV}={}", redact(url));
    if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
        return Err(format!("{origin} is not a postgres:// URL"));
    }
    let config: Config = url
        .parse()
        .map_err(|e| format!("{origin} is not a valid URL: {}", error_text(&e)))?;
    let mut client =
        connect_quietly(url).map_err(|e| format!("cannot connect to {origin}: {e}"))?;
    client
        .simple_query("SELECT 1")
        .map_err(|e| format!("{origin} does not answer: {}", error_text(&e)))?;
    // Databases of test processes that were killed: only a local server's
    // process ids are ours to judge.
    let local = config.get_hosts().iter().all(|h| match h {
        Host::Tcp(h) => matches!(h.as_str(), "localhost" | "127.0.0.1" | "::1" | "[::1]"),
        Host::Unix(_) => true,
    });
    if local {
        drop_stale_databases(&mut client);
    }
    Ok(Server {
        admin_url: url.to_owned(),
        origin,
    })
}

/// Drops `rwt_<hint>_<pid>_<n>` databases whose process no longer exists.
fn drop_stale_databases(client: &mut Client) {
    let Ok(rows) = client.query(
        "SELECT datname FROM pg_database WHERE datname LIKE 'rwt\\_%'",
        &[],
    ) else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let mut parts = name.rsplitn(3, '_');
        let (Some(n), Some(pid)) = (parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(pid), true) = (pid.parse::<u32>(), n.chars().all(|c| c.is_ascii_digit())) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ =
                client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
        }
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb` and
/// `postgres`.
pub(crate) fn find_bin_dir() -> Result<PathBuf, String> {
    let root = Path::new("/usr/lib/postgresql");
    let mut found: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: Option<Vec<u32>> = e
                .file_name()
                .to_str()?
                .split('.')
                .map(|p| p.parse().ok())
                .collect();
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("postgres").exists())
                .then_some((version?, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        format!(
            "{POSTGRES_URL_ENV} is unset and there is no {}/<version>/bin/initdb \
             to start a private server with",
            root.display()
        )
    })
}

/// Uid and gid of `user`.
pub(crate) fn lookup_user(user: &str) -> Option<(u32, u32)> {
    let name = std::ffi::CString::new(user).ok()?;
    let mut buf = vec![0 as libc::c_char; 16384];
    // SAFETY: an all-zero passwd is a valid out-parameter.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to live memory of the sizes given.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some((pwd.pw_uid, pwd.pw_gid))
}

/// Removes private-server directories of processes that no longer exist,
/// stopping a server still running in one.
fn sweep_stale_private_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(Ok(pid)) = name.strip_prefix(PRIVATE_DIR_PREFIX).map(str::parse::<u32>) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let pidfile = entry.path().join("data/postmaster.pid");
        if let Some(pm) = read_lossy(&pidfile)
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<i32>().ok())
        {
            let comm = read_lossy(Path::new(&format!("/proc/{pm}/comm")));
            if comm.trim() == "postgres" {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(pm, libc::SIGQUIT) };
                poll(Duration::from_secs(10), Duration::from_millis(50), || {
                    (!Path::new(&format!("/proc/{pm}")).exists()).then_some(())
                });
            }
        }
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

/// What the `atexit` handler needs to stop the private server.
struct Running {
    pid: i32,
    exited: Arc<AtomicBool>,
    dir: PathBuf,
}

static RUNNING: OnceLock<Running> = OnceLock::new();

/// Stops the private server at process exit and removes its directory.
/// Must not panic (it is called from C).
extern "C" fn stop_private_server() {
    let Some(r) = RUNNING.get() else {
        return;
    };
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(r.pid, libc::SIGQUIT) };
    // The waiting thread reaps it.
    poll(Duration::from_secs(10), Duration::from_millis(20), || {
        r.exited.load(Ordering::SeqCst).then_some(())
    });
    let _ = std::fs::remove_dir_all(&r.dir);
}

/// Initializes and starts a private server (see the module's docs).
fn private_server() -> Result<Server, String> {
    let bin = find_bin_dir()?;
    sweep_stale_private_dirs();
    // SAFETY: geteuid has no preconditions.
    let run_as = if unsafe { libc::geteuid() } == 0 {
        Some(lookup_user("postgres").ok_or(
            "running as root, and PostgreSQL refuses to: the private server runs as the \
             `postgres` user, which does not exist (the postgresql package creates it)",
        )?)
    } else {
        None
    };
    let dir = std::env::temp_dir().join(format!("{PRIVATE_DIR_PREFIX}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let result = init_and_start(&bin, &dir, run_as);
    if result.is_err() && RUNNING.get().is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn init_and_start(bin: &Path, dir: &Path, run_as: Option<(u32, u32)>) -> Result<Server, String> {
    if let Some((uid, gid)) = run_as {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))
            .map_err(|e| format!("chown {} to postgres: {e}", dir.display()))?;
    }
    let data = dir.join("data");
    let as_user = |cmd: &mut Command| {
        cmd.current_dir(dir).stdin(Stdio::null());
        if let Some((uid, gid)) = run_as {
            cmd.uid(uid).gid(gid);
        }
    };

    let mut initdb = Command::new(bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8"])
        .args(["--locale=C", "--no-sync"]);
    as_user(&mut initdb);
    let out = initdb
        .output()
        .map_err(|e| format!("cannot run {}/initdb: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{}/initdb -D {} failed ({}):\n{}{}",
            bin.display(),
            data.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }

    let log = dir.join("postgres.log");
    let mut last_error = String::new();
    // A free port may be taken before the server binds it: try again.
    for _ in 0..3 {
        let port = free_port()?;
        // By its socket: a path reaches the server from inside the tests'
        // network namespaces too, where 127.0.0.1 is another loopback.
        let url = format!(
            "postgres://postgres@{}:{port}/postgres",
            percent_encode_path(dir)
        );
        let log_file = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("opening {}: {e}", log.display()))?;
        let log_err = log_file
            .try_clone()
            .map_err(|e| format!("opening {}: {e}", log.display()))?;
        let mut cmd = Command::new(bin.join("postgres"));
        cmd.arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"])
            .stdout(log_file)
            .stderr(log_err);
        as_user(&mut cmd);
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure only makes async-signal-safe system calls.
        unsafe {
            cmd.pre_exec(move || {
                // Runs after the uid change, which would clear it. The
                // signal goes when the thread that spawned the child ends,
                // so the spawning thread lives as long as the child.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let exited = Arc::new(AtomicBool::new(false));
        let pid = spawn_waited(cmd, exited.clone())
            .map_err(|e| format!("cannot run {}/postgres: {e}", bin.display()))?;

        let ready = poll(START_TIMEOUT, Duration::from_millis(50), || {
            if exited.load(Ordering::SeqCst) {
                return Some(false);
            }
            connect_quietly(&url).ok().map(|_| true)
        });
        match ready {
            Some(true) => {
                let first = RUNNING
                    .set(Running {
                        pid,
                        exited,
                        dir: dir.to_path_buf(),
                    })
                    .is_ok();
                if first {
                    // SAFETY: registers a function that takes no arguments.
                    unsafe { libc::atexit(stop_private_server) };
                }
                return Ok(Server {
                    admin_url: url,
                    origin: format!(
                        "the private server {} (127.0.0.1:{port}, log {})",
                        bin.join("postgres").display(),
                        log.display()
                    ),
                });
            }
            Some(false) => {
                let text = read_lossy(&log);
                last_error = format!(
                    "{}/postgres exited at start; {}:\n{}",
                    bin.display(),
                    log.display(),
                    tail_lines(&text, 20)
                );
                if !text.contains("could not bind") && !text.contains("could not create listen") {
                    break;
                }
            }
            None => {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGQUIT) };
                poll(Duration::from_secs(10), Duration::from_millis(20), || {
                    exited.load(Ordering::SeqCst).then_some(())
                });
                return Err(format!(
                    "{}/postgres did not accept connections on 127.0.0.1:{port} within \
                     {START_TIMEOUT:?}; {}:\n{}",
                    bin.display(),
                    log.display(),
                    tail_lines(&read_lossy(&log), 20)
                ));
            }
        }
    }
    Err(last_error)
}

/// A port on 127.0.0.1 that was free a moment ago.
/// A socket directory as the host part of a URL (`/` as `%2F`).
pub fn percent_encode_path(dir: &Path) -> String {
    let mut out = String::new();
    for b in dir.as_os_str().as_encoded_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(*b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub(crate) fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port on 127.0.0.1: {e}"))
}

/// Spawns `cmd` on a thread that then waits for it and sets `exited`; the
/// thread (which the child's parent-death signal is tied to) lives as long
/// as the child. Returns the child's pid.
fn spawn_waited(mut cmd: Command, exited: Arc<AtomicBool>) -> std::io::Result<i32> {
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("rwt-postgres".into())
        .spawn(move || match cmd.spawn() {
            Ok(mut child) => {
                let _ = tx.send(Ok(child.id() as i32));
                let _ = child.wait();
                exited.store(true, Ordering::SeqCst);
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        })?;
    rx.recv()
        .unwrap_or_else(|_| Err(std::io::Error::other("the spawning thread died")))
}

#[cfg(test)]
#[path = "postgres_tests.rs"]
mod tests;
