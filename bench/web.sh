#!/usr/bin/env bash
# Web benchmark: time to first byte of `routewatch web`'s fleet page with
# 1,000 hosts, and of a host page over a 1.2M-route table (goal: the fleet
# page's first byte under 200 ms).
# Usage: bench/web.sh [--hosts H] [--routes N] [--runs R] [--keep] ...
# See bench/README.md; `bench/web.sh --help` lists every option.
set -euo pipefail
exec python3 "$(dirname "$(readlink -f "$0")")/web.py" "$@"
