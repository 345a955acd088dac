#!/usr/bin/env bash
# Full-table benchmark: routewatch with a full Internet table (1M IPv4 +
# 250k IPv6 prefixes by default) side by side with iproute2: agent startup
# and memory, show vs ip route show, a full-table flap (CPU per event vs
# ip monitor), burst latency.
# Usage: bench/fulltable.sh [--v4 N] [--v6 N] [--phases startup,show,flap,burst] [--runs R] ...
# See bench/README.md; `bench/fulltable.sh --help` lists every option.
set -euo pipefail
exec python3 "$(dirname "$(readlink -f "$0")")/fulltable.py" "$@"
