"""Shared plumbing for the routewatch benchmarks (standard library only).

- preflight checks (root, iproute2, the release binaries),
- throwaway network namespaces (`rwbench-<pid>-<n>`) that are always deleted,
- processes started inside a namespace (setns in the child, so the pid we
  hold is the program's own pid) that are always stopped,
- CPU time from /proc/PID/stat, memory from /proc/PID/status, netlink
  socket queues from /proc/PID/net/netlink,
- bounded waits, timed commands (with their peak RSS, through GNU time),
- the agent (plaintext or TLS with certificates from `routewatch certs init`),
- replaying a subscriber's JSON lines and comparing routes with the kernel's
  (`ip -j -d route show`), in full or on a deterministic sample,
- a scratch PostgreSQL server (initdb into a work directory, Unix socket
  only) that is always stopped and removed.

Cleanup runs on normal exit, on exceptions, on Ctrl-C (SIGINT) and on
SIGTERM/SIGHUP: every process this script started is stopped by its pid, then
every namespace it created is deleted.
"""

import atexit
import collections
import ctypes
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BIN_DIR = os.environ.get("RW_BIN_DIR", os.path.join(REPO, "target", "release"))
AGENT = os.path.join(BIN_DIR, "routewatch-agent")
CLIENT = os.path.join(BIN_DIR, "routewatch")

CLK_TCK = os.sysconf("SC_CLK_TCK")
CLONE_NEWNET = 0x40000000
NS_PREFIX = "rwbench-"


class BenchError(Exception):
    """A failure with a message meant for the user."""


def die(msg, code=1):
    print(f"{os.path.basename(sys.argv[0])}: error: {msg}", file=sys.stderr)
    sys.exit(code)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Preflight


def preflight(need_binaries=True):
    if os.geteuid() != 0:
        die("must run as root (creates network namespaces and veth pairs)", 2)
    if shutil.which("ip") is None:
        die("iproute2 `ip` not found in PATH", 2)
    if need_binaries:
        missing = [p for p in (AGENT, CLIENT) if not os.access(p, os.X_OK)]
        if missing:
            die(
                "missing binaries: "
                + ", ".join(missing)
                + "\n  build them first: (cd "
                + REPO
                + " && cargo build --release --bins)"
                + "\n  or point RW_BIN_DIR at the directory holding them",
                2,
            )
    if not os.path.isdir("/proc/self/net"):
        die("/proc is not mounted", 2)


# --------------------------------------------------------------------------
# Cleanup registry

_hooks = []  # callables run first at cleanup (e.g. closing client sessions)
_procs = []  # Proc objects still to stop
_namespaces = []  # namespace names still to delete
_tmpdirs = []
_cleaned = False


def _cleanup():
    global _cleaned
    if _cleaned:
        return
    _cleaned = True
    for hook in list(reversed(_hooks)):
        try:
            hook()
        except Exception as e:
            print(f"cleanup: {e}", file=sys.stderr)
    for p in list(reversed(_procs)):
        try:
            p.stop(quiet=True)
        except Exception as e:  # keep going: namespaces must still go
            print(f"cleanup: stopping {p.name}: {e}", file=sys.stderr)
    for ns in list(reversed(_namespaces)):
        try:
            Netns.delete_name(ns)
        except Exception as e:
            print(f"cleanup: deleting namespace {ns}: {e}", file=sys.stderr)
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)


def at_cleanup(fn):
    """Runs fn() at cleanup, before the processes are stopped."""
    _hooks.append(fn)


def _on_signal(signum, _frame):
    # Turn SIGTERM/SIGHUP into an exception so `finally` blocks and atexit run.
    raise KeyboardInterrupt(f"signal {signum}")


def install_cleanup():
    atexit.register(_cleanup)
    # SIGINT too: a shell that starts us in the background leaves it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)


def run_main(main):
    """Runs main() with cleanup on every path; maps errors to exit codes."""
    install_cleanup()
    try:
        rc = main()
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        _cleanup()
        sys.exit(130)
    except BenchError as e:
        print(f"{os.path.basename(sys.argv[0])}: error: {e}", file=sys.stderr)
        _cleanup()
        sys.exit(1)
    # Ignore Ctrl-C while cleaning up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _cleanup()
    sys.exit(rc or 0)


def add_port_and_deadline(p):
    """The agent's port and the step deadline, as every bench takes them."""
    p.add_argument("--port", type=int, default=50051, help="agent port inside the namespace (default 50051)")
    p.add_argument("--deadline", type=float, default=600.0,
                   help="longest wait for any one step, seconds (default 600)")


def add_output_args(p, keep_help):
    """--keep (what it keeps: `keep_help`) and --json."""
    p.add_argument("--keep", action="store_true", help=keep_help)
    p.add_argument("--json", metavar="FILE", help="also write every run's figures to FILE as JSON")


def check_counts(p, a):
    """N and --runs must be positive."""
    if a.n <= 0:
        p.error("N must be positive")
    if a.runs <= 0:
        p.error("--runs must be positive")


def workdir(keep=False, prefix="rwbench."):
    d = tempfile.mkdtemp(prefix=prefix)
    if not keep:
        _tmpdirs.append(d)
    return d


# --------------------------------------------------------------------------
# Namespaces

_libc = ctypes.CDLL(None, use_errno=True)
_ns_counter = 0


def _sweep_stale():
    """Deletes rwbench-<pid>-<n> namespaces whose creator no longer exists."""
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        return
    for name in names:
        if not name.startswith(NS_PREFIX):
            continue
        parts = name[len(NS_PREFIX):].split("-")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            continue
        if int(parts[0]) != os.getpid() and not os.path.exists(f"/proc/{parts[0]}"):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


class Netns:
    def __init__(self):
        global _ns_counter
        _sweep_stale()
        self.name = f"{NS_PREFIX}{os.getpid()}-{_ns_counter}"
        _ns_counter += 1
        r = subprocess.run(["ip", "netns", "add", self.name], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise BenchError(f"`ip netns add {self.name}` failed: {r.stderr.strip()}")
        _namespaces.append(self.name)
        self.path = f"/run/netns/{self.name}"
        self.ip("link set lo up")

    @staticmethod
    def delete_name(name, attempts=10):
        """`ip netns del NAME`, retried for a few seconds while it fails:
        a mount namespace made meanwhile by anyone's `ip netns exec` can
        keep the file busy for a moment."""
        err = ""
        for _ in range(attempts):
            r = subprocess.run(["ip", "netns", "del", name], capture_output=True, text=True, timeout=30)
            if not os.path.exists(f"/run/netns/{name}"):
                break
            err = r.stderr.strip()
            time.sleep(0.5)
        else:
            print(f"cleanup: could not delete namespace {name}: {err}", file=sys.stderr)
        if name in _namespaces:
            _namespaces.remove(name)

    def delete(self):
        Netns.delete_name(self.name)

    def ip(self, args, check=True, timeout=120):
        """`ip -n NS ARGS`; returns stdout."""
        argv = ["ip", "-n", self.name] + (args.split() if isinstance(args, str) else list(args))
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise BenchError(f"`{' '.join(argv)}` failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout

    def preexec(self):
        """A preexec_fn that moves the child into this namespace."""
        path = self.path

        def enter():
            fd = os.open(path, os.O_RDONLY)
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                os._exit(121)
            os.close(fd)

        return enter

    def setup_veth(self, addr="192.168.255.1/24"):
        """A veth pair va/vb, both ends up, `addr` on va; no DAD, so the
        IPv6 link-local routes settle at once."""
        for k in ("all", "default"):
            self.sysctl(f"net.ipv6.conf.{k}.accept_dad", "0")
        self.ip("link add va type veth peer name vb")
        self.ip(["addr", "add", addr, "dev", "va"])
        self.ip("link set va up")
        self.ip("link set vb up")
        self.wait_routes_settled()

    def sysctl(self, key, value):
        r = subprocess.run(
            ["ip", "netns", "exec", self.name, "sysctl", "-q", "-w", f"{key}={value}"],
            capture_output=True, text=True, timeout=30,
        )
        if r.returncode != 0:
            raise BenchError(f"sysctl {key}={value} in {self.name}: {r.stderr.strip()}")

    def route_dump(self):
        return self.ip("-d route show table all") + self.ip("-6 -d route show table all")

    def wait_routes_settled(self, quiet=1.0, deadline=15.0):
        """Waits until the routing tables stop changing for `quiet` seconds."""
        end = time.monotonic() + deadline
        last = self.route_dump()
        since = time.monotonic()
        while time.monotonic() < end:
            time.sleep(0.2)
            now = self.route_dump()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
        raise BenchError(f"routes in {self.name} kept changing for {deadline}s")

    def route_count(self):
        """Routes of every table, IPv4 plus IPv6, as `ip -j route show table all` counts them."""
        n = 0
        for fam in ("-4", "-6"):
            out = self.ip(["-j", fam, "route", "show", "table", "all"], timeout=300)
            n += len(json.loads(out or "[]"))
        return n

    def route_counts(self, timeout=600):
        """Routes of every table per family ("inet", "inet6"), counted in
        `ip route show table all` (one unindented line per route; the
        nexthops of a multipath route are indented): cheaper than parsing
        `ip -j` when there are millions."""
        counts = {}
        for fam, name in (("-4", "inet"), ("-6", "inet6")):
            argv = ["ip", "-n", self.name, fam, "route", "show", "table", "all"]
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
            if r.returncode != 0:
                raise BenchError(f"`{' '.join(argv)}` failed ({r.returncode}): {r.stderr.decode().strip()}")
            counts[name] = sum(1 for line in r.stdout.split(b"\n") if line and line[:1] not in b" \t")
        return counts

    def run(self, argv, timeout=60, env=None):
        """Runs argv inside the namespace; returns its stdout."""
        full_env = dict(os.environ)
        full_env.update(env or {})
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full_env,
                           stdin=subprocess.DEVNULL, preexec_fn=self.preexec())
        if r.returncode != 0:
            raise BenchError(f"`{' '.join(argv)}` in {self.name} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
        return r.stdout

    def batch(self, path, timeout=1800):
        """`ip -batch FILE` in the namespace; returns wall seconds."""
        t = time.monotonic()
        r = subprocess.run(
            ["ip", "-n", self.name, "-batch", path], capture_output=True, text=True, timeout=timeout
        )
        if r.returncode != 0:
            raise BenchError(f"`ip -n {self.name} -batch {path}` failed: {r.stderr.strip()[:2000]}")
        return time.monotonic() - t


# --------------------------------------------------------------------------
# Processes


class Proc:
    """A program running inside a namespace (or, with ns=None, in this
    script's own), stopped on cleanup with `stop_signal`. With `user`, it
    runs as that OS user (its own pid still, no wrapper process)."""

    def __init__(self, name, argv, ns, stdout=None, stderr=None, env=None, user=None,
                 stop_signal=signal.SIGTERM, cwd=None):
        self.name = name
        self.stop_signal = stop_signal
        self.argv = argv
        self.stdout_path = stdout
        self.stderr_path = stderr
        out = open(stdout, "wb") if stdout else subprocess.DEVNULL
        err = open(stderr, "wb") if stderr else subprocess.DEVNULL
        full_env = dict(os.environ)
        full_env.update(env or {})
        as_user = {}
        if user is not None:
            import pwd

            pw = pwd.getpwnam(user)
            as_user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
            full_env.update({"HOME": pw.pw_dir, "USER": user, "LOGNAME": user})
        try:
            self.p = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=full_env,
                cwd=cwd,
                preexec_fn=ns.preexec() if ns is not None else None,
                start_new_session=True,  # Ctrl-C reaches us only; we stop it
                **as_user,
            )
        finally:
            for f in (out, err):
                if f not in (subprocess.DEVNULL, None):
                    f.close()
        self.pid = self.p.pid
        self.returncode = None
        self.stopped_by_us = False
        _procs.append(self)

    def alive(self):
        return self.p.poll() is None

    def cpu_ticks(self):
        """utime+stime of the whole process (all threads), in clock ticks."""
        with open(f"/proc/{self.pid}/stat") as f:
            data = f.read()
        fields = data[data.rindex(")") + 2:].split()
        # fields[0] is state (field 3); utime is field 14, stime field 15.
        return int(fields[11]) + int(fields[12])

    def cpu_seconds(self):
        return self.cpu_ticks() / CLK_TCK

    def tree_cpu_seconds(self):
        """utime+stime of the process and of its descendants alive now
        (e.g. a server and the backends it forked)."""
        return tree_cpu_ticks(self.pid) / CLK_TCK

    def status_kib(self, field):
        """A size from /proc/PID/status (VmRSS, VmHWM, ...) in KiB; 0 if gone."""
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def rss_kib(self):
        """Peak resident set size (VmHWM) in KiB."""
        return self.status_kib("VmHWM")

    def rss_now_kib(self):
        """Resident set size now (VmRSS) in KiB."""
        return self.status_kib("VmRSS")

    def netlink_sockets(self):
        """This process's netlink sockets: list of dicts with rmem, drops, groups."""
        inodes = set()
        try:
            for fd in os.listdir(f"/proc/{self.pid}/fd"):
                try:
                    link = os.readlink(f"/proc/{self.pid}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
            with open(f"/proc/{self.pid}/net/netlink") as f:
                lines = f.read().splitlines()
        except OSError:
            return []
        header = lines[0].split()
        out = []
        for line in lines[1:]:
            cols = dict(zip(header, line.split()))
            if cols.get("Inode") in inodes and cols.get("Eth") == "0":
                out.append({
                    "port": int(cols["Pid"]),
                    "groups": cols["Groups"],
                    "rmem": int(cols["Rmem"]),
                    "drops": int(cols["Drops"]),
                })
        return out

    def send_signal(self, sig):
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, sig=None, timeout=10.0, quiet=False):
        """Stops the process (sig, by default its stop_signal, then SIGKILL
        after `timeout`); returns its exit code."""
        if sig is None:
            sig = self.stop_signal
        if self in _procs:
            _procs.remove(self)
        if self.alive():
            self.stopped_by_us = True
            self.send_signal(sig)
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                if not quiet:
                    log(f"{self.name} (pid {self.pid}) ignored {signal.Signals(sig).name} for {timeout}s; killing")
                self.send_signal(signal.SIGKILL)
                self.p.wait(timeout=10)
        self.returncode = self.p.returncode
        return self.returncode

    def stderr_text(self, limit=4000):
        if not self.stderr_path:
            return ""
        try:
            with open(self.stderr_path, "rb") as f:
                data = f.read()
        except OSError:
            return ""
        text = data.decode(errors="replace")
        return text[-limit:]


def tree_cpu_ticks(root):
    """utime+stime, in clock ticks, of `root` and of its descendants alive
    now (from /proc/PID/stat)."""
    stats = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(")") + 2:].split()
        # fields[1] is the parent pid (field 4); utime, stime fields 14, 15.
        stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    children = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
        todo.extend(children.get(pid, ()))
    return total


def wait_until(pred, deadline, what, interval=0.05, proc=None):
    """Polls pred() until true; raises BenchError after `deadline` seconds or
    if `proc` dies meanwhile."""
    end = time.monotonic() + deadline
    while True:
        if pred():
            return
        if proc is not None and not proc.alive():
            raise BenchError(
                f"{proc.name} exited ({proc.p.returncode}) while waiting for {what}; stderr:\n{proc.stderr_text()}"
            )
        if time.monotonic() > end:
            raise BenchError(f"timed out after {deadline}s waiting for {what}")
        time.sleep(interval)


def file_contains(path, needle, start=0):
    try:
        with open(path, "rb") as f:
            f.seek(start)
            return needle in f.read()
    except OSError:
        return False


def wait_for_bytes(path, needle, deadline, what, proc=None, start=0, interval=0.05):
    """Waits until `needle` appears in `path` after offset `start`, reading
    each byte once (the file may grow to gigabytes); returns the offset
    just past the needle."""
    offset, keep = start, b""

    def found():
        nonlocal offset, keep
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except OSError:
            return False
        buf = keep + data
        i = buf.find(needle)
        if i >= 0:
            offset += len(data) - (len(buf) - (i + len(needle)))
            return True
        keep = buf[len(buf) - len(needle) + 1:] if len(needle) > 1 else b""
        offset += len(data)
        return False

    wait_until(found, deadline, what, interval=interval, proc=proc)
    return offset


def wait_quiet(paths=(), procs=(), quiet=1.0, deadline=300.0):
    """Waits until every file in `paths` has stopped growing, every process
    in `procs` has used no CPU and has nothing queued on its netlink sockets,
    all for `quiet` seconds. Returns seconds waited; raises BenchError on the
    deadline or if a process dies.

    CPU matters as much as output: while the agent re-dumps after an
    overflow it prints nothing for seconds but is far from done."""
    start = time.monotonic()
    end = start + deadline
    last = None
    since = start
    while True:
        for p in procs:
            if not p.alive():
                raise BenchError(
                    f"{p.name} exited ({p.p.returncode}) during the churn; stderr:\n{p.stderr_text()}"
                )
        state = tuple(os.path.getsize(f) for f in paths) + tuple(p.cpu_ticks() for p in procs)
        queued = sum(s["rmem"] for p in procs for s in p.netlink_sockets())
        now = time.monotonic()
        if state != last or queued:
            last, since = state, now
        elif now - since >= quiet:
            return now - start
        if now > end:
            raise BenchError(f"still busy after {deadline}s (output files {list(paths)}, processes "
                             f"{[p.name for p in procs]})")
        time.sleep(0.05)


def wait_file_quiet(path, quiet=1.0, deadline=300.0, procs=()):
    """Waits until `path` stops growing for `quiet` seconds (the processes
    must stay alive meanwhile)."""
    start = time.monotonic()
    end = start + deadline
    last = -1
    since = start
    while True:
        for p in procs:
            if not p.alive():
                raise BenchError(
                    f"{p.name} exited ({p.p.returncode}); stderr:\n{p.stderr_text()}"
                )
        size = os.path.getsize(path)
        now = time.monotonic()
        if size != last:
            last, since = size, now
        elif now - since >= quiet:
            return now - start
        if now > end:
            raise BenchError(f"{path} still growing after {deadline}s")
        time.sleep(0.05)


def wait_cpu_quiet(proc, quiet=1.0, deadline=300.0):
    """Waits until `proc` uses no CPU and has nothing queued on its netlink
    sockets for `quiet` seconds."""
    return wait_quiet(procs=(proc,), quiet=quiet, deadline=deadline)


RW_ONLY_FIELDS = {"time", "host", "netns", "seq", "stream_id", "action", "origin", "object", "family", "key",
                  "changed_by", "reason"}


def canon(route):
    """A route's `ip -j -d route show` fields as a comparable string
    (routewatch's own fields and the expires countdown left out)."""
    return json.dumps({k: v for k, v in route.items() if k not in RW_ONLY_FIELDS and k != "expires"},
                      sort_keys=True)


# --------------------------------------------------------------------------
# Routes compared with the kernel's

# The JSON printer's field order: time, host, netns, seq, stream_id, action,
# then for a change origin, object, family, key and the object's fields. A
# line that does not match is parsed as JSON instead.
EVENT_HEAD = re.compile(rb'"seq":(\d+),"stream_id":"[^"]*","action":"(\w+)"'
                        rb'(?:,"origin":"(\w+)","object":"(\w+)","family":"(\w+)","key":"([^"]*)")?')
_DST = re.compile(rb'"dst":"([^"]*)"')
_TABLE = re.compile(rb'"table":"([^"]*)"')


class RouteDigest:
    """One side's routes in comparable form:
    - how many per family ("inet", "inet6");
    - every route's (family, table, dst), as a multiset;
    - every field (`canon`) of the routes in the sample, as a multiset.
    The sample is every route with mod 1; with mod M, the routes whose dst
    hashes (CRC-32) to 0 modulo M, which picks the same routes on both
    sides without parsing the others."""

    def __init__(self, mod=1):
        self.mod = max(1, int(mod))
        self.count = collections.Counter()
        self.ids = collections.Counter()
        self.fields = collections.Counter()

    def sampled(self, dst):
        return self.mod == 1 or zlib.crc32(dst) % self.mod == 0

    def add_route(self, family, route):
        """A route as `ip -j` prints it (a dict)."""
        dst = route.get("dst", "")
        self.count[family] += 1
        self.ids[(family, route.get("table"), dst)] += 1
        if self.sampled(dst.encode()):
            self.fields[canon(route)] += 1

    def add_line(self, raw, family=None):
        """A route's JSON line as routewatch prints it (bytes). Its table is
        the first `table` field of the line: the benches use no
        encapsulation that has one of its own."""
        if self.mod == 1:
            e = json.loads(raw)
            family, dst, table = e.get("family"), e.get("dst", ""), e.get("table")
        else:
            if family is None:
                m = EVENT_HEAD.search(raw)
                family = m.group(5).decode() if m and m.group(5) else json.loads(raw).get("family")
            m, t = _DST.search(raw), _TABLE.search(raw)
            dst = m.group(1).decode() if m else ""
            table = t.group(1).decode() if t else None
            e = None
        self.count[family] += 1
        self.ids[(family, table, dst)] += 1
        if self.sampled(dst.encode()):
            self.fields[canon(e if e is not None else json.loads(raw))] += 1

    def total(self):
        return sum(self.count.values())


def kernel_digest(ns, mod=1, timeout=600):
    """The kernel's routes, `ip -j -d route show table all` -4 plus -6."""
    d = RouteDigest(mod)
    for fam, name in (("-4", "inet"), ("-6", "inet6")):
        for r in json.loads(ns.ip(["-j", "-d", fam, "route", "show", "table", "all"], timeout=timeout) or "[]"):
            d.add_route(name, r)
    return d


def lines_digest(path, mod=1):
    """The routes in a file of routewatch JSON lines (`show -o json`);
    returns (digest, nexthop and rule lines, other lines)."""
    d = RouteDigest(mod)
    objects = other = 0
    with open(path, "rb") as f:
        for raw in f:
            m = EVENT_HEAD.search(raw)
            obj = m.group(4) if m and m.group(4) else (json.loads(raw).get("object") or "").encode()
            if obj == b"route":
                d.add_line(raw, m.group(5).decode() if m and m.group(5) else None)
            elif obj in (b"nexthop", b"rule"):
                objects += 1
            else:
                other += 1
    return d, objects, other


def compare_digests(mine, kernel):
    """routewatch's routes (`mine`) against the kernel's: counts, every
    route's table and prefix, and the sample field for field."""
    only_rw = mine.fields - kernel.fields
    only_ip = kernel.fields - mine.fields
    ids_differ = sum(((mine.ids - kernel.ids) + (kernel.ids - mine.ids)).values())
    return {
        "replay_routes": mine.total(),
        "replay_routes_v4": mine.count["inet"],
        "replay_routes_v6": mine.count["inet6"],
        "ip_routes_v4": kernel.count["inet"],
        "ip_routes_v6": kernel.count["inet6"],
        "count_ok": mine.total() == kernel.total(),
        "ids_ok": ids_differ == 0,
        "ids_differ": ids_differ,
        "content_ok": not only_rw and not only_ip and ids_differ == 0,
        "only_routewatch": sum(only_rw.values()),
        "only_ip": sum(only_ip.values()),
        "only_routewatch_examples": list(only_rw)[:3],
        "only_ip_examples": list(only_ip)[:3],
        "mod": kernel.mod,
        "sampled": sum(kernel.fields.values()),
    }


# The lines of `routewatch show` (text) that `ip route show` does not print:
# rules (`PRIORITY:<tab>...`) and nexthop objects (`id N ...`), which come first.
SHOW_NOT_ROUTE = re.compile(rb"^(\d+:\t|id \d+ )")


def compare_show_text(show_path, ip_path):
    """`routewatch show`'s text (in show_path) against `ip route show table
    all`'s (in ip_path): its lines, rules and nexthop objects aside, must be
    ip's lines (ip ends each line with a space). Routes that tie in show's
    order (same table, prefix and metric: fe80::/64 on two links) may come
    in another order; `moved` counts the lines not in ip's place."""
    with open(show_path, "rb") as f:
        lines = f.read().splitlines()
    with open(ip_path, "rb") as f:
        theirs = [line.rstrip() for line in f.read().splitlines()]
    ours = [line for line in lines if not SHOW_NOT_ROUTE.match(line)]
    mine, ip = collections.Counter(ours), collections.Counter(theirs)
    return {
        "route_lines": len(ours),
        "object_lines": len(lines) - len(ours),
        "ip_lines": len(theirs),
        "ok": mine == ip,
        "only_routewatch": sum((mine - ip).values()),
        "only_ip": sum((ip - mine).values()),
        "moved": sum(a != b for a, b in zip(ours, theirs)),
    }


def describe_check(c):
    """One line (and examples) for a compare_digests() result."""
    s = (f"replay {c['replay_routes']} route keys (v4 {c['replay_routes_v4']}, v6 {c['replay_routes_v6']}) "
         f"vs ip {c['ip_routes_v4'] + c['ip_routes_v6']} (v4 {c['ip_routes_v4']}, v6 {c['ip_routes_v6']}): "
         f"{'OK' if c['count_ok'] else 'MISMATCH'}; ")
    if c["mod"] > 1:
        s += (f"every route's table and prefix: {'OK' if c['ids_ok'] else 'MISMATCH'}"
              + ("" if c["ids_ok"] else f" ({c['ids_differ']} differ)")
              + f"; fields of a sample of {c['sampled']} routes (1 in {c['mod']}): ")
    else:
        s += "fields: "
    sample_ok = not c["only_routewatch"] and not c["only_ip"]
    s += "OK" if sample_ok else "MISMATCH"
    if not sample_ok:
        s += f" ({c['only_routewatch']} routes only in routewatch, {c['only_ip']} only in ip)"
        for x in c["only_routewatch_examples"][:2]:
            s += f"\n             only routewatch: {x}"
        for x in c["only_ip_examples"][:2]:
            s += f"\n             only ip:         {x}"
    return s


class Replay:
    """Replays a subscriber's output (`routewatch tail -o json`) as a
    consumer would: add upserts by key, delete removes by key, resync
    clears (unless the differences follow). Counts what it sees after the first sync marker. Each route's
    line is kept as it came and parsed only to compare.

    `expected(raw line)`: whether a notification route change is one the
    benchmark made; the others are counted as other_route_events."""

    def __init__(self, path, expected=None):
        self.path = path
        self.expected = expected
        self.offset = 0
        self.routes = {}  # key -> raw line
        self.nexthops = set()
        self.synced = False
        self.differences = False  # between a resync with differences and its sync
        self.expect_seq = None
        self.r = {
            "snapshot_routes": 0, "snapshot_nexthops": 0, "snapshot_rules": 0,
            "notif_route": 0, "notif_route_add": 0, "notif_route_del": 0,
            "reconcile_route": 0, "redump_lines": 0, "nexthop_changes": 0,
            "resyncs": 0, "syncs": 0, "seq_gaps": 0, "seq_first_gap": None,
            "del_unknown": 0, "add_existing": 0, "add_changed": 0, "bad_lines": 0,
            "other_route_events": 0, "resync_reasons": [], "changed_examples": [],
        }

    def feed(self, chunk=64 << 20):
        """Consumes the complete lines written since the last call."""
        with open(self.path, "rb") as f:
            while True:
                f.seek(self.offset)
                data = f.read(chunk)
                cut = data.rfind(b"\n") + 1
                if not cut:
                    return
                self.offset += cut
                for raw in data[:cut].splitlines():
                    self.line(raw)

    def line(self, raw):
        r = self.r
        m = EVENT_HEAD.search(raw)
        if m and (m.group(3) or m.group(2) == b"sync"):
            seq, action = int(m.group(1)), m.group(2).decode()
            origin, obj, family, key = (None if g is None else g.decode() for g in m.group(3, 4, 5, 6))
            e = None
        else:
            try:
                e = json.loads(raw)
            except ValueError:
                r["bad_lines"] += 1
                return
            seq, action, origin = e.get("seq"), e.get("action"), e.get("origin")
            obj, family, key = e.get("object"), e.get("family"), e.get("key")
        if action == "sync":
            r["syncs"] += 1
            self.synced = True
            self.differences = False
            self.expect_seq = (seq or 0) + 1
            return
        if action == "resync":
            r["resyncs"] += 1
            if len(r["resync_reasons"]) < 5:
                r["resync_reasons"].append(e.get("reason"))
            # "differences": the tail prints what changed (origin
            # reconcile) and the picture held stays; otherwise a fresh
            # snapshot follows. Either way a sync closes it.
            self.differences = e.get("snapshot") == "differences"
            if not self.differences:
                self.routes.clear()
                self.nexthops.clear()
            self.synced = False
            self.expect_seq = None
            return
        if action not in ("add", "delete"):
            r["bad_lines"] += 1
            return
        if origin == "dump":
            if r["syncs"] == 0:
                r["snapshot_" + {"route": "routes", "rule": "rules"}.get(obj, "nexthops")] += 1
            else:
                r["redump_lines"] += 1
        elif self.differences:
            # A resync's differences, all at the new snapshot's position.
            if obj == "route":
                r["reconcile_route"] += 1
        else:
            if self.expect_seq is not None and seq != self.expect_seq:
                r["seq_gaps"] += 1
                if r["seq_first_gap"] is None:
                    r["seq_first_gap"] = (self.expect_seq, seq)
            self.expect_seq = (seq or 0) + 1
            if self.synced and obj == "route":
                if origin == "notification":
                    r["notif_route"] += 1
                    r["notif_route_add" if action == "add" else "notif_route_del"] += 1
                    if self.expected is not None and not self.expected(raw):
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
                    before, after = json.loads(old), json.loads(raw)
                    if canon(before) != canon(after):
                        r["add_changed"] += 1
                        if len(r["changed_examples"]) < 3:
                            r["changed_examples"].append(
                                {"seq": seq, "origin": origin, "key": key,
                                 "before": json.loads(canon(before)), "after": json.loads(canon(after))})
                self.routes[key] = raw
            elif self.routes.pop(key, None) is None:
                r["del_unknown"] += 1
        elif obj == "nexthop":
            if action == "add":
                self.nexthops.add(key)
            else:
                self.nexthops.discard(key)

    def compare(self, ns, mod=1):
        """Compares the replayed routes with the kernel's (`ip -j -d route
        show table all`, -4 plus -6): key count, and every route's fields
        (mod 1) or every route's table and prefix and the fields of a
        sample (mod M, see RouteDigest)."""
        mine = RouteDigest(mod)
        for raw in self.routes.values():
            mine.add_line(raw)
        res = compare_digests(mine, kernel_digest(ns, mod))
        res["replay_nexthops"] = len(self.nexthops)
        return res


def agent_log_counts(text):
    """What the agent's log (at info) says about overflows, re-dumps,
    resyncs and errors."""
    return {
        "overflow_warnings": text.count("overflowed (ENOBUFS)"),
        "reconciled_msgs": text.count("reconciled with the kernel"),
        "dump_failed_msgs": text.count("dump request failed"),
        "resync_msgs": text.count("subscriber resynchronised"),
        "agent_errors": sum(1 for line in text.splitlines() if " ERROR " in line or "panicked" in line),
    }


TIME = "/usr/bin/time"


def need_gnu_time():
    """Exits (code 2) unless GNU time, which run_timed's peak RSS needs, is there."""
    if not os.access(TIME, os.X_OK):
        die(f"{TIME} (GNU time) is needed for the peak RSS: apt-get install time", 2)


def run_timed(ns, argv, stdout_path=None, timeout=600.0, env=None, peak_rss=False):
    """Runs argv in ns; returns (wall s, cpu s of the command, exit code,
    stderr), and with peak_rss the command's peak RSS in KiB after them.

    The peak RSS comes from GNU time (`/usr/bin/time -f %M`), which starts
    the command from a small process of its own: a child forked from this
    script would count the script's memory as its own until it execs. The
    CPU (from wait4) then includes time(1)'s own, a millisecond or so."""
    rss_path, cmd = None, " ".join(argv)
    if peak_rss:
        fd, rss_path = tempfile.mkstemp(prefix="rwbench-rss.")
        os.close(fd)
        argv = [TIME, "-f", "%M", "-o", rss_path, *argv]
    out = open(stdout_path, "wb") if stdout_path else open(os.devnull, "wb")
    full_env = dict(os.environ)
    full_env.update(env or {})
    t0 = time.monotonic()
    try:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE,
                             env=full_env, preexec_fn=ns.preexec(), start_new_session=True)
    except BaseException:
        if rss_path:
            os.unlink(rss_path)
        raise
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
                raise BenchError(f"`{cmd}` took longer than {timeout}s")
            time.sleep(0.002)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
    except BaseException:
        try:
            os.killpg(p.pid, 9)  # its own session: the command, and time(1) with it
            os.waitpid(p.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        raise
    finally:
        p.stderr.close()
        if rss_path:
            with open(rss_path) as f:
                rss = f.read().split()
            os.unlink(rss_path)
    res = (wall, ru.ru_utime + ru.ru_stime, p.returncode, err.decode(errors="replace"))
    if not peak_rss:
        return res
    # time(1) writes "Command exited with non-zero status N" before %M.
    return res + (int(rss[-1]) if rss and rss[-1].isdigit() else 0,)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def route_lines(n, op, dev="va"):
    """`route add|del 10.A.B.C/32 dev va` lines for n distinct /32s."""
    if n > 255 * 65536:
        raise BenchError(f"N={n} too large (max {255 * 65536})")
    out = []
    for i in range(n):
        a = 1 + (i >> 16)
        b = (i >> 8) & 255
        c = i & 255
        out.append(f"route {op} 10.{a}.{b}.{c}/32 dev {dev}\n")
    return "".join(out)


def write_batches(directory, n):
    add = os.path.join(directory, f"add-{n}.batch")
    dele = os.path.join(directory, f"del-{n}.batch")
    with open(add, "w") as f:
        f.write(route_lines(n, "add"))
    with open(dele, "w") as f:
        f.write(route_lines(n, "del"))
    return add, dele


def ensure_netns_available():
    """Fails early with a clear message if namespaces cannot be created."""
    ns = Netns()
    ns.delete()


# --------------------------------------------------------------------------
# routewatch-agent

INSECURE = (("--insecure",), ("--insecure",))  # (agent arguments, client arguments)


def make_certs(directory):
    """A scratch CA and an agent certificate for 127.0.0.1, made by
    `routewatch certs init` in DIRECTORY/pki; returns (agent arguments,
    client arguments)."""
    d = os.path.join(directory, "pki")
    argv = [CLIENT, "certs", "init", d, "--agent-name", "127.0.0.1", "--days", "2"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise BenchError(f"`{' '.join(argv)}` failed ({r.returncode}): {r.stderr.strip()[-1000:]}")
    p = lambda name: os.path.join(d, name)  # noqa: E731
    return (["--tls-cert", p("agent.pem"), "--tls-key", p("agent-key.pem")], ["--ca", p("ca.pem")])


def start_agent(ns, addr, log_path, extra=(), deadline=600.0, security=INSECURE[0]):
    """Starts `routewatch-agent SECURITY... --listen ADDR EXTRA...` in ns
    (SECURITY: --insecure, or make_certs()' agent arguments), logging at
    info to log_path; returns it once it serves (first dump complete)."""
    agent = Proc("routewatch-agent", [AGENT, *security, "--listen", addr, *extra], ns,
                 stderr=log_path, env={"ROUTEWATCH_LOG": "info"})
    wait_until(lambda: file_contains(log_path, b"serving"), deadline,
               "the agent to serve (first dump complete)", proc=agent)
    return agent


def start_tail(ns, addr, out, err_path, client_args=INSECURE[1], deadline=600.0, name="routewatch tail"):
    """Starts `routewatch tail CLIENT_ARGS... -o json ADDR > OUT` in ns;
    returns it once OUT holds the sync marker (snapshot complete)."""
    tail = Proc(name, [CLIENT, "tail", *client_args, "-o", "json", addr], ns,
                stdout=out, stderr=err_path, env={"ROUTEWATCH_LOG": "warn"})
    wait_for_bytes(out, b'"action":"sync"', deadline, "the tail's sync marker", proc=tail)
    return tail


def run_subscribed(ns, agent, tail, out, batches, quiet=1.0, deadline=600.0, between=None):
    """With the agent and one subscriber (`tail`, writing `out`) running in
    ns: waits until both are idle, takes the baseline, runs the `ip -batch`
    files one after the other and waits until all is quiet again: no CPU
    used by either, nothing queued on the agent's netlink socket, `out` not
    growing, for `quiet` seconds. With `between`, it also waits for quiet
    after each batch but the last and calls between(i); the CPU used from
    there to the next batch is left out. Returns the readings."""
    wait_quiet(paths=(out,), procs=(agent, tail), quiet=0.5, deadline=deadline)
    rss_before, hwm_before = agent.rss_now_kib(), agent.rss_kib()
    base_a, base_t = agent.cpu_ticks(), tail.cpu_ticks()
    walls = []
    for i, path in enumerate(batches):
        walls.append(ns.batch(path, timeout=deadline))
        if between is not None and i + 1 < len(batches):
            wait_quiet(paths=(out,), procs=(agent, tail), quiet=quiet, deadline=deadline)
            c0a, c0t = agent.cpu_ticks(), tail.cpu_ticks()
            between(i)
            base_a += agent.cpu_ticks() - c0a
            base_t += tail.cpu_ticks() - c0t
    t_end = time.monotonic()
    wait_quiet(paths=(out,), procs=(agent, tail), quiet=quiet, deadline=deadline)
    lag = max(0.0, time.monotonic() - t_end - quiet)
    end_a, end_t = agent.cpu_ticks(), tail.cpu_ticks()
    return {
        "agent_ticks": end_a - base_a,
        "tail_ticks": end_t - base_t,
        "batch_s": walls,
        "lag_s": lag,
        "agent_drops": sum(s["drops"] for s in agent.netlink_sockets()),
        "agent_rss_before_kib": rss_before,
        "agent_hwm_before_kib": hwm_before,
        "agent_rss_after_kib": agent.rss_now_kib(),
        "agent_hwm_after_kib": agent.rss_kib(),
        "tail_hwm_kib": tail.rss_kib(),
    }


def run_ip_monitor(ns, batches, err_path, quiet=1.0, deadline=600.0):
    """Starts `ip monitor route > /dev/null` in ns, runs the `ip -batch`
    files one after the other and waits until it has gone quiet (no CPU,
    nothing queued on its netlink socket, for `quiet` seconds); returns its
    CPU ticks over that window and the other readings, and stops it."""
    mon = Proc("ip monitor", ["ip", "monitor", "route"], ns, stdout=None, stderr=err_path)
    try:
        # Started once it has its netlink socket (joined to route groups).
        wait_until(lambda: mon.netlink_sockets(), 10, "ip monitor's netlink socket", proc=mon)
        time.sleep(0.5)
        base = mon.cpu_ticks()
        walls = [ns.batch(path, timeout=deadline) for path in batches]
        t_end = time.monotonic()
        wait_cpu_quiet(mon, quiet=quiet, deadline=deadline)
        lag = max(0.0, time.monotonic() - t_end - quiet)
        socks = mon.netlink_sockets()
        end = mon.cpu_ticks()  # just before stopping
    finally:
        rc = mon.stop()
    text = mon.stderr_text(1 << 20)
    return {
        "ticks": end - base,
        "batch_s": walls,
        "lag_s": lag,
        "drops": sum(s["drops"] for s in socks),
        "enobufs_msgs": sum(1 for line in text.splitlines() if "No buffer space" in line or "ENOBUFS" in line),
        "exit": rc,
    }


def agent_info(ns, addr, timeout=60):
    """`routewatch info --insecure -o json ADDR`, run inside ns, as a dict."""
    out = ns.run([CLIENT, "info", "--insecure", "-o", "json", addr], timeout=timeout,
                 env={"ROUTEWATCH_LOG": "warn"})
    return json.loads(out)


# --------------------------------------------------------------------------
# Scratch PostgreSQL


def postgres_bin():
    """The newest /usr/lib/postgresql/*/bin that has initdb (or $RW_PG_BIN)."""
    import glob
    import re

    if os.environ.get("RW_PG_BIN"):
        d = os.environ["RW_PG_BIN"]
        return d if os.access(os.path.join(d, "initdb"), os.X_OK) else None
    found = [d for d in glob.glob("/usr/lib/postgresql/*/bin") if os.access(os.path.join(d, "initdb"), os.X_OK)]
    if not found:
        return None
    return max(found, key=lambda d: [int(x) for x in re.findall(r"\d+", d)])


class Postgres:
    """A scratch PostgreSQL server: initdb into `directory` as the
    `postgres` OS user, trust authentication, reachable only by its Unix
    socket in `directory` (listen_addresses=''), every other setting the
    server's default (`settings` adds -c NAME=VALUE pairs). The socket
    path reaches the server from any network namespace. Stopped (fast
    shutdown) at cleanup; `directory` goes with the work directory.

    `directory`'s parent gets o+x so that the postgres user can reach it."""

    def __init__(self, directory, port=54329, settings=None, os_user="postgres", deadline=120.0):
        import pwd

        self.bin = postgres_bin()
        if self.bin is None:
            raise BenchError("no PostgreSQL server found in /usr/lib/postgresql/*/bin "
                             "(install the postgresql package, or set RW_PG_BIN)")
        try:
            pw = pwd.getpwnam(os_user)
        except KeyError:
            raise BenchError(f"no `{os_user}` OS user to run PostgreSQL as")
        self.dir = directory
        self.port = port
        self.data = os.path.join(directory, "data")
        self.log_path = os.path.join(directory, "server.log")
        parent = os.path.dirname(os.path.abspath(directory))
        os.chmod(parent, os.stat(parent).st_mode | 0o111)
        os.makedirs(directory, exist_ok=True)
        os.chown(directory, pw.pw_uid, pw.pw_gid)
        r = subprocess.run(
            ["runuser", "-u", os_user, "--", os.path.join(self.bin, "initdb"), "-D", self.data,
             "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"],
            capture_output=True, text=True, timeout=300, cwd="/",
        )
        if r.returncode != 0:
            raise BenchError(f"initdb failed ({r.returncode}): {(r.stdout + r.stderr).strip()[-2000:]}")
        argv = [os.path.join(self.bin, "postgres"), "-D", self.data, "-p", str(port), "-k", directory,
                "-c", "listen_addresses="]
        for k, v in (settings or {}).items():
            argv += ["-c", f"{k}={v}"]
        self.proc = Proc("postgres", argv, None, stderr=self.log_path, user=os_user,
                         stop_signal=signal.SIGINT, cwd="/")
        wait_until(lambda: file_contains(self.log_path, b"ready to accept connections"), deadline,
                   "PostgreSQL to accept connections", proc=self.proc)

    def url(self, database="postgres"):
        from urllib.parse import quote

        return f"postgres://postgres@{quote(self.dir, safe='')}:{self.port}/{database}"

    def psql(self, sql, database="postgres", timeout=120):
        """Runs sql with `psql -tAc`; returns its output."""
        r = subprocess.run(
            [os.path.join(self.bin, "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
             "-c", sql, self.url(database)],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )
        if r.returncode != 0:
            raise BenchError(f"psql `{sql}`: {r.stderr.strip()[-2000:]}")
        return r.stdout

    def session(self, database="postgres"):
        return PsqlSession(os.path.join(self.bin, "psql"), self.url(database))

    def version(self):
        return self.psql("SHOW server_version").strip()

    def stop(self):
        return self.proc.stop(timeout=60)


class PsqlSession:
    """One psql process kept open, for many small queries (polling)
    without a process and a connection each. Closed at cleanup."""

    MARK = "__rwbench_done__"

    def __init__(self, psql, url):
        self.p = subprocess.Popen(
            [psql, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=0", url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.buf = b""
        at_cleanup(self.close)

    def query(self, sql, timeout=120.0):
        """Rows of the query's result, each a list of strings ('' for NULL).
        Raises BenchError on an SQL error (the session stays usable)."""
        import select

        if self.p.poll() is not None:
            raise BenchError(f"psql exited ({self.p.returncode})")
        self.p.stdin.write(sql.strip().rstrip(";").encode() + b";\n\\echo " + self.MARK.encode() + b"\n")
        self.p.stdin.flush()
        end = time.monotonic() + timeout
        mark = b"\n" + self.MARK.encode() + b"\n"
        while True:
            probe = b"\n" + self.buf
            i = probe.find(mark)
            if i >= 0:
                out = probe[1:i + 1]
                self.buf = probe[i + len(mark):]
                break
            left = end - time.monotonic()
            if left <= 0:
                raise BenchError(f"psql: no answer to `{sql}` in {timeout}s")
            ready, _, _ = select.select([self.p.stdout], [], [], left)
            if ready:
                chunk = os.read(self.p.stdout.fileno(), 65536)
                if not chunk:
                    raise BenchError(f"psql exited while answering `{sql}`")
                self.buf += chunk
        text = out.decode(errors="replace")
        if "ERROR:" in text:
            raise BenchError(f"psql `{sql}`: {text.strip()}")
        return [line.split("|") for line in text.splitlines() if line]

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.close()
                self.p.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait(timeout=10)
