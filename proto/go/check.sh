#!/usr/bin/env bash
# The API from Go: generates the Go code of proto/routewatch/v1 with protoc,
# protoc-gen-go and protoc-gen-go-grpc, builds the client in this directory
# against it (GOPATH mode, with the Go packages of the distribution: no
# module download), and runs it against a real agent in a network namespace
# of its own. Its snapshot must hold as many routes as
# `ip -j -d route show table all` (IPv4 and IPv6) there.
#
# Needs: go, protoc, protoc-gen-go, protoc-gen-go-grpc and the Go sources
# of google.golang.org/grpc and google.golang.org/protobuf under
# /usr/share/gocode (Debian: golang-go protobuf-compiler protoc-gen-go
# protoc-gen-go-grpc golang-google-grpc-dev golang-google-protobuf-dev);
# root (ip netns); the agent at $ROUTEWATCH_AGENT_BIN or
# target/release/routewatch-agent.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
agent=${ROUTEWATCH_AGENT_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/routewatch-agent}
for tool in go protoc protoc-gen-go protoc-gen-go-grpc ip python3; do
    command -v "$tool" >/dev/null || { echo "proto/go/check.sh: $tool is missing" >&2; exit 1; }
done
[ -x "$agent" ] || { echo "proto/go/check.sh: no agent binary at $agent (cargo build --release)" >&2; exit 1; }

work=$(mktemp -d)
ns="rwgo-$$"
agent_pid=
cleanup() {
    [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== generate (protoc $(protoc --version | cut -d' ' -f2))"
mkdir -p "$work/src"
protoc -I "$root/proto" --go_out="$work/src" --go-grpc_out="$work/src" \
    "$root/proto/routewatch/v1/routewatch.proto"
mkdir -p "$work/src/routewatch/client"
cp "$root/proto/go/main.go" "$work/src/routewatch/client/"
echo "== build ($(go version | cut -d' ' -f3))"
GO111MODULE=off GOPATH="$work:/usr/share/gocode" GOCACHE="$work/cache" GOFLAGS=-mod=mod \
    go build -o "$work/routewatch-go-client" routewatch/client 2>&1 || {
    echo "proto/go/check.sh: the generated Go client does not build" >&2
    exit 1
}

echo "== run against an agent"
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" route add 198.18.91.0/24 dev lo
ip -n "$ns" -6 route add 2001:db8:91::/48 dev lo
ip netns exec "$ns" "$agent" --insecure --listen 127.0.0.1:50051 >"$work/agent.log" 2>&1 &
agent_pid=$!
out=
for _ in $(seq 100); do
    if out=$(ip netns exec "$ns" "$work/routewatch-go-client" 127.0.0.1:50051 2>"$work/client.err"); then
        break
    fi
    out=
    sleep 0.2
done
if [ -z "$out" ]; then
    echo "proto/go/check.sh: the Go client failed:" >&2
    cat "$work/client.err" "$work/agent.log" >&2
    exit 1
fi
echo "$out"
kernel=$(ip -n "$ns" -4 -j -d route show table all | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
kernel6=$(ip -n "$ns" -6 -j -d route show table all | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
want="routes $((kernel + kernel6)) "
case "$out" in
    *"$want"*) echo "ok   the Go client's snapshot holds the kernel's $((kernel + kernel6)) routes" ;;
    *) echo "proto/go/check.sh: expected '$want' (ip -4 and -6 route show table all), the Go client said: $out" >&2; exit 1 ;;
esac
