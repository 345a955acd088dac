#!/usr/bin/env python3
"""Claims: how fast `routewatch collect` takes its targets on PostgreSQL.

Targets are N loopback addresses with nothing listening (127.0.0.1:PORT,
each refused at once): a collector claims a target before it dials it, so
the claims are all that is measured, not the agents. Each run, on a new
database whose schema `routewatch query` creates, every target is given a
stored history first (--history versions, the last --current of them
current, written by SQL: what a collector loads when it claims a target
is its row and its current versions). Then:

  1. backlog: two collectors start together (--claim-interval 1) and are
     timed from their start until their `routewatch_collector_targets_held`
     (read from --ops-listen every 20 ms) add up to N. Each one's share is
     reported, and the transactions the server counted for the database
     from their start to their stop (pg_stat_database; each statement sent
     outside a transaction is one, so this counts round trips, give or
     take the few a transaction block adds): what claims cost whatever
     the latency to the server, which on a loaded server or across a
     network is what makes per-target claims slow.
  2. takeover: collector A alone holds all N; collector B starts and waits
     for them (`targets_waiting` = N); A is killed with SIGKILL (its
     connection, and with it every advisory lock, goes at once) and B is
     timed until it holds all N. B retries every --claim-interval (1 s), so
     up to 1 s of that time is the wait for its next round.

The server is a scratch PostgreSQL started for the bench (Unix socket
only), or the one --postgres-url names (a new database is created there
and dropped after). The median of the runs is reported.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

sys.dont_write_bytecode = True  # keep bench/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from benchlib import BenchError, log  # noqa: E402


def closed_ports(n, start=20000):
    """n loopback ports nothing listens on (a connect is refused)."""
    ports = []
    port = start
    while len(ports) < n:
        if port > 65000:
            raise BenchError(f"fewer than {n} closed loopback ports")
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            ports.append(port)
        except OSError:
            pass
        finally:
            s.close()
        port += 1
    return ports


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def metric(ops, name):
    """One unlabelled metric of a collector's /metrics, or None."""
    try:
        with urllib.request.urlopen(f"http://{ops}/metrics", timeout=1) as r:
            text = r.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def held(ops):
    return int(metric(ops, "routewatch_collector_targets_held") or 0)


def collector(work, name, url, targets):
    ops = f"127.0.0.1:{free_port()}"
    argv = [bl.CLIENT, "collect", "--insecure", "--store", url, "--claim-interval", "1",
            "--ops-listen", ops] + targets
    proc = bl.Proc(name, argv, None, stderr=os.path.join(work, f"{name}.log"))
    return proc, ops


def wait(pred, deadline, what, procs=()):
    end = time.monotonic() + deadline
    while not pred():
        for p in procs:
            if p.p.poll() is not None:
                raise BenchError(f"{p.name} exited ({p.p.returncode}) while waiting for {what}")
        if time.monotonic() > end:
            raise BenchError(f"timed out after {deadline:.0f}s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic()


def populate(psql, url, targets, history, current):
    """Creates the schema, then a stored history for each target."""
    r = subprocess.run([bl.CLIENT, "query", "--store", url, "hosts"], capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError(f"routewatch query hosts: {r.stderr.strip()[-2000:]}")
    names = ",".join(targets)
    closed = history - current
    sql = f"""
        INSERT INTO targets (name, stream_id, seq, next_vid, first_seen, last_seen)
        SELECT n, 's', {history}, {history + 1}, 1, 1
        FROM unnest(string_to_array('{names}', ',')) AS n;
        -- Closed versions end on 1970-01-01 (times are tiny): that day's
        -- partition of versions (schema 6).
        SELECT routewatch_day_partition('versions', 0);
        INSERT INTO versions (target_id, vid, netns, key, kind, family, object, digest,
            valid_from, opened_stream, opened_seq, opened_origin,
            valid_to, closed_stream, closed_seq, closed_origin, valid_until)
        SELECT t.id, g, '', 'k' || (g % {current}), 1, 1, ''::bytea, g, g, 's', g, 1,
            CASE WHEN g <= {closed} THEN g + {current} END,
            CASE WHEN g <= {closed} THEN 's' END,
            CASE WHEN g <= {closed} THEN g + {current} END,
            CASE WHEN g <= {closed} THEN 1 END,
            CASE WHEN g <= {closed} THEN g + {current} ELSE 9223372036854775807 END
        FROM targets t, generate_series(1, {history}) AS g;
        ANALYZE;"""
    subprocess.run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql, url], check=True)


def transactions(psql, url):
    """Transactions the server counted on this database so far (each
    statement a collector sends outside a transaction is one). Read after
    the collectors stopped: a backend reports its counts when it exits."""
    time.sleep(1.5)
    r = subprocess.run([psql, "-X", "-q", "-t", "-A", "-c",
                        "SELECT pg_stat_clear_snapshot(); SELECT xact_commit + xact_rollback "
                        "FROM pg_stat_database WHERE datname = current_database()", url],
                       capture_output=True, text=True, check=True)
    return int(r.stdout.split()[-1])


def run_once(work, psql, url, targets, deadline):
    n = len(targets)
    # 1. Two collectors on a backlog.
    before = transactions(psql, url)
    started = time.monotonic()
    a, a_ops = collector(work, "collector-a", url, targets)
    b, b_ops = collector(work, "collector-b", url, targets)
    done = wait(lambda: held(a_ops) + held(b_ops) >= n, deadline,
                f"two collectors to hold {n} targets", (a, b))
    backlog = (done - started, held(a_ops), held(b_ops))
    b.stop()
    a.stop()
    backlog_xacts = transactions(psql, url) - before
    a, a_ops = collector(work, "collector-a", url, targets)
    # 2. A takes the rest, B' waits, A is killed.
    wait(lambda: held(a_ops) >= n, deadline, f"one collector to hold {n} targets", (a,))
    c, c_ops = collector(work, "collector-c", url, targets)
    wait(lambda: metric(c_ops, "routewatch_collector_targets_waiting") == n, deadline,
         f"a second collector to wait for {n} targets", (c,))
    a.p.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    done = wait(lambda: held(c_ops) >= n, deadline, f"the takeover of {n} targets", (c,))
    takeover = done - killed
    a.stop()
    c.stop()
    return backlog, backlog_xacts, takeover


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("n", nargs="?", type=int, default=int(os.environ.get("RW_N", 200)),
                   help="targets (default 200, env RW_N)")
    p.add_argument("--runs", type=int, default=int(os.environ.get("RW_RUNS", 3)))
    p.add_argument("--postgres-url", default=os.environ.get("RW_POSTGRES_URL"),
                   help="a server to create the bench's databases on (default: a scratch server)")
    p.add_argument("--history", type=int, default=4000, help="stored versions per target (default 4000)")
    p.add_argument("--current", type=int, default=500,
                   help="of which current (default 500)")
    p.add_argument("--deadline", type=float, default=120.0, help="seconds any one wait may take")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    a = p.parse_args()
    bl.preflight()
    work = bl.workdir(keep=a.keep)
    if a.postgres_url:
        base = a.postgres_url
        psql = os.path.join(bl.postgres_bin() or "/usr/bin", "psql")
    else:
        server = bl.Postgres(os.path.join(work, "pg"))
        base = server.url()
        psql = os.path.join(server.bin, "psql")
    targets = [f"127.0.0.1:{port}" for port in closed_ports(a.n)]
    results = []
    for run in range(a.runs):
        db = f"rwbench_claims_{os.getpid()}_{run}"
        subprocess.run([psql, "-X", "-q", "-c", f"CREATE DATABASE {db}", base], check=True)
        bl.at_cleanup(lambda db=db: subprocess.run(
            [psql, "-X", "-q", "-c", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)", base]))
        url = base.rsplit("/", 1)[0] + "/" + db
        populate(psql, url, targets, a.history, a.current)
        backlog, xacts, takeover = run_once(work, psql, url, targets, a.deadline)
        log(f"run {run + 1}: backlog of {a.n} held in {backlog[0]:.2f}s ({backlog[1]} + {backlog[2]}), "
            f"{xacts} transactions; takeover of {a.n} in {takeover:.2f}s")
        results.append((backlog[0], takeover, xacts))
    print(f"targets: {a.n} ({a.history} stored versions each, {a.current} current), runs: {a.runs} (median)")
    print(f"two collectors on a backlog, all held after: {bl.median([r[0] for r in results]):.2f} s")
    print(f"server transactions for that backlog:        {bl.median([r[2] for r in results]):.0f} "
          f"({bl.median([r[2] for r in results]) / a.n:.1f} per target)")
    print(f"takeover after SIGKILL, all held after:      {bl.median([r[1] for r in results]):.2f} s "
          "(of which up to 1 s is --claim-interval)")
    return 0


if __name__ == "__main__":
    bl.run_main(main)
