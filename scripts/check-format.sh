#!/usr/bin/env bash
# Fails if any tracked C++ file differs from what clang-format (with the repo's .clang-format) makes of it.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.cc' '*.h' '*.c')
bad=$(clang-format --dry-run $files 2>&1 | grep -o '^[^:]*:[0-9]*:' | cut -d: -f1 | sort -u || true)
if [[ -n $bad ]]; then
  echo "not formatted with clang-format (run: clang-format -i \$(git ls-files '*.cc' '*.h' '*.c')):"
  echo "$bad"
  exit 1
fi
