#!/usr/bin/env python3
"""Web: how soon `routewatch web` starts answering its heaviest pages.

  1. In a fresh network namespace, routewatch-agent starts, a few blackhole
     routes are added, and `routewatch collect` stores its first snapshot
     into a SQLite file, then is stopped (SIGTERM). That is a real store,
     written by the real collector: the template.
  2. Two stores are made from it with SQL (the synthetic part): a fleet
     store whose targets table holds H hosts (default 1000), each a copy of
     the template's host with all its versions; and a big store whose one
     host holds N current route versions (default 1,200,000: copies of one
     of the template's routes under distinct keys).
  3. `routewatch web` serves each store on loopback inside the namespace,
     and curl (also inside it) asks each page R times; the median of
     curl's time_starttransfer (first byte) and time_total is reported:
       - /fleet (the first 100 hosts, sorted by name; every host counted
         and filtered on the server) and /fleet?format=json;
       - /host?host=big (the first page of 200 objects), a page in the
         middle (after=N/2), and the first page's JSON twin;
       - /prefix over the big host's N versions of one destination (within
         its family's whole range, and containing that destination: the
         database pages, and counts up to 10,000), and /diff of the big
         host an hour ago and now (N routes added: the first page of 500).
"""

import argparse
import os
import sqlite3
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep bench/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from benchlib import BenchError, log  # noqa: E402

GOAL_FLEET_MS = 200

EPILOG = """\
goal: the fleet page of 1,000 hosts starts answering (first byte) in under
200 ms.

examples:
  bench/web.sh                        # 1000 hosts, 1.2M routes, 10 runs (about 1 min)
  bench/web.sh --hosts 5000 --routes 300000 --runs 5

needs root, iproute2, curl, the release binaries (cargo build --release
--bins; or RW_BIN_DIR). Exit codes: 0 ok, 1 a step failed, 2 not root or
something missing, 130 interrupted. See bench/README.md.
"""


def parse_args():
    p = argparse.ArgumentParser(
        prog="bench/web.sh", description=__doc__.split("\n\n")[0], epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--hosts", type=int, default=1000, help="hosts in the fleet store (default 1000)")
    p.add_argument("--routes", type=int, default=1_200_000,
                   help="current routes of the big store's host (default 1200000)")
    p.add_argument("-r", "--runs", type=int, default=int(os.environ.get("RW_RUNS", 10)),
                   help="requests per page; the median is reported (default 10, env RW_RUNS)")
    bl.add_port_and_deadline(p)
    bl.add_output_args(p, "keep the work directory (the stores and the logs)")
    a = p.parse_args()
    if a.hosts <= 0 or a.routes <= 0 or a.runs <= 0:
        p.error("--hosts, --routes and --runs must be positive")
    return a


def template(ns, work, port, deadline):
    """A store holding one real host's snapshot, and the host's address."""
    addr = f"127.0.0.1:{port}"
    bl.start_agent(ns, addr, os.path.join(work, "agent.log"), deadline=deadline)
    for i in range(8):
        ns.ip(f"route add blackhole 10.9.{i}.0/24")
    db = os.path.join(work, "template.db")
    collect = bl.Proc("routewatch collect", [bl.CLIENT, "collect", "--insecure", "--store", f"sqlite://{db}", addr],
                      ns, stderr=os.path.join(work, "collect.log"))

    def stored():
        if not os.path.exists(db):
            return False
        try:
            c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
            n = c.execute("SELECT COUNT(*) FROM versions WHERE kind = 1 AND valid_to IS NULL").fetchone()[0]
            c.close()
            return n >= 8
        except sqlite3.Error:
            return False

    bl.wait_until(stored, deadline, "the collector to store the snapshot", proc=collect)
    time.sleep(1.0)
    collect.stop()
    # The copies below take the file alone: what is still in the
    # write-ahead log goes into it first.
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()
    return db


def columns(conn, table):
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def fleet_store(src, dst, hosts):
    """H copies of the template's host (targets and versions)."""
    subprocess.run(["cp", src, dst], check=True)
    c = sqlite3.connect(dst, isolation_level=None)
    c.execute("BEGIN")
    # A record's identity (agent_id, unique) and address are its own.
    own = ("id", "name", "host", "agent_id", "address")
    tcols = [x for x in columns(c, "targets") if x not in own]
    vcols = [x for x in columns(c, "versions") if x != "target_id"]
    t = ", ".join(tcols)
    v = ", ".join(vcols)
    c.execute(f"""
        WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
        INSERT INTO targets (id, name, address, host, {t})
        SELECT i, '10.' || (i / 250) || '.' || (i % 250) || '.1:50051',
            '10.' || (i / 250) || '.' || (i % 250) || '.1:50051', printf('host-%05d', i), {t}
        FROM n, (SELECT {t} FROM targets WHERE id = 1)""", (hosts,))
    c.execute(f"""
        INSERT INTO versions (target_id, {v})
        SELECT t.id, {", ".join("v." + x for x in vcols)} FROM targets t, versions v
        WHERE t.id > 1 AND v.target_id = 1""")
    c.execute("UPDATE targets SET host = 'host-00001' WHERE id = 1")
    c.execute("COMMIT")
    c.close()


def big_store(src, dst, routes):
    """One host whose table holds `routes` current routes."""
    subprocess.run(["cp", src, dst], check=True)
    c = sqlite3.connect(dst, isolation_level=None)
    c.execute("BEGIN")
    vcols = [x for x in columns(c, "versions") if x not in ("target_id", "vid", "key")]
    v = ", ".join(vcols)
    (vid, key) = c.execute(
        "SELECT vid, key FROM versions WHERE target_id = 1 AND kind = 1 AND valid_to IS NULL ORDER BY vid LIMIT 1"
    ).fetchone()
    top = c.execute("SELECT MAX(vid) FROM versions").fetchone()[0]
    c.execute(f"""
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
        INSERT INTO versions (target_id, vid, key, {v})
        SELECT 1, ? + i, ? || '#' || i, {v} FROM n, (SELECT {v} FROM versions WHERE target_id = 1 AND vid = ?)""",
              (routes, top, key, vid))
    c.execute("UPDATE targets SET host = 'big', next_vid = ? WHERE id = 1", (top + routes + 1,))
    c.execute("COMMIT")
    (dst, family) = c.execute(
        "SELECT c.dst, v.family FROM versions v JOIN version_columns c ON c.target_id = v.target_id AND c.vid = v.vid"
        " WHERE v.target_id = 1 AND v.vid = ?", (vid,)).fetchone()
    c.close()
    return dst, family


def serve(ns, work, db, name, deadline):
    """`routewatch web` on db; its base URL."""
    err = os.path.join(work, f"web-{name}.log")
    proc = bl.Proc(f"routewatch web ({name})", [bl.CLIENT, "web", "--store", f"sqlite://{db}", "--listen",
                                                "127.0.0.1:0"], ns, stderr=err)
    bl.wait_until(lambda: bl.file_contains(err, b"serving"), deadline, "routewatch web to serve", proc=proc)
    with open(err, encoding="utf-8") as f:
        line = next(x for x in f if "serving" in x)
    return proc, line.split("serving ", 1)[1].split(" ", 1)[0].rstrip("/")


def measure(ns, url, runs):
    """Median first byte and total time (ms) and the body's size."""
    firsts, totals, size = [], [], 0
    for _ in range(runs):
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_starttransfer} %{time_total} "
                            "%{size_download}", url], capture_output=True, text=True, timeout=600,
                           preexec_fn=ns.preexec())
        code, first, total, size = r.stdout.split()
        if code != "200":
            raise BenchError(f"{url}: HTTP {code}")
        firsts.append(float(first) * 1000)
        totals.append(float(total) * 1000)
    return bl.median(firsts), bl.median(totals), int(size)


def main():
    a = parse_args()
    bl.preflight()
    if subprocess.run(["sh", "-c", "command -v curl"], capture_output=True).returncode != 0:
        bl.die("curl not found in PATH", 2)
    work = bl.workdir(a.keep)
    ns = bl.Netns()
    log("storing a real host's snapshot (the template)")
    src = template(ns, work, a.port, a.deadline)
    fleet_db, big_db = os.path.join(work, "fleet.db"), os.path.join(work, "big.db")
    started = time.monotonic()
    fleet_store(src, fleet_db, a.hosts)
    log(f"fleet store: {a.hosts} hosts ({time.monotonic() - started:.1f} s)")
    started = time.monotonic()
    dst, family = big_store(src, big_db, a.routes)
    log(f"big store: one host of {a.routes} routes ({time.monotonic() - started:.1f} s)")

    rows = []
    fleet, base = serve(ns, work, fleet_db, "fleet", a.deadline)
    for path in ("/fleet", "/fleet?format=json", "/fleet?sort=routes&desc=1&q=host-00",
                 f"/fleet?sort=state&offset={a.hosts - 100}"):
        rows.append((f"{a.hosts} hosts {path}",) + measure(ns, base + path, a.runs))
    fleet.stop()
    big, base = serve(ns, work, big_db, "big", a.deadline)
    for path in ("/host?host=big", f"/host?host=big&after={a.routes // 2}", "/host?host=big&format=json",
                 "/host?host=big&table=main&proto=kernel",
                 f"/prefix?prefix={'0.0.0.0/0' if family == 1 else '::/0'}",
                 f"/prefix?prefix={dst}&mode=containing&offset=5000",
                 "/diff?host=big&at=-1h&at2=now"):
        rows.append((f"{a.routes} routes {path}",) + measure(ns, base + path, a.runs))
    big.stop()

    print(f"\nroutewatch web, median of {a.runs} requests (curl on loopback):\n")
    print(f"{'page':<64} {'first byte':>11} {'total':>9} {'bytes':>9}")
    for name, first, total, size in rows:
        print(f"{name:<64} {first:>8.1f} ms {total:>6.1f} ms {size:>9}")
    fleet_first = rows[0][1]
    verdict = "met" if fleet_first < GOAL_FLEET_MS else "NOT met"
    print(f"\ngoal: fleet page first byte under {GOAL_FLEET_MS} ms: {verdict} ({fleet_first:.1f} ms)")
    if a.json:
        import json

        with open(a.json, "w", encoding="utf-8") as f:
            json.dump([dict(zip(("page", "first_byte_ms", "total_ms", "bytes"), r)) for r in rows], f, indent=1)
    return 0


if __name__ == "__main__":
    bl.run_main(main)
