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
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest -j"$jobs" --output-on-failure)
