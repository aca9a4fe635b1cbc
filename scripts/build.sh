#!/usr/bin/env bash
# scripts/build.sh <build-dir> [cmake options...]: configures (Ninja) and builds kv.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1
shift
cmake -S . -B "$dir" -G Ninja -DKV_WERROR=ON "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
