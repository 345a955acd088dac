#!/usr/bin/env python3
"""Digests under churn: no false alarm, and what they cost the agent.

In a fresh network namespace (veth pair va/vb up) an agent sends a digest
every second (`--digest-interval 1`, with a journal large enough that no
subscriber lags behind the churn) to three subscribers:

  routewatch tail --verify -o json      compares its picture with each digest
  routewatch collect --store sqlite://  compares its stored record (always)
  routewatch tail -o jsonpb             counts the digests and their positions

Then `ip -batch` adds N routes `10.A.B.C/32 dev va` in rounds of --round
routes, each followed by a --pause, and a last batch deletes them all (2N
route changes). Once everything is quiet the script waits for two more
digests and checks:

  - tail --verify said no "digest mismatch" and printed no resync;
  - collect recorded no gap;
  - `routewatch query verify` finds the store equal to the agent's digest.

It prints the digests sent during the churn (at positions before its last
change), and the agent's CPU per route change with the digests as they are
kept (on every change) and sent.

Exit status: 0 no false alarm, 3 a false alarm or a resync, 1 a step failed,
2 not root or binaries missing.
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
    p = argparse.ArgumentParser(description="Digests under route churn: no false alarm (see bench/README.md).")
    p.add_argument("n", nargs="?", type=int, default=int(os.environ.get("RW_N", 200000)),
                   help="routes to add and delete (default 200000, env RW_N)")
    p.add_argument("--round", type=int, default=10000, help="routes added per round (default 10000)")
    p.add_argument("--pause", type=float, default=0.5, help="seconds between rounds (default 0.5)")
    bl.add_port_and_deadline(p)
    p.add_argument("--keep", action="store_true", help="keep the work directory (outputs, logs, store)")
    a = p.parse_args()
    if a.n <= 0 or a.round <= 0:
        p.error("N and --round must be positive")
    return a


def digests_in(path):
    """The positions (seq) of the Digest events in a jsonpb tail's output."""
    out = []
    with open(path, "rb") as f:
        for line in f:
            if b'"digest"' not in line:
                continue
            event = json.loads(line).get("event", {})
            if "digest" in event:
                out.append(int(event.get("seq", 0)))
    return out


def main():
    args = parse_args()
    bl.preflight()
    d = bl.workdir(args.keep, prefix="rwbench-digest.")
    ns = bl.Netns()
    ns.setup_veth()
    addr = f"127.0.0.1:{args.port}"
    agent = bl.start_agent(ns, addr, os.path.join(d, "agent.log"), extra=[
        "--digest-interval", "1", "--journal-bytes", str(2 << 30), "--journal-capacity", str(4 * args.n + 1000)])
    verify_out, verify_err = os.path.join(d, "verify.json"), os.path.join(d, "verify.err")
    tail = bl.Proc("routewatch tail --verify", [bl.CLIENT, "tail", "--insecure", "-o", "json", "--verify", addr], ns,
                   stdout=verify_out, stderr=verify_err, env={"ROUTEWATCH_LOG": "warn"})
    bl.wait_for_bytes(verify_out, b'"action":"sync"', args.deadline, "tail --verify's sync marker", proc=tail)
    raw_out = os.path.join(d, "raw.jsonpb")
    raw = bl.Proc("routewatch tail -o jsonpb", [bl.CLIENT, "tail", "--insecure", "-o", "jsonpb", addr], ns,
                  stdout=raw_out, stderr=os.path.join(d, "raw.err"))
    store = os.path.join(d, "store.db")
    collect_err = os.path.join(d, "collect.err")
    collect = bl.Proc("routewatch collect", [bl.CLIENT, "collect", "--insecure", "--store", f"sqlite://{store}", addr],
                      ns, stderr=collect_err)
    bl.wait_for_bytes(collect_err, b"following", args.deadline, "collect to follow the agent", proc=collect)
    # Digests every second keep every process a little busy and the raw
    # tail's output growing: quiet is tail --verify's output standing still.
    bl.wait_quiet(paths=(verify_out,), deadline=args.deadline)
    cpu0 = agent.cpu_seconds()
    started = time.monotonic()
    for start in range(0, args.n, args.round):
        path = os.path.join(d, f"add-{start}.batch")
        with open(path, "w") as f:
            for i in range(start, min(args.n, start + args.round)):
                f.write(f"route add 10.{1 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}/32 dev va\n")
        ns.batch(path)
        time.sleep(args.pause)
    dele = os.path.join(d, "del.batch")
    with open(dele, "w") as f:
        f.write(bl.route_lines(args.n, "del"))
    ns.batch(dele)
    churn = time.monotonic() - started
    bl.wait_quiet(paths=(verify_out,), quiet=2.0, deadline=args.deadline)
    cpu = agent.cpu_seconds() - cpu0
    last = json.loads(ns.run([bl.CLIENT, "info", "--insecure", "-o", "json", addr]))
    last_seq = int(last["seq"])
    bl.wait_until(lambda: digests_in(raw_out).count(last_seq) >= 2, args.deadline,
                  "two digests at the last position")
    positions = digests_in(raw_out)
    during = sum(1 for s in positions if s < last_seq)
    mismatch = bl.file_contains(verify_err, b"digest mismatch") or bl.file_contains(collect_err, b"digest mismatch")
    resyncs = bl.file_contains(verify_out, b'"action":"resync"')
    store_verify = ns.run([bl.CLIENT, "query", "--store", f"sqlite://{store}", "verify", "--host", addr, "--insecure"])
    changes = 2 * args.n
    log(f"{changes} route changes in {churn:.1f}s (rounds of {args.round}, {args.pause}s apart)")
    log(f"digests: {len(positions)} sent to the raw tail, {during} of them during the churn")
    log(f"agent CPU: {cpu:.2f}s, {cpu / changes * 1e6:.2f} us per route change (digests kept and sent)")
    log(f"tail --verify: {'MISMATCH' if mismatch else 'no mismatch'}; resync markers: {'yes' if resyncs else 'none'}")
    log("query verify:\n" + store_verify.rstrip())
    for p in (tail, raw, collect, agent):
        p.stop()
    return 3 if mismatch or resyncs or during == 0 else 0


if __name__ == "__main__":
    bl.run_main(main)
