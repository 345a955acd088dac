#!/usr/bin/env bash
# Route churn benchmark: CPU per event of `ip monitor route` vs routewatch.
# Usage: bench/churn.sh [N] [--runs R] [--sides ab] [--rcvbuf BYTES] [--keep] ...
# See bench/README.md; `bench/churn.sh --help` lists every option.
set -euo pipefail
exec python3 "$(dirname "$(readlink -f "$0")")/churn.py" "$@"
