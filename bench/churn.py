#!/usr/bin/env python3
"""Route churn: CPU per routing event of `ip monitor route` vs routewatch.

In a fresh network namespace (veth pair va/vb up, 192.168.255.1/24 on va),
`ip -batch` adds N /32 routes (10.A.B.C/32 dev va) and then deletes them:
2N kernel route notifications. Two sides, each in its own fresh namespace:

  (a) `ip monitor route > /dev/null` runs in the namespace;
  (b) `routewatch-agent --insecure --listen 127.0.0.1:PORT` runs in the
      namespace with one `routewatch tail --insecure -o json 127.0.0.1:PORT
      > FILE` subscriber.

For each side: CPU (utime+stime from /proc/PID/stat, all threads) measured
once the process is started and settled (for (b): the agent's first dump
done, the tail's snapshot + sync marker written, both idle), then again
just before stopping it, after the churn, once it has gone quiet: no CPU
used, nothing queued on its netlink socket and (for (b)) the tail's output
not growing, all for 1 s. The difference divided by 2N is the CPU per event.
For (b) the agent's resident memory (VmRSS) is also read at the baseline
and after the churn.

(b) is also checked for completeness and exactness:
  - route change lines after the first sync marker, by origin
    (notification / reconcile), against the 2N expected; resync markers
    and re-snapshot (dump) lines are reported separately;
  - sequence numbers of change lines must be contiguous;
  - replaying the tail output (add upserts by key, delete removes by key,
    resync clears) must give as many route keys as
    `ip -j -4 route show table all` plus `ip -j -6 route show table all`,
    and the same routes field for field (`ip -j -d` fields; routewatch's
    own fields left out);
  - with --check-peak, the same check also right after the adds (the
    script then waits for quiet between the two phases).

Each side is run RUNS times (alternating a, b) and the median printed.
"""

import argparse
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # keep bench/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from benchlib import log  # noqa: E402

# The agent's resident memory after the churn may exceed its steady state
# (settled after startup, a subscriber synced) by at most this much.
RSS_GOAL_MIB = 64


def parse_args():
    p = argparse.ArgumentParser(
        description="CPU per route event: ip monitor vs routewatch-agent + tail (see bench/README.md)."
    )
    p.add_argument("n", nargs="?", type=int, default=int(os.environ.get("RW_N", 200000)),
                   help="routes to add and then delete (default 200000, env RW_N)")
    p.add_argument("-r", "--runs", type=int, default=int(os.environ.get("RW_RUNS", 3)),
                   help="runs per side; the median is reported (default 3, env RW_RUNS)")
    p.add_argument("--sides", default="ab",
                   help="which sides to run: a (ip monitor), b (routewatch) or ab (default)")
    p.add_argument("--rcvbuf", type=int, default=None,
                   help="pass --netlink-rcvbuf BYTES to the agent (default: the agent's own default)")
    p.add_argument("--no-changed-by", action="store_true",
                   help="pass --no-changed-by to the agent (attribution off), to measure what it costs")
    bl.add_port_and_deadline(p)
    p.add_argument("--quiet", type=float, default=1.0,
                   help="seconds without output that count as quiet (default 1.0)")
    p.add_argument("--check-peak", action="store_true",
                   help="(b) only: pause after the adds until quiet and check the replayed state against ip "
                        "there too (the churn then comes in two bursts)")
    bl.add_output_args(p, "keep the work directory (batch files, tail output, logs)")
    a = p.parse_args()
    bl.check_counts(p, a)
    if not set(a.sides) <= {"a", "b"} or not a.sides:
        p.error("--sides takes a, b or ab")
    return a


# --------------------------------------------------------------------------
# Side (a): ip monitor route


def run_ip_monitor(args, work, add_batch, del_batch, k):
    ns = bl.Netns()
    try:
        ns.setup_veth()
        m = bl.run_ip_monitor(ns, [add_batch, del_batch], os.path.join(work, f"ipmon-{k}.err"),
                              quiet=args.quiet, deadline=args.deadline)
        return {
            "side": "ip monitor",
            "cpu_s": m["ticks"] / bl.CLK_TCK,
            "us_per_event": m["ticks"] / bl.CLK_TCK / (2 * args.n) * 1e6,
            "batch_add_s": m["batch_s"][0],
            "batch_del_s": m["batch_s"][1],
            "lag_s": m["lag_s"],
            "drops": m["drops"],
            "enobufs_msgs": m["enobufs_msgs"],
            "exit": m["exit"],
        }
    finally:
        for p in list(bl._procs):
            p.stop(quiet=True)
        ns.delete()


# --------------------------------------------------------------------------
# Side (b): agent + tail


def churned(raw):
    """One of the churn's routes: 10.A.B.C/32, IPv4."""
    return b'"family":"inet"' in raw and b'"dst":"10.' in raw


def run_routewatch(args, work, add_batch, del_batch, k):
    ns = bl.Netns()
    try:
        ns.setup_veth()
        addr = f"127.0.0.1:{args.port}"
        extra = ["--netlink-rcvbuf", str(args.rcvbuf)] if args.rcvbuf else []
        if args.no_changed_by:
            extra.append("--no-changed-by")
        agent = bl.start_agent(ns, addr, os.path.join(work, f"agent-{k}.log"), extra=extra,
                               deadline=args.deadline)
        out = os.path.join(work, f"tail-{k}.jsonl")
        tail = bl.start_tail(ns, addr, out, os.path.join(work, f"tail-{k}.err"), deadline=args.deadline)
        replay = bl.Replay(out, expected=churned)
        peak = {}

        def check_peak(_):
            # Pause between the phases: everything added must be there, exactly.
            replay.feed()
            peak.update(replay.compare(ns))
            log(f"  peak check at {time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d}: "
                f"tail output {replay.offset} bytes, {peak['replay_routes']} routes replayed, "
                f"{peak['ip_routes_v4'] + peak['ip_routes_v6']} in the kernel")

        m = bl.run_subscribed(ns, agent, tail, out, [add_batch, del_batch], quiet=args.quiet,
                              deadline=args.deadline, between=check_peak if args.check_peak else None)
        peak = peak or None
        replay.feed()
        final = replay.compare(ns)
        tail_rc = tail.stop(sig=bl.signal.SIGINT)
        agent_rc = agent.stop(sig=bl.signal.SIGTERM)
        agent_log = agent.stderr_text(1 << 22)
        tail_log = tail.stderr_text()
        replay.feed()  # anything flushed on exit
        res = {
            "side": "routewatch",
            "agent_cpu_s": m["agent_ticks"] / bl.CLK_TCK,
            "tail_cpu_s": m["tail_ticks"] / bl.CLK_TCK,
            "agent_us_per_event": m["agent_ticks"] / bl.CLK_TCK / (2 * args.n) * 1e6,
            "tail_us_per_event": m["tail_ticks"] / bl.CLK_TCK / (2 * args.n) * 1e6,
            "batch_add_s": m["batch_s"][0],
            "batch_del_s": m["batch_s"][1],
            "lag_s": m["lag_s"],
            "agent_drops": m["agent_drops"],
            "agent_rss_before_kib": m["agent_rss_before_kib"],
            "agent_rss_after_kib": m["agent_rss_after_kib"],
            "agent_rss_kib": m["agent_hwm_after_kib"],
            "tail_rss_kib": m["tail_hwm_kib"],
            "agent_exit": agent_rc,
            "tail_exit": tail_rc,
            "tail_stderr": tail_log.strip()[-2000:],
            "tail_bytes": os.path.getsize(out),
            "expected": 2 * args.n,
            "final": final,
            "peak": peak,
        }
        res.update(bl.agent_log_counts(agent_log))
        res.update(replay.r)
        res["exact"] = final["count_ok"] and (peak is None or peak["count_ok"])
        res["content_exact"] = final["content_ok"] and (peak is None or peak["content_ok"])
        if not args.keep:
            os.unlink(out)
        return res
    finally:
        for p in list(bl._procs):
            p.stop(quiet=True)
        ns.delete()


# --------------------------------------------------------------------------
# Report


def fmt(x, spec=".2f"):
    return "-" if x is None else format(x, spec)


def mib(kib, spec=".0f"):
    return fmt(None if kib is None else kib / 1024, spec)


def report(args, a_runs, b_runs):
    n2 = 2 * args.n
    print()
    print(f"route churn: N={args.n} routes added then deleted = {n2} events, "
          f"{args.runs} run(s) per side, {os.cpu_count()} CPUs, Linux {os.uname().release}")
    print()
    if a_runs:
        print("per run, (a) ip monitor route > /dev/null:")
        for i, r in enumerate(a_runs):
            print(f"  run {i + 1}: cpu {r['cpu_s']:.2f}s = {r['us_per_event']:.2f} us/event; "
                  f"ip -batch add {r['batch_add_s']:.2f}s del {r['batch_del_s']:.2f}s; "
                  f"catch-up {r['lag_s']:.2f}s; socket drops {r['drops']}, ENOBUFS messages {r['enobufs_msgs']}")
    if b_runs:
        print("per run, (b) routewatch-agent + routewatch tail -o json > FILE:")
        for i, r in enumerate(b_runs):
            print(f"  run {i + 1}: agent cpu {r['agent_cpu_s']:.2f}s = {r['agent_us_per_event']:.2f} us/event, "
                  f"tail cpu {r['tail_cpu_s']:.2f}s = {r['tail_us_per_event']:.2f} us/event; "
                  f"ip -batch add {r['batch_add_s']:.2f}s del {r['batch_del_s']:.2f}s; catch-up {r['lag_s']:.2f}s")
            print(f"         events: {r['notif_route']}/{r['expected']} notification route changes "
                  f"({r['notif_route_add']} add, {r['notif_route_del']} delete), "
                  f"reconcile {r['reconcile_route']}, resync {r['resyncs']}, re-snapshot lines {r['redump_lines']}, "
                  f"seq gaps {r['seq_gaps']}")
            print(f"         kernel: agent socket drops {r['agent_drops']}, overflow warnings {r['overflow_warnings']}, "
                  f"re-dumps reconciled {r['reconciled_msgs']}, failed dump requests {r['dump_failed_msgs']}; "
                  f"exit agent {r['agent_exit']} tail {r['tail_exit']}")
            print(f"         memory: agent RSS {mib(r['agent_rss_before_kib'])} MiB before the churn, "
                  f"{mib(r['agent_rss_after_kib'])} MiB after "
                  f"({mib(r['agent_rss_after_kib'] - r['agent_rss_before_kib'], '+.1f')} MiB), "
                  f"peak {mib(r['agent_rss_kib'])} MiB; tail peak {mib(r['tail_rss_kib'])} MiB")
            if r["peak"]:
                print(f"         at peak (after adds): {bl.describe_check(r['peak'])}")
            print(f"         at end: {bl.describe_check(r['final'])}")
            if r["del_unknown"] or r["add_existing"]:
                print(f"         replay: deletes of unknown keys {r['del_unknown']}, adds of present keys "
                      f"{r['add_existing']} ({r['add_changed']} changing the route's fields)")
            for x in r["changed_examples"][:2]:
                print(f"           e.g. seq {x['seq']} ({x['origin']}) {x['key']}: {x['before']} -> {x['after']}")
            if r["resync_reasons"]:
                print(f"         resync reasons: {r['resync_reasons']}")
            if r["tail_stderr"]:
                print(f"         tail stderr: {r['tail_stderr'][-500:]}")
    print()
    ipm = bl.median([r["us_per_event"] for r in a_runs])
    ag = bl.median([r["agent_us_per_event"] for r in b_runs])
    tl = bl.median([r["tail_us_per_event"] for r in b_runs])
    print(f"median of {args.runs} run(s)          CPU us/event")
    print(f"  ip monitor route              {fmt(ipm):>8}")
    print(f"  routewatch-agent              {fmt(ag):>8}")
    print(f"  routewatch tail -o json       {fmt(tl):>8}")
    if ipm and ag is not None:
        print(f"  ratio agent / ip monitor      {ag / ipm:>8.2f}x   (goal <= 1.00x)")
        print(f"  ratio (agent+tail) / ip mon.  {(ag + tl) / ipm:>8.2f}x")
    if b_runs:
        before = bl.median([r["agent_rss_before_kib"] for r in b_runs])
        after = bl.median([r["agent_rss_after_kib"] for r in b_runs])
        grew = bl.median([r["agent_rss_after_kib"] - r["agent_rss_before_kib"] for r in b_runs])
        print(f"  agent RSS before/after churn  {mib(before, '.0f')} / {mib(after, '.0f')} MiB "
              f"({mib(grew, '+.1f')} MiB; goal <= +{RSS_GOAL_MIB} MiB: {'met' if grew <= RSS_GOAL_MIB * 1024 else 'NOT MET'})")
    if b_runs:
        print()
        print("routewatch events received vs expected (per run):")
        for i, r in enumerate(b_runs):
            got = r["notif_route"]
            if r["resyncs"] == 0 and r["reconcile_route"] == 0:
                verdict = "OK" if got == r["expected"] and r["seq_gaps"] == 0 else "LOST/EXTRA"
            else:
                verdict = "RE-DUMPED (kernel overflow; not loss, see exactness)"
            print(f"  run {i + 1}: received {got} of {r['expected']} expected"
                  f" + reconcile {r['reconcile_route']}, resync {r['resyncs']}, seq gaps {r['seq_gaps']}: {verdict};"
                  f" exactness {'OK' if r['exact'] else 'MISMATCH'}"
                  f" (fields {'OK' if r['content_exact'] else 'MISMATCH'})")
    return 0


def main():
    args = parse_args()
    bl.preflight(need_binaries="b" in args.sides)
    work = bl.workdir(keep=args.keep)
    if args.keep:
        log(f"work directory: {work}")
    log(f"generating batch files for N={args.n}")
    add_batch, del_batch = bl.write_batches(work, args.n)
    a_runs, b_runs = [], []
    for k in range(args.runs):
        if "a" in args.sides:
            log(f"run {k + 1}/{args.runs}: (a) ip monitor route")
            r = run_ip_monitor(args, work, add_batch, del_batch, k)
            log(f"  ip monitor: {r['us_per_event']:.2f} us/event (drops {r['drops']})")
            a_runs.append(r)
        if "b" in args.sides:
            log(f"run {k + 1}/{args.runs}: (b) routewatch-agent + tail")
            r = run_routewatch(args, work, add_batch, del_batch, k)
            log(f"  agent {r['agent_us_per_event']:.2f} us/event, tail {r['tail_us_per_event']:.2f} us/event; "
                f"events {r['notif_route']}/{r['expected']}, reconcile {r['reconcile_route']}, resync {r['resyncs']}, "
                f"exact {'OK' if r['exact'] else 'MISMATCH'}, fields {'OK' if r['content_exact'] else 'MISMATCH'}")
            b_runs.append(r)
    rc = report(args, a_runs, b_runs)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"n": args.n, "runs": args.runs, "ip_monitor": a_runs, "routewatch": b_runs}, f, indent=1)
    for r in b_runs:
        lost = (r["resyncs"] == 0 and r["reconcile_route"] == 0
                and (r["notif_route"] != r["expected"] or r["seq_gaps"]))
        if lost or not r["exact"] or not r["content_exact"] or r["agent_exit"] != 0 or r["tail_exit"] != 0:
            rc = 3
    if rc:
        print("\nFAILED: see MISMATCH / LOST / exit codes above", file=sys.stderr)
    return rc


if __name__ == "__main__":
    bl.run_main(main)
