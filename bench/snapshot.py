#!/usr/bin/env python3
"""Snapshot: how long printing N installed routes takes, routewatch vs ip.

In a fresh network namespace (veth pair va/vb up, 192.168.255.1/24 on va)
with N /32 routes installed (10.A.B.C/32 dev va), times, RUNS times each
(rounds, order rotated every round), all with stdout to /dev/null:

  remote      routewatch show --insecure -o json 127.0.0.1:PORT   (agent running in the namespace)
  remote text routewatch show --insecure 127.0.0.1:PORT           (the same, text lines)
  unsorted    routewatch show --insecure --unsorted -o json 127.0.0.1:PORT
                                                                   (lines as they arrive; clients that have it)
  in-process  routewatch show -o json                              (no target: dumps the kernel itself)
  ip -j -d    ip -j -d route show table all
  ip text     ip route show table all

and prints the median wall time, CPU time (user+sys of the command, from
wait4; for `remote` the agent's CPU spent serving it is shown separately)
and peak RSS, and the ratios of the wall times against both ip commands.
The peak RSS comes from /usr/bin/time (`%M`), which starts the command from
its own small process: a child forked from this script would count the
script's memory as its own until it execs.

Before timing, each command is run once into a file and its output is
checked: routewatch's JSON route lines must hold what `ip -j -d` prints,
field for field, and its text lines must be `ip route show table all`'s
lines (routes that tie in show's order may come in another order).
"""

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # keep bench/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from benchlib import BenchError, log  # noqa: E402

TIME = "/usr/bin/time"
# The lines of `routewatch show` that `ip route show` does not print: rules
# (`PRIORITY:<tab>...`) and nexthop objects (`id N ...`), which come first.
NOT_ROUTE = re.compile(rb"^(\d+:\t|id \d+ )")


def parse_args():
    p = argparse.ArgumentParser(description="Time printing N routes: routewatch show vs ip route show (see bench/README.md).")
    p.add_argument("n", nargs="?", type=int, default=int(os.environ.get("RW_N", 200000)),
                   help="routes to install (default 200000, env RW_N)")
    p.add_argument("-r", "--runs", type=int, default=int(os.environ.get("RW_RUNS", 3)),
                   help="runs per command; the median is reported (default 3, env RW_RUNS)")
    p.add_argument("--port", type=int, default=50051, help="agent port inside the namespace (default 50051)")
    p.add_argument("--timeout", type=float, default=600.0, help="longest any one command may take, seconds (default 600)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--json", metavar="FILE", help="also write every run's figures to FILE as JSON")
    a = p.parse_args()
    if a.n < 0 or a.runs <= 0:
        p.error("N must be >= 0 and --runs positive")
    return a


def run_timed(ns, argv, stdout_path=None, timeout=600.0, env=None):
    """Runs argv in ns; returns (wall s, cpu s of the command, peak RSS KiB,
    exit code, stderr)."""
    out = open(stdout_path, "wb") if stdout_path else open(os.devnull, "wb")
    full_env = dict(os.environ)
    full_env.update(env or {})
    rss_fd, rss_path = tempfile.mkstemp(prefix="rwbench-rss.")
    os.close(rss_fd)
    argv = [TIME, "-f", "%M", "-o", rss_path, *argv]
    t0 = time.monotonic()
    try:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE,
                             env=full_env, preexec_fn=ns.preexec(), start_new_session=True)
    finally:
        out.close()
    try:
        # Read stderr (small) until EOF, bounded by the timeout, then reap
        # with wait4 to get the child's own rusage.
        err = b""
        end = t0 + timeout
        os.set_blocking(p.stderr.fileno(), False)
        while True:
            try:
                chunk = p.stderr.read()
            except BlockingIOError:
                chunk = None
            if chunk:
                err += chunk[-65536:]
            elif chunk == b"":
                break
            if time.monotonic() > end:
                raise BenchError(f"`{' '.join(argv)}` took longer than {timeout}s")
            time.sleep(0.002)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
    except BaseException:
        try:
            os.killpg(p.pid, 9)  # time(1) and the command it started
            os.waitpid(p.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        raise
    finally:
        p.stderr.close()
        with open(rss_path) as f:
            rss = f.read()
        os.unlink(rss_path)
    # time(1) writes "Command exited with non-zero status N" before %M.
    rss = int(rss.split()[-1]) if rss.split() else 0
    return wall, ru.ru_utime + ru.ru_stime, rss, p.returncode, err.decode(errors="replace")


def count_routewatch(path):
    routes = collections.Counter()
    nexthops = other = 0
    with open(path, "rb") as f:
        for raw in f:
            e = json.loads(raw)
            if e.get("object") == "route":
                routes[bl.canon(e)] += 1
            elif e.get("object") in ("nexthop", "rule"):
                nexthops += 1
            else:
                other += 1
    return routes, nexthops, other


def main():
    args = parse_args()
    bl.preflight()
    if not os.access(TIME, os.X_OK):
        bl.die(f"{TIME} (GNU time) is needed for the peak RSS: apt-get install time", 2)
    work = bl.workdir(keep=args.keep)
    addr = f"127.0.0.1:{args.port}"
    ns = bl.Netns()
    ns.setup_veth()
    if args.n:
        log(f"installing {args.n} routes")
        add_batch = os.path.join(work, "add.batch")
        with open(add_batch, "w") as f:
            f.write(bl.route_lines(args.n, "add"))
        t_install = ns.batch(add_batch, timeout=args.timeout)
        os.unlink(add_batch)
        log(f"  installed in {t_install:.2f}s")
    ip_total = ns.route_count()
    ip_canon = bl.ip_routes_canon(ns)
    log(f"namespace {ns.name}: {ip_total} routes (ip -j route show table all, -4 plus -6)")

    agent_err = os.path.join(work, "agent.log")
    t0 = time.monotonic()
    agent = bl.Proc("routewatch-agent", [bl.AGENT, "--insecure", "--listen", addr], ns,
                    stderr=agent_err, env={"ROUTEWATCH_LOG": "info"})
    bl.wait_until(lambda: bl.file_contains(agent_err, b"serving"), args.timeout,
                  "the agent to serve (first dump complete)", proc=agent)
    t_agent_ready = time.monotonic() - t0
    agent_start_cpu = agent.cpu_seconds()
    log(f"agent ready in {t_agent_ready:.2f}s ({agent_start_cpu:.2f}s CPU, RSS {agent.rss_kib() // 1024} MiB)")

    commands = [
        ("routewatch show (agent)", [bl.CLIENT, "show", "--insecure", "-o", "json", addr]),
        ("routewatch show text (agent)", [bl.CLIENT, "show", "--insecure", addr]),
        ("routewatch show (in-process)", [bl.CLIENT, "show", "-o", "json"]),
        ("ip -j -d route show table all", ["ip", "-j", "-d", "route", "show", "table", "all"]),
        ("ip route show table all", ["ip", "route", "show", "table", "all"]),
    ]
    # Clients that can print lines as they arrive are timed doing so too.
    helps = subprocess.run([bl.CLIENT, "show", "--help"], capture_output=True, timeout=60).stdout
    if b"--unsorted" in helps:
        commands.insert(2, ("routewatch show --unsorted (agent)",
                            [bl.CLIENT, "show", "--insecure", "--unsorted", "-o", "json", addr]))
    env = {"ROUTEWATCH_LOG": "warn"}

    # Check the outputs once.
    log("checking outputs")
    checks = {}
    ip_text = os.path.join(work, "ip-text.out")
    wall, cpu, rss, rc, err = run_timed(ns, ["ip", "route", "show", "table", "all"], ip_text, args.timeout, env)
    if rc != 0:
        raise BenchError(f"`ip route show table all` exited {rc}: {err.strip()[-2000:]}")
    for name, argv in commands:
        path = os.path.join(work, "check.out")
        wall, cpu, rss, rc, err = run_timed(ns, argv, path, args.timeout, env)
        if rc != 0:
            raise BenchError(f"`{' '.join(argv)}` exited {rc}: {err.strip()[-2000:]}")
        if name.startswith("routewatch") and "-o" not in argv:
            with open(path, "rb") as f, open(ip_text, "rb") as g:
                lines, theirs = f.read().splitlines(), g.read().splitlines()
            ours = [line for line in lines if not NOT_ROUTE.match(line)]
            theirs = [line.rstrip() for line in theirs]  # ip ends each line with a space
            checks[name] = f"{len(ours)} route lines, {len(lines) - len(ours)} nexthop and rule lines"
            if collections.Counter(ours) != collections.Counter(theirs):
                differ = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
                checks[name] += f"  MISMATCH (ip prints {len(theirs)} lines; first difference at line {differ + 1})"
            else:
                # Routes that tie in show's order (same table, prefix,
                # metric: fe80::/64 on va and on vb) may come in another order.
                moved = sum(a != b for a, b in zip(ours, theirs))
                checks[name] += f"  OK (the lines of ip route show table all; {moved} in another place)"
        elif name.startswith("routewatch"):
            routes, nexthops, other = count_routewatch(path)
            total = sum(routes.values())
            checks[name] = f"{total} route lines, {nexthops} nexthop and rule lines, {other} other"
            if total != ip_total:
                checks[name] += f"  MISMATCH (ip has {ip_total})"
            elif routes != ip_canon:
                diff = sum(((routes - ip_canon) + (ip_canon - routes)).values())
                checks[name] += f"  MISMATCH ({diff} routes differ from ip -j -d field for field)"
            else:
                checks[name] += "  OK (same routes as ip -j -d, field for field)"
        elif "-j" in argv:
            with open(path) as f:
                checks[name] = f"{len(json.load(f))} routes"
        else:
            with open(path, "rb") as f:
                checks[name] = f"{sum(1 for _ in f)} lines"
        checks[name] += f" ({os.path.getsize(path) / 1e6:.1f} MB, {wall:.2f}s)"
        os.unlink(path)
        if err.strip():
            checks[name] += f"; stderr: {err.strip()[-300:]}"

    results = {name: [] for name, _ in commands}
    for k in range(args.runs):
        order = commands[k % len(commands):] + commands[:k % len(commands)]
        for name, argv in order:
            a0 = agent.cpu_ticks()
            wall, cpu, rss, rc, err = run_timed(ns, argv, None, args.timeout, env)
            if not agent.alive():
                raise BenchError(f"the agent exited ({agent.p.returncode}) during `{name}`; stderr:\n{agent.stderr_text()}")
            a1 = agent.cpu_ticks()
            if rc != 0:
                raise BenchError(f"`{' '.join(argv)}` exited {rc}: {err.strip()[-2000:]}")
            agent_cpu = (a1 - a0) / bl.CLK_TCK if "(agent)" in name else None
            results[name].append({"wall_s": wall, "cpu_s": cpu, "rss_kib": rss, "agent_cpu_s": agent_cpu})
            log(f"run {k + 1}/{args.runs}: {name}: {wall:.3f}s wall, {cpu:.3f}s CPU, {rss // 1024} MiB"
                + (f" (+ agent {agent_cpu:.2f}s CPU)" if agent_cpu is not None else ""))
    agent_rss = agent.rss_kib()
    agent_rc = agent.stop()

    med = {name: {
        "wall_s": bl.median([r["wall_s"] for r in rs]),
        "cpu_s": bl.median([r["cpu_s"] for r in rs]),
        "rss_kib": max(r["rss_kib"] for r in rs),
        "agent_cpu_s": bl.median([r["agent_cpu_s"] for r in rs]),
    } for name, rs in results.items()}
    ipj = med["ip -j -d route show table all"]["wall_s"]
    ipt = med["ip route show table all"]["wall_s"]

    print()
    print(f"snapshot: {ip_total} routes in the namespace (N={args.n} installed), median of {args.runs} run(s), "
          f"{os.cpu_count()} CPUs, Linux {os.uname().release}")
    print(f"agent: first dump + ready in {t_agent_ready:.2f}s wall, {agent_start_cpu:.2f}s CPU; "
          f"peak RSS {agent_rss // 1024} MiB; exit {agent_rc}")
    print()
    print("output check:")
    for name, _ in commands:
        print(f"  {name:<34} {checks[name]}")
    print()
    print(f"  {'command (stdout > /dev/null)':<34} {'wall s':>8} {'CPU s':>8} {'max RSS MiB':>12} {'vs ip -j -d':>12} {'vs ip text':>11}")
    for name, _ in commands:
        m = med[name]
        extra = f"   (+ agent CPU {m['agent_cpu_s']:.2f}s)" if m["agent_cpu_s"] is not None else ""
        print(f"  {name:<34} {m['wall_s']:>8.3f} {m['cpu_s']:>8.3f} {m['rss_kib'] / 1024:>12.1f} "
              f"{m['wall_s'] / ipj:>11.2f}x {m['wall_s'] / ipt:>10.2f}x{extra}")
    print()
    print("  per run (wall s): " + "; ".join(
        f"{name}: " + ", ".join(f"{r['wall_s']:.3f}" for r in rs) for name, rs in results.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"n": args.n, "routes": ip_total, "agent_ready_s": t_agent_ready,
                       "agent_ready_cpu_s": agent_start_cpu, "checks": checks, "runs": results, "median": med}, f, indent=1)
    return 3 if any("MISMATCH" in c for c in checks.values()) else 0


if __name__ == "__main__":
    bl.run_main(main)
