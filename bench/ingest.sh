#!/usr/bin/env bash
# Ingest benchmark: how fast `routewatch collect` stores a backlog of 2N
# route changes into SQLite and PostgreSQL, against `ip -batch` making them
# (goals: 200000 events/s into SQLite, 100000 into PostgreSQL).
# Usage: bench/ingest.sh [N] [--runs R] [--stores sqlite,postgres] [--keep] ...
# See bench/README.md; `bench/ingest.sh --help` lists every option.
set -euo pipefail
exec python3 "$(dirname "$(readlink -f "$0")")/ingest.py" "$@"
