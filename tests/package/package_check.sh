#!/usr/bin/env bash
# package_check.sh <build-dir> <source-dir> <namespace>: builds kv's Debian packages with CPack,
# unpacks them into a scratch root (nothing is installed on this machine), and checks them:
# every file in place, the maintainer scripts and conffile, the SONAME, the user `kv` created by
# the sysusers file (systemd-sysusers --root), the unit verified by systemd-analyze, a program
# built against the unpacked libkvclient-dev with find_package and with pkg-config and run
# against the unpacked kvd; and that `cmake --install` (DESTDIR) installs the same files.
# Prints what failed and exits 1 on the first failure.
set -euo pipefail
build=$1 source=$2 ns=$3
tmp=$(mktemp -d /tmp/kv_package_test.XXXXXX)
kvd_pid=
cleanup() {
  if [[ -n $kvd_pid ]]; then kill "$kvd_pid" 2>/dev/null || true; wait "$kvd_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# `producer | has PATTERN...`: grep -q over the whole input. A plain `| has` stops reading at
# the first match, and under pipefail the producer's SIGPIPE then fails the line (ldd's output
# grew long enough for that once hiredis was linked).
has() { local input; input=$(cat); grep -q "$@" <<<"$input"; }

cpack --config "$build/CPackConfig.cmake" -B "$tmp/debs" >"$tmp/cpack.log" 2>&1 ||
  { cat "$tmp/cpack.log" >&2; fail "cpack"; }
version=$(sed -n 's/^#define KV_VERSION_STRING "\(.*\)"/\1/p' "$build/generated/include/kv/version.h")
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
root=$tmp/root
for p in kv libkvclient0 libkvclient-dev; do
  deb=$tmp/debs/${p}_${version}_${arch}.deb
  [[ -f $deb ]] || fail "no package $deb"
  [[ $(dpkg-deb -f "$deb" Package) == "$p" ]] || fail "$deb is not package $p"
  dpkg-deb -x "$deb" "$root"
done
lib=$root/usr/lib/$multiarch
pydeb=$tmp/debs/python3-kv_${version}_${arch}.deb
[[ -f $pydeb ]] || fail "no package $pydeb"
dpkg-deb -f "$pydeb" Depends | has "libkvclient0 (= $version)" || fail "python3-kv Depends"
# The extension is built for Debian's python3: the package says which one.
pyminor=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
dpkg-deb -f "$pydeb" Depends | has "python3 (>= $pyminor~)" || fail "python3-kv Depends on python3 $pyminor"
pyext=$(/usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
dpkg-deb -c "$pydeb" | has "usr/lib/python3/dist-packages/kv/_native$pyext\$" ||
  fail "python3-kv lacks kv/_native$pyext"
dpkg-deb -x "$pydeb" "$root"

# Files in place.
for f in usr/bin/kvd usr/bin/kvctl usr/lib/systemd/system/kvd.service usr/lib/sysusers.d/kv.conf \
  etc/kv/kvd.conf usr/share/man/man8/kvd.8 usr/share/man/man1/kvctl.1 \
  usr/include/kv/kv.h usr/include/kv/client.h usr/include/kv/status.h usr/include/kv/version.h \
  "usr/lib/$multiarch/libkvclient.so.$version" "usr/lib/$multiarch/pkgconfig/kvclient.pc" \
  "usr/lib/$multiarch/cmake/kvclient/kvclientConfig.cmake"; do
  [[ -e $root/$f ]] || fail "missing /$f"
done
[[ $(readlink "$lib/libkvclient.so.0") == "libkvclient.so.$version" ]] || fail "libkvclient.so.0 link"
[[ $(readlink "$lib/libkvclient.so") == "libkvclient.so.0" ]] || fail "libkvclient.so link"
readelf -d "$lib/libkvclient.so.$version" | has 'Library soname: \[libkvclient.so.0\]' ||
  fail "SONAME"
# The library is in libkvclient0 only, the link and headers in -dev only.
dpkg-deb -c "$tmp/debs/libkvclient0_${version}_${arch}.deb" | has 'include/' && fail "headers in libkvclient0"
dpkg-deb -c "$tmp/debs/libkvclient-dev_${version}_${arch}.deb" | has "libkvclient.so.$version" &&
  fail "library in libkvclient-dev"
dpkg-deb -f "$tmp/debs/libkvclient-dev_${version}_${arch}.deb" Depends | has "libkvclient0 (= $version)" ||
  fail "libkvclient-dev does not depend on libkvclient0"
dpkg-deb -f "$tmp/debs/kv_${version}_${arch}.deb" Depends | has "libkvclient0 (= $version)" ||
  fail "kv does not depend on libkvclient0"

# Maintainer scripts and the conffile.
dpkg-deb -e "$tmp/debs/kv_${version}_${arch}.deb" "$tmp/control"
[[ $(cat "$tmp/control/conffiles") == /etc/kv/kvd.conf ]] || fail "conffiles"
for s in postinst prerm postrm; do
  [[ -x $tmp/control/$s ]] || fail "no $s"
  sh -n "$tmp/control/$s" || fail "$s: syntax"
done
grep -q 'systemd-sysusers' "$tmp/control/postinst" || fail "postinst does not create the user"
grep -q "deb-systemd-helper enable 'kvd.service'" "$tmp/control/postinst" || fail "postinst does not enable kvd"
grep -q "deb-systemd-invoke start 'kvd.service'" "$tmp/control/postinst" || fail "postinst does not start kvd"
grep -q 'KV_PURGE_DATA' "$tmp/control/postrm" || fail "postrm: purge keeps data unless asked"

# The user kv, as postinst creates it (in the scratch root).
mkdir -p "$root/etc"
systemd-sysusers --root="$root" "$root/usr/lib/sysusers.d/kv.conf"
grep -q '^kv:' "$root/etc/passwd" || fail "user kv not created"
grep -q '^kv:' "$root/etc/group" || fail "group kv not created"

# The unit verifies (a copy naming the unpacked kvd: /usr/bin/kvd is not installed here).
mkdir -p "$tmp/unit"
sed "s|/usr/bin/kvd|$root/usr/bin/kvd|g" "$root/usr/lib/systemd/system/kvd.service" >"$tmp/unit/kvd.service"
out=$(systemd-analyze verify "$tmp/unit/kvd.service" 2>&1) ||
  { echo "$out" >&2; fail "systemd-analyze verify"; }
[[ -z $out ]] || { echo "$out" >&2; fail "systemd-analyze verify warns"; }

# The unpacked programs run (their libkvclient is the unpacked one).
export LD_LIBRARY_PATH=$lib
[[ $("$root/usr/bin/kvd" --version) == "kvd $version" ]] || fail "kvd --version"
"$root/usr/bin/kvd" --check-config "$root/etc/kv/kvd.conf" >/dev/null || fail "kvd --check-config of the shipped kvd.conf"
[[ $(PYTHONPATH=$root/usr/lib/python3/dist-packages PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 \
  -c 'import kv; print(kv.version())') == "$version" ]] || fail "python3-kv: import kv"
# The installed extension carries no build RPATH: it loads the unpacked libkvclient0.
readelf -d "$root/usr/lib/python3/dist-packages/kv/_native$pyext" | has -E 'RPATH|RUNPATH' &&
  fail "python3-kv's extension has an RPATH"
[[ $(PYTHONPATH=$root/usr/lib/python3/dist-packages PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 \
  -c 'import kv; print(kv._native.library_path())') == "$lib/libkvclient.so.0" ]] ||
  fail "python3-kv does not load the unpacked libkvclient"
ldd "$root/usr/bin/kvctl" | has "libkvclient.so.0 => $lib/libkvclient.so.0" || fail "kvctl does not load the unpacked library"

# A program built against the unpacked -dev package: find_package and pkg-config.
cmake -S "$source/examples" -B "$tmp/find_package" -DCMAKE_PREFIX_PATH="$root/usr" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF >"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log" >&2; fail "find_package(kvclient)"; }
grep -q "$root/usr" "$tmp/find_package/CMakeCache.txt" || fail "kvclient not found in the scratch root"
cmake --build "$tmp/find_package" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; fail "build with find_package"; }
export PKG_CONFIG_PATH=$lib/pkgconfig
[[ $(pkg-config --modversion kvclient) == "$version" ]] || fail "pkg-config --modversion"
# shellcheck disable=SC2046
cc -std=c99 -Wall -Werror "$source/examples/guide.c" -o "$tmp/guide_c" $(pkg-config --cflags --libs kvclient) ||
  fail "build with pkg-config"
"$root/usr/bin/kvd" --namespace "$ns" --ephemeral --config "$root/etc/kv/kvd.conf" 2>"$tmp/kvd.log" &
kvd_pid=$!
for _ in $(seq 1 500); do "$root/usr/bin/kvctl" -n "$ns" buckets >/dev/null 2>&1 && break; sleep 0.02; done
"$tmp/find_package/kv_guide" "$ns" >"$tmp/guide.out" || fail "kv_guide (find_package) against the unpacked kvd"
"$tmp/guide_c" "$ns" >"$tmp/guide_c.out" || fail "guide.c (pkg-config) against the unpacked kvd"
cmp -s "$tmp/guide.out" "$tmp/guide_c.out" || fail "the C and C++ guides disagree"
kill "$kvd_pid"
wait "$kvd_pid" || fail "kvd did not stop cleanly: $(cat "$tmp/kvd.log")"
kvd_pid=

# cmake --install installs everything the packages hold.
DESTDIR=$tmp/destdir cmake --install "$build" >/dev/null
(cd "$root" && find . -type f -o -type l | grep -v '^./etc/\(passwd\|group\|shadow\|gshadow\|.pwd.lock\)' | sort) >"$tmp/packaged"
(cd "$tmp/destdir" && find . -type f -o -type l | sort) >"$tmp/installed"
missing=$(comm -23 "$tmp/packaged" "$tmp/installed")
[[ -z $missing ]] || fail "cmake --install misses: $missing"
echo "ok: kv, libkvclient0, libkvclient-dev, python3-kv $version"
