//! Self-tests of `TestDatabase` against a real server (the one
//! `ROUTEWATCH_TEST_POSTGRES_URL` names, or the private one).

use std::panic::{catch_unwind, AssertUnwindSafe};

use ::postgres::Client;

use super::*;

fn database_exists(client: &mut Client, name: &str) -> bool {
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .unwrap();
    row.get::<_, i64>(0) == 1
}

fn table_exists(client: &mut Client, table: &str) -> bool {
    let row = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .unwrap();
    row.get(0)
}

#[test]
fn databases_are_distinct_reachable_and_dropped_on_drop() {
    let a = TestDatabase::create("Self-Test");
    let b = TestDatabase::create("Self-Test");
    let prefix = format!("rwt_self_test_{}_", std::process::id());
    assert!(a.name().starts_with(&prefix), "{}", a.name());
    assert_ne!(a.name(), b.name());
    assert_ne!(a.url(), b.url());
    assert!(a.url().starts_with("postgres"), "{}", a.url());
    assert!(a.url().contains(a.name()), "{}", a.url());

    let mut ca = a.connect();
    let mut cb = b.connect();
    for c in [&mut ca, &mut cb] {
        let one: i32 = c.query_one("SELECT 1", &[]).unwrap().get(0);
        assert_eq!(one, 1);
    }
    let current: String = ca
        .query_one("SELECT current_database()", &[])
        .unwrap()
        .get(0);
    assert_eq!(current, a.name());

    ca.batch_execute("CREATE TABLE routes (dst text); INSERT INTO routes VALUES ('10.0.0.0/8')")
        .unwrap();
    assert!(table_exists(&mut ca, "routes"));
    assert!(!table_exists(&mut cb, "routes"));

    // Dropped although a connection to it is still open.
    let name = a.name().to_owned();
    assert!(database_exists(&mut cb, &name));
    drop(a);
    assert!(!database_exists(&mut cb, &name));
    assert!(ca.query_one("SELECT 1", &[]).is_err());
}

#[test]
fn database_is_dropped_when_the_test_panics() {
    let mut name = String::new();
    let r = catch_unwind(AssertUnwindSafe(|| {
        let db = TestDatabase::create("panics");
        name = db.name().to_owned();
        db.connect().batch_execute("SELECT * FROM missing").unwrap();
    }));
    assert!(r.is_err(), "a failing query must panic");
    assert!(!name.is_empty());
    let other = TestDatabase::create("panics");
    assert!(!database_exists(&mut other.connect(), &name));
}

#[test]
fn hints_and_urls() {
    assert_eq!(sanitize_hint("Route History/v6"), "route_history_v6");
    assert_eq!(sanitize_hint(""), "db");
    assert_eq!(sanitize_hint(&"x".repeat(100)).len(), 30);
    assert_eq!(
        with_database("postgres://u:p@127.0.0.1:5432/routewatch_test", "rwt_a_1_2"),
        "postgres://u:p@127.0.0.1:5432/rwt_a_1_2"
    );
    assert_eq!(
        with_database("postgresql://localhost", "d"),
        "postgresql://localhost/d"
    );
    assert_eq!(
        with_database("postgres://u@h/x?sslmode=disable&application_name=t", "d"),
        "postgres://u@h/d?sslmode=disable&application_name=t"
    );
    assert_eq!(
        with_database("postgres://h?connect_timeout=5", "d"),
        "postgres://h/d?connect_timeout=5"
    );
    assert_eq!(
        with_database("postgres:///x?host=/run/postgresql", "d"),
        "postgres:///d?host=/run/postgresql"
    );
    assert_eq!(
        redact("postgres://routewatch:secret@127.0.0.1:5432/t"),
        "postgres://routewatch:***@127.0.0.1:5432/t"
    );
    assert_eq!(redact("postgres://u@h/t"), "postgres://u@h/t");
}
