#!/usr/bin/env bash
# Snapshot benchmark: time `routewatch show -o json` (via the agent and in
# process) against `ip -j -d route show table all` and `ip route show table all`
# with N routes installed. Usage: bench/snapshot.sh [N] [--runs R] [--keep] ...
# See bench/README.md; `bench/snapshot.sh --help` lists every option.
set -euo pipefail
exec python3 "$(dirname "$(readlink -f "$0")")/snapshot.py" "$@"
