#!/usr/bin/env bash
# Digests under route churn: no false alarm from tail --verify or collect,
# and the agent's CPU per change. Usage: bench/digest.sh [N] [--round R] [--pause S]
# See bench/README.md.
set -euo pipefail
exec python3 "$(dirname "$(readlink -f "$0")")/digest.py" "$@"
