#!/usr/bin/env bash
# Installs (as root, from Debian 12 packages) whatever kv needs to build, test and benchmark and
# is not installed yet. Idempotent; does nothing when everything is present.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config git
  libboost-dev libboost-filesystem-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev nlohmann-json3-dev libxxhash-dev libedit-dev libncurses-dev libhiredis-dev
  clang clang-format libclang-rt-14-dev
  systemd tmux redis-server procps zsh
  python3 python3-dev python3-prometheus-client python3-cffi python3-pytest python3-redis python3-lmdb help2man
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
