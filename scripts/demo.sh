#!/usr/bin/env bash
# The README's first command: install what is missing, build, and run kv once end to end:
# start kvd, create a bucket, write, read, show the supervision tree, stop kvd.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build
ns=demo$$
kvctl() { build/kvctl/kvctl --namespace "$ns" "$@"; }
build/daemon/kvd --namespace "$ns" --ephemeral &
kvd_pid=$!
trap 'kill -TERM $kvd_pid 2>/dev/null; wait $kvd_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do kvctl status >/dev/null 2>&1 && break; sleep 0.05; done
set -x
kvctl create shopping
kvctl put shopping milk 1
kvctl get shopping milk
printf 'PUT shopping eggs 12\nGET shopping eggs\n' | kvctl shell
kvctl status
kvctl shutdown
