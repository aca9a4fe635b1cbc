#!/usr/bin/env bash
# bench/compare.sh [build-dir]: kv vs Redis on this machine, same workloads, side by side.
#
# Starts a private redis-server (unix socket in a temp dir, no TCP, persistence off) and a
# private kvd (namespace kvcmp<pid>), runs redis-benchmark and `kvctl bench --json` with one
# client, 16-byte keys, 64-byte values over 100k keys, prints one table, and stops and removes
# everything it started (also on failure or Ctrl-C). Needs redis-server, redis-benchmark, jq.
# Takes under a minute on an idle machine (KV_COMPARE_SECONDS per kv workload and target,
# default 2; Redis runs a fixed number of requests).
#
# Rows: get = kv direct read vs Redis GET; put = kv sync put vs Redis SET; put-async = kv async
# put with flush vs Redis SET with pipeline 16; mixed = kv 90% get / 10% put vs Redis derived
# from its GET and SET rates (1 / (0.9/get + 0.1/set); redis-benchmark has no mixed workload).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
kvctl=$build/kvctl/kvctl
kvd=$build/daemon/kvd
seconds=${KV_COMPARE_SECONDS:-2}
keys=100000
value=64
for tool in redis-server redis-benchmark jq "$kvctl" "$kvd"; do
  command -v "$tool" >/dev/null || { echo "compare.sh: $tool not found (build first?)" >&2; exit 2; }
done

tmp=$(mktemp -d /tmp/kvcompare.XXXXXX)
ns=kvcmp$$
redis_pid=
kvd_pid=
cleanup() {
  [[ -n $redis_pid ]] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  [[ -n $kvd_pid ]] && kill "$kvd_pid" 2>/dev/null && wait "$kvd_pid" 2>/dev/null
  rm -f /dev/shm/"$ns".* 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sock=$tmp/redis.sock
redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 --save '' --appendonly no \
  --dir "$tmp" --logfile "$tmp/redis.log" &
redis_pid=$!
"$kvd" --namespace "$ns" --log-level warn 2>"$tmp/kvd.log" &
kvd_pid=$!
for _ in $(seq 100); do
  [[ -S $sock ]] && "$kvctl" --namespace "$ns" status >/dev/null 2>&1 && break
  sleep 0.1
done
[[ -S $sock ]] || { echo "compare.sh: redis-server did not start" >&2; exit 1; }

# Redis: one client, no pipelining (and pipeline 16 for SET), random keys "key:<12 digits>"
# (16 bytes) over the same key space. A pipelined SET run first populates keys for GET.
rb() { redis-benchmark -s "$sock" -c 1 -r "$keys" -d "$value" --csv --precision 3 "$@" | tail -n 1; }
rb -t set -n 300000 -P 64 >/dev/null
redis_set=$(rb -t set -n 50000)
redis_get=$(rb -t get -n 50000)
redis_set16=$(rb -t set -n 300000 -P 16)

kv_json=$("$kvctl" --namespace "$ns" bench --json --keys "$keys" --key-size 16 \
  --value-size "$value" --clients 1 --duration "$seconds")

# CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
csv() { echo "$1" | tr -d '"' | cut -d, -f"$2"; }
kv() { echo "$kv_json" | jq -r ".results[] | select(.workload == \"$1\") | $2"; }
us() { awk -v ns="$1" 'BEGIN { printf "%.2f", ns / 1000 }'; }
ms_to_us() { awk -v ms="$1" 'BEGIN { printf "%.2f", ms * 1000 }'; }

echo "kv vs Redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), unix socket, 1 client," \
  "16 B keys, $value B values, $keys keys"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) CPUs;" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%Y-%m-%d %H:%M UTC');" \
  "kv build $(echo "$kv_json" | jq -r .build_type)"
printf '%-10s | %12s %9s %9s | %-12s %12s %9s %9s | %9s\n' workload "kv ops/s" "p50 us" \
  "p99 us" "redis" "ops/s" "p50 us" "p99 us" "kv/redis"
row() {  # workload redis_label redis_csv
  local w=$1 label=$2 r=$3
  local kops kp50 kp99 rops rp50 rp99
  kops=$(kv "$w" .kv.ops_per_sec)
  kp50=$(us "$(kv "$w" .kv.latency_ns.p50)")
  kp99=$(us "$(kv "$w" .kv.latency_ns.p99)")
  if [[ -n $r ]]; then
    rops=$(csv "$r" 2)
    rp50=$(ms_to_us "$(csv "$r" 5)")
    rp99=$(ms_to_us "$(csv "$r" 7)")
  else
    rops=$(awk -v g="$(csv "$redis_get" 2)" -v s="$(csv "$redis_set" 2)" \
      'BEGIN { printf "%.0f", 1 / (0.9 / g + 0.1 / s) }')
    rp50=-
    rp99=-
  fi
  printf '%-10s | %12.0f %9s %9s | %-12s %12.0f %9s %9s | %8.1fx\n' "$w" "$kops" "$kp50" \
    "$kp99" "$label" "$rops" "$rp50" "$rp99" "$(awk -v a="$kops" -v b="$rops" 'BEGIN { print a / b }')"
}
row get GET "$redis_get"
row put SET "$redis_set"
row put-async "SET -P 16" "$redis_set16"
row mixed "derived" ""
echo "kv p50/p99 are sampled client-side (1 op in $(echo "$kv_json" | jq .latency_sample_every));" \
  "Redis's come from redis-benchmark (--precision 3)."
