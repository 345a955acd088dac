#!/usr/bin/env python3
"""Offline checks of everything in deploy/, run by CI (.ci/run).

1. Kubernetes: every kustomization under deploy/kubernetes/ is rendered
   here -- no kustomize binary is available, and these bases use only
   `resources`, `namespace`, `labels` and `images`, which this script applies
   the way kustomize does (any other field is refused rather than ignored) --
   and every rendered resource is validated strictly (unknown fields are
   errors) against the Kubernetes schemas of kubernetes-validate.
   cert-manager resources, which it has no schemas for, are validated against
   the subset of cert-manager's v1 API written out below.
2. The flags used in the DaemonSet and the agent's unit exist in
   `routewatch-agent --help`; those of the collector's Deployment and unit
   in `routewatch collect --help`.
3. systemd units: `systemd-analyze verify` in a scratch root holding the
   units and stand-ins for the binaries. verify exits 0 on many problems
   ("..., ignoring"), so ANY output fails the check. If systemd-analyze is
   missing or cannot run, the check FAILS, saying so. The agent's unit's
   SystemCallFilter must allow each system call the agent makes that a
   filter could refuse (AGENT_SYSCALLS): refused, it would fail with EPERM
   and attribution would quietly get worse.
4. The agent's unit starts and serves, as shipped and with the example
   environment file (mutual TLS with certificates from `routewatch certs
   init`): its ExecStart, Environment= lines and environment file are
   applied the way systemd applies them, and the release binary runs as an
   unprivileged user with the unit's ambient capabilities, in a network
   namespace of its own; a `routewatch show` through it must list a route
   added there. (systemd itself does not run in CI, so this is the unit's
   command and environment, not systemd's sandbox.)
5. Grafana (deploy/grafana): the provisioning files parse; every dashboard
   has a uid, a title, a schema version and panels with unique ids and
   positions, each panel and query naming a datasource the provisioning
   defines (by uid and type), PostgreSQL queries as raw SQL, Prometheus ones
   as an expression. (The SQL runs against a real store in the end-to-end
   tests, the metric names are checked against the exported ones in the
   collector's unit tests.)
6. The Dockerfile builds with `cargo build ...` on a line of its own; this
   script prints that command (CI runs it before calling the script) and
   checks that the binaries the image copies were built.

Usage: deploy/check.py [--print-build-command]
"""

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUBERNETES_VERSION = "1.33"
RELEASE = ROOT / os.environ.get("CARGO_TARGET_DIR", "target") / "release"
CLUSTER_SCOPED = {"Namespace", "ClusterIssuer", "ClusterRole", "ClusterRoleBinding",
                  "CustomResourceDefinition", "PriorityClass", "StorageClass",
                  "PersistentVolume"}
KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "namespace", "labels", "resources", "images"}

failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL {msg}")


# --- cert-manager v1 (the fields these manifests may use) -----------------
_ISSUER_REF = {"type": "object", "additionalProperties": False, "required": ["name"],
               "properties": {"name": {"type": "string"},
                              "kind": {"enum": ["Issuer", "ClusterIssuer"]},
                              "group": {"type": "string"}}}
_META = {"type": "object", "required": ["name"]}
CERT_MANAGER = {
    "Issuer": {
        "type": "object", "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "cert-manager.io/v1"}, "kind": {"const": "Issuer"},
            "metadata": _META,
            "spec": {"type": "object", "additionalProperties": False,
                     "minProperties": 1, "maxProperties": 1,
                     "properties": {
                         "selfSigned": {"type": "object", "additionalProperties": False,
                                        "properties": {"crlDistributionPoints": {"type": "array"}}},
                         "ca": {"type": "object", "additionalProperties": False,
                                "required": ["secretName"],
                                "properties": {"secretName": {"type": "string"}}}}}}},
    "Certificate": {
        "type": "object", "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "cert-manager.io/v1"}, "kind": {"const": "Certificate"},
            "metadata": _META,
            "spec": {
                "type": "object", "additionalProperties": False,
                "required": ["secretName", "issuerRef"],
                "properties": {
                    "secretName": {"type": "string"},
                    "commonName": {"type": "string", "maxLength": 64},
                    "dnsNames": {"type": "array", "items": {"type": "string"}},
                    "ipAddresses": {"type": "array", "items": {"type": "string"}},
                    "uris": {"type": "array", "items": {"type": "string", "pattern": "^[a-z][a-z0-9+.-]*://"}},
                    "isCA": {"type": "boolean"},
                    "duration": {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?(h|m|s))+$"},
                    "renewBefore": {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?(h|m|s))+$"},
                    "privateKey": {"type": "object", "additionalProperties": False, "properties": {
                        "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
                        "size": {"type": "integer"},
                        "encoding": {"enum": ["PKCS1", "PKCS8"]},
                        "rotationPolicy": {"enum": ["Never", "Always"]}}},
                    "usages": {"type": "array", "items": {"enum": [
                        "signing", "digital signature", "content commitment", "key encipherment",
                        "key agreement", "data encipherment", "cert sign", "crl sign",
                        "encipher only", "decipher only", "any", "server auth", "client auth",
                        "code signing", "email protection", "s/mime", "ipsec end system",
                        "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing",
                        "microsoft sgc", "netscape sgc"]}},
                    "issuerRef": _ISSUER_REF}}}},
}

# --- Prometheus Operator v1 PodMonitor (the fields these manifests use) ---
PROMETHEUS_OPERATOR = {
    "PodMonitor": {
        "type": "object", "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "PodMonitor"},
            "metadata": _META,
            "spec": {
                "type": "object", "additionalProperties": False,
                "required": ["selector", "podMetricsEndpoints"],
                "properties": {
                    "selector": {"type": "object", "additionalProperties": False, "properties": {
                        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}}},
                    "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": {
                        "type": "object", "additionalProperties": False, "required": ["port"],
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {"type": "string", "pattern": r"^([0-9]+(ms|s|m|h))+$"},
                            "relabelings": {"type": "array", "items": {
                                "type": "object", "additionalProperties": False,
                                "properties": {
                                    "sourceLabels": {"type": "array", "items": {"type": "string"}},
                                    "targetLabel": {"type": "string"},
                                    "action": {"type": "string"},
                                    "regex": {"type": "string"},
                                    "replacement": {"type": "string"}}}}}}}}}}},
}


# --- rendering -----------------------------------------------------------
def render(kdir: Path):
    """The resources of kustomization `kdir`, as kustomize would emit them."""
    k = yaml.safe_load((kdir / "kustomization.yaml").read_text())
    unknown = set(k) - KUSTOMIZATION_FIELDS
    if unknown:
        fail(f"{kdir}: kustomization fields this renderer does not apply: {sorted(unknown)}")
    out = []
    for res in k.get("resources", []):
        path = kdir / res
        if path.is_dir():
            out.extend(render(path))
        else:
            out.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    for r in out:
        meta = r.setdefault("metadata", {})
        if "namespace" in k and r["kind"] not in CLUSTER_SCOPED:
            meta["namespace"] = k["namespace"]
        for group in k.get("labels", []):
            if group.get("includeSelectors") or group.get("includeTemplates"):
                fail(f"{kdir}: labels with includeSelectors/includeTemplates are not rendered here")
            meta.setdefault("labels", {}).update(group["pairs"])
        for image in k.get("images", []):
            for c in containers(r):
                name, _, _ = c["image"].partition(":")
                if name == image["name"]:
                    c["image"] = f"{image.get('newName', name)}:{image.get('newTag', 'latest')}"
    return out


def containers(r):
    spec = r.get("spec", {}).get("template", {}).get("spec", {})
    return spec.get("containers", []) + spec.get("initContainers", [])


def validate(kdir: Path, resources):
    seen = set()
    for r in resources:
        name = f"{kdir.name}: {r.get('kind')}/{r.get('metadata', {}).get('name')}"
        key = (r.get("apiVersion"), r.get("kind"), r["metadata"].get("namespace"), r["metadata"].get("name"))
        if key in seen:
            fail(f"{name}: defined twice")
        seen.add(key)
        crd = None
        if r["apiVersion"].startswith("cert-manager.io/"):
            crd = ("cert-manager v1 subset", CERT_MANAGER)
        if r["apiVersion"].startswith("monitoring.coreos.com/"):
            crd = ("Prometheus Operator v1 subset", PROMETHEUS_OPERATOR)
        if crd is not None:
            schema = crd[1].get(r["kind"])
            if schema is None:
                fail(f"{name}: no {crd[0]} schema here for {r['kind']}")
                continue
            try:
                jsonschema.validate(r, schema)
                print(f"ok   {name} ({crd[0]})")
            except jsonschema.ValidationError as e:
                fail(f"{name}: {'.'.join(map(str, e.path))}: {e.message}")
            continue
        try:
            version = kubernetes_validate.validate(copy.deepcopy(r), KUBERNETES_VERSION, strict=True)
            print(f"ok   {name} (Kubernetes {version}, strict)")
        except kubernetes_validate.ValidationError as e:
            fail(f"{name}: {'.'.join(map(str, e.path))}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            fail(f"{name}: no schema: {e.message}")
        for c in containers(r):
            if ":" not in c["image"] or c["image"].endswith(":latest"):
                fail(f"{name}: container {c['name']} image {c['image']} has no pinned tag")


def flags_of(binary, *args):
    path = RELEASE / binary
    if not path.exists():
        fail(f"{path} is missing: run the Dockerfile's build command first")
        return None
    text = subprocess.run([path, *args, "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"--[a-z][a-z0-9-]*", text))


def agent_flags():
    return flags_of("routewatch-agent")


def collector_flags():
    return flags_of("routewatch", "collect")


def check_flags(where, args, known, command="routewatch-agent"):
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag.startswith("--") and flag not in known:
            fail(f"{where}: {command} has no flag {flag}")


def check_collector_deployment(resources, known):
    found = [r for r in resources if r["kind"] == "Deployment" and r["metadata"]["name"] == "routewatch-collector"]
    if len(found) != 1:
        fail("collector: exactly one routewatch-collector Deployment expected")
        return
    c = found[0]["spec"]["template"]["spec"]["containers"][0]
    args = c.get("args", [])
    if args[:1] != ["collect"]:
        fail(f"collector: the container must run `routewatch collect`, not {args[:1]}")
    if known is not None:
        check_flags("collector Deployment", args[1:], known, "routewatch collect")
    env = {e["name"] for e in c.get("env", [])}
    if "ROUTEWATCH_STORE" not in env:
        fail("collector: the store URL must come from ROUTEWATCH_STORE (a Secret)")


def check_agent_daemonset(resources, known):
    ds = [r for r in resources if r["kind"] == "DaemonSet" and r["metadata"]["name"] == "routewatch-agent"]
    if len(ds) != 1:
        fail("base: exactly one routewatch-agent DaemonSet expected")
        return
    pod = ds[0]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    if known is not None:
        check_flags("DaemonSet", c.get("args", []), known)
    checks = {
        "hostNetwork": pod.get("hostNetwork") is True,
        "tolerates every taint": {"operator": "Exists"} in pod.get("tolerations", []),
        "liveness on /healthz": c["livenessProbe"]["httpGet"]["path"] == "/healthz",
        "readiness on /readyz": c["readinessProbe"]["httpGet"]["path"] == "/readyz",
        "drops ALL capabilities": c["securityContext"]["capabilities"]["drop"] == ["ALL"],
        "adds only NET_ADMIN, SYS_ADMIN, SYS_PTRACE, DAC_READ_SEARCH and SYS_NICE":
            sorted(c["securityContext"]["capabilities"]["add"])
            == ["DAC_READ_SEARCH", "NET_ADMIN", "SYS_ADMIN", "SYS_NICE", "SYS_PTRACE"],
        "hostPID, to name who made each change": pod.get("hostPID") is True,
        "no privilege escalation": c["securityContext"]["allowPrivilegeEscalation"] is False,
        "requests and a memory limit":
            "requests" in c["resources"] and "memory" in c["resources"].get("limits", {}),
        "netns follows the host's mounts": any(
            m["mountPath"] == "/var/run/netns" and m.get("mountPropagation") == "HostToContainer"
            for m in c["volumeMounts"]),
    }
    env = {e["name"]: e for e in c.get("env", [])}
    allowed = {a.split("=", 1)[1] for a in c.get("args", []) if a.startswith("--allow-client=")}
    client_uris = {u for r in resources if r["kind"] == "Certificate"
                   and "client auth" in r["spec"].get("usages", []) for u in r["spec"].get("uris", [])}
    classes = {r["metadata"]["name"] for r in resources if r["kind"] == "PriorityClass"}
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    annotations = ds[0]["spec"]["template"]["metadata"].get("annotations", {})
    checks.update({
        "ROUTEWATCH_HOSTNAME from spec.nodeName":
            env.get("ROUTEWATCH_HOSTNAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            == "spec.nodeName",
        "--allow-client admits exactly the client certificates' URIs":
            bool(allowed) and allowed == client_uris,
        "a priorityClassName defined in the base": pod.get("priorityClassName") in classes,
        "scrape annotations name the ops port":
            annotations.get("prometheus.io/scrape") == "true"
            and annotations.get("prometheus.io/port") == str(ports.get("ops")),
    })
    for what, ok in checks.items():
        if not ok:
            fail(f"DaemonSet: {what}")


# --- systemd -------------------------------------------------------------
def check_systemd(known, known_collector):
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        fail("systemd-analyze is not installed: THE SYSTEMD UNITS WERE NOT VERIFIED")
        return
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
        (root / "etc/systemd/system").mkdir(parents=True)
        (root / "usr/local/bin").mkdir(parents=True)
        for unit in units:
            shutil.copy(unit, root / "etc/systemd/system" / unit.name)
            for line in unit.read_text().splitlines():
                if line.startswith("ExecStart="):
                    binary = Path(line.split("=", 1)[1].split()[0])
                    stand_in = root / binary.relative_to("/")
                    stand_in.write_text("#!/bin/sh\n")
                    stand_in.chmod(0o755)
                    words = line.split()[1:]
                    if binary.name == "routewatch-agent" and known is not None:
                        check_flags(unit.name, words, known)
                    if binary.name == "routewatch" and known_collector is not None:
                        check_flags(unit.name, words[1:], known_collector, "routewatch collect")
        proc = subprocess.run([analyze, "verify", "--man=no", f"--root={root}", *[u.name for u in units]],
                              capture_output=True, text=True)
        output = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0 or output:
            fail(f"systemd-analyze verify (exit {proc.returncode}) -- THE UNITS DID NOT VERIFY:\n{output}")
        else:
            for unit in units:
                print(f"ok   {unit.name} (systemd-analyze verify, no warnings)")
    check_syscall_filter(analyze, DEPLOY / "systemd/routewatch-agent.service")


# System calls the agent makes that a unit's filter could leave out: entering
# namespaces, the early readers (epoll, their CPU and priority) and taking a
# requester's socket (pidfd_*). A call the filter refuses fails with EPERM,
# and attribution quietly gets worse; so the filter must allow each one.
AGENT_SYSCALLS = [
    "setns", "epoll_create1", "epoll_ctl", "epoll_wait", "sched_setaffinity",
    "sched_getaffinity", "sched_setscheduler", "setpriority", "pidfd_open",
    "pidfd_getfd", "pidfd_send_signal",
]


def check_syscall_filter(analyze, unit: Path):
    allowed = set()
    for line in unit.read_text().splitlines():
        key, _, value = line.partition("=")
        if key != "SystemCallFilter":
            continue
        if value.startswith("~"):
            fail(f"{unit.name}: a deny-list SystemCallFilter is not checked here: {line}")
            return
        todo = value.split()
        seen = set()
        while todo:
            item = todo.pop()
            if item in seen:
                continue
            seen.add(item)
            if not item.startswith("@"):
                allowed.add(item)
                continue
            proc = subprocess.run([analyze, "syscall-filter", item], capture_output=True, text=True)
            if proc.returncode != 0:
                fail(f"systemd-analyze syscall-filter {item}: {proc.stderr.strip()}")
                return
            # The group's members, indented: calls and groups (expanded in
            # turn); comments start with '#'.
            todo.extend(l.strip() for l in proc.stdout.splitlines()
                        if l.startswith("    ") and not l.strip().startswith("#"))
    missing = [s for s in AGENT_SYSCALLS if s not in allowed]
    if missing:
        fail(f"{unit.name}: SystemCallFilter refuses what the agent calls: {', '.join(missing)}")
    else:
        print(f"ok   {unit.name} allows the agent's system calls ({len(AGENT_SYSCALLS)} checked)")


# --- the agent's unit, started -------------------------------------------
def unit_settings(unit: Path):
    """ExecStart (words), Environment= pairs, AmbientCapabilities of `unit`."""
    exec_start, env, caps = None, {}, []
    for line in unit.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "ExecStart":
            exec_start = value.split()
        elif key == "Environment":
            name, _, val = value.partition("=")
            env[name] = val
        elif key == "AmbientCapabilities":
            caps = [c.lower().removeprefix("cap_") for c in value.split()]
    return exec_start, env, caps


def environment_file(path: Path, prefix_from=None, prefix_to=None):
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them."""
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        name, _, value = line.partition("=")
        value = value.strip().strip('"')
        if prefix_from and value.startswith(prefix_from):
            value = prefix_to + value[len(prefix_from):]
        env[name.strip()] = value
    return env


def start_agent_unit(label, extra_env, client_args, scratch: Path):
    unit = DEPLOY / "systemd/routewatch-agent.service"
    words, env, caps = unit_settings(unit)
    agent = RELEASE / "routewatch-agent"
    cli = RELEASE / "routewatch"
    if not agent.exists() or not cli.exists():
        fail(f"agent unit ({label}): release binaries missing: run the Dockerfile's build command first")
        return
    env.update(extra_env)
    os.chmod(scratch, 0o755)
    state = scratch / "state"
    state.mkdir()
    os.chown(state, 65534, 65534)
    argv = [str(agent)] + [w.replace("${STATE_DIRECTORY}", str(state)) for w in words[1:]]
    ns = f"rwdeploy-{os.getpid()}-{label}"
    caps_list = ",".join(f"+{c}" for c in caps)
    setpriv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
               f"--inh-caps=-all,{caps_list}", f"--ambient-caps=-all,{caps_list}",
               f"--bounding-set=-all,{caps_list}"]
    proc = None
    log = scratch / "agent.log"
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", ns, "route", "add", "198.18.77.0/24", "dev", "lo"], check=True)
        with open(log, "w") as out:
            proc = subprocess.Popen(["ip", "netns", "exec", ns, *setpriv, *argv],
                                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
                                    stdout=out, stderr=subprocess.STDOUT)
        show = None
        for _ in range(100):
            if proc.poll() is not None:
                break
            show = subprocess.run(["ip", "netns", "exec", ns, str(cli), "show", *client_args],
                                  capture_output=True, text=True, timeout=30)
            if show.returncode == 0:
                break
            time.sleep(0.2)
        if proc.poll() is not None:
            fail(f"agent unit ({label}) exited with {proc.returncode}:\n{log.read_text()}")
        elif show is None or show.returncode != 0:
            fail(f"agent unit ({label}): `routewatch show {' '.join(client_args)}` failed:\n"
                 f"{show.stderr if show else ''}\nagent log:\n{log.read_text()}")
        elif "198.18.77.0/24" not in show.stdout:
            fail(f"agent unit ({label}): show does not list the route added:\n{show.stdout}")
        else:
            print(f"ok   routewatch-agent.service starts and serves ({label})")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def check_agent_unit_starts():
    if shutil.which("setpriv") is None or shutil.which("ip") is None:
        fail("agent unit: setpriv and ip are needed to start the unit's command: NOT CHECKED")
        return
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        start_agent_unit("as-shipped", {}, ["--insecure", "127.0.0.1:50051"], scratch)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        pki = scratch / "pki"
        subprocess.run([RELEASE / "routewatch", "certs", "init", pki,
                        "--client-id", "spiffe://example.net/collector"],
                       check=True, capture_output=True)
        os.chown(pki / "agent-key.pem", 0, 65534)
        os.chmod(pki / "agent-key.pem", 0o640)
        os.chmod(pki, 0o755)
        env = environment_file(DEPLOY / "systemd/routewatch-agent.env", "/etc/routewatch/", f"{pki}/")
        start_agent_unit("example-env-file", env,
                         ["--ca", str(pki / "ca.pem"), "--cert", str(pki / "client.pem"),
                          "--key", str(pki / "client-key.pem"), "127.0.0.1:50051"], scratch)


# --- Grafana -------------------------------------------------------------
def check_grafana():
    root = DEPLOY / "grafana"
    sources = {}
    for path in sorted((root / "provisioning/datasources").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for ds in doc.get("datasources", []):
            if not ds.get("uid") or not ds.get("type"):
                fail(f"grafana: {path.name}: a datasource without uid or type")
                continue
            sources[ds["uid"]] = ds["type"]
    providers = []
    for path in sorted((root / "provisioning/dashboards").glob("*.yaml")):
        providers += yaml.safe_load(path.read_text()).get("providers", [])
    if not any(p.get("type") == "file" and p.get("options", {}).get("path") for p in providers):
        fail("grafana: no file provider loads the dashboards")
    dashboards = sorted((root / "dashboards").glob("*.json"))
    if not dashboards:
        fail("grafana: no dashboards")
    uids = set()
    for path in dashboards:
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            fail(f"grafana: {path.name}: {e}")
            continue
        name = f"grafana: {path.name}"
        for field in ("uid", "title", "schemaVersion", "panels"):
            if field not in d:
                fail(f"{name}: no {field}")
        if d.get("uid") in uids:
            fail(f"{name}: uid {d.get('uid')} used twice")
        uids.add(d.get("uid"))
        ids = set()
        for p in d.get("panels", []):
            where = f"{name}: panel {p.get('id')} {p.get('title')!r}"
            if p.get("id") in ids:
                fail(f"{where}: id used twice")
            ids.add(p.get("id"))
            if not {"x", "y", "w", "h"} <= set(p.get("gridPos", {})):
                fail(f"{where}: no gridPos")
            refs = [p.get("datasource", {})] + [t.get("datasource", {}) for t in p.get("targets", [])]
            for ref in refs:
                if sources.get(ref.get("uid")) != ref.get("type"):
                    fail(f"{where}: datasource {ref} is not one the provisioning defines")
            if not p.get("targets"):
                fail(f"{where}: no queries")
            for t in p.get("targets", []):
                kind = sources.get(t.get("datasource", {}).get("uid"))
                if kind == "grafana-postgresql-datasource" and not (t.get("rawSql") and t.get("rawQuery")):
                    fail(f"{where}: a PostgreSQL query without rawSql")
                if kind == "prometheus" and not t.get("expr"):
                    fail(f"{where}: a Prometheus query without expr")
        print(f"ok   {name} ({len(ids)} panels)")


# --- Dockerfile ----------------------------------------------------------
def build_command():
    lines = [l for l in (DEPLOY / "Dockerfile").read_text().splitlines() if l.startswith("RUN cargo build")]
    if len(lines) != 1:
        sys.exit("deploy/Dockerfile must build with exactly one `RUN cargo build ...` line")
    return lines[0][len("RUN "):]


def check_dockerfile():
    cmd = build_command()
    if "--release" not in cmd or "--locked" not in cmd:
        fail(f"Dockerfile: the build must be --release --locked: {cmd}")
    for src in re.findall(r"COPY --from=build /src/target/release/(\S+)", (DEPLOY / "Dockerfile").read_text()):
        if not (RELEASE / src).exists():
            fail(f"Dockerfile copies target/release/{src}, which `{cmd}` did not build")
        else:
            print(f"ok   Dockerfile copies target/release/{src}, built by `{cmd}`")


def main():
    if sys.argv[1:] == ["--print-build-command"]:
        print(build_command())
        return
    known = agent_flags()
    known_collector = collector_flags()
    for kdir in sorted(p.parent for p in (DEPLOY / "kubernetes").glob("*/kustomization.yaml")):
        resources = render(kdir)
        validate(kdir, resources)
        if kdir.name == "base":
            check_agent_daemonset(resources, known)
        if kdir.name == "collector":
            check_collector_deployment(resources, known_collector)
    check_systemd(known, known_collector)
    check_agent_unit_starts()
    check_grafana()
    check_dockerfile()
    if failures:
        print(f"\n{len(failures)} deployment check(s) FAILED")
        sys.exit(1)
    print("\nall deployment checks passed")


if __name__ == "__main__":
    main()
