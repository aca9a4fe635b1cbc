"""kv for Python: buckets of a kv instance over libkvclient's C ABI (kv/kv.h), through cffi.

    import kv
    client = kv.Client("demo")              # namespace; None: $KV_NAMESPACE, else "kv"
    client.create_bucket("shopping")
    b = client.open_bucket("shopping")
    b.put(b"milk", b"1")
    b.get(b"milk")                          # b"1", read straight from shared memory
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

from cffi import FFI

from . import _native

__all__ = ["Client", "Bucket", "Subscription", "Change", "Error", "version"]

_ffi = FFI()
_ffi.cdef(
    """
typedef struct kv_client kv_client;
typedef struct kv_bucket kv_bucket;
typedef struct kv_subscription kv_subscription;
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


# Named after the C codes: NOT_FOUND -> NotFoundError, NO_BUCKET -> NoBucketError, ...
_ERRORS = {}
for _code in range(-1, -14, -1):
    _word = _ffi.string(_lib.kv_strerror(_code)).decode().split(":")[0]
    _cls = _error_class(_code, _word)
    _ERRORS[_code] = _cls
    globals()[_cls.__name__] = _cls
    __all__.append(_cls.__name__)


def _raise(rc):
    message = _ffi.string(_lib.kv_last_error()).decode(errors="replace")
    raise _ERRORS.get(rc, Error)(message)


_native.set_raiser(_raise)  # how the extension raises a C code


def _bytes(b):
    if isinstance(b, str):
        return b.encode()
    return b


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
        rc = _lib.kv_client_open(ns, timeout_ms, handle)
        if rc:
            _raise(rc)
        self._handle = handle[0]

    def close(self):
        if self._handle is not None:
            _lib.kv_client_close(self._handle)
            self._handle = None

    def _check(self, rc):
        if rc:
            _raise(rc)

    def create_bucket(self, name):
        """Creates the bucket (an existing one is left as it is)."""
        self._check(_lib.kv_bucket_create(self._handle, name.encode()))

    def drop_bucket(self, name):
        self._check(_lib.kv_bucket_drop(self._handle, name.encode()))

    def restart_bucket(self, name):
        self._check(_lib.kv_bucket_restart(self._handle, name.encode()))

    def open_bucket(self, name):
        """A Bucket handle (NoBucketError if it does not exist)."""
        handle = _ffi.new("kv_bucket**")
        self._check(_lib.kv_bucket_open(self._handle, name.encode(), handle))
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
        rc = _lib.kv_bucket_dup(self._handle, handle)
        if rc:
            _raise(rc)
        return Bucket(handle[0])

    def _take(self, rc):
        """The library-allocated value in self._ptr/self._len as bytes, freed."""
        if rc:
            _raise(rc)
        try:
            return _ffi.buffer(self._ptr[0], self._len[0])[:]
        finally:
            _lib.kv_free(self._ptr[0])

    def get_versioned(self, key):
        """(value, version) of key; version is what cas() expects."""
        key = _bytes(key)
        rc = _lib.kv_get_versioned(self._handle, key, len(key), self._ptr, self._len, self._u64)
        value = self._take(rc)
        return value, self._u64[0]

    def put(self, key, value):
        key, value = _bytes(key), _bytes(value)
        rc = _lib.kv_put(self._handle, key, len(key), value, len(value))
        if rc:
            _raise(rc)

    def delete(self, key):
        """Deletes key and returns the value it had (NotFoundError if absent)."""
        key = _bytes(key)
        return self._take(_lib.kv_del(self._handle, key, len(key), self._ptr, self._len))

    def cas(self, key, expected_version, value):
        """Stores value if key's version is expected_version (0: only if absent); returns the new
        version. VersionMismatchError otherwise."""
        key, value = _bytes(key), _bytes(value)
        rc = _lib.kv_cas(self._handle, key, len(key), expected_version, value, len(value), self._u64)
        if rc:
            _raise(rc)
        return self._u64[0]

    def incr(self, key, delta=1):
        """Adds delta to the decimal integer at key (absent: 0) and returns the sum."""
        key = _bytes(key)
        rc = _lib.kv_incr(self._handle, key, len(key), delta, self._i64)
        if rc:
            _raise(rc)
        return self._i64[0]

    def clear(self):
        rc = _lib.kv_clear(self._handle)
        if rc:
            _raise(rc)

    def scan(self, prefix=b""):
        """[(key, value)] for every key starting with prefix (weakly consistent, as kv_scan)."""
        prefix = _bytes(prefix)
        out = []

        @_ffi.callback("int(void*, const void*, size_t, const void*, size_t)")
        def collect(ctx, key, key_len, value, value_len):
            out.append((_ffi.buffer(key, key_len)[:], _ffi.buffer(value, value_len)[:]))
            return 0

        rc = _lib.kv_scan(self._handle, prefix, len(prefix), collect, _ffi.NULL)
        if rc:
            _raise(rc)
        return out

    def stats(self):
        stat = _ffi.new("kv_stat*")
        rc = _lib.kv_stats(self._handle, stat)
        if rc:
            _raise(rc)
        return {f: getattr(stat, f) for f in
                ("keys", "generation", "memory_bytes", "used_bytes", "live_bytes", "writes")}

    def put_async(self, key, value):
        """Queues a put; failures while applying it are raised by the next flush()."""
        key, value = _bytes(key), _bytes(value)
        rc = _lib.kv_put_async(self._handle, key, len(key), value, len(value))
        if rc:
            _raise(rc)

    def delete_async(self, key):
        key = _bytes(key)
        rc = _lib.kv_del_async(self._handle, key, len(key))
        if rc:
            _raise(rc)

    def flush(self):
        """Returns once every write sent before is applied (FailedError if an async one failed)."""
        rc = _lib.kv_flush(self._handle)
        if rc:
            _raise(rc)

    def subscribe(self, from_sequence=0, timeout_ms=None):
        """An iterator over the bucket's changes from the next one (or from_sequence). Without
        timeout_ms it waits for each change; with it, iteration stops after that long without one."""
        handle = _ffi.new("kv_subscription**")
        rc = _lib.kv_subscribe(self._handle, from_sequence, handle)
        if rc:
            _raise(rc)
        return Subscription(handle[0], timeout_ms)


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
