//! A PostgreSQL server of a test's own with TLS on, for the tests of TLS to
//! the store: certificates from `routewatch certs init`, and a pg_hba.conf
//! that admits TCP connections over TLS only.
//!
//! Roles: `postgres` over TLS with any client (trust), `collector` (owner
//! of the database `fleet`) over TLS with a client certificate whose common
//! name is `collector`, signed by the server's CA (`cert` authentication);
//! every connection without TLS
//! over TCP is refused. The Unix socket (in the server's directory) trusts
//! everyone, for setting up.
//!
//! Stopped (`pg_ctl stop -m immediate`) and its directory removed on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::bins::client_bin;
use crate::postgres::{find_bin_dir, free_port, lookup_user};
use crate::util::TempDir;

pub struct TlsPostgres {
    bin: PathBuf,
    dir: TempDir,
    run_as: (u32, u32),
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    /// The PKI the server's certificate comes from (`ca.pem`,
    /// `client.pem`, `client-key.pem` for the role `collector`).
    pub pki: PathBuf,
}

impl TlsPostgres {
    /// Starts it; panics with what is missing when it cannot.
    pub fn start() -> TlsPostgres {
        let bin = find_bin_dir().unwrap_or_else(|e| panic!("a TLS PostgreSQL server: {e}"));
        let run_as = lookup_user("postgres").expect(
            "a TLS PostgreSQL server runs as the `postgres` user, which does not exist \
             (the postgresql package creates it)",
        );
        let dir = TempDir::new("pg-tls");
        std::fs::create_dir_all(dir.as_path()).unwrap();
        let pki = dir.as_path().join("pki");
        let certs = Command::new(client_bin())
            .args(["certs", "init"])
            .arg(&pki)
            .args(["--agent-name", "127.0.0.1", "--client-id", "collector"])
            .output()
            .expect("routewatch certs init");
        assert!(
            certs.status.success(),
            "routewatch certs init: {}",
            String::from_utf8_lossy(&certs.stderr)
        );
        let server = dir.as_path().join("server");
        std::fs::create_dir(&server).unwrap();
        // PostgreSQL wants its key readable by itself alone.
        for (from, to) in [
            ("agent.pem", "server.pem"),
            ("agent-key.pem", "server-key.pem"),
            ("ca.pem", "ca.pem"),
        ] {
            std::fs::copy(pki.join(from), server.join(to)).unwrap();
        }
        chown_tree(&server, run_as);
        std::os::unix::fs::chown(dir.as_path(), Some(run_as.0), Some(run_as.1)).unwrap();

        let data = server.join("data");
        let run = |program: &str, args: &[&str]| {
            let out = Command::new(bin.join(program))
                .args(args)
                .current_dir("/")
                .uid(run_as.0)
                .gid(run_as.1)
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("{program}: {e}"));
            assert!(
                out.status.success(),
                "{program} {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let data_s = data.to_str().unwrap();
        run(
            "initdb",
            &[
                "-D",
                data_s,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all collector 127.0.0.1/32 cert\n\
             hostssl all postgres 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        let port = free_port().unwrap();
        let s = |name: &str| server.join(name).to_str().unwrap().to_owned();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file={} \
             -c ssl_key_file={} -c ssl_ca_file={} -c fsync=off",
            server.display(),
            s("server.pem"),
            s("server-key.pem"),
            s("ca.pem"),
        );
        let log = server.join("log");
        run(
            "pg_ctl",
            &[
                "-D",
                data_s,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "-o",
                &options,
                "start",
            ],
        );
        let me = TlsPostgres {
            bin,
            dir,
            run_as,
            port,
            pki,
        };
        me.psql("CREATE ROLE collector LOGIN");
        me.psql("CREATE DATABASE fleet OWNER collector");
        me
    }

    /// Runs `sql` as `postgres` over the Unix socket.
    pub fn psql(&self, sql: &str) {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .arg("-h")
            .arg(self.dir.as_path().join("server"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(sql)
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql -c {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `postgres://USER@127.0.0.1:PORT/DB?PARAMS`: the database `postgres`
    /// for the user `postgres`, else `fleet` (owned by `collector`).
    pub fn url(&self, user: &str, params: &str) -> String {
        let db = if user == "postgres" {
            "postgres"
        } else {
            "fleet"
        };
        format!("postgres://{user}@127.0.0.1:{}/{db}?{params}", self.port)
    }

    /// A file of the PKI, as a URL parameter's value.
    pub fn file(&self, name: &str) -> String {
        self.pki.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let data = self.dir.as_path().join("server").join("data");
        let _ = Command::new(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .current_dir("/")
            .uid(self.run_as.0)
            .gid(self.run_as.1)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn chown_tree(path: &Path, (uid, gid): (u32, u32)) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap().flatten() {
            chown_tree(&entry.path(), (uid, gid));
        }
    }
}

use std::os::unix::process::CommandExt;
