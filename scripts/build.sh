#!/usr/bin/env bash
# scripts/build.sh <build-dir> [cmake options...]: configures (Ninja) and builds kv.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1
shift
launcher=()
# ccache, when installed, lets several checkouts of the tree share compiled objects.
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache); fi
cmake -S . -B "$dir" -G Ninja -DKV_WERROR=ON "${launcher[@]}" "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
