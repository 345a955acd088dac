#!/usr/bin/env bash
# Fleet soak benchmark: N agents in namespaces behind a bridge, two
# collectors into one PostgreSQL, every agent churning; one collector killed
# with SIGKILL and PostgreSQL restarted midway. Checks every host's stored
# log holds its changes exactly once, with no gap.
# Usage: bench/fleet.sh [--agents N] [--changes C] [--no-kill] [--no-restart] ...
# See bench/README.md; `bench/fleet.sh --help` lists every option.
set -euo pipefail
exec python3 "$(dirname "$(readlink -f "$0")")/fleet.py" "$@"
