#!/usr/bin/env bash
# Fan-out benchmark: the agent's CPU per route event with 100 subscribers
# against 1, on the same churn (goal: at most 2x).
# Usage: bench/fanout.sh [N] [--subscribers K] [--runs R] [--sides abc] [--keep] ...
# See bench/README.md; `bench/fanout.sh --help` lists every option.
set -euo pipefail
exec python3 "$(dirname "$(readlink -f "$0")")/fanout.py" "$@"
