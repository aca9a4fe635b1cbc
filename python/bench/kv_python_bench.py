#!/usr/bin/python3
"""kv_python_bench: Python get of kv (this module) vs redis-py GET and py-lmdb get, in one run.

Same data for all three: --keys keys of 16 bytes with 64-byte values, read in a shuffled order,
--ops reads each, one client, one thread. kv: a private kvd (--kvd) in a namespace of its own;
Redis: a private redis-server on a unix socket, no persistence; LMDB: an environment in a
temporary directory, read in one long read transaction (py-lmdb's fastest way).
--hogs N runs N busy processes (endless loops, no affinity) for the whole run: the "busy host"
figure. Prints a table and, with --json, one JSON object on the last line (ops/s and the ratios).
Targets (issue 19): kv >= 20x redis-py, >= 1x py-lmdb.
Before installation: PYTHONPATH=build/python (the package the build assembles, with its
extension) and --kvd build/daemon/kvd.
"""
import argparse
import ctypes
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import kv
import lmdb
import redis


def start_hogs(count):
    """count busy processes, each an endless loop; they die with this process (PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)

    def die_with_parent():
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    return [subprocess.Popen([sys.executable, "-c", "while True: pass"],
                             preexec_fn=die_with_parent) for _ in range(count)]


def timed(fn, keys):
    start = time.perf_counter()
    fn(keys)
    return len(keys) / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", type=int, default=10000)
    # Long enough that a kv pass spans many scheduling slices (with --hogs, a short one could
    # fall between preemptions).
    ap.add_argument("--ops", type=int, default=2000000)
    ap.add_argument("--kvd", default=os.environ.get("KV_KVD", "/usr/bin/kvd"))
    ap.add_argument("--redis-server", default="/usr/bin/redis-server")
    ap.add_argument("--hogs", type=int, default=0, help="busy processes running meanwhile")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.keys < 1 or a.ops < 20:
        ap.error("--keys must be positive and --ops at least 20")
    if a.hogs < 0:
        ap.error("--hogs must not be negative")
    rng = random.Random(1)
    keys = [b"key%013d" % i for i in range(a.keys)]
    value = bytes(rng.randrange(256) for _ in range(64))
    order = [keys[rng.randrange(a.keys)] for _ in range(a.ops)]
    tmp = tempfile.mkdtemp(prefix="kv_python_bench.")
    ns = "kvpybench%d" % os.getpid()
    kvd = subprocess.Popen([a.kvd, "--namespace", ns, "--ephemeral", "--log-level", "warn"])
    rs = subprocess.Popen([a.redis_server, "--port", "0", "--unixsocket", tmp + "/redis.sock",
                           "--save", "", "--appendonly", "no", "--loglevel", "warning"],
                          stdout=subprocess.DEVNULL)
    hogs = start_hogs(a.hogs)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client = kv.Client(ns)
                client.create_bucket("bench")
                break
            except kv.UnavailableError:  # kvd is starting
                if kvd.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        bucket = client.open_bucket("bench")
        for k in keys:
            bucket.put_async(k, value)
        bucket.flush()

        r = redis.Redis(unix_socket_path=tmp + "/redis.sock")
        while True:
            try:
                r.ping()
                break
            except redis.exceptions.ConnectionError:
                if rs.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        pipe = r.pipeline(transaction=False)
        for k in keys:
            pipe.set(k, value)
        pipe.execute()

        env = lmdb.open(tmp + "/lmdb", map_size=1 << 30)
        with env.begin(write=True) as txn:
            for k in keys:
                txn.put(k, value)

        def kv_get(ks):
            get = bucket.get
            for k in ks:
                get(k)

        def redis_get(ks):
            get = r.get
            for k in ks[: len(ks) // 20]:  # redis is slow: a twentieth is enough
                get(k)

        def lmdb_get(ks):
            with env.begin() as txn:
                get = txn.get
                for k in ks:
                    get(k)

        assert bucket.get(keys[0]) == r.get(keys[0]) == env.begin().get(keys[0]) == value
        # kv and LMDB alternate, best of three each, so that a change in the host's load during
        # the run does not favour one of them.
        kv_ops = lmdb_ops = 0
        for _ in range(3):
            kv_ops = max(kv_ops, timed(kv_get, order))
            lmdb_ops = max(lmdb_ops, timed(lmdb_get, order))
        redis_ops = timed(redis_get, order) / 20  # timed() counts all of order; 1/20 was read
    finally:
        for h in hogs:
            h.kill()
            h.wait()
        rs.send_signal(signal.SIGTERM)
        kvd.send_signal(signal.SIGTERM)
        rs.wait()
        kvd.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    load = os.getloadavg()
    print("kv_python_bench: %d keys (16 B keys, 64 B values), %d gets, 1 client, %d busy "
          "processes; kv %s, redis-py %s, py-lmdb %s; python %s; load average %.2f %.2f %.2f"
          % (a.keys, a.ops, a.hogs, kv.version(), redis.__version__, lmdb.__version__,
             sys.version.split()[0], *load))
    print("%-24s %12s %10s" % ("client", "gets/s", "us/get"))
    for name, ops in (("kv Bucket.get", kv_ops), ("redis-py GET (unix)", redis_ops),
                      ("py-lmdb txn.get", lmdb_ops)):
        print("%-24s %12.0f %10.2f" % (name, ops, 1e6 / ops))
    print("kv/redis-py %.1fx (target >= 20x)   kv/py-lmdb %.2fx (target >= 1x)"
          % (kv_ops / redis_ops, kv_ops / lmdb_ops))
    if a.json:
        print(json.dumps({"bench": "kv_python_bench", "keys": a.keys, "ops": a.ops, "hogs": a.hogs,
                          "kv_get_ops_per_s": round(kv_ops), "redis_get_ops_per_s": round(redis_ops),
                          "lmdb_get_ops_per_s": round(lmdb_ops),
                          "kv_vs_redis": round(kv_ops / redis_ops, 2),
                          "kv_vs_lmdb": round(kv_ops / lmdb_ops, 2),
                          "load_average": [round(x, 2) for x in load]}))


if __name__ == "__main__":
    main()
