#!/usr/bin/env python3
"""Fleet soak: many agents, two collectors sharing one PostgreSQL, every
agent churning, one collector killed and the database restarted midway.

Layout: a hub namespace holds a bridge (172.31.255.254/16) and runs the
collectors; each of the N agents has a namespace of its own, joined to the
bridge by a veth pair (its end `eth0`, 172.31.X.Y/16), and runs
`routewatch-agent --insecure --listen 172.31.X.Y:PORT` with a journal that
holds its whole churn. The PostgreSQL server is a scratch one reached by
its Unix socket (a path reaches it from every namespace).

  1. Two collectors (`routewatch collect --insecure --compression none
     --store URL` with every agent as a target, in the hub) share the
     targets, and store every agent's first snapshot.
  2. Churn: every agent's namespace gets `ip -batch` adding C/2 /32 routes
     and `ip -batch` deleting them (C changes per agent), `--parallel`
     namespaces at a time.
  3. Once a third of the agents have churned, the collector holding more
     targets is killed with SIGKILL; the takeover time is from the kill
     until the survivor holds every target (PostgreSQL's granted advisory locks number N again).
     Once two thirds have, the PostgreSQL server is restarted (fast
     shutdown, start); the recovery time is from the restart until every
     target is held again.
  4. Once every agent has churned, the bench waits until every stored
     cursor equals its agent's last seq (`routewatch info`).

Reported: events stored per second (N*C / the time from the churn's start
until everything is stored), `ip -batch`'s own rate, the collectors' and
the server's CPU per event, takeover and recovery times. Checked per host:
exactly C log rows after its first snapshot's position, contiguous, none
twice; every version the churn opened closed; no gap (every agent's
journal holds the whole churn, so nothing is ever due to be resynced).
"""

import argparse
import concurrent.futures
import json
import os
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep bench/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from benchlib import BenchError, log  # noqa: E402

DESCRIPTION = """\
Fleet soak: N agents in namespaces behind a bridge, two collectors into
one PostgreSQL, every agent churning C changes; one collector killed with
SIGKILL after a third of the churn and the PostgreSQL server restarted
after two thirds. Prints events stored per second, CPU per event of the
collectors and of the server, the takeover and recovery times, and checks
that every host's log holds its C changes exactly once, with no gap.
"""

EPILOG = """\
examples:
  bench/fleet.sh                        # 200 agents, 4000 changes each (800000)
  bench/fleet.sh --agents 20 --changes 2000
  bench/fleet.sh --no-kill --no-restart --json fleet.json

needs root, iproute2 (with bridge and veth), the release binaries (cargo
build --release --bins; or RW_BIN_DIR), the PostgreSQL server binaries in
/usr/lib/postgresql/*/bin (or RW_PG_BIN) and a `postgres` OS user.
Exit codes: 0 ok, 1 a step failed, 2 not root or something missing,
3 a host's stored log was not exactly its changes (or a gap was recorded),
130 interrupted. See bench/README.md.
"""


def parse_args():
    p = argparse.ArgumentParser(prog="bench/fleet.sh", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agents", type=int, default=int(os.environ.get("RW_AGENTS", 200)),
                   help="agents, each in its own namespace (default 200, env RW_AGENTS)")
    p.add_argument("--changes", type=int, default=int(os.environ.get("RW_CHANGES", 4000)),
                   help="changes per agent: half adds, half deletes (default 4000, env RW_CHANGES)")
    p.add_argument("--parallel", type=int, default=4, help="namespaces churning at once (default 4)")
    p.add_argument("--no-kill", action="store_true", help="do not kill a collector")
    p.add_argument("--no-restart", action="store_true", help="do not restart PostgreSQL")
    p.add_argument("--claim-interval", type=int, default=2,
                   help="the collectors' --claim-interval, seconds (default 2)")
    bl.add_port_and_deadline(p)
    p.add_argument("--pg-port", type=int, default=54330,
                   help="port number of the scratch PostgreSQL (its socket file's name; default 54330)")
    bl.add_output_args(p, "keep the work directory (logs, PostgreSQL's data)")
    a = p.parse_args()
    if not 2 <= a.agents <= 250 * 250:
        p.error("--agents must be between 2 and 62500")
    if a.changes < 2 or a.changes % 2:
        p.error("--changes must be even and at least 2")
    if a.parallel < 1:
        p.error("--parallel must be positive")
    return a


def address(i, port):
    return f"172.31.{i // 250}.{i % 250 + 1}:{port}"


class Fleet:
    def __init__(self, a, work):
        self.a = a
        self.work = work
        self.hub = bl.Netns()
        self.hub.ip("link add br0 type bridge")
        self.hub.ip("addr add 172.31.255.254/16 dev br0")
        self.hub.ip("link set br0 up")
        self.namespaces = []
        self.agents = []
        for i in range(a.agents):
            ns = bl.Netns()
            ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")
            self.hub.ip(["link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0", "netns", ns.name])
            self.hub.ip(["link", "set", f"v{i}", "master", "br0", "up"])
            ns.ip(["addr", "add", address(i, a.port).split(":")[0] + "/16", "dev", "eth0"])
            ns.ip("link set eth0 up")
            self.namespaces.append(ns)
        log(f"{a.agents} namespaces behind a bridge")
        journal = str(a.changes + 65536)
        for i, ns in enumerate(self.namespaces):
            path = os.path.join(work, f"agent-{i}.log")
            self.agents.append(bl.Proc(f"agent {i}", [bl.AGENT, "--insecure", "--listen", address(i, a.port),
                                                     "--journal-capacity", journal], ns, stderr=path,
                                       env={"ROUTEWATCH_LOG": "info"}))
        for i, agent in enumerate(self.agents):
            bl.wait_until(lambda: bl.file_contains(os.path.join(work, f"agent-{i}.log"), b"serving"),
                          a.deadline, f"agent {i} to serve", proc=agent)
        log(f"{a.agents} agents serving")

    def targets(self):
        return ",".join(address(i, self.a.port) for i in range(self.a.agents))

    def agent_seq(self, i):
        """Agent i's position: (stream_id, last seq)."""
        info = bl.agent_info(self.hub, address(i, self.a.port))
        return info["stream_id"], int(info["seq"])


def start_collector(fleet, url, name):
    a = fleet.a
    return bl.Proc(name, [bl.CLIENT, "collect", "--insecure", "--compression", "none", "--store", url,
                          "--claim-interval", str(a.claim_interval)], fleet.hub,
                   stderr=os.path.join(fleet.work, f"{name}.log"),
                   env={"ROUTEWATCH_TARGETS": fleet.targets(), "ROUTEWATCH_LOG": "info"})


def stored(session):
    """{address: (stream_id, seq)} as the store holds them."""
    try:
        rows = session.query("SELECT COALESCE(address, name), stream_id, seq FROM targets")
    except BenchError:
        return {}
    return {r[0]: (r[1], int(r[2])) for r in rows}


def held(session, pids):
    """Targets held right now by the collectors with these pids (granted
    advisory locks of the connections they name as theirs:
    application_name `routewatch on HOST (pid N)`)."""
    names = " OR ".join(f"a.application_name LIKE '%(pid {pid})'" for pid in pids)
    try:
        rows = session.query("SELECT COUNT(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                             f"WHERE l.locktype = 'advisory' AND l.granted AND ({names})")
    except BenchError:
        return 0
    return int(rows[0][0])


def wait_all(fleet, session, want, deadline, what, procs):
    """Waits until every target's stored cursor is want[address]."""
    end = time.monotonic() + deadline
    while True:
        now = stored(session)
        missing = [k for k, v in want.items() if now.get(k) != v]
        if not missing:
            return time.monotonic()
        for p in procs:
            if not p.alive():
                raise BenchError(f"{p.name} exited ({p.p.returncode}) while waiting for {what}; "
                                 f"stderr:\n{p.stderr_text()}")
        if time.monotonic() > end:
            sample = ", ".join(f"{k} at {now.get(k)} (want {want[k]})" for k in missing[:3])
            raise BenchError(f"timed out after {deadline}s waiting for {what}: {len(missing)} behind: {sample}")
        time.sleep(0.1)


def wait_held(session, pids, n, deadline, what):
    start = time.monotonic()
    while held(session, pids) < n:
        if time.monotonic() - start > deadline:
            raise BenchError(f"timed out after {deadline}s waiting for {what} "
                             f"({held(session, pids)} of {n} held)")
        time.sleep(0.02)
    return time.monotonic() - start


def server_cpu(pg):
    """CPU seconds of the server's processes (postmaster and children)."""
    return bl.tree_cpu_ticks(pg.proc.pid) / bl.CLK_TCK


def restart(pg, deadline):
    """Fast shutdown, then the same server started again (its log in
    server.log.2)."""
    pg.proc.stop(timeout=60)
    pg.proc = bl.Proc("postgres", pg.proc.argv, None, stderr=pg.log_path + ".2", user="postgres",
                      stop_signal=signal.SIGINT, cwd="/")
    bl.wait_until(lambda: bl.file_contains(pg.log_path + ".2", b"ready to accept connections"), deadline,
                  "PostgreSQL to accept connections again", proc=pg.proc)


def verify(session, snap, final, changes):
    """Per host: exactly `changes` log rows after the first snapshot's
    position, contiguous, none twice; the churn's versions all closed; no
    gap. Returns (ok, lines)."""
    lines = []
    rows = session.query(
        "SELECT COALESCE(t.address, t.name), COUNT(e.seq), COUNT(DISTINCT e.seq), MIN(e.seq), MAX(e.seq) "
        "FROM targets t LEFT JOIN events e ON e.target_id = t.id GROUP BY COALESCE(t.address, t.name)")
    log_rows = {r[0]: [int(x) if x else 0 for x in r[1:]] for r in rows}
    open_rows = {r[0]: int(r[1]) for r in session.query(
        "SELECT COALESCE(t.address, t.name), COUNT(v.vid) FROM targets t JOIN versions v ON v.target_id = t.id "
        "WHERE v.opened_origin <> 2 AND v.valid_to IS NULL GROUP BY COALESCE(t.address, t.name)")}
    gaps = session.query("SELECT COALESCE(t.address, t.name), g.reason FROM gaps g JOIN targets t ON t.id = g.target_id")
    bad = 0
    missing = duplicate = 0
    for name, (stream, seq0) in snap.items():
        count, distinct, lo, hi = log_rows.get(name, [0, 0, 0, 0])
        want_hi = final[name][1]
        good = (count == changes == distinct and lo == seq0 + 1 and hi == want_hi
                and final[name][0] == stream and open_rows.get(name, 0) == 0)
        missing += max(0, changes - distinct)
        duplicate += count - distinct
        if not good:
            bad += 1
            if bad <= 5:
                lines.append(f"BAD {name}: {count} log rows, {distinct} distinct, {lo}..{hi} (expected {changes}, "
                             f"{seq0 + 1}..{want_hi}); {open_rows.get(name, 0)} churn versions still open")
    lines.insert(0, ("OK  " if bad == 0 else "BAD ")
                 + f"{len(snap) - bad} of {len(snap)} hosts hold exactly their {changes} changes "
                   f"(missing {missing}, stored twice {duplicate})")
    lines.append(("OK  " if not gaps else "BAD ") + f"gaps recorded: {len(gaps)}"
                 + (f" (first: {gaps[0][0]}: {gaps[0][1]})" if gaps else ""))
    return bad == 0 and not gaps, lines, missing, duplicate, len(gaps)


def main():
    a = parse_args()
    bl.preflight()
    if bl.postgres_bin() is None:
        bl.die("no PostgreSQL server in /usr/lib/postgresql/*/bin (install postgresql, or set RW_PG_BIN)", 2)
    bl.ensure_netns_available()
    work = bl.workdir(a.keep, prefix="rwfleet.")
    log(f"work directory {work}")
    pg = bl.Postgres(os.path.join(work, "pg"), port=a.pg_port, settings={"max_connections": "200"})
    pg.psql("CREATE DATABASE fleet")
    url = pg.url("fleet")
    fleet = Fleet(a, work)
    session = pg.session("fleet")

    collectors = [start_collector(fleet, url, "collector-a"), start_collector(fleet, url, "collector-b")]
    snap = {}
    for i in range(a.agents):
        snap[address(i, a.port)] = fleet.agent_seq(i)
    wait_all(fleet, session, snap, a.deadline, "every first snapshot stored", collectors)
    log(f"both collectors running; {a.agents} first snapshots stored")

    adds = bl.route_lines(a.changes // 2, "add", dev="eth0")
    dels = bl.route_lines(a.changes // 2, "del", dev="eth0")
    add_path, del_path = os.path.join(work, "add.batch"), os.path.join(work, "del.batch")
    with open(add_path, "w") as f:
        f.write(adds)
    with open(del_path, "w") as f:
        f.write(dels)

    done = [0]
    lock = threading.Lock()
    ip_time = [0.0]

    def churn(ns):
        t = time.monotonic()
        ns.batch(add_path)
        ns.batch(del_path)
        with lock:
            done[0] += 1
            ip_time[0] += time.monotonic() - t

    cpu0 = [c.cpu_seconds() for c in collectors]
    server0 = server_cpu(pg)
    events = a.agents * a.changes
    takeover = recovery = None
    took_over = 0
    killed_cpu = None
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.parallel) as pool:
        futures = [pool.submit(churn, ns) for ns in fleet.namespaces]
        if not a.no_kill:
            while done[0] < a.agents // 3:
                time.sleep(0.05)
            # The collector holding more targets is killed (a collector
            # may hold them all: the first to claim takes every free one).
            counts = [held(session, [c.pid]) for c in collectors]
            victim = 0 if counts[0] >= counts[1] else 1
            survivor = collectors[1 - victim]
            killed_cpu = collectors[victim].cpu_seconds()
            collectors[victim].send_signal(signal.SIGKILL)
            log(f"SIGKILL to {collectors[victim].name} (holding {counts[victim]} of {a.agents} targets; "
                f"{survivor.name} {counts[1 - victim]}) after {done[0]} of {a.agents} agents churned")
            # Its backend ends when PostgreSQL sees the socket closed; the
            # survivor claims what it held.
            takeover = wait_held(session, [survivor.pid], a.agents, a.deadline,
                                 "the survivor to hold every target")
            took_over = counts[victim]
            log(f"{survivor.name} holds every target {takeover:.2f}s after the kill")
        if not a.no_restart:
            while done[0] < 2 * a.agents // 3:
                time.sleep(0.05)
            session.close()
            log(f"restarting PostgreSQL after {done[0]} of {a.agents} agents churned")
            # The first server's CPU until it stops, then the new one's.
            server_before = server_cpu(pg) - server0
            t = time.monotonic()
            restart(pg, a.deadline)
            server0 = server_cpu(pg) - server_before
            session = pg.session("fleet")
            wait_held(session, [c.pid for c in collectors if c.alive()], a.agents, a.deadline,
                      "every target held again")
            recovery = time.monotonic() - t
            log(f"every target held again {recovery:.2f}s after the restart began")
        for f in futures:
            f.result()
    t_ip = time.monotonic() - t0
    final = {address(i, a.port): fleet.agent_seq(i) for i in range(a.agents)}
    alive = [c for c in collectors if c.alive()]
    t_end = wait_all(fleet, session, final, a.deadline, "every change stored", alive)
    elapsed = t_end - t0
    cpu = sum((c.cpu_seconds() if c.alive() else 0.0) for c in collectors) - sum(cpu0)
    if killed_cpu is not None:
        cpu += killed_cpu
    server = server_cpu(pg) - server0
    ok, lines, missing, duplicate, gaps = verify(session, snap, final, a.changes)

    row = {
        "agents": a.agents, "changes_per_agent": a.changes, "events": events,
        "events_per_s": events / elapsed, "elapsed_s": elapsed, "ip_batch_wall_s": t_ip,
        "collector_us_per_event": cpu / events * 1e6, "server_us_per_event": server / events * 1e6,
        "takeover_s": takeover, "taken_over": took_over, "restart_recovery_s": recovery,
        "missing": missing, "stored_twice": duplicate, "gaps": gaps, "ok": ok,
        "postgres": pg.version(),
    }
    print()
    print(f"fleet: {a.agents} agents x {a.changes} changes = {events} events, 2 collectors, PostgreSQL "
          f"{row['postgres']}")
    print(f"  stored            {row['events_per_s']:.0f} events/s ({elapsed:.1f} s from the churn's start; "
          f"ip -batch in all namespaces took {t_ip:.1f} s, {a.parallel} at a time)")
    print(f"  collectors CPU    {row['collector_us_per_event']:.2f} us/event")
    print(f"  server CPU        {row['server_us_per_event']:.2f} us/event")
    if takeover is not None:
        print(f"  takeover          {takeover:.2f} s (SIGKILL of the collector holding {took_over} targets until "
              f"the other holds all {a.agents}; --claim-interval {a.claim_interval:g})")
    if recovery is not None:
        print(f"  restart recovery  {recovery:.2f} s (PostgreSQL fast shutdown, start, every target held again)")
    for line in lines:
        print("  " + line)
    for c in collectors:
        if c.alive():
            c.stop()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(row, f, indent=2)
    return 0 if ok else 3


if __name__ == "__main__":
    bl.run_main(main)
