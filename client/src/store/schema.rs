//! The store's schema: one logical schema for SQLite and PostgreSQL,
//! applied by numbered migrations recorded in `schema_version`.
//!
//! # Tables
//!
//! - `targets`: one row per agent address followed (`name`, as dialled),
//!   with the host name it reports, its **cursor** (`stream_id`, `seq`;
//!   `''`/0 before the first complete snapshot), the next version number to
//!   give out, and when it was first and last heard from. The cursor is
//!   written in the same transaction as the rows it covers, and only moves
//!   from the value the writer read (compare and set): a collector killed at
//!   any moment and restarted stores every event exactly once.
//! - `versions`: every version of every route, nexthop object and rule, valid
//!   from `valid_from` until `valid_to` (NULL while current), with the
//!   stream position and origin that opened and closed it. `object` is the
//!   API's encoded `Route`, `Nexthop` or `Rule`; `kind`, `family`, `table_id` and the
//!   destination (`dst_len`, and the first and last address `dst_lo`,
//!   `dst_hi` as bytes) are copied out for queries: "within PREFIX" is
//!   `family = f AND dst_len >= len AND dst_lo >= lo AND dst_lo <= hi AND
//!   dst_hi <= hi` (the redundant `dst_lo <= hi` bounds the index on
//!   `(family, dst_lo)` from above, so that what is read follows the
//!   answer).
//!   A version that a resync's snapshot no longer held is closed with
//!   `closed_origin` = [`CLOSED_BY_RESYNC`].
//! - `events`: the raw log of changes, one row per `(target_id, stream_id,
//!   seq)` (unique), pointing at the version it opened (add) or closed
//!   (delete). Snapshot contents have no sequence numbers of their own:
//!   they are versions with origin dump, not log rows.
//! - `version_columns`: the readable columns of every version (its table,
//!   destination, gateway, ... in iproute2's words and the whole object as
//!   `ip -j -d` JSON), one row per `(target_id, vid)`, written with the
//!   version and never updated; the views join it (docs/store.md).
//!   Migration 3 adds who opened the version ([`ATTRIBUTION_COLUMNS`]:
//!   `changed_by` as text, its pid, comm and pod UID, and a reconcile's
//!   `reason`), NULL for versions stored before and for snapshots.
//!   Migration 5 adds the same columns to `events`, for who made a delete
//!   (an add's attribution is its version's).
//! - Migration 4 keys a record by the agent's identity rather than the
//!   address dialled: `targets.agent_id` (`AGENT_ID/NETNS`, unique; NULL
//!   until an agent that reports one is reached) and `targets.address`
//!   (the address it was last reached at; `name` keeps the address of a
//!   record made before, and is the identity for a record made after),
//!   and `target_addresses`, one row per `(target_id, address)` the agent
//!   was reached at, with when first and last. A record of an address
//!   becomes the record of the first agent with an identity reached there.
//! - Migration 6 partitions the history on PostgreSQL by UTC day:
//!   `versions` by `valid_until` (`valid_to`, or [`CURRENT`] while the
//!   version is current: the partition `versions_current`; a version that
//!   ends moves to `versions_YYYYMMDD`), `events` by `time`
//!   (`events_YYYYMMDD`). The keys gain the partition key:
//!   `versions (target_id, vid, valid_until)`, `events (target_id,
//!   stream_id, seq, time)`. Collectors create the partitions ahead and
//!   `--retain` drops them whole. SQLite gains `valid_until` alone.
//! - `gaps`: where the record is not exact. A resync makes one, from the
//!   last position stored before it to the Sync after it; history inside a
//!   gap is unknown.
//!
//! Indexes serve the queries (a host's versions by time, destinations by
//! prefix) and nothing that ingest would pay for: the current versions
//! are read by the primary key's target prefix when a collector claims a
//! target, and `--retain` prunes SQLite by scanning. On SQLite a
//! version's closing columns are in no index, so closing it rewrites no
//! index entry; on PostgreSQL closing it moves it to its day's partition.
//!
//! Times are nanoseconds since the Unix epoch (the agent's observation
//! time); `seq` values are the agent's u64 stored as signed 64-bit.

/// Which SQL dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// The schema version this build writes and reads.
pub const VERSION: i64 = 7;

/// `versions.kind` of a route.
pub const KIND_ROUTE: i64 = 1;
/// `versions.kind` of a nexthop object.
pub const KIND_NEXTHOP: i64 = 2;
/// `versions.kind` of a policy rule (`table_id` is the table it looks up).
pub const KIND_RULE: i64 = 3;

/// `closed_origin` of a version that a resync's snapshot no longer held
/// (the API's origins are 1 notification, 2 dump, 3 reconcile).
pub const CLOSED_BY_RESYNC: i64 = 4;

/// A destination as `versions` stores it: `(dst_len, dst_lo, dst_hi)`, the
/// prefix length and its first and last address as bytes (4 or 16). Rows
/// are written and prefix queries bound with this one function, so that
/// the two always agree.
pub fn destination(net: &ipnet::IpNet) -> (i64, Vec<u8>, Vec<u8>) {
    let bytes = |ip| match ip {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    };
    (
        i64::from(net.prefix_len()),
        bytes(net.network()),
        bytes(net.broadcast()),
    )
}

/// The statements of migration `n` (1-based) in `dialect`.
pub fn migration(dialect: Dialect, n: i64) -> Option<Vec<String>> {
    let (id, blob) = match dialect {
        Dialect::Sqlite => ("INTEGER PRIMARY KEY", "BLOB"),
        Dialect::Postgres => (
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            "BYTEA",
        ),
    };
    let without_rowid = match dialect {
        Dialect::Sqlite => " WITHOUT ROWID",
        Dialect::Postgres => "",
    };
    // PostgreSQL: room on every page for the update that closes a version,
    // so that it stays on the page and touches no index (a HOT update):
    // `valid_to` and the closing columns are in no index for that reason.
    let versions_storage = match dialect {
        Dialect::Sqlite => " WITHOUT ROWID",
        Dialect::Postgres => " WITH (fillfactor = 70)",
    };
    match n {
        1 => Some(vec![
            format!(
                "CREATE TABLE targets (
                    id {id},
                    name TEXT NOT NULL UNIQUE,
                    host TEXT NOT NULL DEFAULT '',
                    stream_id TEXT NOT NULL DEFAULT '',
                    seq BIGINT NOT NULL DEFAULT 0,
                    next_vid BIGINT NOT NULL DEFAULT 1,
                    first_seen BIGINT,
                    last_seen BIGINT
                )"
            ),
            format!(
                "CREATE TABLE versions (
                    {},
                    PRIMARY KEY (target_id, vid)
                ){versions_storage}",
                VERSION_COLUMNS
                    .map(|c| c.replace("BLOB", blob))
                    .join(",\n                    ")
            ),
            "CREATE INDEX versions_from ON versions (target_id, valid_from)".into(),
            "CREATE INDEX versions_dst ON versions (family, dst_lo)".into(),
            format!(
                "CREATE TABLE events (
                    {},
                    PRIMARY KEY (target_id, stream_id, seq)
                ){without_rowid}",
                EVENT_COLUMNS.join(",\n                    ")
            ),
            // The log grows in time order: on PostgreSQL a block-range
            // index finds old rows for --retain at almost no cost to ingest.
            match dialect {
                Dialect::Sqlite => "CREATE INDEX events_time ON events (time)".into(),
                Dialect::Postgres => "CREATE INDEX events_time ON events USING brin (time)".into(),
            },
            "CREATE TABLE gaps (
                target_id BIGINT NOT NULL,
                from_time BIGINT,
                from_stream TEXT NOT NULL,
                from_seq BIGINT NOT NULL,
                to_time BIGINT NOT NULL,
                to_stream TEXT NOT NULL,
                to_seq BIGINT NOT NULL,
                cause BIGINT NOT NULL,
                reason TEXT NOT NULL
            )"
            .into(),
            "CREATE INDEX gaps_target ON gaps (target_id, to_time)".into(),
        ]),
        // The readable columns of every version, in a table of their own
        // (filled by the writer, and for older rows by
        // `columns::backfill` right after this migration), and the views
        // over them: see docs/store.md. Their own table, written once and
        // never updated, keeps `versions` narrow: closing a version
        // rewrites a short row, not its JSON.
        2 => {
            let columns: Vec<String> = READABLE_COLUMNS
                .iter()
                .map(|(name, ty)| {
                    let ty = match *ty {
                        "int" => "BIGINT",
                        _ => "TEXT",
                    };
                    format!("{name} {ty},")
                })
                .collect();
            let mut out = vec![format!(
                "CREATE TABLE version_columns (
                    target_id BIGINT NOT NULL,
                    vid BIGINT NOT NULL,
                    {}
                    PRIMARY KEY (target_id, vid)
                ){without_rowid}",
                columns.join("\n                    ")
            )];
            out.extend(views(dialect, 2));
            Some(out)
        }
        // Who opened each version, beside its readable columns; the views
        // are made again to show them.
        3 => {
            let mut out: Vec<String> = ["current_routes", "route_history", "route_changes"]
                .iter()
                .map(|v| format!("DROP VIEW {v}"))
                .collect();
            out.extend(ATTRIBUTION_COLUMNS.iter().map(|(name, ty)| {
                let ty = match *ty {
                    "int" => "BIGINT",
                    _ => "TEXT",
                };
                format!("ALTER TABLE version_columns ADD COLUMN {name} {ty}")
            }));
            out.extend(
                views(dialect, 3)
                    .into_iter()
                    .filter(|v| !v.contains("VIEW record_gaps") && !v.contains("VIEW fleet_hosts")),
            );
            Some(out)
        }
        // Records keyed by the agent's identity, the addresses each agent
        // was reached at, and the views again to show them. Existing
        // records keep their rows: their address is their name, and the
        // first agent with an identity reached there adopts them.
        4 => {
            let mut out = vec![
                "ALTER TABLE targets ADD COLUMN agent_id TEXT".to_owned(),
                "ALTER TABLE targets ADD COLUMN address TEXT".to_owned(),
                "UPDATE targets SET address = name".to_owned(),
                "CREATE UNIQUE INDEX targets_agent ON targets (agent_id)".to_owned(),
                format!(
                    "CREATE TABLE target_addresses (
                        target_id BIGINT NOT NULL,
                        address TEXT NOT NULL,
                        first_seen BIGINT,
                        last_seen BIGINT,
                        PRIMARY KEY (target_id, address)
                    ){without_rowid}"
                ),
                "INSERT INTO target_addresses (target_id, address, first_seen, last_seen)
                 SELECT id, name, first_seen, last_seen FROM targets"
                    .to_owned(),
            ];
            // Dependent views first.
            out.extend(
                [
                    "current_routes",
                    "route_history",
                    "route_changes",
                    "record_gaps",
                    "fleet_hosts",
                ]
                .iter()
                .map(|v| format!("DROP VIEW {v}")),
            );
            out.extend(views(dialect, 4));
            Some(out)
        }
        // Who made each delete, on its log row (an add's is on the version
        // it opens): `route_changes` shows it, `query history` shows who
        // closed a version. `record_gaps` names a gap that a digest
        // mismatch made.
        5 => {
            let mut out = vec![
                "DROP VIEW route_changes".to_owned(),
                "DROP VIEW record_gaps".to_owned(),
            ];
            out.extend(ATTRIBUTION_COLUMNS.iter().map(|(name, ty)| {
                let ty = match *ty {
                    "int" => "BIGINT",
                    _ => "TEXT",
                };
                format!("ALTER TABLE events ADD COLUMN {name} {ty}")
            }));
            out.extend(
                views(dialect, 5)
                    .into_iter()
                    .filter(|v| v.contains("VIEW route_changes") || v.contains("VIEW record_gaps")),
            );
            Some(out)
        }
        // History partitioned by time on PostgreSQL (see the module):
        // `versions` by `valid_until`, `events` by `time`, one partition per
        // UTC day, rows copied over. SQLite gains `valid_until` alone.
        6 => Some(match dialect {
            Dialect::Sqlite => {
                let mut out = vec![
                    format!(
                        "ALTER TABLE versions ADD COLUMN valid_until BIGINT NOT NULL DEFAULT {CURRENT}"
                    ),
                    "UPDATE versions SET valid_until = valid_to WHERE valid_to IS NOT NULL"
                        .to_owned(),
                    "DROP VIEW fleet_hosts".to_owned(),
                ];
                out.extend(
                    views(dialect, 6)
                        .into_iter()
                        .filter(|v| v.contains("VIEW fleet_hosts")),
                );
                out
            }
            Dialect::Postgres => partition_history(),
        }),
        // PostgreSQL closes versions with one statement per write rather
        // than one per version (see `CLOSE_FUNCTION`).
        7 => Some(match dialect {
            Dialect::Sqlite => Vec::new(),
            Dialect::Postgres => vec![CLOSE_FUNCTION.to_owned()],
        }),
        _ => None,
    }
}

/// The columns of `versions` as migration 1 made them, in their order
/// (`BLOB` is the dialect's byte type): migration 6 makes them again.
const VERSION_COLUMNS: [&str; 20] = [
    "target_id BIGINT NOT NULL",
    "vid BIGINT NOT NULL",
    "netns TEXT NOT NULL",
    "key TEXT NOT NULL",
    "kind BIGINT NOT NULL",
    "family BIGINT NOT NULL",
    "table_id BIGINT",
    "dst_len BIGINT",
    "dst_lo BLOB",
    "dst_hi BLOB",
    "object BLOB NOT NULL",
    "digest BIGINT NOT NULL",
    "valid_from BIGINT NOT NULL",
    "opened_stream TEXT NOT NULL",
    "opened_seq BIGINT NOT NULL",
    "opened_origin BIGINT NOT NULL",
    "valid_to BIGINT",
    "closed_stream TEXT",
    "closed_seq BIGINT",
    "closed_origin BIGINT",
];

/// The columns of `events` as migration 1 made them, in their order
/// (migration 5 adds [`ATTRIBUTION_COLUMNS`] after them).
const EVENT_COLUMNS: [&str; 7] = [
    "target_id BIGINT NOT NULL",
    "stream_id TEXT NOT NULL",
    "seq BIGINT NOT NULL",
    "time BIGINT NOT NULL",
    "action BIGINT NOT NULL",
    "origin BIGINT NOT NULL",
    "vid BIGINT NOT NULL",
];

/// `versions.valid_until` of a current version (the largest BIGINT): the
/// partition of current versions holds this value alone.
pub const CURRENT: i64 = i64::MAX;

/// Nanoseconds in a day: PostgreSQL's history partitions are UTC days.
pub const DAY: i64 = 86_400_000_000_000;

/// The UTC day (days since the Unix epoch) of a time in nanoseconds.
pub fn day_of(time: i64) -> i64 {
    time.div_euclid(DAY)
}

/// The partitioned tables of PostgreSQL's history.
pub const PARTITIONED: [&str; 2] = ["versions", "events"];

/// Creates a partitioned table's partition for one day, unless it exists:
/// `routewatch_day_partition(parent, day)`, named `<parent>_YYYYMMDD`.
/// Callers serialise calls with an advisory lock, so that two collectors
/// never create the same partition at once.
const DAY_PARTITION_FUNCTION: &str = "CREATE FUNCTION routewatch_day_partition(parent text, day bigint)
 RETURNS void LANGUAGE plpgsql AS $fn$
 DECLARE
     name text := parent || '_' || to_char(to_timestamp(day * 86400) AT TIME ZONE 'UTC', 'YYYYMMDD');
 BEGIN
     IF to_regclass(name) IS NULL THEN
         EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%s) TO (%s)',
             name, parent, day * 86400000000000, (day + 1) * 86400000000000);
     END IF;
 END
 $fn$";

/// Ends versions of one target: moves them from `versions_current` to
/// their days' partitions with their ends, and returns how many it moved
/// (fewer than asked: the store lacks some). One statement for all of
/// them (a loop of one statement per version spent about 12 µs of server
/// time on each), whose plan does not depend on statistics: each version's
/// row is found by the whole primary key (the sequential scans a table
/// believed small would get are off), and the rows are deleted by their
/// physical address (a TID scan). Joined to the table by `vid` instead,
/// with statistics that lag behind a target's growth, PostgreSQL read
/// every current version of the target on each write (20,000 closes of
/// 200,000 versions: 8 s instead of 0.2). `CREATE OR REPLACE`: migration
/// 7 replaces the loop that migration 6 made in earlier builds.
const CLOSE_FUNCTION: &str = "CREATE OR REPLACE FUNCTION routewatch_close_versions(target bigint,
     vids int8[], valid_tos int8[], streams text[], seqs int8[], origins int8[])
 RETURNS bigint LANGUAGE sql
 SET enable_seqscan = off SET enable_bitmapscan = off
 AS $fn$
     WITH moved AS (
         DELETE FROM versions_current v
         WHERE v.ctid = ANY (ARRAY(
                 SELECT (SELECT x.ctid FROM versions_current x
                         WHERE x.target_id = target AND x.vid = c.vid
                             AND x.valid_until = 9223372036854775807)
                 FROM unnest(vids) AS c(vid)))
         RETURNING v.*),
     ins AS (
         INSERT INTO versions (target_id, vid, netns, key, kind, family, table_id, dst_len,
             dst_lo, dst_hi, object, digest, valid_from, opened_stream, opened_seq,
             opened_origin, valid_to, closed_stream, closed_seq, closed_origin, valid_until)
         SELECT m.target_id, m.vid, m.netns, m.key, m.kind, m.family, m.table_id, m.dst_len,
             m.dst_lo, m.dst_hi, m.object, m.digest, m.valid_from, m.opened_stream,
             m.opened_seq, m.opened_origin, c.valid_to, c.stream, c.seq, c.origin, c.valid_to
         FROM moved m JOIN unnest(vids, valid_tos, streams, seqs, origins)
             AS c(vid, valid_to, stream, seq, origin) ON c.vid = m.vid
         RETURNING 1)
     SELECT count(*) FROM ins
 $fn$";

/// Migration 6 on PostgreSQL: `versions` and `events` become partitioned
/// tables with the same columns (and `versions.valid_until`), their rows
/// copied into day partitions, and the views made again over them.
fn partition_history() -> Vec<String> {
    let day = |column: &str| format!("floor({column}::numeric / {DAY})::bigint");
    let mut out: Vec<String> = [
        "current_routes",
        "route_history",
        "route_changes",
        "fleet_hosts",
    ]
    .iter()
    .map(|v| format!("DROP VIEW {v}"))
    .collect();
    out.extend(
        [
            "ALTER TABLE versions RENAME TO versions_unpartitioned",
            "ALTER INDEX versions_pkey RENAME TO versions_unpartitioned_pkey",
            "ALTER INDEX versions_from RENAME TO versions_unpartitioned_from",
            "ALTER INDEX versions_dst RENAME TO versions_unpartitioned_dst",
            "ALTER TABLE events RENAME TO events_unpartitioned",
            "ALTER INDEX events_pkey RENAME TO events_unpartitioned_pkey",
            "ALTER INDEX events_time RENAME TO events_unpartitioned_time",
        ]
        .map(str::to_owned),
    );
    out.push(format!(
        "CREATE TABLE versions (
            {},
            valid_until BIGINT NOT NULL DEFAULT {CURRENT},
            PRIMARY KEY (target_id, vid, valid_until)
        ) PARTITION BY RANGE (valid_until)",
        VERSION_COLUMNS
            .map(|c| c.replace("BLOB", "BYTEA"))
            .join(",\n            ")
    ));
    out.push(format!(
        "CREATE TABLE versions_current PARTITION OF versions FOR VALUES FROM ({CURRENT}) TO (MAXVALUE)"
    ));
    out.push("CREATE INDEX versions_from ON versions (target_id, valid_from)".to_owned());
    out.push("CREATE INDEX versions_dst ON versions (family, dst_lo)".to_owned());
    // The log's columns as migrations 1 and 5 made them, in their order.
    let attribution = ATTRIBUTION_COLUMNS.map(|(name, ty)| match ty {
        "int" => format!("{name} BIGINT"),
        _ => format!("{name} TEXT"),
    });
    out.push(format!(
        "CREATE TABLE events (
            {},
            {},
            PRIMARY KEY (target_id, stream_id, seq, time)
        ) PARTITION BY RANGE (time)",
        EVENT_COLUMNS.join(",\n            "),
        attribution.join(",\n            ")
    ));
    out.push("CREATE INDEX events_time ON events USING brin (time)".to_owned());
    out.push(DAY_PARTITION_FUNCTION.to_owned());
    out.push(CLOSE_FUNCTION.to_owned());
    out.push(format!(
        "SELECT routewatch_day_partition('versions', d) FROM (SELECT DISTINCT {} AS d
         FROM versions_unpartitioned WHERE valid_to IS NOT NULL) days",
        day("valid_to")
    ));
    out.push(format!(
        "SELECT routewatch_day_partition('events', d) FROM (SELECT DISTINCT {} AS d
         FROM events_unpartitioned) days",
        day("time")
    ));
    out.push(format!(
        "INSERT INTO versions SELECT *, COALESCE(valid_to, {CURRENT}) FROM versions_unpartitioned"
    ));
    out.push("INSERT INTO events SELECT * FROM events_unpartitioned".to_owned());
    out.push("DROP TABLE versions_unpartitioned".to_owned());
    out.push("DROP TABLE events_unpartitioned".to_owned());
    out.extend(
        views(Dialect::Postgres, 6)
            .into_iter()
            .filter(|v| !v.contains("VIEW record_gaps")),
    );
    out
}

/// The readable columns migration 2 keeps in `version_columns`, in the
/// order the writers bind them: `(name, "text" | "int")`.
pub const READABLE_COLUMNS: [(&str, &str); 12] = [
    ("table_name", "text"),
    ("dst", "text"),
    ("gateway", "text"),
    ("dev", "text"),
    ("protocol", "text"),
    ("type", "text"),
    ("scope", "text"),
    ("metric", "int"),
    ("prefsrc", "text"),
    ("vrf", "text"),
    ("encap", "text"),
    ("object_json", "text"),
];

/// Who opened a version (migration 3), after [`READABLE_COLUMNS`] in the
/// order the writers bind them: the attribution as `routewatch tail`
/// prints it after `by` (`ip[4242]`, `kernel`, `kubelet[812] pod <uid>`,
/// `port 77 (exited)`), the process's pid, comm and Kubernetes pod UID,
/// and a reconcile's reason.
pub const ATTRIBUTION_COLUMNS: [(&str, &str); 5] = [
    ("changed_by", "text"),
    ("changed_by_pid", "int"),
    ("changed_by_comm", "text"),
    ("changed_by_pod", "text"),
    ("reason", "text"),
];

/// The names of the views, for the tests and the docs.
pub const VIEWS: [&str; 5] = [
    "route_history",
    "current_routes",
    "route_changes",
    "record_gaps",
    "fleet_hosts",
];

/// The SQL views people read the store with (docs/store.md): the same
/// names and columns on both backends; times as timestamptz on
/// PostgreSQL and RFC 3339 text (UTC, milliseconds) on SQLite; `dst` as
/// inet on PostgreSQL, CIDR text on SQLite.
fn views(dialect: Dialect, version: i64) -> Vec<String> {
    let time = |column: &str| match dialect {
        Dialect::Sqlite => {
            format!("strftime('%Y-%m-%dT%H:%M:%fZ', {column} / 1000000000.0, 'unixepoch')")
        }
        Dialect::Postgres => format!("to_timestamp({column}::float8 / 1e9)"),
    };
    let dst = match dialect {
        Dialect::Sqlite => "c.dst",
        Dialect::Postgres => "CAST(c.dst AS inet)",
    };
    let host = "CASE WHEN t.host <> '' THEN t.host ELSE t.name END";
    // The address a record's agent was last reached at (migration 4);
    // before, the address dialled was the record's name.
    let address = if version >= 4 {
        "COALESCE(t.address, t.name)"
    } else {
        "t.name"
    };
    // fleet_hosts: the agent's identity and every address it was reached
    // at, oldest first, separated by spaces.
    let identity = if version >= 4 {
        let addresses = match dialect {
            Dialect::Sqlite => {
                "(SELECT group_concat(address, ' ') FROM (SELECT a.address FROM target_addresses a
                  WHERE a.target_id = t.id ORDER BY COALESCE(a.first_seen, 0), a.address))"
            }
            Dialect::Postgres => {
                "(SELECT string_agg(a.address, ' ' ORDER BY COALESCE(a.first_seen, 0), a.address)
                  FROM target_addresses a WHERE a.target_id = t.id)"
            }
        };
        format!(",\n                 t.agent_id, {addresses} AS addresses")
    } else {
        String::new()
    };
    let object = "CASE v.kind WHEN 1 THEN 'route' WHEN 2 THEN 'nexthop' WHEN 3 THEN 'rule' END";
    let family = "CASE v.family WHEN 1 THEN 'inet' WHEN 2 THEN 'inet6' ELSE 'unspec' END";
    let origin = |column: &str| {
        format!(
            "CASE {column} WHEN 1 THEN 'notification' WHEN 2 THEN 'dump' WHEN 3 THEN 'reconcile' \
             WHEN {CLOSED_BY_RESYNC} THEN 'resync' END"
        )
    };
    // Who opened the version (from migration 3 on). In `route_changes`,
    // who made the change: an add's is its version's, a delete's is on its
    // log row (from migration 5 on; before, none rather than the opener's).
    let by = |column: &str, ty: &str, deletes_too: bool| match (version, deletes_too) {
        (..=2, _) => format!("CAST(NULL AS {ty}) AS {column}"),
        (_, true) => format!("c.{column}"),
        (3..=4, false) => format!("CASE WHEN e.action = 1 THEN c.{column} END AS {column}"),
        (_, false) => {
            format!("CASE WHEN e.action = 1 THEN c.{column} ELSE e.{column} END AS {column}")
        }
    };
    let readable_columns = |deletes_too: bool| {
        let mut s = format!(
            "c.table_name, {dst} AS dst, c.gateway, c.dev, c.protocol, c.type, c.scope, \
             c.metric, c.prefsrc, c.vrf, c.encap, {}",
            by("changed_by", "TEXT", deletes_too)
        );
        if version >= 3 {
            for (column, ty) in [
                ("changed_by_pid", "BIGINT"),
                ("changed_by_comm", "TEXT"),
                ("changed_by_pod", "TEXT"),
                ("reason", "TEXT"),
            ] {
                s.push_str(", ");
                s.push_str(&by(column, ty, deletes_too));
            }
        }
        s
    };
    let columns = readable_columns(true);
    let change_columns = readable_columns(false);
    let attribution = if version >= 3 {
        "changed_by_pid, changed_by_comm, changed_by_pod, reason, "
    } else {
        ""
    };
    let readable = "JOIN version_columns c ON c.target_id = v.target_id AND c.vid = v.vid";
    vec![
        format!(
            "CREATE VIEW route_history AS
             SELECT {host} AS host, {address} AS address, v.netns, {object} AS object,
                 {family} AS family, {columns},
                 {valid_from} AS valid_from, {valid_to} AS valid_to,
                 {opened} AS opened_by, {closed} AS closed_by, v.key, c.object_json
             FROM versions v {readable} JOIN targets t ON t.id = v.target_id",
            valid_from = time("v.valid_from"),
            valid_to = time("v.valid_to"),
            opened = origin("v.opened_origin"),
            closed = origin("v.closed_origin"),
        ),
        format!(
            "CREATE VIEW current_routes AS
             SELECT host, address, netns, object, family, table_name, dst, gateway, dev, protocol,
                 type, scope, metric, prefsrc, vrf, encap, changed_by, {attribution}valid_from,
                 opened_by, key, object_json
             FROM route_history WHERE valid_to IS NULL"
        ),
        format!(
            "CREATE VIEW route_changes AS
             SELECT {host} AS host, {address} AS address, v.netns, e.stream_id, e.seq,
                 {time} AS time,
                 CASE e.action WHEN 1 THEN 'add' WHEN 2 THEN 'delete' END AS action,
                 {event_origin} AS origin, {object} AS object, {family} AS family, {change_columns},
                 v.key, c.object_json
             FROM events e
             JOIN versions v ON v.target_id = e.target_id AND v.vid = e.vid
             {readable}
             JOIN targets t ON t.id = e.target_id",
            time = time("e.time"),
            event_origin = origin("e.origin"),
        ),
        format!(
            "CREATE VIEW record_gaps AS
             SELECT {host} AS host, {address} AS address,
                 {from} AS from_time, {to} AS to_time,
                 CASE g.cause WHEN 1 THEN 'unknown stream' WHEN 2 THEN 'cursor too old'
                     WHEN 3 THEN 'lagged' {digest_mismatch}ELSE 'unknown' END AS cause,
                 g.reason,
                 g.from_stream || ':' || CAST(g.from_seq AS TEXT) AS from_cursor,
                 g.to_stream || ':' || CAST(g.to_seq AS TEXT) AS to_cursor
             FROM gaps g JOIN targets t ON t.id = g.target_id",
            from = time("g.from_time"),
            to = time("g.to_time"),
            digest_mismatch = if version >= 5 {
                "WHEN 4 THEN 'digest mismatch' "
            } else {
                ""
            },
        ),
        format!(
            "CREATE VIEW fleet_hosts AS
             SELECT {host} AS host, {address} AS address, t.stream_id AS stream, t.seq AS cursor,
                 {first} AS first_seen, {last} AS last_seen,
                 (SELECT COUNT(*) FROM versions v
                  WHERE v.target_id = t.id AND v.kind = 1 AND {current}) AS route_count,
                 (SELECT COUNT(*) FROM versions v
                  WHERE v.target_id = t.id AND v.kind = 2 AND {current}) AS nexthop_count,
                 (SELECT COUNT(*) FROM versions v
                  WHERE v.target_id = t.id AND v.kind = 3 AND {current}) AS rule_count{identity}
             FROM targets t",
            first = time("t.first_seen"),
            last = time("t.last_seen"),
            // From migration 6 on, PostgreSQL reads the partition of
            // current versions alone.
            current = if version >= 6 {
                format!("v.valid_until = {CURRENT}")
            } else {
                "v.valid_to IS NULL".to_owned()
            },
        ),
    ]
}

/// Rewrites `?` placeholders as PostgreSQL's `$1`, `$2`, ... (queries are
/// written once, with `?`; no query has a `?` inside a string literal).
pub fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_exists_in_both_dialects() {
        for n in 1..=VERSION {
            let sqlite = migration(Dialect::Sqlite, n).expect("sqlite migration");
            let postgres = migration(Dialect::Postgres, n).expect("postgres migration");
            // Migration 6 partitions PostgreSQL's history; SQLite's gains
            // a column. Migration 7 changes a PostgreSQL function alone.
            if n != 6 && n != 7 {
                assert_eq!(sqlite.len(), postgres.len());
            }
        }
        assert!(migration(Dialect::Sqlite, VERSION + 1).is_none());
    }

    #[test]
    fn days_are_utc_days_since_the_epoch() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(DAY - 1), 0);
        assert_eq!(day_of(DAY), 1);
        assert_eq!(day_of(-1), -1);
        // 2026-12-06T00:00:00Z
        assert_eq!(day_of(1_796_515_200_000_000_000), 20_793);
    }

    #[test]
    fn placeholders_are_numbered_in_order() {
        assert_eq!(
            numbered_placeholders("SELECT a FROM t WHERE b = ? AND c > ?"),
            "SELECT a FROM t WHERE b = $1 AND c > $2"
        );
    }
}
