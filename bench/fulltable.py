#!/usr/bin/env python3
"""Full table: routewatch at the scale of a full Internet BGP table, side by
side with iproute2.

A fresh network namespace gets a table like a BGP router's: --v4 IPv4 and
--v6 IPv6 prefixes (default 1000000 and 250000) with the prefix lengths of
the public Internet, unique and seeded (--seed), via gateways on four veth
links, in tables main, 100, 200 and 1000, protocols bgp, static, zebra and
bird. Some routes use nexthop objects (`nhid`, singles and groups), some are
multipath. `ip -batch` installs them; the route counts are checked. Then,
each phase optional (--phases):

  startup  routewatch-agent (TLS, certificates from `routewatch certs
           init`; --insecure for plaintext) starts in the namespace: time
           until it serves (first dump complete), VmRSS and VmHWM.
  show     `routewatch show -o json ADDR` vs `ip -j -d route show table
           all`, `routewatch show ADDR` (text) vs `ip route show table
           all`, and `routewatch show -o json` in process, stdout to
           /dev/null, RUNS rounds in rotated order, median wall time. Once,
           routewatch's JSON (through the agent and in process) is compared
           with `ip -j -d` field for field (or, with --sample, counts, every
           route's table and prefix and the fields of a deterministic sample).
  flap     every IPv4 route of table main deleted and added again by `ip
           -batch` (2 x that many events): CPU per event of `ip monitor
           route > /dev/null` in a second namespace with the same table,
           against the agent with one `routewatch tail -o json ADDR > FILE`
           subscriber, as churn.py measures it; the tail's output is
           checked for every change (seq contiguous; a re-dump or a resync
           is reported, not counted as loss) and must replay to the
           kernel's table.
  burst    with the agent, a tail and `ip monitor route > FILE` running on
           the quiet table, `ip -batch` adds --burst routes: time from `ip
           -batch` returning until the tail's output holds the last of
           them (the file polled every millisecond), RUNS times (the burst
           deleted between runs); how many changes `ip monitor` printed.
"""

import argparse
import ipaddress
import json
import os
import random
import re
import signal
import sys
import time

sys.dont_write_bytecode = True  # keep bench/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from benchlib import BenchError, log  # noqa: E402

PHASES = ("startup", "show", "flap", "burst")

# Share of each prefix length, in per cent (normalised), close to the
# public Internet's tables of the mid-2020s.
V4_MIX = {
    8: 0.0015, 9: 0.002, 10: 0.004, 11: 0.01, 12: 0.03, 13: 0.06, 14: 0.12, 15: 0.22,
    16: 1.3, 17: 0.9, 18: 1.5, 19: 2.8, 20: 4.2, 21: 5.0, 22: 11.0, 23: 11.3, 24: 60.0,
    25: 0.15, 26: 0.12, 27: 0.08, 28: 0.07, 29: 0.06, 30: 0.04, 31: 0.01, 32: 0.04,
}
V6_MIX = {
    16: 0.005, 17: 0.005, 18: 0.005, 19: 0.01, 20: 0.03, 21: 0.02, 22: 0.03, 23: 0.03,
    24: 0.06, 25: 0.03, 26: 0.04, 27: 0.06, 28: 0.5, 29: 3.5, 30: 0.5, 31: 0.4,
    32: 10.0, 33: 1.2, 34: 1.0, 35: 0.8, 36: 4.0, 37: 0.5, 38: 0.6, 39: 0.5,
    40: 6.5, 41: 0.5, 42: 1.5, 43: 0.5, 44: 7.0, 45: 1.0, 46: 2.5, 47: 2.0, 48: 45.0,
    49: 0.3, 50: 0.3, 51: 0.2, 52: 0.4, 53: 0.1, 54: 0.2, 55: 0.1, 56: 1.5,
    57: 0.05, 58: 0.05, 59: 0.05, 60: 0.2, 61: 0.05, 62: 0.05, 63: 0.05, 64: 1.0,
}
# IPv4 space never generated: not routed on the Internet, or used here (the
# links' gateways, the burst).
V4_RESERVED = [("0.0.0.0", 8), ("10.0.0.0", 8), ("100.64.0.0", 10), ("127.0.0.0", 8),
               ("169.254.0.0", 16), ("172.16.0.0", 12), ("192.168.0.0", 16), ("198.18.0.0", 15),
               ("224.0.0.0", 3)]
BURST_NET = (198 << 24) | (18 << 16)  # 198.18.0.0/15, the burst's /32s

TABLES = [("main", 85), ("100", 8), ("200", 5), ("1000", 2)]
PROTOS = [("bgp", 92), ("static", 4), ("zebra", 2), ("bird", 2)]
FLAP_TABLE = "main"
LINKS = 4  # veth pairs r0a/r0b .. r3a/r3b
GATEWAYS = 8  # per link and family
NH_V4, NH_V6 = 200, 60  # single nexthop objects
GROUPS_V4, GROUPS_V6 = 40, 20  # nexthop groups
BATCH_CHUNK = 100000  # install lines per `ip -batch`, for progress lines


def parse_args():
    p = argparse.ArgumentParser(
        description="routewatch with a full Internet table, side by side with iproute2 (see bench/README.md)."
    )
    p.add_argument("--v4", type=int, default=int(os.environ.get("RW_V4", 1000000)),
                   help="IPv4 prefixes (default 1000000, env RW_V4)")
    p.add_argument("--v6", type=int, default=int(os.environ.get("RW_V6", 250000)),
                   help="IPv6 prefixes (default 250000, env RW_V6)")
    p.add_argument("--phases", default=",".join(PHASES),
                   help="phases to run, comma separated, out of startup,show,flap,burst (default all)")
    p.add_argument("-r", "--runs", type=int, default=int(os.environ.get("RW_RUNS", 3)),
                   help="rounds of show and runs of burst; the median is reported (default 3, env RW_RUNS)")
    p.add_argument("--flap-runs", type=int, default=1,
                   help="flap runs per side, alternating ip monitor and routewatch (default 1)")
    p.add_argument("--burst", type=int, default=50000, help="routes in the burst (default 50000)")
    p.add_argument("--sample", type=int, default=0,
                   help="compare only about this many routes field for field, and every route's table and "
                        "prefix (faster, less memory); default 0: every route field for field")
    p.add_argument("--seed", type=int, default=1, help="seed of the table (default 1)")
    p.add_argument("--insecure", action="store_true",
                   help="serve plaintext gRPC (--insecure) instead of TLS")
    bl.add_port_and_deadline(p)
    p.add_argument("--quiet", type=float, default=1.0,
                   help="seconds without CPU or output that count as quiet (default 1.0)")
    bl.add_output_args(p, "keep the work directory (batch files, tail output, logs); the flap's tail "
                          "output is about 1 GB at full scale")
    a = p.parse_args()
    a.phases = [x.strip() for x in a.phases.split(",") if x.strip()]
    if not a.phases or not set(a.phases) <= set(PHASES):
        p.error(f"--phases takes a comma separated list out of {','.join(PHASES)}")
    if a.v4 < 1 or a.v6 < 0 or a.runs < 1 or a.flap_runs < 1 or a.sample < 0:
        p.error("--v4, --runs and --flap-runs must be positive, --v6 and --sample not negative")
    if not 1 <= a.burst <= 131072:
        p.error("--burst takes 1 to 131072 routes (198.18.0.0/15)")
    return a


# --------------------------------------------------------------------------
# The table


def allocate(n, mix):
    """How many prefixes of each length: n split by the mix, the rounding
    left over given to the most common length."""
    total = sum(mix.values())
    counts = {plen: int(n * w / total) for plen, w in mix.items()}
    counts[max(mix, key=mix.get)] += n - sum(counts.values())
    return counts


def distinct_prefixes(n, mix, draw, family, flag):
    """n distinct prefixes with the prefix-length mix `mix`; `draw(plen)`
    gives a candidate network or None to skip it."""
    out = []
    for plen, k in sorted(allocate(n, mix).items()):
        seen = set()
        tries = 0
        while len(seen) < k:
            tries += 1
            if tries > 50 * k + 10000:
                raise BenchError(f"cannot find {k} distinct {family} /{plen} prefixes; lower {flag}")
            net = draw(plen)
            if net is not None:
                seen.add(net)
        out += [(net, plen) for net in sorted(seen)]
    return out


def v4_prefixes(rng, n):
    reserved = [(int.from_bytes(bytes(int(x) for x in a.split(".")), "big"), plen) for a, plen in V4_RESERVED]

    def draw(plen):
        net = rng.getrandbits(plen) << (32 - plen)
        if any(net >> (32 - min(plen, r)) == rnet >> (32 - min(plen, r)) for rnet, r in reserved):
            return None
        return net

    return distinct_prefixes(n, V4_MIX, draw, "IPv4", "--v4")


def v6_prefixes(rng, n):
    # Global unicast, 2000::/3.
    def draw(plen):
        return ((1 << (plen - 3)) | rng.getrandbits(plen - 3)) << (128 - plen)

    return distinct_prefixes(n, V6_MIX, draw, "IPv6", "--v6")


def fmt_v4(net, plen):
    return f"{net >> 24}.{(net >> 16) & 255}.{(net >> 8) & 255}.{net & 255}/{plen}"


def fmt_v6(net, plen):
    return f"{ipaddress.IPv6Address(net)}/{plen}"


def gateway(fam, g):
    """Gateway g (0 .. LINKS*GATEWAYS-1) of a family and its device."""
    link, host = g % LINKS, 10 + g // LINKS
    if fam == 4:
        return f"172.16.{link}.{host}", f"r{link}a"
    return f"fd00:0:0:{link}::{host:x}", f"r{link}a"


def weighted(rng, choices):
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


class Table:
    """The generated table: nexthop objects and routes as `ip -batch` lines,
    written in the work directory."""

    def __init__(self, args, work):
        rng = random.Random(args.seed)
        t = time.monotonic()
        self.nexthops = []
        for i in range(1, NH_V4 + 1):
            gw, dev = gateway(4, rng.randrange(LINKS * GATEWAYS))
            self.nexthops.append(f"nexthop add id {i} via {gw} dev {dev}")
        for i in range(NH_V4 + 1, NH_V4 + NH_V6 + 1):
            gw, dev = gateway(6, rng.randrange(LINKS * GATEWAYS))
            self.nexthops.append(f"nexthop add id {i} via {gw} dev {dev}")
        g4 = list(range(1001, 1001 + GROUPS_V4))
        g6 = list(range(2001, 2001 + GROUPS_V6))
        for gid in g4:
            self.nexthops.append(f"nexthop add id {gid} group {self.group(rng, 1, NH_V4)}")
        for gid in g6:
            self.nexthops.append(f"nexthop add id {gid} group {self.group(rng, NH_V4 + 1, NH_V4 + NH_V6)}")
        singles = {4: range(1, NH_V4 + 1), 6: range(NH_V4 + 1, NH_V4 + NH_V6 + 1)}
        groups = {4: g4, 6: g6}

        self.routes = []  # (family, table, add line)
        self.forms = {"via": 0, "nhid": 0, "nhid group": 0, "multipath": 0}
        self.per_table = {}
        for fam, prefixes, fmt in ((4, v4_prefixes(rng, args.v4), fmt_v4), (6, v6_prefixes(rng, args.v6), fmt_v6)):
            rng.shuffle(prefixes)
            for net, plen in prefixes:
                table = weighted(rng, TABLES)
                proto = weighted(rng, PROTOS)
                metric = " metric 20" if rng.random() < 0.03 else ""
                x = rng.random()
                if x < 0.25:
                    form, how = "nhid", f"nhid {rng.choice(singles[fam])}"
                elif x < 0.30:
                    form, how = "nhid group", f"nhid {rng.choice(groups[fam])}"
                elif x < 0.35:
                    form = "multipath"
                    a, b = rng.sample(range(LINKS * GATEWAYS), 2)
                    how = " ".join("nexthop via {} dev {}".format(*gateway(fam, g)) for g in (a, b))
                else:
                    form = "via"
                    how = "via {} dev {}".format(*gateway(fam, rng.randrange(LINKS * GATEWAYS)))
                self.forms[form] += 1
                key = (fam, table)
                self.per_table[key] = self.per_table.get(key, 0) + 1
                prefix = fmt(net, plen)
                self.routes.append((fam, table, f"route add {prefix} proto {proto} table {table}{metric} {how}",
                                    f"route del {prefix} table {table}{metric}"))
        self.n_v4, self.n_v6 = args.v4, args.v6
        self.flap_n = self.per_table.get((4, FLAP_TABLE), 0)

        # Install: nexthop objects first, then the routes, in chunks.
        self.install = []
        lines = self.nexthops + [r[2] for r in self.routes]
        for i in range(0, len(lines), BATCH_CHUNK):
            path = os.path.join(work, f"install-{i // BATCH_CHUNK:03d}.batch")
            with open(path, "w") as f:
                f.write("\n".join(lines[i:i + BATCH_CHUNK]) + "\n")
            self.install.append((path, min(BATCH_CHUNK, len(lines) - i)))
        flap = [r for r in self.routes if r[0] == 4 and r[1] == FLAP_TABLE]
        self.flap_del = os.path.join(work, "flap-del.batch")
        self.flap_add = os.path.join(work, "flap-add.batch")
        with open(self.flap_del, "w") as f:
            f.write("".join(r[3] + "\n" for r in flap))
        with open(self.flap_add, "w") as f:
            f.write("".join(r[2] + "\n" for r in flap))
        # The burst: /32s in 198.18.0.0/15, table main.
        burst = [fmt_v4(BURST_NET + i, 32) for i in range(args.burst)]
        self.burst_last = burst[-1][:-3]  # as ip -j prints a /32: no length
        self.burst_add = os.path.join(work, "burst-add.batch")
        self.burst_del = os.path.join(work, "burst-del.batch")
        with open(self.burst_add, "w") as f:
            f.write("".join(f"route add {p} proto bgp via 172.16.0.10 dev r0a\n" for p in burst))
        with open(self.burst_del, "w") as f:
            f.write("".join(f"route del {p}\n" for p in burst))
        self.routes = None  # the lines are in the files now
        self.gen_s = time.monotonic() - t

    @staticmethod
    def group(rng, lo, hi):
        members = rng.sample(range(lo, hi + 1), rng.choice((2, 2, 3)))
        return "/".join(f"{m},{rng.choice((1, 1, 2, 3))}" if rng.random() < 0.3 else str(m) for m in members)

    def describe(self):
        tables = ", ".join(f"{t}: {self.per_table.get((4, t), 0)} + {self.per_table.get((6, t), 0)}"
                           for t, _ in TABLES)
        forms = ", ".join(f"{k} {v}" for k, v in self.forms.items())
        return (f"{self.n_v4} IPv4 + {self.n_v6} IPv6 prefixes, {len(self.nexthops)} nexthop objects; "
                f"per table (v4 + v6) {tables}; routes by form: {forms}")


def setup_links(ns):
    """Veth pairs r0a/r0b .. with 172.16.K.1/24 and fd00:0:0:K::1/64 on rKa
    (va/vb from setup_veth stay too); the gateways are on these subnets."""
    ns.setup_veth()
    for k in range(LINKS):
        ns.ip(f"link add r{k}a type veth peer name r{k}b")
        ns.ip(f"addr add 172.16.{k}.1/24 dev r{k}a")
        ns.ip(f"addr add fd00:0:0:{k}::1/64 dev r{k}a nodad")
        ns.ip(f"link set r{k}a up")
        ns.ip(f"link set r{k}b up")
    ns.wait_routes_settled()


def build(ns, table, deadline):
    """Installs the table in ns; returns (seconds, route counts per family)."""
    setup_links(ns)
    base = ns.route_counts()
    t0 = time.monotonic()
    done = 0
    total = sum(n for _, n in table.install)
    for path, n in table.install:
        ns.batch(path, timeout=deadline)
        done += n
        log(f"  {ns.name}: {done}/{total} lines installed ({time.monotonic() - t0:.1f}s)")
    secs = time.monotonic() - t0
    counts = ns.route_counts()
    want = {"inet": base["inet"] + table.n_v4, "inet6": base["inet6"] + table.n_v6}
    if counts != want:
        raise BenchError(f"{ns.name} holds {counts} routes after the install, expected {want}")
    nh = sum(1 for line in ns.ip("nexthop show", timeout=deadline).splitlines() if line.strip())
    if nh != len(table.nexthops):
        raise BenchError(f"{ns.name} holds {nh} nexthop objects, expected {len(table.nexthops)}")
    return secs, counts


# --------------------------------------------------------------------------
# Phases


def mib(kib):
    return None if kib is None else kib / 1024


def memory(agent):
    return {"rss_mib": mib(agent.rss_now_kib()), "hwm_mib": mib(agent.rss_kib())}


def phase_startup(args, ns, work, security, addr):
    log("startup: routewatch-agent on the full table")
    t0 = time.monotonic()
    agent = bl.start_agent(ns, addr, os.path.join(work, "agent.log"), deadline=args.deadline,
                           security=security[0])
    res = {"serving_s": time.monotonic() - t0, "cpu_s": agent.cpu_seconds()}
    res.update({f"serving_{k}": v for k, v in memory(agent).items()})
    bl.wait_cpu_quiet(agent, quiet=args.quiet, deadline=args.deadline)
    res.update({f"settled_{k}": v for k, v in memory(agent).items()})
    log(f"  serving after {res['serving_s']:.2f}s ({res['cpu_s']:.2f}s CPU); VmRSS {res['serving_rss_mib']:.0f} MiB, "
        f"settled {res['settled_rss_mib']:.0f} MiB, VmHWM {res['settled_hwm_mib']:.0f} MiB")
    return agent, res


def phase_show(args, ns, work, security, addr, agent, mod):
    client = list(security[1])
    commands = [
        ("rw json", "routewatch show -o json ADDR", [bl.CLIENT, "show", *client, "-o", "json", addr]),
        ("rw text", "routewatch show ADDR", [bl.CLIENT, "show", *client, addr]),
        ("rw json in-process", "routewatch show -o json (in process)", [bl.CLIENT, "show", "-o", "json"]),
        ("ip json", "ip -j -d route show table all", ["ip", "-j", "-d", "route", "show", "table", "all"]),
        ("ip text", "ip route show table all", ["ip", "route", "show", "table", "all"]),
    ]
    env = {"ROUTEWATCH_LOG": "warn"}
    log("show: reading the kernel's routes for the check")
    kernel = bl.kernel_digest(ns, mod, timeout=args.deadline)
    checks = {}
    for key, label, argv in commands:
        log(f"show: checking {label}")
        path = os.path.join(work, "check.out")
        wall, cpu, rc, err = bl.run_timed(ns, argv, path, args.deadline, env)
        if rc != 0:
            raise BenchError(f"`{' '.join(argv)}` exited {rc}: {err.strip()[-2000:]}")
        c = {"bytes": os.path.getsize(path), "wall_s": wall}
        if key.startswith("rw json"):
            mine, objects, other = bl.lines_digest(path, mod)
            c.update(bl.compare_digests(mine, kernel))
            c.update({"object_lines": objects, "other_lines": other})
            c["ok"] = c["count_ok"] and c["content_ok"]
        elif key == "ip json":
            c["routes"] = kernel.total()
        else:
            with open(path, "rb") as f:
                c["lines"] = sum(1 for _ in f)
        os.unlink(path)
        checks[key] = c
    kernel = None
    runs = {key: [] for key, _, _ in commands}
    for k in range(args.runs):
        order = commands[k % len(commands):] + commands[:k % len(commands)]
        for key, label, argv in order:
            a0 = agent.cpu_ticks()
            wall, cpu, rc, err = bl.run_timed(ns, argv, None, args.deadline, env)
            if not agent.alive():
                raise BenchError(f"the agent exited ({agent.p.returncode}) during `{label}`; "
                                 f"stderr:\n{agent.stderr_text()}")
            if rc != 0:
                raise BenchError(f"`{' '.join(argv)}` exited {rc}: {err.strip()[-2000:]}")
            agent_cpu = (agent.cpu_ticks() - a0) / bl.CLK_TCK if "ADDR" in label else None
            runs[key].append({"wall_s": wall, "cpu_s": cpu, "agent_cpu_s": agent_cpu})
            log(f"show round {k + 1}/{args.runs}: {label}: {wall:.2f}s wall, {cpu:.2f}s CPU"
                + (f" (+ agent {agent_cpu:.2f}s CPU)" if agent_cpu is not None else ""))
    med = {key: {f: bl.median([r[f] for r in rs]) for f in ("wall_s", "cpu_s", "agent_cpu_s")}
           for key, rs in runs.items()}
    return {"labels": {key: label for key, label, _ in commands}, "checks": checks, "runs": runs,
            "median": med, "agent_after": memory(agent)}


def flapped(raw):
    """One of the flap's routes: IPv4, table main."""
    return b'"family":"inet"' in raw and b'"table":"' + FLAP_TABLE.encode() + b'"' in raw


def flap_ip_monitor(args, ns2, work, table, k):
    m = bl.run_ip_monitor(ns2, [table.flap_del, table.flap_add], os.path.join(work, f"flap-ipmon-{k}.err"),
                          quiet=args.quiet, deadline=args.deadline)
    n2 = 2 * table.flap_n
    m.update({"cpu_s": m["ticks"] / bl.CLK_TCK, "us_per_event": m["ticks"] / bl.CLK_TCK / n2 * 1e6})
    return m


def flap_routewatch(args, ns, work, table, security, addr, agent, mod, k):
    out = os.path.join(work, f"flap-tail-{k}.jsonl")
    log("flap (b): starting the tail (snapshot of the full table)")
    log0 = bl.agent_log_counts(agent.stderr_text(1 << 24))
    t0 = time.monotonic()
    tail = bl.start_tail(ns, addr, out, os.path.join(work, f"flap-tail-{k}.err"), security[1], args.deadline)
    sync_s = time.monotonic() - t0
    replay = bl.Replay(out, expected=flapped)
    bl.wait_quiet(paths=(out,), procs=(agent, tail), quiet=0.5, deadline=args.deadline)
    replay.feed()  # the snapshot, before the baseline: this script competes for the cores too
    log(f"  tail synced in {sync_s:.1f}s ({replay.r['snapshot_routes']} routes in its snapshot); flapping")
    m = bl.run_subscribed(ns, agent, tail, out, [table.flap_del, table.flap_add], quiet=args.quiet,
                          deadline=args.deadline)
    log("  quiet again; replaying the tail's output and comparing with the kernel")
    replay.feed()
    final = replay.compare(ns, mod)
    tail_rc = tail.stop(sig=signal.SIGINT)
    log1 = bl.agent_log_counts(agent.stderr_text(1 << 24))
    n2 = 2 * table.flap_n
    res = {
        "agent_cpu_s": m["agent_ticks"] / bl.CLK_TCK,
        "tail_cpu_s": m["tail_ticks"] / bl.CLK_TCK,
        "agent_us_per_event": m["agent_ticks"] / bl.CLK_TCK / n2 * 1e6,
        "tail_us_per_event": m["tail_ticks"] / bl.CLK_TCK / n2 * 1e6,
        "tail_sync_s": sync_s,
        "tail_exit": tail_rc,
        "tail_stderr": tail.stderr_text().strip()[-2000:],
        "tail_bytes": os.path.getsize(out),
        "expected": n2,
        "final": final,
    }
    res.update(m)
    res.update({name: log1[name] - log0[name] for name in log1})
    res.update(replay.r)
    res["verdict"] = flap_verdict(res)
    res["exact"] = final["count_ok"] and final["content_ok"]
    if not args.keep:
        os.unlink(out)
    return res


def flap_verdict(r):
    """OK: every change as a notification, seq contiguous. RE-DUMPED or
    RESYNCED: the kernel dropped notifications and the agent re-dumped, or
    the tail fell behind the journal and got a fresh snapshot; neither is
    silent loss (exactness says whether the end state is right). LOST/EXTRA
    otherwise."""
    if r["resyncs"]:
        return "RESYNCED"
    if r["reconcile_route"]:
        return "RE-DUMPED"
    if r["notif_route"] != r["expected"] or r["seq_gaps"] or r["other_route_events"]:
        return "LOST/EXTRA"
    return "OK"


def phase_flap(args, work, table, ns, ns2, security, addr, agent, mod):
    log("flap: building the same table in a second namespace for ip monitor")
    build(ns2, table, args.deadline)
    a_runs, b_runs = [], []
    for k in range(args.flap_runs):
        log(f"flap run {k + 1}/{args.flap_runs}: (a) ip monitor route, {2 * table.flap_n} events")
        r = flap_ip_monitor(args, ns2, work, table, k)
        log(f"  ip monitor: {r['us_per_event']:.2f} us/event (drops {r['drops']}); "
            f"ip -batch del {r['batch_s'][0]:.1f}s add {r['batch_s'][1]:.1f}s")
        a_runs.append(r)
        log(f"flap run {k + 1}/{args.flap_runs}: (b) routewatch-agent + tail")
        r = flap_routewatch(args, ns, work, table, security, addr, agent, mod, k)
        log(f"  agent {r['agent_us_per_event']:.2f} us/event, tail {r['tail_us_per_event']:.2f} us/event; "
            f"events {r['notif_route']}/{r['expected']}, reconcile {r['reconcile_route']}, "
            f"resync {r['resyncs']}, exact {'OK' if r['exact'] else 'MISMATCH'}")
        b_runs.append(r)
    return {"ip_monitor": a_runs, "routewatch": b_runs, "agent_after": memory(agent)}


_BURST_DST = re.compile(rb'"dst":"198\.1[89]\.')


def phase_burst(args, ns, work, table, security, addr, agent):
    log("burst: starting ip monitor route > FILE and a tail")
    mon_out = os.path.join(work, "burst-ipmon.out")
    mon = bl.Proc("ip monitor", ["ip", "monitor", "route"], ns, stdout=mon_out,
                  stderr=os.path.join(work, "burst-ipmon.err"))
    bl.wait_until(lambda: mon.netlink_sockets(), 10, "ip monitor's netlink socket", proc=mon)
    out = os.path.join(work, "burst-tail.jsonl")
    tail = bl.start_tail(ns, addr, out, os.path.join(work, "burst-tail.err"), security[1], args.deadline)
    replay = bl.Replay(out)
    bl.wait_quiet(paths=(out, mon_out), procs=(agent, tail, mon), quiet=args.quiet, deadline=args.deadline)
    replay.feed()
    needle = f'"dst":"{table.burst_last}"'.encode()
    runs = []
    for k in range(args.runs):
        run = {}
        for op, path in (("add", table.burst_add), ("del", table.burst_del)):
            start, mstart = os.path.getsize(out), os.path.getsize(mon_out)
            r0 = dict(replay.r)
            a0 = agent.cpu_ticks()
            t0 = time.monotonic()
            ns.batch(path, timeout=args.deadline)
            t1 = time.monotonic()
            t2 = wait_line(out, start, needle, t1 + args.deadline, tail)
            bl.wait_quiet(paths=(out, mon_out), procs=(agent, tail, mon), quiet=args.quiet,
                          deadline=args.deadline)
            replay.feed()
            with open(out, "rb") as f:
                f.seek(start)
                in_tail = len(_BURST_DST.findall(f.read()))
            with open(mon_out, "rb") as f:
                f.seek(mstart)
                text = f.read()
            in_mon = len(re.findall(rb"^(?:Deleted )?198\.1[89]\.", text, re.M))
            run[op] = {
                "batch_s": t1 - t0,
                "latency_s": t2 - t1,
                "end_to_end_s": t2 - t0,
                "agent_cpu_s": (agent.cpu_ticks() - a0) / bl.CLK_TCK,
                "tail_lines": in_tail,
                "notif": replay.r["notif_route"] - r0["notif_route"],
                "reconcile": replay.r["reconcile_route"] - r0["reconcile_route"],
                "resyncs": replay.r["resyncs"] - r0["resyncs"],
                "seq_gaps": replay.r["seq_gaps"] - r0["seq_gaps"],
                "ip_monitor_lines": in_mon,
                "ip_monitor_lost": args.burst - in_mon,
            }
            log(f"burst run {k + 1}/{args.runs} {op}: ip -batch {t1 - t0:.3f}s, last change in the tail "
                f"{t2 - t1:.3f}s after it returned; tail {in_tail}/{args.burst}, ip monitor {in_mon}/{args.burst}")
        runs.append(run)
    mon_drops = sum(s["drops"] for s in mon.netlink_sockets())
    tail_rc = tail.stop(sig=signal.SIGINT)
    mon.stop()
    text = mon.stderr_text(1 << 20)
    if not args.keep:
        os.unlink(out)
    return {
        "runs": runs,
        "ip_monitor_drops": mon_drops,
        "ip_monitor_enobufs_msgs": sum(1 for line in text.splitlines()
                                       if "No buffer space" in line or "ENOBUFS" in line),
        "tail_exit": tail_rc,
        "agent_after": memory(agent),
    }


def burst_lost(x, n):
    """Whether the tail missed some of the burst's n changes without a
    re-dump or resync to say so."""
    return (x["notif"] != n or x["tail_lines"] != n or x["seq_gaps"]) and not (x["reconcile"] or x["resyncs"])


def wait_line(path, start, needle, end, proc):
    """Polls `path` every millisecond from offset `start` until a complete
    line holding `needle` is there; returns the time it was seen."""
    buf = bytearray()
    offset = start
    searched = 0
    with open(path, "rb") as f:
        while True:
            f.seek(offset)
            data = f.read()
            if data:
                offset += len(data)
                buf += data
                i = buf.find(needle, max(0, searched - len(needle)))
                if i >= 0 and buf.find(b"\n", i) >= 0:
                    return time.monotonic()
                searched = len(buf) if i < 0 else i
            elif time.monotonic() > end:
                raise BenchError("the burst's last route did not reach the tail's output before the deadline")
            elif not proc.alive():
                raise BenchError(f"{proc.name} exited ({proc.p.returncode}); stderr:\n{proc.stderr_text()}")
            else:
                time.sleep(0.001)


# --------------------------------------------------------------------------
# Report


def fmt(x, spec=".2f"):
    return "-" if x is None else format(x, spec)


def ratio(a, b):
    return "-" if a is None or not b else f"{a / b:.2f}x"


def report(args, res):
    t = res["table"]
    print()
    print(f"full table: {t['describe']}")
    print(f"  installed in {t['install_s']:.1f}s with ip -batch; the namespace holds {t['counts']['inet']} IPv4 "
          f"and {t['counts']['inet6']} IPv6 routes (with the kernel's own); {'TLS' if not args.insecure else 'plaintext'}; "
          f"{os.cpu_count()} CPUs, Linux {os.uname().release}")
    print(f"  load average (1, 5, 15 min) {' '.join(f'{x:.2f}' for x in res['loadavg_start'])} at the start, "
          f"{' '.join(f'{x:.2f}' for x in res['loadavg_end'])} at the end")
    st = res.get("startup")
    if st:
        print()
        print("startup (agent started after the install):")
        print(f"  serving (first dump complete) after {st['serving_s']:.2f}s wall, {st['cpu_s']:.2f}s CPU")
        print(f"  VmRSS at serving {st['serving_rss_mib']:.0f} MiB, settled {st['settled_rss_mib']:.0f} MiB; "
              f"VmHWM {st['settled_hwm_mib']:.0f} MiB")
    sh = res.get("show")
    if sh:
        print()
        print(f"show: median of {args.runs} round(s), stdout to /dev/null")
        labels, med = sh["labels"], sh["median"]
        print(f"  {'command':<40} {'wall s':>8} {'CPU s':>8} {'agent CPU s':>12}")
        for key, label in labels.items():
            m = med[key]
            print(f"  {label:<40} {m['wall_s']:>8.3f} {m['cpu_s']:>8.3f} {fmt(m['agent_cpu_s'], '.2f'):>12}")
        print("  per round (wall s): " + "; ".join(
            f"{labels[k]}: " + ", ".join(f"{r['wall_s']:.2f}" for r in rs) for k, rs in sh["runs"].items()))
        print("  output check (once):")
        for key, c in sh["checks"].items():
            if "routes" in c:
                print(f"    {labels[key]:<40} {c['routes']} routes, {c['bytes'] / 1e6:.0f} MB")
            elif "lines" in c:
                print(f"    {labels[key]:<40} {c['lines']} lines, {c['bytes'] / 1e6:.0f} MB")
            else:
                print(f"    {labels[key]:<40} {c['replay_routes']} route lines, {c['object_lines']} nexthop and "
                      f"rule lines, {c['bytes'] / 1e6:.0f} MB: {'OK' if c['ok'] else 'MISMATCH'}")
                print(f"      {bl.describe_check(c)}")
        print(f"  agent after the show phase: VmRSS {sh['agent_after']['rss_mib']:.0f} MiB, "
              f"VmHWM {sh['agent_after']['hwm_mib']:.0f} MiB")
    fl = res.get("flap")
    if fl:
        n2 = 2 * t["flap_n"]
        print()
        print(f"flap: all {t['flap_n']} IPv4 routes of table {FLAP_TABLE} deleted and added again = {n2} events")
        for i, r in enumerate(fl["ip_monitor"]):
            print(f"  run {i + 1} (a) ip monitor: cpu {r['cpu_s']:.2f}s = {r['us_per_event']:.2f} us/event; "
                  f"ip -batch del {r['batch_s'][0]:.2f}s add {r['batch_s'][1]:.2f}s; catch-up {r['lag_s']:.2f}s; "
                  f"socket drops {r['drops']}, ENOBUFS messages {r['enobufs_msgs']}")
        for i, r in enumerate(fl["routewatch"]):
            print(f"  run {i + 1} (b) agent cpu {r['agent_cpu_s']:.2f}s = {r['agent_us_per_event']:.2f} us/event, "
                  f"tail cpu {r['tail_cpu_s']:.2f}s = {r['tail_us_per_event']:.2f} us/event; ip -batch del "
                  f"{r['batch_s'][0]:.2f}s add {r['batch_s'][1]:.2f}s; catch-up {r['lag_s']:.2f}s; "
                  f"tail synced in {r['tail_sync_s']:.1f}s")
            print(f"         events: {r['notif_route']}/{r['expected']} notification route changes "
                  f"({r['notif_route_add']} add, {r['notif_route_del']} delete, {r['other_route_events']} other), "
                  f"reconcile {r['reconcile_route']}, resync {r['resyncs']}, re-snapshot lines {r['redump_lines']}, "
                  f"seq gaps {r['seq_gaps']}, other lines {r['bad_lines']}")
            print(f"         kernel: agent socket drops {r['agent_drops']}, overflow warnings {r['overflow_warnings']}, "
                  f"re-dumps reconciled {r['reconciled_msgs']}; exit tail {r['tail_exit']}")
            print(f"         agent VmRSS {r['agent_rss_before_kib'] / 1024:.0f} MiB before the flap, "
                  f"{r['agent_rss_after_kib'] / 1024:.0f} MiB after; VmHWM {r['agent_hwm_after_kib'] / 1024:.0f} MiB; "
                  f"tail VmHWM {r['tail_hwm_kib'] / 1024:.0f} MiB")
            print(f"         at end: {bl.describe_check(r['final'])}")
            if r["resync_reasons"]:
                print(f"         resync reasons: {r['resync_reasons']}")
            if r["tail_stderr"]:
                print(f"         tail stderr: {r['tail_stderr'][-500:]}")
    bu = res.get("burst")
    if bu:
        print()
        print(f"burst: {args.burst} routes added by one ip -batch (then deleted), {args.runs} run(s)")
        for i, r in enumerate(bu["runs"]):
            for op in ("add", "del"):
                x = r[op]
                print(f"  run {i + 1} {op}: ip -batch {x['batch_s']:.3f}s; last change in the tail's output "
                      f"{x['latency_s']:.3f}s after ip -batch returned ({x['end_to_end_s']:.3f}s after it started); "
                      f"agent cpu {x['agent_cpu_s']:.2f}s; tail {x['tail_lines']}/{args.burst} "
                      f"(reconcile {x['reconcile']}, resync {x['resyncs']}, seq gaps {x['seq_gaps']}); "
                      f"ip monitor {x['ip_monitor_lines']}/{args.burst}")
        print(f"  ip monitor socket drops {bu['ip_monitor_drops']}, ENOBUFS messages {bu['ip_monitor_enobufs_msgs']}")

    print()
    print("summary                                              routewatch     iproute2      ratio")
    if st:
        print(f"  agent startup on the full table (s)               {st['serving_s']:>10.2f}")
        print(f"  agent VmRSS settled / VmHWM (MiB)                 {st['settled_rss_mib']:>10.0f} / "
              f"{st['settled_hwm_mib']:.0f}")
    if sh:
        med = sh["median"]
        for a, b, label in (("rw json", "ip json", "show -o json (agent) vs ip -j -d (s)"),
                            ("rw text", "ip text", "show text (agent) vs ip text (s)"),
                            ("rw json in-process", "ip json", "show -o json in process vs ip -j -d (s)")):
            print(f"  {label:<50} {med[a]['wall_s']:>10.2f} {med[b]['wall_s']:>12.3f} "
                  f"{ratio(med[a]['wall_s'], med[b]['wall_s']):>10}")
        ok = all(c.get("ok", True) for c in sh["checks"].values())
        print(f"  show output equals ip -j -d                        {'OK' if ok else 'MISMATCH'}")
    if fl:
        ipm = bl.median([r["us_per_event"] for r in fl["ip_monitor"]])
        ag = bl.median([r["agent_us_per_event"] for r in fl["routewatch"]])
        tl = bl.median([r["tail_us_per_event"] for r in fl["routewatch"]])
        print(f"  flap CPU us/event: agent vs ip monitor            {fmt(ag):>10} {fmt(ipm):>12} {ratio(ag, ipm):>10}")
        print(f"  flap CPU us/event: tail -o json                   {fmt(tl):>10}")
        print(f"  flap: ip monitor socket drops                                   "
              f"{max(r['drops'] for r in fl['ip_monitor']):>8}")
        for i, r in enumerate(fl["routewatch"]):
            print(f"  flap run {i + 1}: events {r['notif_route']}/{r['expected']}, reconcile {r['reconcile_route']}, "
                  f"resync {r['resyncs']}, seq gaps {r['seq_gaps']}: {r['verdict']}; "
                  f"exactness {'OK' if r['exact'] else 'MISMATCH'}")
            if r["overflow_warnings"] or r["agent_drops"]:
                print(f"  flap run {i + 1}: the agent's netlink socket overflowed ({r['overflow_warnings']} ENOBUFS, "
                      f"{r['agent_drops']} notifications dropped by the kernel): its CPU above includes the re-dumps")
            print(f"  flap run {i + 1}: agent VmRSS before / after (MiB)       "
                  f"{r['agent_rss_before_kib'] / 1024:>6.0f} / {r['agent_rss_after_kib'] / 1024:.0f}, "
                  f"VmHWM {r['agent_hwm_after_kib'] / 1024:.0f}")
    if bu:
        med = {(op, f): bl.median([r[op][f] for r in bu["runs"]]) for op in ("add", "del")
               for f in ("latency_s", "end_to_end_s", "batch_s")}
        lost = [r["add"]["ip_monitor_lost"] for r in bu["runs"]] + [r["del"]["ip_monitor_lost"] for r in bu["runs"]]
        xs = [r[op] for r in bu["runs"] for op in ("add", "del")]
        if any(burst_lost(x, args.burst) for x in xs):
            verdict = "LOST"
        elif any(x["reconcile"] or x["resyncs"] for x in xs):
            verdict = "RE-DUMPED/RESYNCED"
        else:
            verdict = "OK"
        for op, what in (("add", "adds"), ("del", "deletes")):
            print(f"  burst {what}: the tail's last change after ip -batch (s) {med[(op, 'latency_s')]:>6.3f}   "
                  f"(ip -batch {med[(op, 'batch_s')]:.3f} s; {med[(op, 'end_to_end_s')]:.3f} s from its start)")
        print(f"  burst: every change reached the tail               {verdict}; "
              f"ip monitor lost {max(lost)} at most per burst")


def main():
    args = parse_args()
    bl.preflight()
    work = bl.workdir(keep=args.keep, prefix="rwbench-fulltable.")
    if args.keep:
        log(f"work directory: {work}")
    security = bl.INSECURE if args.insecure else bl.make_certs(work)
    addr = f"127.0.0.1:{args.port}"
    log(f"generating the table: {args.v4} IPv4 + {args.v6} IPv6 prefixes (seed {args.seed})")
    table = Table(args, work)
    log(f"  {table.describe()} ({table.gen_s:.1f}s)")
    total = args.v4 + args.v6
    mod = 1 if args.sample == 0 else max(1, round(total / args.sample))
    res = {"v4": args.v4, "v6": args.v6, "seed": args.seed, "tls": not args.insecure, "runs": args.runs,
           "burst_n": args.burst, "sample_mod": mod, "loadavg_start": os.getloadavg()}
    ns = bl.Netns()
    log(f"installing the table in {ns.name}")
    install_s, counts = build(ns, table, args.deadline)
    res["table"] = {"describe": table.describe(), "install_s": install_s, "counts": counts,
                    "flap_n": table.flap_n, "nexthops": len(table.nexthops), "per_table": {
                        f"{'v4' if fam == 4 else 'v6'} {t}": n for (fam, t), n in table.per_table.items()}}
    log(f"  installed in {install_s:.1f}s: {counts['inet']} IPv4 and {counts['inet6']} IPv6 routes")
    agent, startup = phase_startup(args, ns, work, security, addr)
    if "startup" in args.phases:
        res["startup"] = startup
    if "show" in args.phases:
        res["show"] = phase_show(args, ns, work, security, addr, agent, mod)
    ns2 = None
    if "flap" in args.phases:
        # The second namespace goes at the end: the kernel frees a full
        # table under the RTNL lock for seconds, which would stall the burst.
        ns2 = bl.Netns()
        res["flap"] = phase_flap(args, work, table, ns, ns2, security, addr, agent, mod)
    if "burst" in args.phases:
        res["burst"] = phase_burst(args, ns, work, table, security, addr, agent)
    res["loadavg_end"] = os.getloadavg()
    res["agent_end"] = memory(agent)
    agent_rc = agent.stop(sig=signal.SIGTERM)
    res["agent_exit"] = agent_rc
    res["agent_log"] = bl.agent_log_counts(agent.stderr_text(1 << 24))
    ns.delete()
    if ns2 is not None:
        ns2.delete()

    report(args, res)
    print(f"\nagent: exit {agent_rc}; log: {res['agent_log']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    rc = 0
    problems = []
    if agent_rc != 0:
        problems.append(f"the agent exited {agent_rc}")
    if "show" in res and not all(c.get("ok", True) for c in res["show"]["checks"].values()):
        problems.append("show's output differs from ip -j -d")
    for r in res.get("flap", {}).get("routewatch", []):
        if r["verdict"] == "LOST/EXTRA" or not r["exact"] or r["tail_exit"] != 0:
            problems.append("the flap's tail lost changes, did not match the kernel or exited badly")
    bu = res.get("burst")
    if bu and (bu["tail_exit"] != 0 or any(burst_lost(r[op], args.burst) for r in bu["runs"] for op in ("add", "del"))):
        problems.append("the burst's tail lost changes or exited badly")
    if problems:
        rc = 3
        print("\nFAILED: " + "; ".join(problems), file=sys.stderr)
    return rc


if __name__ == "__main__":
    bl.run_main(main)
