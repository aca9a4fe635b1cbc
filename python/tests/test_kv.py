"""The kv Python module against a real kvd: every operation, bytes in and out, errors as the
exception named after each C code, async writes with flush, subscriptions as iterators."""
import threading
import time

import pytest

import kv


def test_version_is_the_librarys():
    assert kv.version().count(".") == 2


def test_put_get_delete_binary_safe(bucket):
    bucket.put(b"k\x00ey", b"\xff\x00value")
    assert bucket.get(b"k\x00ey") == b"\xff\x00value"
    assert isinstance(bucket.get(b"k\x00ey"), bytes)
    bucket.put("str-key", "é")  # str is UTF-8
    assert bucket.get(b"str-key") == "é".encode()
    bucket.put(b"empty", b"")
    assert bucket.get(b"empty") == b""
    assert bucket.delete(b"k\x00ey") == b"\xff\x00value"
    with pytest.raises(kv.NotFoundError) as e:
        bucket.get(b"k\x00ey")
    assert e.value.code == -1 and e.value.word == "NOT_FOUND"
    assert bucket.get(b"k\x00ey", None) is None
    with pytest.raises(kv.NotFoundError):
        bucket.delete(b"k\x00ey")


def test_get_arguments_and_errors(bucket):
    bucket.put(b"k", b"v")
    assert bucket.get("k") == b"v"  # a str key is UTF-8
    assert bucket.get(key=b"k") == b"v"
    assert bucket.get(b"absent", default=7) == 7
    assert bucket.get(key=b"absent", default=None) is None
    for bad in (bytearray(b"k"), memoryview(b"k"), 1, None):
        with pytest.raises(TypeError, match="key must be bytes or str"):
            bucket.get(bad)
    with pytest.raises(TypeError):
        bucket.get()
    with pytest.raises(TypeError):
        bucket.get(b"k", None, None)
    with pytest.raises(TypeError):
        bucket.get(b"k", dflt=None)
    with pytest.raises(TypeError):
        bucket.get(b"k", key=b"k")
    # A default answers only "absent": other failures still raise, with the library's message.
    with pytest.raises(kv.InvalidError, match="empty"):
        bucket.get(b"", None)
    with pytest.raises(kv.TooLargeError, match="1024"):
        bucket.get(b"x" * 2000, None)


def test_get_on_a_dup_and_after_close(client, bucket):
    bucket.put(b"k", b"v")
    other = bucket.dup()
    assert other.get(b"k") == b"v"
    other.close()
    with pytest.raises(kv.InvalidError):  # never a read through a closed handle
        other.get(b"k")
    assert bucket.get(b"k") == b"v"


def test_values_around_the_read_buffer_size(bucket):
    # Bucket.get reads into a 4096-byte buffer and asks the library for larger values.
    for size in (4095, 4096, 4097, 70000):
        value = bytes(i % 251 for i in range(size))
        bucket.put(b"v%d" % size, value)
        assert bucket.get(b"v%d" % size) == value
        assert bucket.get(b"v%d" % size, None) == value


def test_large_values_past_the_read_buffer(bucket):
    big = bytes(range(256)) * 1000  # 256 KB: travels in a memfd, read with kv_get
    bucket.put(b"big", big)
    assert bucket.get(b"big") == big
    assert bucket.get_versioned(b"big")[0] == big


def test_cas_and_versions(bucket):
    v1 = bucket.cas(b"c", 0, b"first")  # 0: only if absent
    assert bucket.get_versioned(b"c") == (b"first", v1)
    with pytest.raises(kv.VersionMismatchError):
        bucket.cas(b"c", 0, b"again")
    v2 = bucket.cas(b"c", v1, b"second")
    assert v2 != v1
    with pytest.raises(kv.VersionMismatchError):
        bucket.cas(b"c", v1, b"stale")
    assert bucket.get(b"c") == b"second"


def test_incr(bucket):
    assert bucket.incr(b"n") == 1
    assert bucket.incr(b"n", 41) == 42
    assert bucket.incr(b"n", -50) == -8
    bucket.put(b"word", b"abc")
    with pytest.raises(kv.NotAnIntegerError):
        bucket.incr(b"word")


def test_scan_stats_clear(bucket):
    for i in range(10):
        bucket.put(b"p:%d" % i, b"%d" % i)
    bucket.put(b"q", b"other")
    assert sorted(bucket.scan(b"p:")) == sorted((b"p:%d" % i, b"%d" % i) for i in range(10))
    assert len(bucket.scan()) == 11
    s = bucket.stats()
    assert s["keys"] == 11 and s["writes"] == 11
    bucket.clear()
    assert bucket.scan() == []


def test_async_writes_and_flush(bucket):
    for i in range(1000):
        bucket.put_async(b"a%d" % i, b"v%d" % i)
    bucket.delete_async(b"a0")
    bucket.flush()
    assert bucket.get(b"a999") == b"v999"
    assert bucket.get(b"a0", None) is None
    with pytest.raises(kv.TooLargeError):
        bucket.put_async(b"x" * 2000, b"")


def test_errors_are_named_after_the_c_codes(client):
    with pytest.raises(kv.NoBucketError) as e:
        client.open_bucket("absent")
    assert e.value.code == -2 and "absent" in str(e.value)
    with pytest.raises(kv.InvalidError):
        client.create_bucket("bad name")
    with pytest.raises(kv.UnavailableError):
        kv.Client("kvpy-never-ran-here")
    assert issubclass(kv.BucketFullError, kv.Error)
    assert [kv.NotFoundError.code, kv.InternalError.code] == [-1, -13]


def test_subscribe_is_an_iterator_of_changes(client, bucket):
    sub = bucket.subscribe()
    start = sub.position
    writer = client.open_bucket("b")  # another handle, in another thread

    def write():
        writer.put(b"k", b"1")
        writer.delete(b"k")
        writer.clear()

    t = threading.Thread(target=write)
    t.start()
    changes = [next(sub) for _ in range(3)]
    t.join()
    writer.close()
    assert [c.kind for c in changes] == [kv.PUT, kv.DELETE, kv.CLEAR]
    assert changes[0].key == b"k" and changes[0].value == b"1"
    assert [c.sequence for c in changes] == [start, start + 1, start + 2]
    # With a timeout, iteration ends when nothing more comes.
    with bucket.subscribe(timeout_ms=50) as quiet:
        assert list(quiet) == []
    # Replayed from a sequence still in the feed.
    with bucket.subscribe(from_sequence=start, timeout_ms=50) as replay:
        assert [c.kind for c in replay] == [kv.PUT, kv.DELETE, kv.CLEAR]
    sub.close()


def test_dropped_bucket_raises_no_bucket(client):
    client.create_bucket("gone")
    b = client.open_bucket("gone")
    b.put(b"k", b"v")
    client.drop_bucket("gone")
    with pytest.raises(kv.NoBucketError):
        b.get(b"k")
    b.close()


def test_every_c_code_has_its_error_class():
    # Derived from the library (kv_strerror until UNKNOWN), so codes newer than -13 are there.
    assert (kv.PersistenceError.code, kv.PersistenceError.word) == (-14, "PERSISTENCE")
    assert (kv.SnapshotTooOldError.code, kv.SnapshotTooOldError.word) == (-15, "SNAPSHOT_TOO_OLD")
    codes = sorted(kv._ERRORS, reverse=True)
    assert codes == list(range(-1, codes[-1] - 1, -1))
    assert kv._ffi.string(kv._lib.kv_strerror(codes[-1] - 1)).startswith(b"UNKNOWN")
    for code, cls in kv._ERRORS.items():
        assert issubclass(cls, kv.Error) and cls.code == code and cls.__name__ in kv.__all__


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_ttl_expire_persist(bucket):
    hour = 3600 * 1000
    bucket.put(b"session", b"alice", ttl_ms=hour)  # milliseconds, as kv_put_ttl
    assert 0 < bucket.ttl(b"session") <= hour
    assert bucket.persist(b"session") is True
    assert bucket.ttl(b"session") is None
    assert bucket.persist(b"session") is False
    bucket.expire(b"session", 2 * hour)
    assert hour < bucket.ttl(b"session") <= 2 * hour
    assert bucket.incr(b"n") == 1
    bucket.expire(b"n", hour)
    bucket.incr(b"n")  # incr and cas keep the expiry
    assert bucket.ttl(b"n") is not None
    bucket.put(b"session", b"bob")  # a put without ttl_ms removes it (Redis's SET)
    assert bucket.ttl(b"session") is None
    for missing in (lambda: bucket.ttl(b"absent"), lambda: bucket.expire(b"absent", 10),
                    lambda: bucket.persist(b"absent")):
        with pytest.raises(kv.NotFoundError):
            missing()
    for bad in (0, -1, 10**18):
        with pytest.raises(kv.InvalidError):
            bucket.put(b"k", b"v", ttl_ms=bad)
        with pytest.raises(kv.InvalidError):
            bucket.put_async(b"k", b"v", ttl_ms=bad)
    bucket.put_async(b"short", b"x", ttl_ms=30)
    bucket.flush()
    assert wait_for(lambda: bucket.get(b"short", None) is None)
    with pytest.raises(kv.NotFoundError):
        bucket.ttl(b"short")


def test_write_batch_all_or_nothing(bucket):
    bucket.put(b"gone", b"x")
    bucket.put(b"kept", b"1", ttl_ms=3600 * 1000)
    _, kept_version = bucket.get_versioned(b"kept")
    with kv.WriteBatch() as batch:
        batch.put(b"a", b"A").delete(b"gone").cas(b"kept", kept_version, b"2")
        assert len(batch) == 3
        with pytest.raises(kv.InvalidError):
            batch.put(b"a", b"again")  # each key once
    with kv.WriteBatch() as batch:
        batch.put(b"a", b"A").delete(b"gone").cas(b"kept", kept_version, b"2")
        version = bucket.write(batch)
    assert bucket.get(b"a") == b"A" and bucket.get(b"gone", None) is None
    assert bucket.get_versioned(b"kept") == (b"2", version)
    assert bucket.ttl(b"kept") is not None  # a cas in a batch keeps the expiry
    with kv.WriteBatch() as batch:
        batch.put(b"b", b"B").cas(b"kept", kept_version, b"stale")
        with pytest.raises(kv.VersionMismatchError) as e:
            bucket.write(batch)
        assert e.value.failed_index == 1
    assert bucket.get(b"b", None) is None  # nothing was applied
    with kv.WriteBatch() as batch:
        batch.cas(b"kept", kept_version, b"stale")
        bucket.write_async(batch)
        with pytest.raises(kv.FailedError):
            bucket.flush()


def test_snapshot_reads_one_moment(bucket):
    bucket.put(b"p:1", b"one")
    bucket.put(b"p:2", b"two")
    with bucket.snapshot() as snap:
        bucket.put(b"p:1", b"changed")
        bucket.delete(b"p:2")
        bucket.put(b"p:3", b"new")
        assert snap.get(b"p:1") == b"one"
        assert snap.get_versioned(b"p:2")[0] == b"two"
        assert snap.get(b"p:3", None) is None
        with pytest.raises(kv.NotFoundError):
            snap.get(b"p:3")
        assert sorted(snap.scan(b"p:")) == [(b"p:1", b"one"), (b"p:2", b"two")]
        assert snap.sequence > 0


def test_a_snapshot_too_old_raises_its_own_class(bucket):
    bucket.put(b"k", b"v")
    with bucket.snapshot() as snap:
        # More slot changes than the history window (65536) before the snapshot reads again.
        for n in range(17):
            with kv.WriteBatch() as batch:
                for i in range(4096):
                    batch.put(b"w%d" % i, b"%d" % n)
                bucket.write(batch)
        with pytest.raises(kv.SnapshotTooOldError) as e:
            snap.get(b"k")
        assert e.value.code == -15 and "too old" in str(e.value)
