#!/usr/bin/env bash
# The README's second command (and CI's): install what is missing, check formatting, then build
# and run the whole test suite twice -- a normal build and an ASan+UBSan build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/check-format.sh
jobs=$(nproc)
scripts/build.sh build
(cd build && ctest -j"$jobs" --output-on-failure)
scripts/build.sh build-asan -DKV_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$PWD/../tests/lsan.supp ctest -j"$jobs" --output-on-failure)
# Fuzz the request decoder and ring reader for a bounded time (libFuzzer needs clang).
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DKV_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-fuzz --target kv_request_fuzz -j"$jobs"
mkdir -p build-fuzz/corpus
build-fuzz/tests/fuzz/kv_request_fuzz -max_total_time="${KV_FUZZ_SECONDS:-60}" -timeout=5 \
  build-fuzz/corpus tests/fuzz/corpus
