"""A private kvd per test (namespace of its own, --ephemeral), started from $KV_KVD and stopped
with SIGTERM afterwards, so nothing is left behind."""
import os
import signal
import subprocess
import time
import uuid

import pytest

import kv


@pytest.fixture
def namespace():
    ns = "kvpy%d_%s" % (os.getpid(), uuid.uuid4().hex[:8])
    proc = subprocess.Popen([os.environ["KV_KVD"], "--namespace", ns, "--ephemeral",
                             "--log-level", "warn"])
    try:
        deadline = time.monotonic() + 10
        while True:  # ready once it answers a create
            try:
                with kv.Client(ns) as c:
                    c.create_bucket("ready")
                break
            except kv.UnavailableError:  # kvd has not created its registry or socket yet
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        yield ns
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


@pytest.fixture
def client(namespace):
    with kv.Client(namespace) as c:
        yield c


@pytest.fixture
def bucket(client):
    client.create_bucket("b")
    with client.open_bucket("b") as b:
        yield b
