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
from benchlib import BenchError, log  # noqa: E402


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
        err = os.path.join(work, f"ipmon-{k}.err")
        mon = bl.Proc("ip monitor", ["ip", "monitor", "route"], ns, stdout=None, stderr=err)
        # Started once it has its netlink socket (joined to route groups).
        bl.wait_until(lambda: mon.netlink_sockets(), 10, "ip monitor's netlink socket", proc=mon)
        time.sleep(0.5)
        base = mon.cpu_ticks()
        t_add = ns.batch(add_batch, timeout=args.deadline)
        t_del = ns.batch(del_batch, timeout=args.deadline)
        t_end = time.monotonic()
        bl.wait_cpu_quiet(mon, quiet=args.quiet, deadline=args.deadline)
        lag = max(0.0, time.monotonic() - t_end - args.quiet)
        socks = mon.netlink_sockets()
        end = mon.cpu_ticks()  # just before stopping
        rc = mon.stop()
        enobufs = sum(1 for line in mon.stderr_text(1 << 20).splitlines() if "No buffer space" in line or "ENOBUFS" in line)
        return {
            "side": "ip monitor",
            "cpu_s": (end - base) / bl.CLK_TCK,
            "us_per_event": (end - base) / bl.CLK_TCK / (2 * args.n) * 1e6,
            "batch_add_s": t_add,
            "batch_del_s": t_del,
            "lag_s": lag,
            "drops": sum(s["drops"] for s in socks),
            "enobufs_msgs": enobufs,
            "exit": rc,
        }
    finally:
        for p in list(bl._procs):
            p.stop(quiet=True)
        ns.delete()


# --------------------------------------------------------------------------
# Side (b): agent + tail


canon = bl.canon


class Replay:
    """Replays the tail output incrementally, as a consumer would: add
    upserts by key, delete removes by key, resync clears. Counts what it
    sees after the first sync marker."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.routes = {}  # key -> event
        self.nexthops = set()
        self.synced = False
        self.expect_seq = None
        self.r = {
            "snapshot_routes": 0, "snapshot_nexthops": 0, "snapshot_rules": 0,
            "notif_route": 0, "notif_route_add": 0, "notif_route_del": 0,
            "reconcile_route": 0, "redump_lines": 0, "nexthop_changes": 0,
            "resyncs": 0, "syncs": 0, "seq_gaps": 0, "seq_first_gap": None,
            "del_unknown": 0, "add_existing": 0, "add_changed": 0, "bad_lines": 0,
            "other_route_events": 0, "resync_reasons": [], "changed_examples": [],
        }

    def feed(self):
        """Consumes the complete lines written since the last call."""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        cut = data.rfind(b"\n") + 1
        self.offset += cut
        for raw in data[:cut].splitlines():
            self.line(raw)

    def line(self, raw):
        r = self.r
        try:
            e = json.loads(raw)
        except ValueError:
            r["bad_lines"] += 1
            return
        action = e.get("action")
        if action == "sync":
            r["syncs"] += 1
            self.synced = True
            self.expect_seq = e.get("seq", 0) + 1
            return
        if action == "resync":
            r["resyncs"] += 1
            if len(r["resync_reasons"]) < 5:
                r["resync_reasons"].append(e.get("reason"))
            self.routes.clear()
            self.nexthops.clear()
            self.synced = False  # a fresh snapshot follows, then a sync
            self.expect_seq = None
            return
        if action not in ("add", "delete"):
            r["bad_lines"] += 1
            return
        obj = e.get("object")
        origin = e.get("origin")
        key = e.get("key")
        if origin == "dump":
            if r["syncs"] == 0:
                r["snapshot_" + {"route": "routes", "rule": "rules"}.get(obj, "nexthops")] += 1
            else:
                r["redump_lines"] += 1
        else:
            seq = e.get("seq")
            if self.expect_seq is not None and seq != self.expect_seq:
                r["seq_gaps"] += 1
                if r["seq_first_gap"] is None:
                    r["seq_first_gap"] = (self.expect_seq, seq)
            self.expect_seq = (seq or 0) + 1
            if self.synced and obj == "route":
                if origin == "notification":
                    r["notif_route"] += 1
                    r["notif_route_add" if action == "add" else "notif_route_del"] += 1
                    if not (e.get("family") == "inet" and str(e.get("dst", "")).startswith("10.")):
                        r["other_route_events"] += 1
                elif origin == "reconcile":
                    r["reconcile_route"] += 1
            elif obj == "nexthop":
                r["nexthop_changes"] += 1
        if obj == "route":
            if action == "add":
                old = self.routes.get(key)
                if old is not None:
                    r["add_existing"] += 1
                    if canon(old) != canon(e):
                        r["add_changed"] += 1
                        if len(r["changed_examples"]) < 3:
                            r["changed_examples"].append(
                                {"seq": e.get("seq"), "origin": e.get("origin"), "key": key,
                                 "before": json.loads(canon(old)), "after": json.loads(canon(e))})
                self.routes[key] = e
            elif self.routes.pop(key, None) is None:
                r["del_unknown"] += 1
        elif obj == "nexthop":
            if action == "add":
                self.nexthops.add(key)
            else:
                self.nexthops.discard(key)

    def compare(self, ns):
        """Compares the replayed routes with the kernel's (`ip -j -d route
        show table all`, -4 plus -6): key count and every route's fields."""
        ip_routes = []
        counts = {}
        for fam in ("-4", "-6"):
            got = json.loads(ns.ip(["-j", "-d", fam, "route", "show", "table", "all"], timeout=300) or "[]")
            counts[fam] = len(got)
            ip_routes += got
        mine = {}
        for e in self.routes.values():
            c = canon(e)
            mine[c] = mine.get(c, 0) + 1
        theirs = {}
        for e in ip_routes:
            c = canon(e)
            theirs[c] = theirs.get(c, 0) + 1
        only_rw = [c for c in mine if mine[c] > theirs.get(c, 0)]
        only_ip = [c for c in theirs if theirs[c] > mine.get(c, 0)]
        return {
            "replay_routes": len(self.routes),
            "replay_routes_v4": sum(1 for e in self.routes.values() if e.get("family") == "inet"),
            "replay_routes_v6": sum(1 for e in self.routes.values() if e.get("family") == "inet6"),
            "replay_nexthops": len(self.nexthops),
            "ip_routes_v4": counts["-4"],
            "ip_routes_v6": counts["-6"],
            "count_ok": len(self.routes) == counts["-4"] + counts["-6"],
            "content_ok": not only_rw and not only_ip,
            "only_routewatch": sum(mine[c] - theirs.get(c, 0) for c in only_rw),
            "only_ip": sum(theirs[c] - mine.get(c, 0) for c in only_ip),
            "only_routewatch_examples": only_rw[:3],
            "only_ip_examples": only_ip[:3],
        }


def agent_log_counts(text):
    return {
        "overflow_warnings": text.count("overflowed (ENOBUFS)"),
        "reconciled_msgs": text.count("reconciled with the kernel"),
        "dump_failed_msgs": text.count("dump request failed"),
        "agent_errors": sum(1 for line in text.splitlines() if " ERROR " in line or "panicked" in line),
    }


def run_routewatch(args, work, add_batch, del_batch, k):
    ns = bl.Netns()
    try:
        ns.setup_veth()
        addr = f"127.0.0.1:{args.port}"
        agent_err = os.path.join(work, f"agent-{k}.log")
        argv = [bl.AGENT, "--insecure", "--listen", addr]
        if args.rcvbuf:
            argv += ["--netlink-rcvbuf", str(args.rcvbuf)]
        agent = bl.Proc("routewatch-agent", argv, ns, stderr=agent_err, env={"ROUTEWATCH_LOG": "info"})
        bl.wait_until(lambda: bl.file_contains(agent_err, b"serving"), args.deadline,
                      "the agent to serve (first dump complete)", proc=agent)
        out = os.path.join(work, f"tail-{k}.jsonl")
        tail_err = os.path.join(work, f"tail-{k}.err")
        tail = bl.Proc("routewatch tail", [bl.CLIENT, "tail", "--insecure", "-o", "json", addr], ns,
                       stdout=out, stderr=tail_err, env={"ROUTEWATCH_LOG": "warn"})
        bl.wait_until(lambda: bl.file_contains(out, b'"action":"sync"'), args.deadline,
                      "the tail's sync marker", proc=tail)
        # Let both settle after the snapshot, then take the baseline.
        bl.wait_quiet(paths=(out,), procs=(agent, tail), quiet=0.5, deadline=args.deadline)
        base_a, base_t = agent.cpu_ticks(), tail.cpu_ticks()
        replay = Replay(out)
        t_add = ns.batch(add_batch, timeout=args.deadline)
        peak = None
        if args.check_peak:
            # Pause between the phases: everything added must be there, exactly.
            bl.wait_quiet(paths=(out,), procs=(agent, tail), quiet=args.quiet, deadline=args.deadline)
            c0a, c0t = agent.cpu_ticks(), tail.cpu_ticks()
            replay.feed()
            peak = replay.compare(ns)
            log(f"  peak check at {time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d}: "
                f"tail output {replay.offset} bytes, {peak['replay_routes']} routes replayed, "
                f"{peak['ip_routes_v4'] + peak['ip_routes_v6']} in the kernel")
            # Leave the pause (and the agent's reply to nothing) out of the CPU.
            base_a += agent.cpu_ticks() - c0a
            base_t += tail.cpu_ticks() - c0t
        t_del = ns.batch(del_batch, timeout=args.deadline)
        t_end = time.monotonic()
        bl.wait_quiet(paths=(out,), procs=(agent, tail), quiet=args.quiet, deadline=args.deadline)
        lag = max(0.0, time.monotonic() - t_end - args.quiet)
        socks = agent.netlink_sockets()
        end_a, end_t = agent.cpu_ticks(), tail.cpu_ticks()  # just before stopping
        rss_a, rss_t = agent.rss_kib(), tail.rss_kib()
        replay.feed()
        final = replay.compare(ns)
        tail_rc = tail.stop(sig=bl.signal.SIGINT)
        agent_rc = agent.stop(sig=bl.signal.SIGTERM)
        agent_log = agent.stderr_text(1 << 22)
        tail_log = tail.stderr_text()
        replay.feed()  # anything flushed on exit
        res = {
            "side": "routewatch",
            "agent_cpu_s": (end_a - base_a) / bl.CLK_TCK,
            "tail_cpu_s": (end_t - base_t) / bl.CLK_TCK,
            "agent_us_per_event": (end_a - base_a) / bl.CLK_TCK / (2 * args.n) * 1e6,
            "tail_us_per_event": (end_t - base_t) / bl.CLK_TCK / (2 * args.n) * 1e6,
            "batch_add_s": t_add,
            "batch_del_s": t_del,
            "lag_s": lag,
            "agent_drops": sum(s["drops"] for s in socks),
            "agent_rss_kib": rss_a,
            "tail_rss_kib": rss_t,
            "agent_exit": agent_rc,
            "tail_exit": tail_rc,
            "tail_stderr": tail_log.strip()[-2000:],
            "tail_bytes": os.path.getsize(out),
            "expected": 2 * args.n,
            "final": final,
            "peak": peak,
        }
        res.update(agent_log_counts(agent_log))
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


def describe_check(c):
    s = (f"replay {c['replay_routes']} route keys (v4 {c['replay_routes_v4']}, v6 {c['replay_routes_v6']}) "
         f"vs ip {c['ip_routes_v4'] + c['ip_routes_v6']} (v4 {c['ip_routes_v4']}, v6 {c['ip_routes_v6']}): "
         f"{'OK' if c['count_ok'] else 'MISMATCH'}; fields: {'OK' if c['content_ok'] else 'MISMATCH'}")
    if not c["content_ok"]:
        s += f" ({c['only_routewatch']} routes only in routewatch, {c['only_ip']} only in ip)"
        for x in c["only_routewatch_examples"][:2]:
            s += f"\n             only routewatch: {x}"
        for x in c["only_ip_examples"][:2]:
            s += f"\n             only ip:         {x}"
    return s


# --------------------------------------------------------------------------
# Report


def fmt(x, spec=".2f"):
    return "-" if x is None else format(x, spec)


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
                  f"peak RSS agent {r['agent_rss_kib'] // 1024} MiB, tail {r['tail_rss_kib'] // 1024} MiB; "
                  f"exit agent {r['agent_exit']} tail {r['tail_exit']}")
            if r["peak"]:
                print(f"         at peak (after adds): {describe_check(r['peak'])}")
            print(f"         at end: {describe_check(r['final'])}")
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
