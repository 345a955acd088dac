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
wait4; for the remote ones the agent's CPU spent serving it is shown
separately) and peak RSS (the largest of the runs, from GNU time's %M; see
benchlib.run_timed), and the ratios of the wall times against both ip
commands.

Before timing, each command is run once into a file and its output is
checked: routewatch's JSON route lines must hold what `ip -j -d` prints,
field for field, and its text lines must be `ip route show table all`'s
lines (rules and nexthop objects aside; routes that tie in show's order
may come in another order).
"""

import argparse
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # keep bench/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from benchlib import BenchError, log  # noqa: E402


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


def main():
    args = parse_args()
    bl.preflight()
    bl.need_gnu_time()
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
    kernel = bl.kernel_digest(ns)
    log(f"namespace {ns.name}: {ip_total} routes (ip -j route show table all, -4 plus -6)")

    t0 = time.monotonic()
    agent = bl.start_agent(ns, addr, os.path.join(work, "agent.log"), deadline=args.timeout)
    t_agent_ready = time.monotonic() - t0
    agent_start_cpu = agent.cpu_seconds()
    log(f"agent ready in {t_agent_ready:.2f}s ({agent_start_cpu:.2f}s CPU, RSS {agent.rss_kib() // 1024} MiB)")

    ip_text_argv = ["ip", "route", "show", "table", "all"]
    commands = [
        ("routewatch show (agent)", [bl.CLIENT, "show", "--insecure", "-o", "json", addr]),
        ("routewatch show text (agent)", [bl.CLIENT, "show", "--insecure", addr]),
        ("routewatch show (in-process)", [bl.CLIENT, "show", "-o", "json"]),
        ("ip -j -d route show table all", ["ip", "-j", "-d", "route", "show", "table", "all"]),
        ("ip route show table all", ip_text_argv),
    ]
    # Clients that can print lines as they arrive are timed doing so too.
    if "--unsorted" in ns.run([bl.CLIENT, "show", "--help"]):
        commands.insert(2, ("routewatch show --unsorted (agent)",
                            [bl.CLIENT, "show", "--insecure", "--unsorted", "-o", "json", addr]))
    env = {"ROUTEWATCH_LOG": "warn"}

    # Check the outputs once; ip's text first, which the text show must equal.
    log("checking outputs")
    checks = {}
    ip_text = os.path.join(work, "ip-text.out")
    for name, argv in sorted(commands, key=lambda c: c[1] is not ip_text_argv):
        path = ip_text if argv is ip_text_argv else os.path.join(work, "check.out")
        wall, cpu, rc, err, _ = bl.run_timed(ns, argv, path, args.timeout, env, peak_rss=True)
        if rc != 0:
            raise BenchError(f"`{' '.join(argv)}` exited {rc}: {err.strip()[-2000:]}")
        if name.startswith("routewatch") and "-o" not in argv:
            c = bl.compare_show_text(path, ip_text)
            checks[name] = f"{c['route_lines']} route lines, {c['object_lines']} nexthop and rule lines"
            if not c["ok"]:
                checks[name] += (f"  MISMATCH (ip prints {c['ip_lines']} lines; {c['only_routewatch']} lines "
                                 f"only in routewatch, {c['only_ip']} only in ip)")
            else:
                checks[name] += f"  OK (the lines of ip route show table all; {c['moved']} in another place)"
        elif name.startswith("routewatch"):
            routes, nexthops, other = bl.lines_digest(path)
            total = routes.total()
            cmp = bl.compare_digests(routes, kernel)
            checks[name] = f"{total} route lines, {nexthops} nexthop and rule lines, {other} other"
            if total != ip_total:
                checks[name] += f"  MISMATCH (ip has {ip_total})"
            elif not cmp["content_ok"]:
                diff = cmp["only_routewatch"] + cmp["only_ip"]
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
        if path != ip_text:
            os.unlink(path)
        if err.strip():
            checks[name] += f"; stderr: {err.strip()[-300:]}"

    results = {name: [] for name, _ in commands}
    for k in range(args.runs):
        order = commands[k % len(commands):] + commands[:k % len(commands)]
        for name, argv in order:
            a0 = agent.cpu_ticks()
            wall, cpu, rc, err, rss = bl.run_timed(ns, argv, None, args.timeout, env, peak_rss=True)
            if not agent.alive():
                raise BenchError(f"the agent exited ({agent.p.returncode}) during `{name}`; stderr:\n{agent.stderr_text()}")
            a1 = agent.cpu_ticks()
            if rc != 0:
                raise BenchError(f"`{' '.join(argv)}` exited {rc}: {err.strip()[-2000:]}")
            agent_cpu = (a1 - a0) / bl.CLK_TCK if "(agent)" in name else None
            results[name].append({"wall_s": wall, "cpu_s": cpu, "rss_kib": rss, "agent_cpu_s": agent_cpu})
            log(f"run {k + 1}/{args.runs}: {name}: {wall:.3f}s wall, {cpu:.3f}s CPU, {rss / 1024:.1f} MiB"
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
    print(f"  {'command (stdout > /dev/null)':<34} {'wall s':>8} {'CPU s':>8} {'max RSS MiB':>12} "
          f"{'vs ip -j -d':>12} {'vs ip text':>11}")
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
