#!/usr/bin/env python3
"""Ingest: how fast `routewatch collect` stores a backlog of route changes,
into SQLite and into PostgreSQL, against how fast the kernel makes them.

Each run, in a fresh network namespace (veth pair va/vb up, 192.168.255.1/24
on va):

  1. `routewatch-agent --insecure --listen 127.0.0.1:PORT` starts with a
     journal large enough for the whole backlog (--journal-capacity,
     --journal-bytes), so that a collector that comes back resumes instead
     of resyncing.
  2. `routewatch collect --insecure --compression none --store URL
     127.0.0.1:PORT` starts, stores its first snapshot (the bench polls the
     stored cursor until it equals the agent's position) and is stopped
     with SIGTERM.
  3. With no collector running, `ip -batch` adds N /32 routes and a second
     `ip -batch` deletes them: 2N changes, which the agent journals. The
     two ip -batch runs are timed: 2N / their wall time is the kernel's own
     change rate (the iproute2 side).
  4. The collector starts again, resumes from the stored cursor and is
     timed from its start until the stored cursor reaches the agent's last
     seq (`routewatch info`). Ingest rate = 2N / that time; its CPU
     (utime+stime from /proc/PID/stat, all threads, startup included) / 2N
     is the CPU per event.
  5. The store is checked: exactly 2N log rows after the snapshot's
     position, contiguous seqs, none twice, N adds and N deletes; N versions
     opened by the churn, all closed; no gap; the current route versions
     number what `ip -j route show table all` (-4 plus -6) shows.

Stores: a SQLite file in the work directory (WAL, synchronous=NORMAL: the
collector's own settings), and a scratch PostgreSQL server started for the
bench with its default durability (fsync, synchronous_commit and
full_page_writes on; the bench relaxes none of them, while the collector
sets synchronous_commit=off for its own session), reached by its Unix
socket, a new database per run.
The stores take turns within each round; the median of the runs is
reported.
"""

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep bench/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from benchlib import BenchError, log  # noqa: E402

STORES = ("sqlite", "postgres")
# The goals, events stored per second.
GOALS = {"sqlite": 200_000, "postgres": 100_000}
# events.action as stored (the API's Action).
ACTION_ADD, ACTION_DELETE = 1, 2

DESCRIPTION = """\
How fast `routewatch collect` stores route changes, into SQLite and into
PostgreSQL, against how fast `ip -batch` makes them in the kernel.

Each run, in a fresh network namespace: routewatch-agent starts with a
journal big enough for the backlog; a collector stores the first snapshot
and is stopped (SIGTERM); with no collector running, `ip -batch` adds N
/32 routes and deletes them (2N changes, timed: the iproute2 side); the
collector starts again and is timed until the stored cursor reaches the
agent's last seq. Prints events/s (2N / that time), the collector's CPU
per event (and the PostgreSQL server's), and ingest rate / ip -batch rate;
then checks that the store holds exactly the 2N changes.

SQLite: a file in the work directory (the collector's WAL settings).
PostgreSQL: a scratch server started for the bench, default durability
(fsync and synchronous_commit on; the collector itself turns
synchronous_commit off for its session), Unix socket only, a database per
run.
"""

EPILOG = """\
goals: at least 200000 events/s into SQLite and 100000 events/s into
PostgreSQL. The ratio ingest / ip -batch above 1 means the collector stores
changes faster than `ip -batch` can make them in the kernel.

examples:
  bench/ingest.sh                          # N=200000, 3 runs, both stores (about 2 min)
  bench/ingest.sh 50000 --runs 1 --stores sqlite
  RW_N=400000 bench/ingest.sh --stores postgres --json ingest.json

needs root, iproute2, the release binaries (cargo build --release --bins;
or RW_BIN_DIR) and, for --stores postgres, the PostgreSQL server binaries
in /usr/lib/postgresql/*/bin (or RW_PG_BIN) and a `postgres` OS user.
Exit codes: 0 ok, 1 a step failed, 2 not root or something missing,
3 the store did not hold exactly what the kernel did, 130 interrupted.
See bench/README.md.
"""


def parse_args():
    p = argparse.ArgumentParser(
        prog="bench/ingest.sh", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("n", nargs="?", type=int, default=int(os.environ.get("RW_N", 200000)),
                   help="routes to add and then delete: 2N changes (default 200000, env RW_N)")
    p.add_argument("-r", "--runs", type=int, default=int(os.environ.get("RW_RUNS", 3)),
                   help="runs per store; the median is reported (default 3, env RW_RUNS)")
    p.add_argument("--stores", default="sqlite,postgres",
                   help="comma-separated stores to measure: sqlite, postgres (default sqlite,postgres)")
    bl.add_port_and_deadline(p)
    p.add_argument("--pg-port", type=int, default=54329,
                   help="port number of the scratch PostgreSQL (its socket file's name; no TCP; default 54329)")
    p.add_argument("--poll", type=float, default=0.01,
                   help="seconds between reads of the stored cursor while timing (default 0.01)")
    bl.add_output_args(p, "keep the work directory (batch files, logs, the SQLite files, PostgreSQL's data and its "
                        "databases; the server itself is stopped)")
    a = p.parse_args()
    bl.check_counts(p, a)
    a.stores = [s.strip() for s in a.stores.split(",") if s.strip()]
    if not a.stores or any(s not in STORES for s in a.stores):
        p.error("--stores takes sqlite, postgres or both, comma-separated")
    return a


# --------------------------------------------------------------------------
# Reading the store while the collector writes


class SqliteReader:
    """Reads a collector's SQLite file (read-only; WAL lets it read while
    the collector writes)."""

    def __init__(self, path):
        self.path = path
        self.conn = None

    def query(self, sql):
        if self.conn is None:
            if not os.path.exists(self.path):
                raise BenchError(f"{self.path} does not exist yet")
            self.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None, timeout=30)
        try:
            rows = self.conn.execute(sql).fetchall()
        except sqlite3.Error as e:
            raise BenchError(f"SQLite `{sql}`: {e}")
        return [["" if v is None else str(v) for v in row] for row in rows]

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class PgReader:
    """Reads a collector's PostgreSQL database through one psql session."""

    def __init__(self, session):
        self.session = session

    def query(self, sql):
        return self.session.query(sql)

    def close(self):
        self.session.close()


def stored_cursor(reader, name):
    """(stream_id, seq) the store holds for target `name`, or None before
    the collector created its tables or row."""
    try:
        rows = reader.query(f"SELECT stream_id, seq FROM targets WHERE COALESCE(address, name) = '{name}'")
    except BenchError:
        return None
    if not rows:
        return None
    return rows[0][0], int(rows[0][1])


def query_hosts(url, address, timeout=60):
    """The row of `routewatch query --store URL hosts -o json` for the
    target dialled as `address`, or None (no store or no row yet)."""
    r = subprocess.run([bl.CLIENT, "query", "--store", url, "hosts", "-o", "json"], capture_output=True,
                       text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=dict(os.environ, ROUTEWATCH_LOG="warn"))
    if r.returncode != 0:
        query_hosts.last_error = r.stderr.strip()[-500:]
        return None
    for line in r.stdout.splitlines():
        row = json.loads(line)
        if row.get("address") == address:
            return row
    return None


def queried_cursor(url, address):
    row = query_hosts(url, address)
    if row is None or row.get("stream_id") is None:
        return None
    return row["stream_id"], row["seq"]


def wait_cursor(read, pred, proc, deadline, poll, what):
    """Polls the stored cursor (read() -> (stream_id, seq) or None) until
    pred(cursor); returns (cursor, the monotonic time it was seen, the
    monotonic time it first moved)."""
    end = time.monotonic() + deadline
    first = None
    start = read()
    while True:
        cur = read()
        now = time.monotonic()
        if cur is not None and first is None and cur != start:
            first = now
        if cur is not None and pred(cur):
            return cur, now, first
        if not proc.alive():
            raise BenchError(f"{proc.name} exited ({proc.p.returncode}) while waiting for {what}; "
                             f"stderr:\n{proc.stderr_text()}")
        if now > end:
            said = getattr(query_hosts, "last_error", None)
            raise BenchError(f"timed out after {deadline}s waiting for {what} (stored cursor {cur})"
                             + (f"; routewatch query said: {said}" if said else ""))
        time.sleep(poll)


# --------------------------------------------------------------------------
# One run


def one(reader, sql):
    return [int(v) if v != "" else None for v in reader.query(sql)[0]]


def verify(reader, url, name, stream_id, snap_seq, agent_seq, n, ip_routes):
    """Checks the stored log and versions; returns (ok, list of lines)."""
    lines = []
    ok = True

    def check(cond, text):
        nonlocal ok
        ok = ok and cond
        lines.append(("OK  " if cond else "BAD ") + text)

    (tid,) = one(reader, f"SELECT id FROM targets WHERE COALESCE(address, name) = '{name}'")
    count, distinct, lo, hi = one(
        reader, f"SELECT COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM events "
                f"WHERE target_id = {tid} AND stream_id = '{stream_id}' AND seq > {snap_seq}")
    check(count == 2 * n and distinct == count and lo == snap_seq + 1 and hi == snap_seq + 2 * n == agent_seq,
          f"log after the snapshot's seq {snap_seq}: {count} rows, {distinct} distinct seqs, {lo}..{hi} "
          f"(expected {2 * n}, contiguous {snap_seq + 1}..{snap_seq + 2 * n}, agent at {agent_seq})")
    (total,) = one(reader, f"SELECT COUNT(*) FROM events WHERE target_id = {tid}")
    check(total == count, f"log rows in all: {total} (none outside the churn)")
    by_action = {int(a): int(c) for a, c in reader.query(
        f"SELECT action, COUNT(*) FROM events WHERE target_id = {tid} AND seq > {snap_seq} GROUP BY action")}
    check(by_action.get(ACTION_ADD, 0) == n and by_action.get(ACTION_DELETE, 0) == n and len(by_action) <= 2,
          f"adds {by_action.get(ACTION_ADD, 0)}, deletes {by_action.get(ACTION_DELETE, 0)} (expected {n} each)")
    opened, closed = one(reader, f"SELECT COUNT(*), COUNT(valid_to) FROM versions "
                                 f"WHERE target_id = {tid} AND opened_seq > {snap_seq}")
    check(opened == n and closed == n, f"versions opened by the churn: {opened}, closed: {closed} (expected {n}, {n})")
    current = {int(k): int(c) for k, c in reader.query(
        f"SELECT kind, COUNT(*) FROM versions WHERE target_id = {tid} AND valid_to IS NULL GROUP BY kind")}
    check(current.get(1, 0) == ip_routes,
          f"current route versions: {current.get(1, 0)} = ip -j route show table all (-4 plus -6): {ip_routes}"
          + (f"; current nexthop versions: {current[2]}" if current.get(2) else ""))
    (gaps,) = one(reader, f"SELECT COUNT(*) FROM gaps WHERE target_id = {tid}")
    check(gaps == 0, f"gaps: {gaps}")
    host = query_hosts(url, name) or {}
    check(host.get("stream_id") == stream_id and host.get("seq") == agent_seq and host.get("routes") == ip_routes
          and host.get("gaps") == 0,
          f"routewatch query hosts: cursor {host.get('stream_id')}:{host.get('seq')}, {host.get('routes')} routes, "
          f"{host.get('nexthops')} nexthops, {host.get('gaps')} gaps (expected {stream_id}:{agent_seq}, "
          f"{ip_routes} routes, 0 gaps)")
    return ok, lines


def run_once(args, work, store, k, pg, add_batch, del_batch):
    n = args.n
    addr = f"127.0.0.1:{args.port}"
    ns = bl.Netns()
    reader = None
    tag = f"{store}-{k}"
    try:
        ns.setup_veth()
        agent = bl.start_agent(
            ns, addr, os.path.join(work, f"agent-{tag}.log"),
            extra=["--journal-capacity", str(2 * n + 65536),
                   "--journal-bytes", str(max(256 << 20, 2 * n * 1024))],
            deadline=args.deadline,
        )
        if store == "sqlite":
            db = os.path.join(work, f"ingest-{tag}.db")
            url = f"sqlite://{db}"
            reader = SqliteReader(db)
        else:
            database = f"rwbench_ingest_{k}"
            pg.psql(f"CREATE DATABASE {database}")
            url = pg.url(database)
            reader = PgReader(pg.session(database))
        collect_argv = [bl.CLIENT, "collect", "--insecure", "--compression", "none", "--store", url, addr]
        env = {"ROUTEWATCH_LOG": "warn"}

        # The first snapshot.
        info = bl.agent_info(ns, addr)
        first = bl.Proc("routewatch collect", collect_argv, ns, stderr=os.path.join(work, f"collect-{tag}-first.log"),
                        env=env)
        cur, _, _ = wait_cursor(lambda: queried_cursor(url, addr), lambda c: c == (info["stream_id"], info["seq"]),
                                first, args.deadline, 0.1, "the first snapshot to be stored (routewatch query hosts)")
        rc_first = first.stop()
        if rc_first != 0:
            raise BenchError(f"the first collector exited {rc_first} on SIGTERM; stderr:\n{first.stderr_text()}")
        stream_id, snap_seq = cur

        # The churn, with no collector running.
        t_add = ns.batch(add_batch, timeout=args.deadline)
        t_del = ns.batch(del_batch, timeout=args.deadline)
        bl.wait_cpu_quiet(agent, quiet=0.5, deadline=args.deadline)
        info = bl.agent_info(ns, addr)
        if info["stream_id"] != stream_id:
            raise BenchError(f"the agent's stream changed ({stream_id} -> {info['stream_id']})")
        agent_seq = info["seq"]
        if agent_seq != snap_seq + 2 * n:
            log(f"  note: the agent numbered {agent_seq - snap_seq} changes, not {2 * n}")
        if info.get("oldest_seq", 0) > snap_seq + 1:
            raise BenchError(f"the agent's journal starts at {info['oldest_seq']}, after the stored cursor "
                             f"{snap_seq}: the collector would resync")

        # The timed ingest.
        a0 = agent.cpu_seconds()
        s0 = pg.proc.tree_cpu_seconds() if store == "postgres" else None
        t0 = time.monotonic()
        coll = bl.Proc("routewatch collect", collect_argv, ns, stderr=os.path.join(work, f"collect-{tag}.log"), env=env)
        # Read straight from the targets table: a process per poll (routewatch
        # query) would take CPU from the collector being timed.
        _, t_done, t_first = wait_cursor(lambda: stored_cursor(reader, addr), lambda c: c[1] >= agent_seq, coll,
                                         args.deadline, args.poll,
                                         f"the stored cursor to reach the agent's seq {agent_seq}")
        cpu = coll.cpu_seconds()
        agent_cpu = agent.cpu_seconds() - a0
        server_cpu = pg.proc.tree_cpu_seconds() - s0 if store == "postgres" else None
        rss = coll.rss_kib()
        elapsed = t_done - t0
        rc = coll.stop()
        if rc != 0:
            raise BenchError(f"the collector exited {rc} on SIGTERM; stderr:\n{coll.stderr_text()}")

        ip_routes = ns.route_count()
        ok, checks = verify(reader, url, addr, stream_id, snap_seq, agent_seq, n, ip_routes)
        if store == "sqlite":
            size = sum(os.path.getsize(db + sfx) for sfx in ("", "-wal") if os.path.exists(db + sfx))
        else:
            (size,) = one(reader, f"SELECT pg_database_size('{database}')")
        res = {
            "store": store,
            "events": 2 * n,
            "ingest_s": elapsed,
            "first_commit_s": (t_first - t0) if t_first else None,
            "events_per_s": 2 * n / elapsed,
            "cpu_s": cpu,
            "cpu_us_per_event": cpu / (2 * n) * 1e6,
            "agent_cpu_s": agent_cpu,
            "server_cpu_s": server_cpu,
            "server_cpu_us_per_event": server_cpu / (2 * n) * 1e6 if server_cpu is not None else None,
            "rss_kib": rss,
            "batch_add_s": t_add,
            "batch_del_s": t_del,
            "ip_events_per_s": 2 * n / (t_add + t_del),
            "store_bytes": size,
            "ok": ok,
            "checks": checks,
            "collector_stderr": coll.stderr_text(2000).strip(),
        }
        res["ratio_vs_ip"] = res["events_per_s"] / res["ip_events_per_s"]
        agent.stop()
        return res
    finally:
        if reader is not None:
            reader.close()
        for p in list(bl._procs):
            if p.name != "postgres":
                p.stop(quiet=True)
        ns.delete()
        if not args.keep:
            if store == "sqlite":
                for sfx in ("", "-wal", "-shm", ".collector-lock"):
                    try:
                        os.unlink(os.path.join(work, f"ingest-{tag}.db{sfx}"))
                    except FileNotFoundError:
                        pass
            elif pg is not None and pg.proc.alive():
                pg.psql(f"DROP DATABASE IF EXISTS rwbench_ingest_{k}")


# --------------------------------------------------------------------------
# Report


def ip_version():
    r = subprocess.run(["ip", "-V"], capture_output=True, text=True)
    for part in r.stdout.split(","):
        if part.strip().startswith("iproute2"):
            return part.strip()
    return "iproute2 ?"


def fs_type(path):
    """The file system type of the mount holding path (from /proc/mounts)."""
    path = os.path.realpath(path)
    best, kind = "", "?"
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            mnt = parts[1].replace("\\040", " ")
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, kind = mnt, parts[2]
    return kind


def report(args, work, runs, pg_desc):
    print()
    print(f"ingest: N={args.n} routes added then deleted = {2 * args.n} events per run, median of {args.runs} "
          f"run(s); {os.cpu_count()} CPUs, Linux {os.uname().release}, {ip_version()}")
    print(f"work directory on {fs_type(work)}")
    if "sqlite" in args.stores:
        print("sqlite:   a file in the work directory; WAL, synchronous=NORMAL (the collector's own settings)")
    if "postgres" in args.stores:
        print(f"postgres: {pg_desc}")
    print()
    print(f"  {'store':<9} {'events/s':>10} {'CPU us/ev':>10} {'server us/ev':>13} {'ingest s':>9} "
          f"{'ip -batch ev/s':>15} {'ingest/ip':>10}   goal")
    for store in args.stores:
        rs = runs[store]
        rate = bl.median([r["events_per_s"] for r in rs])
        ip_rate = bl.median([r["ip_events_per_s"] for r in rs])
        server = bl.median([r["server_cpu_us_per_event"] for r in rs])
        goal = GOALS[store]
        print(f"  {store:<9} {rate:>10.0f} {bl.median([r['cpu_us_per_event'] for r in rs]):>10.2f} "
              f"{(f'{server:.2f}' if server is not None else '-'):>13} "
              f"{bl.median([r['ingest_s'] for r in rs]):>9.3f} {ip_rate:>15.0f} {rate / ip_rate:>9.2f}x   "
              f">= {goal}/s: {'met' if rate >= goal else 'NOT met'}")
    print()
    print("  ingest: from starting the collector (which resumes from its stored cursor) until the stored cursor")
    print("  reaches the agent's last seq; CPU: the collector's utime+stime over that time, startup included;")
    print("  server: the PostgreSQL server's processes over the same time (SQLite works inside the collector);")
    print("  ip -batch: the two ip -batch runs that made the changes (the agent listening);")
    print("  ingest/ip > 1: the collector stores faster than the kernel changes routes.")
    print()
    print("per run:")
    for store in args.stores:
        for i, r in enumerate(runs[store]):
            first = f"{r['first_commit_s']:.3f}" if r["first_commit_s"] is not None else "-"
            print(f"  {store} run {i + 1}: {r['events_per_s']:.0f} events/s ({r['ingest_s']:.3f}s, first commit "
                  f"seen at {first}s), collector {r['cpu_s']:.2f}s CPU = {r['cpu_us_per_event']:.2f} us/event, "
                  f"peak RSS {r['rss_kib'] // 1024} MiB; "
                  + (f"PostgreSQL server {r['server_cpu_s']:.2f}s CPU = {r['server_cpu_us_per_event']:.2f} us/event; "
                     if r["server_cpu_s"] is not None else "")
                  + f"agent {r['agent_cpu_s']:.2f}s CPU replaying; "
                  f"ip -batch {r['batch_add_s']:.2f}s + {r['batch_del_s']:.2f}s = {r['ip_events_per_s']:.0f} "
                  f"events/s; ratio {r['ratio_vs_ip']:.2f}x; store {r['store_bytes'] / 1e6:.0f} MB")
            for line in r["checks"]:
                print(f"      {line}")
            if r["collector_stderr"]:
                print("      collector stderr: " + r["collector_stderr"].replace("\n", "\n        "))


def main():
    args = parse_args()
    bl.preflight()
    r = subprocess.run([bl.CLIENT, "query", "hosts", "--help"], capture_output=True, timeout=30)
    if r.returncode != 0:
        bl.die(f"{bl.CLIENT} has no `query hosts` command (build the release binaries of this checkout)", 2)
    if "postgres" in args.stores and bl.postgres_bin() is None:
        bl.die("--stores postgres needs the PostgreSQL server binaries in /usr/lib/postgresql/*/bin "
               "(apt-get install postgresql) or RW_PG_BIN", 2)
    work = bl.workdir(keep=args.keep)
    log(f"work directory {work}")
    add_batch, del_batch = bl.write_batches(work, args.n)

    pg = None
    pg_desc = None
    if "postgres" in args.stores:
        log("starting a scratch PostgreSQL")
        pg = bl.Postgres(os.path.join(work, "pg"), port=args.pg_port, settings={"session_preload_libraries": "auto_explain", "auto_explain.log_min_duration": "200ms", "auto_explain.log_nested_statements": "on", "auto_explain.log_analyze": "on"})
        s = pg.session()
        settings = {k: s.query(f"SHOW {k}")[0][0]
                    for k in ("fsync", "synchronous_commit", "full_page_writes", "wal_sync_method", "shared_buffers")}
        s.close()
        relaxed = [k for k in ("fsync", "synchronous_commit", "full_page_writes") if settings[k] != "on"]
        pg_desc = (f"PostgreSQL {pg.version()}, scratch server in the work directory, Unix socket; server "
                   + (f"durability RELAXED ({', '.join(relaxed)} off): " if relaxed else "durability NOT relaxed: ")
                   + ", ".join(f"{k}={v}" for k, v in settings.items())
                   + ("" if relaxed else " (the server's defaults)")
                   + "; the collector sets synchronous_commit=off for its own session; a new database per run")
        log(pg_desc)

    runs = {s: [] for s in args.stores}
    for k in range(args.runs):
        order = args.stores[k % len(args.stores):] + args.stores[:k % len(args.stores)]
        for store in order:
            log(f"run {k + 1}/{args.runs}: {store}")
            r = run_once(args, work, store, k, pg, add_batch, del_batch)
            runs[store].append(r)
            log(f"  {r['events_per_s']:.0f} events/s ({r['ingest_s']:.3f}s), {r['cpu_us_per_event']:.2f} us/event "
                f"CPU; ip -batch {r['ip_events_per_s']:.0f} events/s; ratio {r['ratio_vs_ip']:.2f}x; "
                f"store check {'OK' if r['ok'] else 'FAILED'}")
    if pg is not None:
        pg.stop()

    report(args, work, runs, pg_desc)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"n": args.n, "runs": runs, "postgres": pg_desc}, f, indent=1)
    return 0 if all(r["ok"] for rs in runs.values() for r in rs) else 3


if __name__ == "__main__":
    bl.run_main(main)
