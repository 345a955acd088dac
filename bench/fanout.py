#!/usr/bin/env python3
"""Fan-out: the agent's CPU per routing event with many subscribers vs one.

The agent encodes each change once and every session sends the same bytes,
so a subscriber should cost the agent little more than writing those bytes
to its socket. The goal: with 100 unfiltered subscribers the agent spends at
most 2x the CPU per event it spends with 1. Compressed subscribers (zstd)
share the compressed frames of the same bytes; they are measured as a
separate side, not part of the goal.

Each run uses a fresh network namespace (veth pair va/vb up,
192.168.255.1/24 on va), like churn.py. Inside it run
`routewatch-agent --insecure --listen 127.0.0.1:PORT` and K subscribers
`routewatch tail --insecure -o json --compression C 127.0.0.1:PORT > FILE`,
one file each (with --tls: a scratch CA and agent certificate, the agent
with --tls-cert/--tls-key and the subscribers with --ca instead).
Sides (one namespace per run; sides alternate a, b, c, ...):

  (a) K=1 (--base),          --compression none
  (b) K=100 (--subscribers), --compression none
  (c) K=100 (--subscribers), --compression zstd   (what the client's default,
                                                   auto, picks for a remote agent)
  (d) K=1 (--base),          --compression zstd   (optional, not by default)

Every subscriber must have written its snapshot and sync marker, and the
agent and all subscribers must be idle, before the baseline is taken. Then
`ip -batch` adds N routes (10.A.B.C/32 dev va) and a second `ip -batch`
deletes them: 2N kernel route notifications. The final reading is taken once
everything is quiet again (no CPU used by the agent or any subscriber,
nothing queued on the agent's netlink socket, no subscriber file growing),
just before the processes are stopped. The agent's CPU (utime+stime from
/proc/PID/stat, all threads) over that window, divided by 2N, is its CPU
per event. CPU time, not wall time: on a small machine the subscribers
compete with the agent for the cores.

Each subscriber's file is then checked: after its first sync marker it must
hold 2N route changes of origin notification with contiguous seq numbers,
no resync marker and no re-snapshot.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep bench/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from benchlib import BenchError, log  # noqa: E402

GOAL = 2.0

SIDES = {
    # letter: (how many subscribers: "base" or "many", compression)
    "a": ("base", "none"),
    "b": ("many", "none"),
    "c": ("many", "zstd"),
    "d": ("base", "zstd"),
}


def parse_args():
    p = argparse.ArgumentParser(
        description="Agent CPU per route event with many subscribers vs one (see bench/README.md)."
    )
    p.add_argument("n", nargs="?", type=int, default=int(os.environ.get("RW_N", 20000)),
                   help="routes to add and then delete (default 20000, env RW_N)")
    p.add_argument("-k", "--subscribers", type=int, default=int(os.environ.get("RW_SUBSCRIBERS", 100)),
                   help="subscribers of the many side (default 100, env RW_SUBSCRIBERS)")
    p.add_argument("--base", type=int, default=1,
                   help="subscribers of the base side the ratio divides by (default 1)")
    p.add_argument("-r", "--runs", type=int, default=int(os.environ.get("RW_RUNS", 3)),
                   help="runs per side; the median is reported (default 3, env RW_RUNS)")
    p.add_argument("--sides", default="abc",
                   help="sides to run, in this order every round: a (base, no compression), "
                        "b (many, no compression), c (many, compression zstd), d (base, compression zstd); "
                        "default abc")
    p.add_argument("--tls", action="store_true",
                   help="serve over TLS (a scratch CA and agent certificate from `routewatch certs init`) instead of "
                        "--insecure: every subscriber's bytes are then encrypted on their own")
    p.add_argument("--no-changed-by", action="store_true",
                   help="pass --no-changed-by to the agent (attribution off): each change then goes out without "
                        "who changed it, about 140 of its 250 bytes per subscriber with `ip -batch`")
    bl.add_port_and_deadline(p)
    p.add_argument("--quiet", type=float, default=1.0,
                   help="seconds without CPU or output that count as quiet (default 1.0)")
    p.add_argument("--idle", type=float, default=2.0,
                   help="seconds the idle agent is watched before the churn, for its idle CPU (default 2; 0 skips)")
    bl.add_output_args(p, "keep the work directory (batch files, subscriber output, logs); "
                        "the many side writes about 13 MB per subscriber per run at N=20000")
    a = p.parse_args()
    bl.check_counts(p, a)
    if a.subscribers <= 0 or a.base <= 0:
        p.error("--subscribers and --base must be positive")
    if not a.sides or not set(a.sides) <= set(SIDES) or len(set(a.sides)) != len(a.sides):
        p.error("--sides takes letters out of abcd, each at most once")
    return a


def side_k(args, side):
    return args.base if SIDES[side][0] == "base" else args.subscribers


def side_label(args, side):
    tls = " (TLS)" if args.tls else ""
    return f"K={side_k(args, side)} --compression {SIDES[side][1]}{tls}"


# --------------------------------------------------------------------------
# Readings


def cpu_split(proc):
    """(utime, stime) of the whole process, in clock ticks."""
    with open(f"/proc/{proc.pid}/stat") as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()
    return int(fields[11]), int(fields[12])


def cpu_ns(proc):
    """(ns on CPU summed over the process's live threads, their tids), from
    /proc/PID/task/TID/schedstat. Finer than the 10 ms ticks, but a thread
    that exits takes its time with it: compare two readings only if every
    thread of the first is still there at the second."""
    total = 0
    seen = set()
    try:
        tids = os.listdir(f"/proc/{proc.pid}/task")
    except OSError:
        return 0, seen
    for tid in tids:
        try:
            with open(f"/proc/{proc.pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
            seen.add(tid)
        except (OSError, ValueError, IndexError):
            pass
    return total, seen


def ns_delta(first, second):
    """ns between two cpu_ns() readings, or None if a thread exited between."""
    (a, ta), (b, tb) = first, second
    return b - a if ta <= tb else None


def subs_ticks(subs):
    return sum(s.cpu_ticks() for s in subs)


_BYTES_SENT = re.compile(r"\bbytes_sent:(\d+)")
_DATA_SEGS_OUT = re.compile(r"\bdata_segs_out:(\d+)")


def agent_sockets(ns, port):
    """(established connections on the agent's port, bytes the agent sent on
    them, data segments it sent on them) from `ss -tin` in the namespace;
    (None, None, None) without ss."""
    if shutil.which("ss") is None:
        return None, None, None
    r = subprocess.run(["ip", "netns", "exec", ns.name, "ss", "-Htin", "state", "established",
                        f"( sport = :{port} )"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return None, None, None
    conns = sum(1 for line in r.stdout.splitlines() if line and not line[0].isspace())
    sent = sum(int(m) for m in _BYTES_SENT.findall(r.stdout))
    segs = sum(int(m) for m in _DATA_SEGS_OUT.findall(r.stdout))
    return conns, sent, segs


def wait_all_quiet(agent, subs, paths, quiet, deadline, what):
    """Waits until no subscriber file grows, neither the agent nor any
    subscriber uses CPU and the agent has nothing queued on its netlink
    socket, all for `quiet` seconds. Returns seconds waited."""
    start = time.monotonic()
    end = start + deadline
    last = None
    since = start
    while True:
        for p in [agent] + subs:
            if not p.alive():
                raise BenchError(f"{p.name} exited ({p.p.returncode}) while waiting for {what}; "
                                 f"stderr:\n{p.stderr_text()}")
        state = (tuple(os.path.getsize(f) for f in paths), agent.cpu_ticks(), subs_ticks(subs))
        queued = sum(s["rmem"] for s in agent.netlink_sockets())
        now = time.monotonic()
        if state != last or queued:
            last, since = state, now
        elif now - since >= quiet:
            return now - start
        if now > end:
            raise BenchError(f"still busy after {deadline}s waiting for {what}")
        time.sleep(0.1)


def wait_synced(agent, subs, paths, deadline):
    """Waits until every subscriber file holds a sync marker."""
    pending = set(range(len(subs)))
    offsets = [0] * len(subs)
    end = time.monotonic() + deadline
    while pending:
        for i in list(pending):
            if not subs[i].alive():
                raise BenchError(f"{subs[i].name} exited ({subs[i].p.returncode}) before its sync marker; "
                                 f"stderr:\n{subs[i].stderr_text()}")
            try:
                with open(paths[i], "rb") as f:
                    f.seek(offsets[i])
                    data = f.read()
            except OSError:
                continue
            if b'"action":"sync"' in data:
                pending.discard(i)
            else:
                # Keep a tail in case the marker straddles two reads.
                offsets[i] += max(0, len(data) - 64)
        if not agent.alive():
            raise BenchError(f"routewatch-agent exited ({agent.p.returncode}); stderr:\n{agent.stderr_text()}")
        if not pending:
            return
        if time.monotonic() > end:
            raise BenchError(f"timed out after {deadline}s: {len(pending)} of {len(subs)} subscribers "
                             f"have no sync marker yet")
        time.sleep(0.1)


# --------------------------------------------------------------------------
# Checking a subscriber's output

def check_output(path):
    """Counts what a subscriber received after its first sync marker."""
    r = {
        "synced": False, "notif_route": 0, "notif_add": 0, "notif_del": 0,
        "reconcile_route": 0, "other_changes": 0, "resyncs": 0, "syncs": 0,
        "redump_lines": 0, "seq_gaps": 0, "first_gap": None, "bad_lines": 0,
        "resync_reasons": [],
    }
    with open(path, "rb") as f:
        data = f.read()
    r["bytes"] = len(data)
    i = data.find(b'"action":"sync"')
    if i < 0:
        return r
    start = data.rfind(b"\n", 0, i) + 1
    expect = None
    in_snapshot = False  # between a resync and the next sync
    for line in data[start:].split(b"\n"):
        if not line:
            continue
        m = bl.EVENT_HEAD.search(line)
        if m:
            seq, action = int(m.group(1)), m.group(2).decode()
            origin = m.group(3).decode() if m.group(3) else None
            obj = m.group(4).decode() if m.group(4) else None
            e = None
        else:
            try:
                e = json.loads(line)
            except ValueError:
                r["bad_lines"] += 1
                continue
            seq, action, origin, obj = e.get("seq"), e.get("action"), e.get("origin"), e.get("object")
        if action == "sync":
            r["syncs"] += 1
            r["synced"] = True
            in_snapshot = False
            expect = (seq or 0) + 1
            continue
        if action == "resync":
            r["resyncs"] += 1
            if len(r["resync_reasons"]) < 3:
                e = e or json.loads(line)
                r["resync_reasons"].append(e.get("reason"))
            in_snapshot = True
            expect = None
            continue
        if action == "heartbeat":
            continue
        if action not in ("add", "delete"):
            r["bad_lines"] += 1
            continue
        if origin == "dump":
            r["redump_lines"] += 1
            continue
        if in_snapshot:
            continue
        if expect is not None and seq != expect:
            r["seq_gaps"] += 1
            if r["first_gap"] is None:
                r["first_gap"] = (expect, seq)
        expect = (seq or 0) + 1
        if obj != "route":
            r["other_changes"] += 1
        elif origin == "notification":
            r["notif_route"] += 1
            r["notif_add" if action == "add" else "notif_del"] += 1
        elif origin == "reconcile":
            r["reconcile_route"] += 1
        else:
            r["other_changes"] += 1
    return r


def verdict(c, expected):
    if not c["synced"]:
        return "NO SYNC"
    if c["resyncs"] or c["redump_lines"]:
        return "RESYNCED"
    if c["reconcile_route"]:
        return "RE-DUMPED"
    if c["notif_route"] != expected or c["seq_gaps"] or c["bad_lines"] or c["other_changes"]:
        return "LOST/EXTRA"
    return "OK"


# --------------------------------------------------------------------------
# One run


def run_side(args, work, add_batch, del_batch, side, k_run, security):
    k = side_k(args, side)
    compression = SIDES[side][1]
    n2 = 2 * args.n
    d = os.path.join(work, f"{side}-run{k_run + 1}")
    os.mkdir(d)
    ns = bl.Netns()
    try:
        ns.setup_veth()
        addr = f"127.0.0.1:{args.port}"
        agent_security, sub_security = security
        # Every subscriber connects from 127.0.0.1: room for all of them
        # beyond the agent's default of 64 connections per address.
        agent = bl.start_agent(ns, addr, os.path.join(d, "agent.log"), deadline=args.deadline,
                               security=agent_security,
                               extra=("--max-connections-per-peer", str(k + 16))
                               + (("--no-changed-by",) if args.no_changed_by else ()))
        subs, outs = [], []
        t0 = time.monotonic()
        for i in range(k):
            out = os.path.join(d, f"sub-{i + 1}.jsonl")
            sub = bl.Proc(f"subscriber {i + 1}",
                          [bl.CLIENT, "tail", *sub_security, "-o", "json", "--compression", compression, addr],
                          ns, stdout=out, stderr=os.path.join(d, f"sub-{i + 1}.err"),
                          env={"ROUTEWATCH_LOG": "warn"})
            subs.append(sub)
            outs.append(out)
        wait_synced(agent, subs, outs, args.deadline)
        t_sync = time.monotonic() - t0
        wait_all_quiet(agent, subs, outs, args.quiet, args.deadline, "the subscribers to settle after the snapshot")
        conns0, sent0, segs0 = agent_sockets(ns, args.port)
        if conns0 is not None and conns0 != k:
            raise BenchError(f"{conns0} established connections on port {args.port}, expected {k}")
        idle_ms_per_s = None
        if args.idle > 0:
            i0, w0 = cpu_ns(agent), time.monotonic()
            time.sleep(args.idle)
            idle = ns_delta(i0, cpu_ns(agent))
            if idle is not None:
                idle_ms_per_s = idle / 1e6 / (time.monotonic() - w0)
        # Baseline: everything synced and idle.
        base_u, base_s = cpu_split(agent)
        base_ns = cpu_ns(agent)
        base_subs = subs_ticks(subs)
        base_sizes = sum(os.path.getsize(f) for f in outs)
        t_add = ns.batch(add_batch, timeout=args.deadline)
        t_del = ns.batch(del_batch, timeout=args.deadline)
        t_end = time.monotonic()
        wait_all_quiet(agent, subs, outs, args.quiet, args.deadline, "the churn to be delivered")
        lag = max(0.0, time.monotonic() - t_end - args.quiet)
        # Final readings, just before stopping.
        end_u, end_s = cpu_split(agent)
        precise = ns_delta(base_ns, cpu_ns(agent))
        end_subs = subs_ticks(subs)
        conns1, sent1, segs1 = agent_sockets(ns, args.port)
        drops = sum(s["drops"] for s in agent.netlink_sockets())
        rss = agent.rss_kib()
        end_sizes = sum(os.path.getsize(f) for f in outs)
        for s in subs:
            s.send_signal(signal.SIGINT)
        sub_rcs = [s.stop(sig=signal.SIGINT) for s in subs]
        agent_rc = agent.stop(sig=signal.SIGTERM)
        agent_log = agent.stderr_text(1 << 22)
        sub_errs = [s.stderr_text(2000).strip() for s in subs]
        ns.delete()
        checks = [check_output(f) for f in outs]
        if not args.keep:
            shutil.rmtree(d, ignore_errors=True)
        agent_ticks = (end_u - base_u) + (end_s - base_s)
        res = {
            "side": side,
            "label": side_label(args, side),
            "k": k,
            "compression": compression,
            "expected": n2,
            "agent_cpu_s": agent_ticks / bl.CLK_TCK,
            "agent_user_s": (end_u - base_u) / bl.CLK_TCK,
            "agent_sys_s": (end_s - base_s) / bl.CLK_TCK,
            "agent_us_per_event": agent_ticks / bl.CLK_TCK / n2 * 1e6,
            "agent_ns_us_per_event": None if precise is None else precise / 1e3 / n2,
            "subs_cpu_s": (end_subs - base_subs) / bl.CLK_TCK,
            "subs_us_per_event_per_sub": (end_subs - base_subs) / bl.CLK_TCK / n2 / k * 1e6,
            "agent_idle_ms_per_s": idle_ms_per_s,
            "agent_sent_bytes": None if sent0 is None or sent1 is None else sent1 - sent0,
            "agent_sent_segments": None if segs0 is None or segs1 is None else segs1 - segs0,
            "output_bytes": end_sizes - base_sizes,
            "conns_before": conns0,
            "conns_after": conns1,
            "sync_s": t_sync,
            "batch_add_s": t_add,
            "batch_del_s": t_del,
            "lag_s": lag,
            "agent_drops": drops,
            "agent_rss_kib": rss,
            "agent_exit": agent_rc,
            "sub_exits_nonzero": sum(1 for rc in sub_rcs if rc != 0),
            "sub_exit_examples": sorted(set(rc for rc in sub_rcs if rc != 0))[:5],
            "subs_with_stderr": sum(1 for e in sub_errs if e),
            "sub_stderr_example": next((e[-500:] for e in sub_errs if e), ""),
            "checks": checks,
        }
        res.update(bl.agent_log_counts(agent_log))
        res["verdicts"] = {}
        for c in checks:
            v = verdict(c, n2)
            res["verdicts"][v] = res["verdicts"].get(v, 0) + 1
        res["complete"] = res["verdicts"].get("OK", 0) == k
        return res
    finally:
        for p in list(bl._procs):
            p.stop(quiet=True)
        ns.delete()
        if not args.keep:
            shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------
# Report


def fmt(x, spec=".2f"):
    return "-" if x is None else format(x, spec)


def mb(x):
    return "-" if x is None else f"{x / 1e6:.1f} MB"


def describe_events(r):
    cs = r["checks"]
    got = [c["notif_route"] for c in cs]
    s = (f"{r['verdicts'].get('OK', 0)}/{r['k']} subscribers complete; notification route changes per "
         f"subscriber min {min(got)} max {max(got)} of {r['expected']} "
         f"(add {min(c['notif_add'] for c in cs)}..{max(c['notif_add'] for c in cs)}, "
         f"delete {min(c['notif_del'] for c in cs)}..{max(c['notif_del'] for c in cs)}); "
         f"reconcile {sum(c['reconcile_route'] for c in cs)}, resync {sum(c['resyncs'] for c in cs)}, "
         f"re-snapshot lines {sum(c['redump_lines'] for c in cs)}, seq gaps {sum(c['seq_gaps'] for c in cs)}, "
         f"unparsable lines {sum(c['bad_lines'] for c in cs)}")
    bad = {v: n for v, n in r["verdicts"].items() if v != "OK"}
    if bad:
        s += f"; NOT COMPLETE: {bad}"
    return s


def report(args, runs):
    n2 = 2 * args.n
    print()
    print(f"fan-out: N={args.n} routes added then deleted = {n2} events, {args.runs} run(s) per side, "
          f"{os.cpu_count()} CPUs, Linux {os.uname().release}")
    for side in args.sides:
        rs = runs[side]
        print()
        print(f"({side}) {side_label(args, side)}:")
        for i, r in enumerate(rs):
            per_sub = per_seg = None
            if r["agent_sent_bytes"] is not None:
                per_sub = r["agent_sent_bytes"] / n2 / r["k"]
            if r["agent_sent_segments"]:
                per_seg = n2 * r["k"] / r["agent_sent_segments"]
            print(f"  run {i + 1}: agent cpu {r['agent_cpu_s']:.2f}s (user {r['agent_user_s']:.2f} sys "
                  f"{r['agent_sys_s']:.2f}) = {r['agent_us_per_event']:.2f} us/event "
                  f"[schedstat {fmt(r['agent_ns_us_per_event'])}]; subscribers {r['subs_cpu_s']:.2f}s "
                  f"in all = {r['subs_us_per_event_per_sub']:.2f} us/event each")
            print(f"         agent sent {mb(r['agent_sent_bytes'])} = {fmt(per_sub, '.0f')} B/event/subscriber "
                  f"in {fmt(r['agent_sent_segments'], 'd')} TCP segments ({fmt(per_seg, '.0f')} events each); "
                  f"idle agent {fmt(r['agent_idle_ms_per_s'], '.2f')} ms CPU/s; subscribers synced in "
                  f"{r['sync_s']:.1f}s; ip -batch add {r['batch_add_s']:.2f}s del {r['batch_del_s']:.2f}s; "
                  f"catch-up {r['lag_s']:.2f}s")
            print(f"         events: {describe_events(r)}")
            print(f"         agent: socket drops {r['agent_drops']}, overflow warnings {r['overflow_warnings']}, "
                  f"re-dumps {r['reconciled_msgs']}, subscriber resyncs logged {r['resync_msgs']}, "
                  f"errors {r['agent_errors']}, peak RSS {r['agent_rss_kib'] // 1024} MiB, exit {r['agent_exit']}; "
                  f"connections {r['conns_before']} -> {r['conns_after']}; subscribers exited non-zero "
                  f"{r['sub_exits_nonzero']} {r['sub_exit_examples'] or ''}")
            if r["subs_with_stderr"]:
                print(f"         {r['subs_with_stderr']} subscriber(s) wrote to stderr, e.g.: "
                      f"{r['sub_stderr_example']}")
            reasons = [x for c in r["checks"] for x in c["resync_reasons"]][:3]
            if reasons:
                print(f"         resync reasons: {reasons}")
    med = {s: bl.median([r["agent_us_per_event"] for r in runs[s]]) for s in args.sides}
    subs_med = {s: bl.median([r["subs_us_per_event_per_sub"] for r in runs[s]]) for s in args.sides}
    sent_med = {s: bl.median([r["agent_sent_bytes"] / n2 / r["k"] for r in runs[s]
                              if r["agent_sent_bytes"] is not None]) for s in args.sides}
    print()
    print(f"median of {args.runs} run(s)                    agent us/event   vs K={args.base} none   "
          f"subscriber us/event (each)   agent B/event/subscriber")
    base = med.get("a")
    for side in args.sides:
        ratio = f"{med[side] / base:.2f}x" if base else "-"
        print(f"  {side_label(args, side):<32} {fmt(med[side]):>10}      {ratio:>10}        "
              f"{fmt(subs_med[side]):>10}                 {fmt(sent_med[side], '.0f'):>8}")
    fine = {s: bl.median([r["agent_ns_us_per_event"] for r in runs[s]]) for s in args.sides}
    if fine.get("a") and all(fine[s] is not None for s in args.sides):
        print("  cross-check from schedstat (ns, all threads; the ticks above are 10 ms apart): "
              + ", ".join(f"{side_label(args, s)} {fine[s]:.2f} us/event = {fine[s] / fine['a']:.2f}x"
                          for s in args.sides))
    print()
    if base == 0:
        print(f"NOTE  the K={args.base} agent used less than one clock tick: no ratio; raise N")
    if base and "b" in med:
        ratio = med["b"] / base
        if args.tls:
            print(f"INFO  K={args.subscribers} / K={args.base}, --compression none, TLS: {ratio:.2f}x "
                  f"(the goal, <= {GOAL:.2f}x, is for plain connections)")
        else:
            print(f"GOAL  K={args.subscribers} / K={args.base}, --compression none: {ratio:.2f}x "
                  f"(goal <= {GOAL:.2f}x): {'met' if ratio <= GOAL else 'NOT MET'}")
        paired = [rb["agent_us_per_event"] / ra["agent_us_per_event"]
                  for ra, rb in zip(runs["a"], runs["b"]) if ra["agent_us_per_event"]]
        print(f"      per round: {', '.join(f'{x:.2f}x' for x in paired)}")
    if base and "c" in med:
        ratio = med["c"] / base
        print(f"INFO  K={args.subscribers} --compression zstd / K={args.base} --compression none: {ratio:.2f}x "
              f"(compressed subscribers; not part of the goal)")
        if "b" in med and med["b"]:
            print(f"      K={args.subscribers} zstd / K={args.subscribers} none: {med['c'] / med['b']:.2f}x")
    if "d" in med and "c" in med and med["d"]:
        print(f"INFO  K={args.subscribers} / K={args.base}, both --compression zstd: {med['c'] / med['d']:.2f}x")
    print()
    print("every subscriber received every change (per run):")
    for side in args.sides:
        for i, r in enumerate(runs[side]):
            print(f"  ({side}) run {i + 1}: {r['verdicts'].get('OK', 0)}/{r['k']} subscribers got "
                  f"{n2}/{n2} with no gap, resync or re-dump: {'OK' if r['complete'] else 'NOT COMPLETE'}")


def main():
    args = parse_args()
    bl.preflight()
    work = bl.workdir(keep=args.keep, prefix="rwbench-fanout.")
    security = bl.make_certs(work) if args.tls else bl.INSECURE
    if args.keep:
        log(f"work directory: {work}")
    log(f"generating batch files for N={args.n}")
    add_batch, del_batch = bl.write_batches(work, args.n)
    runs = {s: [] for s in args.sides}
    for k in range(args.runs):
        for side in args.sides:
            log(f"run {k + 1}/{args.runs}: ({side}) {side_label(args, side)}")
            r = run_side(args, work, add_batch, del_batch, side, k, security)
            got = [c["notif_route"] for c in r["checks"]]
            log(f"  agent {r['agent_us_per_event']:.2f} us/event (cpu {r['agent_cpu_s']:.2f}s), "
                f"subscribers {r['subs_cpu_s']:.2f}s; events per subscriber {min(got)}..{max(got)} of "
                f"{r['expected']}, {r['verdicts']}")
            runs[side].append(r)
    report(args, runs)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"n": args.n, "runs": args.runs, "subscribers": args.subscribers, "base": args.base,
                       "results": runs}, f, indent=1)
    rc = 0
    for side in args.sides:
        for i, r in enumerate(runs[side]):
            if not r["complete"]:
                print(f"FAILED: ({side}) run {i + 1}: not every subscriber received all {2 * args.n} changes "
                      f"({r['verdicts']})", file=sys.stderr)
                rc = 3
            if r["agent_exit"] != 0 or r["sub_exits_nonzero"]:
                print(f"FAILED: ({side}) run {i + 1}: agent exited {r['agent_exit']}, "
                      f"{r['sub_exits_nonzero']} subscriber(s) exited non-zero", file=sys.stderr)
                rc = 3
    return rc


if __name__ == "__main__":
    bl.run_main(main)
