//! TLS to a PostgreSQL store: `sslmode`, `sslrootcert`, `sslcert` and
//! `sslkey` in the store URL, against a server of the test's own that
//! refuses TCP connections without TLS (tests/src/postgres_tls.rs).
//! Every case runs the real binary (`routewatch query hosts`, which opens
//! the store and migrates it as `collect` does).

use std::process::Command;

use routewatch_tests::bins::client_bin;
use routewatch_tests::postgres_tls::TlsPostgres;
use routewatch_tests::util::TempDir;

/// `routewatch query --store URL hosts`: (exit code, stderr).
fn query(url: &str) -> (i32, String) {
    let out = Command::new(client_bin())
        .args(["query", "--store", url, "hosts"])
        .output()
        .expect("routewatch query");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn connects(url: &str) {
    let (code, stderr) = query(url);
    assert_eq!(code, 0, "{url}: {stderr}");
}

fn refused(url: &str, words: &str) -> String {
    let (code, stderr) = query(url);
    assert_ne!(code, 0, "{url} connected");
    assert!(stderr.contains(words), "{url}: {stderr}");
    stderr
}

#[test]
fn tls_to_postgres_checks_what_each_sslmode_promises() {
    let pg = TlsPostgres::start();
    let ca = pg.file("ca.pem");
    let root = format!("sslrootcert={ca}");

    // The server refuses TCP without TLS: whatever connects below used it.
    refused(&pg.url("postgres", "sslmode=disable"), "cannot connect");

    connects(&pg.url("postgres", ""));
    connects(&pg.url("postgres", "sslmode=prefer"));
    connects(&pg.url("postgres", "sslmode=require"));
    connects(&pg.url("postgres", &format!("sslmode=verify-ca&{root}")));
    connects(&pg.url("postgres", &format!("sslmode=verify-full&{root}")));
    connects(&pg.url("postgres", &format!("sslmode=require&{root}")));

    // Another CA: a server whose certificate it did not sign is refused by
    // every mode that checks, including require once a root is named.
    let other = TempDir::new("other-ca");
    let made = Command::new(client_bin())
        .args(["certs", "init"])
        .arg(other.as_path())
        .output()
        .unwrap();
    assert!(made.status.success());
    let wrong = format!("sslrootcert={}", other.join("ca.pem").display());
    for mode in ["verify-ca", "verify-full", "require"] {
        let stderr = refused(
            &pg.url("postgres", &format!("sslmode={mode}&{wrong}")),
            "not signed by a CA of sslrootcert",
        );
        assert!(!stderr.contains("is PostgreSQL running"), "{stderr}");
    }

    // verify-full checks the name dialled; verify-ca does not. The
    // certificate names 127.0.0.1 only.
    let by_name = |params: &str| {
        format!(
            "postgres://postgres@localhost:{}/postgres?{params}",
            pg.port
        )
    };
    refused(
        &by_name(&format!("sslmode=verify-full&{root}")),
        "does not carry the host name",
    );
    connects(&by_name(&format!("sslmode=verify-ca&{root}")));

    // A mode that checks needs a root, and says so before dialling.
    refused(
        &pg.url("postgres", "sslmode=verify-full"),
        "add sslrootcert=/path/to/ca.pem",
    );

    // Client certificates: `collector` is admitted by its certificate.
    let client = format!(
        "sslcert={}&sslkey={}",
        pg.file("client.pem"),
        pg.file("client-key.pem")
    );
    connects(&pg.url("collector", &format!("sslmode=verify-full&{root}&{client}")));
    refused(
        &pg.url("collector", &format!("sslmode=verify-full&{root}")),
        "add sslcert=... and sslkey=...",
    );
    // ... and not as another user with the same certificate.
    pg.psql("CREATE ROLE auditor LOGIN");
    refused(
        &pg.url("auditor", &format!("sslmode=verify-full&{root}&{client}")),
        "its common name must be the user",
    );
}
