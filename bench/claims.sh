#!/usr/bin/env bash
# Claims benchmark: how fast PostgreSQL collectors take targets, two
# starting together on a backlog of N targets, and one taking over all N
# from a collector killed with SIGKILL.
# Usage: bench/claims.sh [N] [--runs R] [--postgres-url URL] [--keep] ...
# See bench/README.md; `bench/claims.sh --help` lists every option.
set -euo pipefail
exec python3 "$(dirname "$(readlink -f "$0")")/claims.py" "$@"
