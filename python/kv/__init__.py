"""kv for Python: buckets of a kv instance over libkvclient's C ABI (kv/kv.h), through cffi.

    import kv
    client = kv.Client("demo")              # namespace; None: $KV_NAMESPACE, else "kv"
    client.create_bucket("shopping")
    b = client.open_bucket("shopping")
    b.put(b"milk", b"1")
    b.get(b"milk")                          # b"1", read straight from shared memory
    b.put(b"session", b"alice", ttl_ms=30000)  # expires in 30 s (milliseconds, as kv.h)
    for change in b.subscribe():            # every change, live
        ...

Keys and values are bytes (a str key or value is encoded as UTF-8); values come back as bytes.
Every failure raises a kv.Error subclass named after its C code: KV_NOTFOUND -> kv.NotFoundError,
KV_NO_BUCKET -> kv.NoBucketError, ... (each has .code, the negative C code, and .word).
Thread safety as kv.h: a Client may be shared; a Bucket is for one thread at a time
(Bucket.dup() gives another handle for another thread).

Two layers (docs/python.md says why): Bucket.get, the call programs make most, is a C method of
the extension kv._native (compiled by CMake against python3-dev); everything else calls kv.h
through cffi in ABI mode (declarations copied from kv.h, no generated code), loading the same
libkvclient the extension is linked against.
"""
import collections
import itertools

from cffi import FFI

from . import _native

__all__ = ["Client", "Bucket", "Subscription", "Change", "WriteBatch", "Snapshot", "Error",
           "version"]

_ffi = FFI()
_ffi.cdef(
    """
typedef struct kv_client kv_client;
typedef struct kv_bucket kv_bucket;
typedef struct kv_subscription kv_subscription;
typedef struct kv_batch kv_batch;
typedef struct kv_snapshot kv_snapshot;
typedef struct kv_stat { uint64_t keys, generation, memory_bytes, used_bytes, live_bytes, writes; } kv_stat;
typedef struct kv_change {
  int kind; int value_omitted; uint64_t sequence; uint64_t missed;
  const void* key; size_t key_len; const void* value; size_t value_len;
} kv_change;
const char* kv_version(void);
const char* kv_strerror(int rc);
const char* kv_last_error(void);
void kv_free(void* ptr);
int kv_client_open(const char* ns, int timeout_ms, kv_client** client);
void kv_client_close(kv_client* client);
int kv_bucket_create(kv_client* client, const char* name);
int kv_bucket_drop(kv_client* client, const char* name);
int kv_bucket_restart(kv_client* client, const char* name);
int kv_bucket_open(kv_client* client, const char* name, kv_bucket** bucket);
int kv_bucket_dup(kv_bucket* bucket, kv_bucket** copy);
void kv_bucket_close(kv_bucket* bucket);
int kv_get(kv_bucket* bucket, const void* key, size_t key_len, void** value, size_t* value_len);
int kv_get_versioned(kv_bucket* bucket, const void* key, size_t key_len, void** value,
                     size_t* value_len, uint64_t* version);
int kv_get_buf(kv_bucket* bucket, const void* key, size_t key_len, void* buf, size_t buf_size,
               size_t* value_len);
int kv_scan(kv_bucket* bucket, const void* prefix, size_t prefix_len,
            int (*fn)(void* ctx, const void* key, size_t key_len, const void* value,
                      size_t value_len), void* ctx);
int kv_stats(kv_bucket* bucket, kv_stat* stat);
int kv_put(kv_bucket* bucket, const void* key, size_t key_len, const void* value, size_t value_len);
int kv_del(kv_bucket* bucket, const void* key, size_t key_len, void** old_value, size_t* old_len);
int kv_cas(kv_bucket* bucket, const void* key, size_t key_len, uint64_t expected_version,
           const void* value, size_t value_len, uint64_t* version);
int kv_incr(kv_bucket* bucket, const void* key, size_t key_len, int64_t delta, int64_t* result);
int kv_clear(kv_bucket* bucket);
int kv_put_async(kv_bucket* bucket, const void* key, size_t key_len, const void* value,
                 size_t value_len);
int kv_del_async(kv_bucket* bucket, const void* key, size_t key_len);
int kv_flush(kv_bucket* bucket);
int kv_put_ttl(kv_bucket* bucket, const void* key, size_t key_len, const void* value,
               size_t value_len, int64_t ttl_ms);
int kv_expire(kv_bucket* bucket, const void* key, size_t key_len, int64_t ttl_ms);
int kv_persist(kv_bucket* bucket, const void* key, size_t key_len, int* removed);
int kv_ttl(kv_bucket* bucket, const void* key, size_t key_len, int64_t* ttl_ms);
int kv_put_ttl_async(kv_bucket* bucket, const void* key, size_t key_len, const void* value,
                     size_t value_len, int64_t ttl_ms);
int kv_batch_create(kv_batch** batch);
int kv_batch_put(kv_batch* batch, const void* key, size_t key_len, const void* value,
                 size_t value_len);
int kv_batch_del(kv_batch* batch, const void* key, size_t key_len);
int kv_batch_cas(kv_batch* batch, const void* key, size_t key_len, uint64_t expected_version,
                 const void* value, size_t value_len);
size_t kv_batch_count(const kv_batch* batch);
void kv_batch_free(kv_batch* batch);
int kv_bucket_write(kv_bucket* bucket, const kv_batch* batch, uint64_t* version,
                    size_t* failed_index);
int kv_bucket_write_async(kv_bucket* bucket, const kv_batch* batch);
int kv_bucket_snapshot(kv_bucket* bucket, kv_snapshot** snap);
int kv_snapshot_get(kv_snapshot* snap, const void* key, size_t key_len, void** value,
                    size_t* value_len, uint64_t* version);
int kv_snapshot_scan(kv_snapshot* snap, const void* prefix, size_t prefix_len,
                     int (*fn)(void* ctx, const void* key, size_t key_len, const void* value,
                               size_t value_len), void* ctx);
uint64_t kv_snapshot_sequence(const kv_snapshot* snap);
void kv_snapshot_close(kv_snapshot* snap);
int kv_subscribe(kv_bucket* bucket, uint64_t from_sequence, kv_subscription** sub);
int kv_subscription_next(kv_subscription* sub, int timeout_ms, kv_change** change);
uint64_t kv_subscription_position(kv_subscription* sub);
void kv_change_free(kv_change* change);
void kv_subscription_close(kv_subscription* sub);
"""
)
# The library the extension was linked against (the build's in the build tree, the system's once
# installed): one library for both layers, so handles and kv_last_error() are shared.
_lib = _ffi.dlopen(_native.library_path())


def version():
    """The version of the libkvclient loaded, "MAJOR.MINOR.PATCH"."""
    return _ffi.string(_lib.kv_version()).decode()


class Error(Exception):
    """A kv failure: .code is the negative C code (kv.h), .word its name ("NOT_FOUND")."""

    code = 0
    word = "ERROR"


def _error_class(code, word):
    name = "".join(part.capitalize() for part in word.split("_")) + "Error"
    return type(name, (Error,), {"code": code, "word": word, "__doc__": f"KV {word} ({code})"})


def _c_error_words():
    """{code: word} for every result code the loaded library knows: -1, -2, ... until
    kv_strerror answers UNKNOWN, so a code added to kv.h gets its class without a change here."""
    words = {}
    for code in itertools.count(-1, -1):
        word = _ffi.string(_lib.kv_strerror(code)).decode().split(":")[0]
        if word == "UNKNOWN":
            return words
        words[code] = word


# Named after the C codes: NOT_FOUND -> NotFoundError, NO_BUCKET -> NoBucketError, ...
_ERRORS = {}
for _code, _word in _c_error_words().items():
    _cls = _error_class(_code, _word)
    _ERRORS[_code] = _cls
    globals()[_cls.__name__] = _cls
    __all__.append(_cls.__name__)


def _error(rc):
    """The exception for C result code rc, with the library's message for this thread."""
    message = _ffi.string(_lib.kv_last_error()).decode(errors="replace")
    return _ERRORS.get(rc, Error)(message)


def _raise(rc):
    raise _error(rc)


def _check(rc):
    if rc:
        _raise(rc)


_native.set_raiser(_raise)  # how the extension raises a C code


def _bytes(b):
    if isinstance(b, str):
        return b.encode()
    return b


def _scan(scan, handle, prefix):
    """[(key, value)] from a kv_scan-shaped C function over handle."""
    prefix = _bytes(prefix)
    out = []

    @_ffi.callback("int(void*, const void*, size_t, const void*, size_t)")
    def collect(ctx, key, key_len, value, value_len):
        out.append((_ffi.buffer(key, key_len)[:], _ffi.buffer(value, value_len)[:]))
        return 0

    _check(scan(handle, prefix, len(prefix), collect, _ffi.NULL))
    return out


def _take(rc, ptr, length):
    """The library-allocated value ptr[0] (length[0] bytes) as bytes, freed; raises for rc."""
    _check(rc)
    try:
        return _ffi.buffer(ptr[0], length[0])[:]
    finally:
        _lib.kv_free(ptr[0])


_MISSING = object()  # get()'s default when none is given


# Change kinds (kv.h KV_CHANGE_*).
PUT, DELETE, CLEAR, MISSED, RESYNC, EXPIRED = 1, 2, 3, 4, 5, 6
Change = collections.namedtuple("Change", "kind sequence key value missed value_omitted")
Change.__doc__ = "One change to a bucket: kind is kv.PUT/DELETE/CLEAR/MISSED/RESYNC/EXPIRED."


class _Closeable:
    """`with` support and closing on collection, for a class whose close() is idempotent."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


class Client(_Closeable):
    """A connection to one kv instance (namespace None: $KV_NAMESPACE, else "kv")."""

    _handle = None

    def __init__(self, namespace=None, timeout_ms=5000):
        handle = _ffi.new("kv_client**")
        ns = _ffi.NULL if namespace is None else namespace.encode()
        _check(_lib.kv_client_open(ns, timeout_ms, handle))
        self._handle = handle[0]

    def close(self):
        if self._handle is not None:
            _lib.kv_client_close(self._handle)
            self._handle = None

    def create_bucket(self, name):
        """Creates the bucket (an existing one is left as it is)."""
        _check(_lib.kv_bucket_create(self._handle, name.encode()))

    def drop_bucket(self, name):
        _check(_lib.kv_bucket_drop(self._handle, name.encode()))

    def restart_bucket(self, name):
        _check(_lib.kv_bucket_restart(self._handle, name.encode()))

    def open_bucket(self, name):
        """A Bucket handle (NoBucketError if it does not exist)."""
        handle = _ffi.new("kv_bucket**")
        _check(_lib.kv_bucket_open(self._handle, name.encode(), handle))
        return Bucket(handle[0])


class Bucket(_native.BucketCore, _Closeable):
    """One bucket: reads from shared memory in this process, writes through its worker.

    get(key, default=<missing>) is inherited from the extension (python/native/native.c): the
    value of key as bytes; NotFoundError if absent, unless a default is given."""

    _handle = None

    def __init__(self, handle):
        self._handle = handle
        self._bind(int(_ffi.cast("uintptr_t", handle)))  # what get() reads from
        self._len = _ffi.new("size_t*")
        self._u64 = _ffi.new("uint64_t*")
        self._i64 = _ffi.new("int64_t*")
        self._ptr = _ffi.new("void**")

    def close(self):
        if self._handle is not None:
            self._bind(0)  # get() on a closed bucket: InvalidError, never a freed handle
            _lib.kv_bucket_close(self._handle)
            self._handle = None

    def dup(self):
        """Another handle sharing this one's write channel, for another thread."""
        handle = _ffi.new("kv_bucket**")
        _check(_lib.kv_bucket_dup(self._handle, handle))
        return Bucket(handle[0])

    def get_versioned(self, key):
        """(value, version) of key; version is what cas() expects."""
        key = _bytes(key)
        rc = _lib.kv_get_versioned(self._handle, key, len(key), self._ptr, self._len, self._u64)
        value = _take(rc, self._ptr, self._len)
        return value, self._u64[0]

    def put(self, key, value, ttl_ms=None):
        """Stores value under key. ttl_ms (milliseconds, as kv.h's kv_put_ttl; 1 .. 1000 years):
        the key expires that long from now. Without it a put removes the key's expiry (Redis's
        SET); cas() and incr() keep it."""
        key, value = _bytes(key), _bytes(value)
        if ttl_ms is None:
            _check(_lib.kv_put(self._handle, key, len(key), value, len(value)))
        else:
            _check(_lib.kv_put_ttl(self._handle, key, len(key), value, len(value), ttl_ms))

    def expire(self, key, ttl_ms):
        """Makes key expire ttl_ms milliseconds from now (NotFoundError if absent)."""
        key = _bytes(key)
        _check(_lib.kv_expire(self._handle, key, len(key), ttl_ms))

    def persist(self, key):
        """Removes key's expiry: True if it had one, False if not (NotFoundError if absent)."""
        key = _bytes(key)
        removed = _ffi.new("int*")
        _check(_lib.kv_persist(self._handle, key, len(key), removed))
        return bool(removed[0])

    def ttl(self, key):
        """The milliseconds key has left, or None if it does not expire (NotFoundError if absent
        or expired). Read from shared memory."""
        key = _bytes(key)
        _check(_lib.kv_ttl(self._handle, key, len(key), self._i64))
        left = self._i64[0]
        return None if left == -1 else left

    def delete(self, key):
        """Deletes key and returns the value it had (NotFoundError if absent)."""
        key = _bytes(key)
        rc = _lib.kv_del(self._handle, key, len(key), self._ptr, self._len)
        return _take(rc, self._ptr, self._len)

    def cas(self, key, expected_version, value):
        """Stores value if key's version is expected_version (0: only if absent); returns the new
        version. VersionMismatchError otherwise."""
        key, value = _bytes(key), _bytes(value)
        _check(_lib.kv_cas(self._handle, key, len(key), expected_version, value, len(value),
                           self._u64))
        return self._u64[0]

    def incr(self, key, delta=1):
        """Adds delta to the decimal integer at key (absent: 0) and returns the sum."""
        key = _bytes(key)
        _check(_lib.kv_incr(self._handle, key, len(key), delta, self._i64))
        return self._i64[0]

    def clear(self):
        _check(_lib.kv_clear(self._handle))

    def scan(self, prefix=b""):
        """[(key, value)] for every key starting with prefix (weakly consistent, as kv_scan)."""
        return _scan(_lib.kv_scan, self._handle, prefix)

    def stats(self):
        stat = _ffi.new("kv_stat*")
        _check(_lib.kv_stats(self._handle, stat))
        return {f: getattr(stat, f) for f in
                ("keys", "generation", "memory_bytes", "used_bytes", "live_bytes", "writes")}

    def put_async(self, key, value, ttl_ms=None):
        """Queues a put (ttl_ms as put()); failures while applying it are raised by the next
        flush()."""
        key, value = _bytes(key), _bytes(value)
        if ttl_ms is None:
            _check(_lib.kv_put_async(self._handle, key, len(key), value, len(value)))
        else:
            _check(_lib.kv_put_ttl_async(self._handle, key, len(key), value, len(value), ttl_ms))

    def delete_async(self, key):
        key = _bytes(key)
        _check(_lib.kv_del_async(self._handle, key, len(key)))

    def flush(self):
        """Returns once every write sent before is applied (FailedError if an async one failed)."""
        _check(_lib.kv_flush(self._handle))

    def write(self, batch):
        """Applies a WriteBatch all-or-nothing and returns the bucket's version counter after it
        (operation i of n got version - n + 1 + i). VersionMismatchError if a cas failed: nothing
        was applied, and the exception's .failed_index names the operation."""
        failed = _ffi.new("size_t*")
        rc = _lib.kv_bucket_write(self._handle, batch._handle, self._u64, failed)
        if rc:
            error = _error(rc)
            error.failed_index = failed[0] if rc == VersionMismatchError.code else None
            raise error
        return self._u64[0]

    def write_async(self, batch):
        """Queues a WriteBatch (as put_async); flush() raises FailedError if it failed."""
        _check(_lib.kv_bucket_write_async(self._handle, batch._handle))

    def snapshot(self):
        """A Snapshot: the whole bucket at this moment, for get() and scan()."""
        handle = _ffi.new("kv_snapshot**")
        _check(_lib.kv_bucket_snapshot(self._handle, handle))
        return Snapshot(handle[0])

    def subscribe(self, from_sequence=0, timeout_ms=None):
        """An iterator over the bucket's changes from the next one (or from_sequence). Without
        timeout_ms it waits for each change; with it, iteration stops after that long without one."""
        handle = _ffi.new("kv_subscription**")
        _check(_lib.kv_subscribe(self._handle, from_sequence, handle))
        return Subscription(handle[0], timeout_ms)


class WriteBatch(_Closeable):
    """Writes applied together by Bucket.write(): all of them or none (kv_batch). Each key once,
    at most 4096 operations; an argument error raises at once. Expiry as the single writes: put
    removes the key's expiry, cas keeps it."""

    _handle = None

    def __init__(self):
        handle = _ffi.new("kv_batch**")
        _check(_lib.kv_batch_create(handle))
        self._handle = handle[0]

    def put(self, key, value):
        key, value = _bytes(key), _bytes(value)
        _check(_lib.kv_batch_put(self._handle, key, len(key), value, len(value)))
        return self

    def delete(self, key):
        """Deletes key (a missing key is not an error: it stays missing)."""
        key = _bytes(key)
        _check(_lib.kv_batch_del(self._handle, key, len(key)))
        return self

    def cas(self, key, expected_version, value):
        """Stores value only if key's version is expected_version (0: only if absent)."""
        key, value = _bytes(key), _bytes(value)
        _check(_lib.kv_batch_cas(self._handle, key, len(key), expected_version, value,
                                 len(value)))
        return self

    def __len__(self):
        return _lib.kv_batch_count(self._handle)

    def close(self):
        if self._handle is not None:
            _lib.kv_batch_free(self._handle)
            self._handle = None


class Snapshot(_Closeable):
    """The whole bucket at one moment (kv_snapshot): get() and scan() see it as it was when taken,
    never a part of a batch. SnapshotTooOldError once it fell out of the bucket's history window
    (65536 slot changes it did not read) or would pin too much memory: take a new one."""

    _handle = None

    def __init__(self, handle):
        self._handle = handle
        self._len = _ffi.new("size_t*")
        self._u64 = _ffi.new("uint64_t*")
        self._ptr = _ffi.new("void**")

    @property
    def sequence(self):
        """The bucket's change sequence the snapshot reads at."""
        return _lib.kv_snapshot_sequence(self._handle)

    def get_versioned(self, key):
        """(value, version) of key at the snapshot's moment (NotFoundError if absent then)."""
        key = _bytes(key)
        rc = _lib.kv_snapshot_get(self._handle, key, len(key), self._ptr, self._len, self._u64)
        return _take(rc, self._ptr, self._len), self._u64[0]

    def get(self, key, default=_MISSING):
        """The value of key at the snapshot's moment; NotFoundError if absent, unless a default
        is given."""
        try:
            return self.get_versioned(key)[0]
        except NotFoundError:  # one of the classes made from the C codes above
            if default is _MISSING:
                raise
            return default

    def scan(self, prefix=b""):
        """[(key, value)] for every key starting with prefix at the snapshot's moment."""
        return _scan(_lib.kv_snapshot_scan, self._handle, prefix)

    def close(self):
        if self._handle is not None:
            _lib.kv_snapshot_close(self._handle)
            self._handle = None


class Subscription(_Closeable):
    """Iterator of Change; close() (or the with block) releases it."""

    _handle = None
    _WAIT_MS = 1000  # a wait without timeout_ms is done in slices, so Ctrl-C gets through

    def __init__(self, handle, timeout_ms):
        self._handle = handle
        self._timeout_ms = timeout_ms
        self._change = _ffi.new("kv_change**")

    @property
    def position(self):
        """The sequence the next change delivered will have."""
        return _lib.kv_subscription_position(self._handle)

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            wait = self._WAIT_MS if self._timeout_ms is None else self._timeout_ms
            rc = _lib.kv_subscription_next(self._handle, wait, self._change)
            if rc == -6 and self._timeout_ms is None:  # TIMEOUT: keep waiting
                continue
            if rc == -6:
                raise StopIteration
            if rc:
                _raise(rc)
            c = self._change[0]
            try:
                return Change(c.kind, c.sequence, _ffi.buffer(c.key, c.key_len)[:],
                              _ffi.buffer(c.value, c.value_len)[:], c.missed, bool(c.value_omitted))
            finally:
                _lib.kv_change_free(c)

    def close(self):
        if self._handle is not None:
            _lib.kv_subscription_close(self._handle)
            self._handle = None
