/* kv.h: the C ABI of kv, a shared-memory key-value store for one host.
 *
 * A thin, stable wrapper over the C++ API (kv/client.h) for C and for any language with a C FFI,
 * shaped like LMDB: opaque handles, kv_<object>_<verb> names, int results (0 = KV_OK, otherwise
 * one of kv's own negative codes below), kv_strerror(), keys and values as pointer + length pairs
 * (binary-safe: they may contain '\0'), and memory returned by the library freed with kv_free().
 * No entry point lets a C++ exception escape: an unexpected failure is KV_INTERNAL.
 *
 *   kv_client* client;
 *   kv_bucket* bucket;
 *   void* value;
 *   size_t len;
 *   int rc = kv_client_open(NULL, 0, &client);      (namespace from $KV_NAMESPACE, else "kv")
 *   if (rc == KV_OK) rc = kv_bucket_create(client, "shopping");
 *   if (rc == KV_OK) rc = kv_bucket_open(client, "shopping", &bucket);
 *   if (rc == KV_OK) rc = kv_put(bucket, "milk", 4, "1", 1);
 *   if (rc == KV_OK) rc = kv_get(bucket, "milk", 4, &value, &len);   (value: "1", len: 1)
 *   if (rc == KV_OK) kv_free(value);
 *   if (rc != KV_OK) fprintf(stderr, "%s\n", kv_last_error());
 *
 * Caveats (see kv/client.h for the full list)
 *  - fork(): a child must not use a kv_client or kv_bucket inherited from its parent.
 *  - Stale handles: after kv_bucket_drop, calls on an open kv_bucket fail with KV_NO_BUCKET
 *    (writes may also report KV_FAILED or KV_UNAVAILABLE while the drop completes); bucket ids
 *    are never reused, so a stale handle never reaches another bucket.
 *  - Worker restarts are invisible: reads keep working, and writes (queued, in flight or new)
 *    wait for the restarted worker within the timeout and apply exactly once -- none fails
 *    because of the restart, none applies twice. One that timed out (KV_TIMEOUT) stays queued
 *    and applies once, later.
 *  - Limits: keys 1..KV_MAX_KEY_SIZE bytes, values 0..KV_MAX_VALUE_SIZE bytes, bucket names
 *    1..KV_MAX_BUCKET_NAME_SIZE printable ASCII characters without spaces.
 *
 * Thread safety
 *  - A kv_client may be used by many threads at once.
 *  - A kv_bucket may be used by one thread at a time. Give each thread its own handle: either
 *    kv_bucket_open (its own write channel) or kv_bucket_dup (cheap; shares the write channel,
 * which serialises the copies' writes). Duplicate before handing the copy to the other thread.
 *  - kv_last_error() is per thread. kv_strerror() and kv_free() may be called from any thread.
 *  - A kv_bucket stays usable after its kv_client is closed; close each handle exactly once.
 *
 * C89-compatible apart from <stdint.h> (uint64_t, int64_t), which every C89 compiler in use
 * provides.
 */
#ifndef KV_KV_H
#define KV_KV_H

#include <stddef.h>
#include <stdint.h>

#include "kv/version.h" /* KV_VERSION_MAJOR/MINOR/PATCH, KV_VERSION_STRING: this header's version */

#ifdef __cplusplus
extern "C" {
#endif

/* Limits, equal to kv::kMaxKeySize, kv::kMaxValueSize and kv::kMaxBucketNameSize. */
#define KV_MAX_KEY_SIZE 1024
#define KV_MAX_VALUE_SIZE 16777216 /* 16 MiB */
#define KV_MAX_BUCKET_NAME_SIZE 64

/* Result codes: KV_OK, or the negative of a kv::Code. The word after each is what kv_strerror
 * and kvctl print; kv_last_error() gives the message with context. */
#define KV_OK 0
#define KV_NOTFOUND (-1)         /* NOT_FOUND: the key does not exist */
#define KV_NO_BUCKET (-2)        /* NO_BUCKET: the bucket does not exist (or was dropped) */
#define KV_INVALID (-3)          /* INVALID: bad name or namespace, empty key, NULL argument */
#define KV_TOO_LARGE (-4)        /* TOO_LARGE: key or value over its limit, or buffer too small */
#define KV_BUCKET_FULL (-5)      /* BUCKET_FULL: the bucket reached its maximum size */
#define KV_TIMEOUT (-6)          /* TIMEOUT: no answer in time (the write may still apply) */
#define KV_UNAVAILABLE (-7)      /* UNAVAILABLE: kvd, or the bucket's worker, not back in time */
#define KV_VERSION_MISMATCH (-8) /* VERSION_MISMATCH: compare-and-set lost */
#define KV_NOT_AN_INTEGER (-9)   /* NOT_AN_INTEGER: incr on a non-integer value, or overflow */
#define KV_PERMISSION (-10)      /* PERMISSION: not allowed to open the instance's objects */
#define KV_CORRUPT (-11)         /* CORRUPT: a segment failed validation */
#define KV_FAILED (-12)          /* FAILED: could not be done (bucket failed, limit hit) */
#define KV_INTERNAL (-13)        /* INTERNAL: a bug, out of memory, or unexpected system error */
#define KV_PERSISTENCE (-14)     /* PERSISTENCE: not durable (disk failure) or writes refused */
#define KV_SNAPSHOT_TOO_OLD                                            \
  (-15) /* SNAPSHOT_TOO_OLD: a snapshot outlived its bounds; take anew \
         */

/* Opaque handles. */
typedef struct kv_client kv_client;
typedef struct kv_bucket kv_bucket;
typedef struct kv_subscription kv_subscription;
typedef struct kv_batch kv_batch;
typedef struct kv_snapshot kv_snapshot;

/* Counters of one bucket (kv_stats), read from its segment header. */
typedef struct kv_stat {
  uint64_t keys;         /* live keys */
  uint64_t generation;   /* table generation (grows on growth, compaction and clear) */
  uint64_t memory_bytes; /* size of the current table segment */
  uint64_t used_bytes;   /* bytes of records written in this generation (incl. garbage) */
  uint64_t live_bytes;   /* bytes of records the keys point at */
  uint64_t writes;       /* writes applied since the bucket was created */
} kv_stat;

/* Kinds of kv_change (kv_subscription_next), as kv::Change::Kind. */
#define KV_CHANGE_PUT 1     /* key was set to value (put, cas and incr: the value stored) */
#define KV_CHANGE_DELETE 2  /* key was deleted */
#define KV_CHANGE_CLEAR 3   /* every key was removed (no key) */
#define KV_CHANGE_MISSED 4  /* `missed` changes starting at `sequence` are gone: fell behind */
#define KV_CHANGE_RESYNC 5  /* the worker restarted after a crash: resynchronise (e.g. kv_scan) */
#define KV_CHANGE_EXPIRED 6 /* key reached its expiry time and was removed (no value) */

/* One change to a bucket (kv_subscription_next). key/value point into the same allocation as
 * the struct, each followed by a '\0' not counted in its length; free it with kv_change_free. */
typedef struct kv_change {
  int kind;          /* KV_CHANGE_* */
  int value_omitted; /* 1: the value was too large for the feed (64 KiB); kv_get it */
  uint64_t sequence; /* one per change, increasing across worker restarts */
  uint64_t missed;   /* KV_CHANGE_MISSED only: how many changes were missed */
  const void* key;   /* KV_CHANGE_PUT, KV_CHANGE_DELETE; else "" */
  size_t key_len;
  const void* value; /* KV_CHANGE_PUT; else "" */
  size_t value_len;
} kv_change;

/* ---- Version ---- */

/* The version of the libkvclient loaded at run time, "MAJOR.MINOR.PATCH" (a static string).
 * May differ from KV_VERSION_STRING, the version of the headers a program was compiled with. */
const char* kv_version(void);

/* ---- Errors and memory ---- */

/* A static string for a result code: "OK", "NOT_FOUND: the key does not exist", ...
 * Never NULL; an unknown code gives "UNKNOWN: not a kv result code". */
const char* kv_strerror(int rc);

/* The full message of the last failed call on this thread ("NO_BUCKET: bucket 'x' does not
 * exist"), or "OK" if the last call succeeded. Valid until the next kv call on this thread. */
const char* kv_last_error(void);

/* Frees memory returned by kv_get, kv_get_versioned and kv_del (kv_change: kv_change_free).
 * NULL is ignored. */
void kv_free(void* ptr);

/* ---- Client ---- */

/* Opens the kv instance `ns` (NULL or "": $KV_NAMESPACE, else "kv"). `timeout_ms` bounds how
 * long writes and control requests wait for an answer (<= 0: 5000). On KV_OK *client receives a
 * handle to close with kv_client_close; on error *client is NULL.
 * Errors: KV_INVALID (bad namespace), KV_UNAVAILABLE (no kvd ever ran for it), KV_PERMISSION. */
int kv_client_open(const char* ns, int timeout_ms, kv_client** client);

/* Closes a client. NULL is ignored. Open kv_bucket handles stay valid. */
void kv_client_close(kv_client* client);

/* ---- Buckets ---- */

/* Creates a bucket (kvd starts its worker); an existing bucket is KV_OK and unchanged.
 * Errors: KV_INVALID (name), KV_UNAVAILABLE (kvd down), KV_FAILED, KV_TIMEOUT. */
int kv_bucket_create(kv_client* client, const char* name);

/* Creates a bucket that mirrors an upstream Redis/Valkey (docs/mirror.md). `url`:
 * "redis://HOST:PORT[/DB]", "unix:///path[?db=N]" or "redis-cluster://HOST:PORT[,HOST:PORT...]";
 * `prefix`: upstream key = prefix + bucket key (NULL: "NAME:"); `password_file`: a file holding
 * the upstream's password (NULL: none). An
 * existing bucket with the same upstream is KV_OK; with another, KV_INVALID.
 * Errors: as kv_bucket_create, KV_INVALID (URL, prefix, password file), KV_FAILED (kvd built
 * without hiredis, or kvd keeps a data directory). */
int kv_bucket_create_mirror(kv_client* client, const char* name, const char* url,
                            const char* prefix, const char* password_file);

/* Stops the bucket's worker and deletes its data. KV_NO_BUCKET if it does not exist;
 * KV_UNAVAILABLE if kvd is down. */
int kv_bucket_drop(kv_client* client, const char* name);

/* Clears a failed bucket's restart history and restarts its worker. Errors as kv_bucket_drop. */
int kv_bucket_restart(kv_client* client, const char* name);

/* Opens a handle to an existing bucket (works while kvd is down). On KV_OK *bucket receives a
 * handle to close with kv_bucket_close; on error *bucket is NULL.
 * Errors: KV_INVALID (name), KV_NO_BUCKET, KV_UNAVAILABLE (bucket has no data yet). */
int kv_bucket_open(kv_client* client, const char* name, kv_bucket** bucket);

/* A second handle to the same bucket, sharing the first one's write channel (cheap). For
 * giving each thread its own handle. Errors: KV_INVALID (NULL argument). */
int kv_bucket_dup(kv_bucket* bucket, kv_bucket** copy);

/* Closes a bucket handle. NULL is ignored. */
void kv_bucket_close(kv_bucket* bucket);

/* ---- Reads: served from shared memory in this process (no message, no syscall) ---- */

/* Copies the value of `key` into a new buffer: on KV_OK *value points to *value_len bytes
 * (plus a terminating '\0' not counted in the length, for convenience), owned by the caller and
 * freed with kv_free. On error *value is NULL and *value_len 0; a miss (KV_NOTFOUND) allocates
 * nothing. Errors: KV_NOTFOUND, KV_NO_BUCKET (dropped), KV_INVALID/KV_TOO_LARGE (key),
 * KV_CORRUPT. */
int kv_get(kv_bucket* bucket, const void* key, size_t key_len, void** value, size_t* value_len);

/* As kv_get, and *version (non-NULL) receives the key's version, for kv_cas. */
int kv_get_versioned(kv_bucket* bucket, const void* key, size_t key_len, void** value,
                     size_t* value_len, uint64_t* version);

/* Allocation-free get: copies the value into buf[0, buf_size) and its length into *value_len
 * (no terminating '\0'). If the value is longer than buf_size, nothing is copied, *value_len is
 * the size needed and the result is KV_TOO_LARGE. `buf` may be NULL when buf_size is 0.
 * Other errors as kv_get. */
int kv_get_buf(kv_bucket* bucket, const void* key, size_t key_len, void* buf, size_t buf_size,
               size_t* value_len);

/* Calls fn(ctx, key, key_len, value, value_len) for each key starting with prefix[0,
 * prefix_len) (prefix_len 0: every key) until fn returns non-zero. The pointers passed to fn are
 * valid only during that call. Weakly consistent: each key is seen at most once, and every key
 * present for the whole scan is seen. Errors: KV_NO_BUCKET, KV_CORRUPT. */
int kv_scan(kv_bucket* bucket, const void* prefix, size_t prefix_len,
            int (*fn)(void* ctx, const void* key, size_t key_len, const void* value,
                      size_t value_len),
            void* ctx);

/* Fills *stat with the bucket's counters. Errors: KV_NO_BUCKET, KV_CORRUPT. */
int kv_stats(kv_bucket* bucket, kv_stat* stat);

/* ---- Writes: sent to the bucket's worker; return once applied and visible everywhere ---- */

/* Stores the value under the key. Errors: KV_INVALID (empty key), KV_TOO_LARGE,
 * KV_BUCKET_FULL, KV_TIMEOUT, KV_UNAVAILABLE, KV_FAILED (the bucket refuses writes),
 * KV_NO_BUCKET. */
int kv_put(kv_bucket* bucket, const void* key, size_t key_len, const void* value, size_t value_len);

/* Deletes the key. If old_value is non-NULL, on KV_OK *old_value receives the value the key
 * had (caller frees it with kv_free; '\0'-terminated as in kv_get) and *old_len its length
 * (old_len may be NULL). KV_NOTFOUND if the key was absent. Other errors as kv_put. */
int kv_del(kv_bucket* bucket, const void* key, size_t key_len, void** old_value, size_t* old_len);

/* Stores the value only if the key's version is expected_version (0: only if the key is
 * absent). On KV_OK *version (if non-NULL) is the new version; on KV_VERSION_MISMATCH it is the
 * current version (0 if absent). Other errors as kv_put. */
int kv_cas(kv_bucket* bucket, const void* key, size_t key_len, uint64_t expected_version,
           const void* value, size_t value_len, uint64_t* version);

/* Adds delta to the decimal integer stored at the key (absent counts as 0); *result (if
 * non-NULL) receives the sum. KV_NOT_AN_INTEGER if the value is not a decimal int64 or the sum
 * overflows. Other errors as kv_put. */
int kv_incr(kv_bucket* bucket, const void* key, size_t key_len, int64_t delta, int64_t* result);

/* Removes every key of the bucket. Errors as kv_put. */
int kv_clear(kv_bucket* bucket);

/* ---- Expiry (TTL), as Redis's SET EX / EXPIRE / PERSIST / TTL (see kv::Bucket::Expire) ----
 * A key past its expiry time is absent for every reader in every process; the worker removes it
 * shortly after (KV_CHANGE_EXPIRED in the feed). Times survive worker restarts and reboots (with
 * persistence). kv_put removes a key's expiry; kv_cas and kv_incr keep it. ttl_ms must be
 * 1 .. 1000 years in milliseconds (31536000000000): KV_INVALID otherwise. A bucket that mirrors
 * Redis refuses expiry with KV_FAILED (docs/mirror.md). */

/* kv_put with an expiry ttl_ms from now. Errors as kv_put, KV_INVALID for a bad ttl_ms. */
int kv_put_ttl(kv_bucket* bucket, const void* key, size_t key_len, const void* value,
               size_t value_len, int64_t ttl_ms);

/* Sets the key's expiry to ttl_ms from now. KV_NOTFOUND if the key is absent. Errors as
 * kv_put_ttl. */
int kv_expire(kv_bucket* bucket, const void* key, size_t key_len, int64_t ttl_ms);

/* Removes the key's expiry; *removed (if non-NULL) is 1 if it had one, 0 if not. KV_NOTFOUND if
 * the key is absent. Other errors as kv_put. */
int kv_persist(kv_bucket* bucket, const void* key, size_t key_len, int* removed);

/* Read from shared memory: *ttl_ms receives the milliseconds the key has left, or -1 if it does
 * not expire. KV_NOTFOUND if absent (or expired). Other errors as kv_get. */
int kv_ttl(kv_bucket* bucket, const void* key, size_t key_len, int64_t* ttl_ms);

/* Async writes: queued for the worker, returning at once (KV_TIMEOUT if the queue stays full).
 * Argument errors (KV_INVALID, KV_TOO_LARGE) are reported at once; failures while applying are
 * reported by the next kv_flush. */
int kv_put_async(kv_bucket* bucket, const void* key, size_t key_len, const void* value,
                 size_t value_len);
int kv_del_async(kv_bucket* bucket, const void* key, size_t key_len);
/* kv_put_async with an expiry ttl_ms from now (a bad ttl_ms is KV_INVALID at once). */
int kv_put_ttl_async(kv_bucket* bucket, const void* key, size_t key_len, const void* value,
                     size_t value_len, int64_t ttl_ms);

/* Returns once every write sent before on this bucket's write channel (by this handle and its
 * kv_bucket_dup copies) is applied and visible. KV_FAILED if any async write failed since the
 * previous kv_flush. Other errors as kv_put. */
int kv_flush(kv_bucket* bucket);

/* ---- Subscriptions: every change to a bucket, live, read from its change feed in shared
 * memory (the worker never waits for subscribers; see kv::Bucket::Subscribe) ---- */

/* Subscribes to the bucket's changes, starting with the next one (from_sequence 0) or at
 * from_sequence (changes still in the feed are replayed, older ones reported as missed). On KV_OK
 * *sub receives a handle to close with kv_subscription_close; on error *sub is NULL.
 * Errors: KV_INVALID (NULL argument), KV_NO_BUCKET, KV_UNAVAILABLE (no feed yet), KV_CORRUPT,
 * KV_PERMISSION. The subscription stays valid after `bucket` is closed. */
int kv_subscribe(kv_bucket* bucket, uint64_t from_sequence, kv_subscription** sub);

/* Waits up to timeout_ms (0: just look; at most 24 days) for the next change. On KV_OK *change
 * receives it (caller frees it with kv_change_free); on error *change is NULL.
 * Errors: KV_TIMEOUT (no change in time), KV_NO_BUCKET (the bucket was dropped), KV_CORRUPT,
 * KV_INVALID (NULL argument, negative timeout). A kv_subscription may be used by many threads at
 * once: each change goes to one of them. */
int kv_subscription_next(kv_subscription* sub, int timeout_ms, kv_change** change);

/* kv_subscription_next without waiting: KV_TIMEOUT at once if no change waits. */
int kv_subscription_try_next(kv_subscription* sub, kv_change** change);

/* A file descriptor for poll/epoll/select: readable while a change waits (and after a drop). It
 * stays readable until kv_subscription_try_next (or _next) finds no change: wait for it, then
 * call kv_subscription_try_next until KV_TIMEOUT. Owned by the subscription: never close it;
 * it is closed by kv_subscription_close. The first call starts one helper thread per
 * subscription (sleeping on the feed's futex). Returns the fd (>= 0), or KV_INVALID (NULL sub)
 * or KV_FAILED (no eventfd or thread could be created). */
int kv_subscription_fd(kv_subscription* sub);

/* The sequence the next change delivered will have; 0 if sub is NULL. */
uint64_t kv_subscription_position(kv_subscription* sub);

/* Frees a change from kv_subscription_next. NULL is ignored. */
void kv_change_free(kv_change* change);

/* Closes a subscription. NULL is ignored. REQUIRES: no thread is in kv_subscription_next on it. */
void kv_subscription_close(kv_subscription* sub);

/* ---- Batches: writes applied all-or-nothing (kv::WriteBatch, kv::Bucket::Write) ---- */

/* A new, empty batch in *batch (free it with kv_batch_free). Errors: KV_INVALID, KV_INTERNAL. */
int kv_batch_create(kv_batch** batch);
/* Add one operation. An argument error (empty key, too large, a key twice, more than 4096
 * operations) is returned here (and by every later add) and by kv_bucket_write, which then
 * sends nothing. */
/* Expiry as the single writes: kv_batch_put removes the key's expiry, kv_batch_cas keeps it. */
int kv_batch_put(kv_batch* batch, const void* key, size_t key_len, const void* value,
                 size_t value_len);
int kv_batch_del(kv_batch* batch, const void* key, size_t key_len);
int kv_batch_cas(kv_batch* batch, const void* key, size_t key_len, uint64_t expected_version,
                 const void* value, size_t value_len);
/* Number of operations in the batch (0 if batch is NULL). */
size_t kv_batch_count(const kv_batch* batch);
/* Frees a batch. NULL is ignored. */
void kv_batch_free(kv_batch* batch);

/* Applies the batch all-or-nothing. On KV_OK *version (if non-NULL) receives the bucket's
 * version counter after it (operation i of n got version *version - n + 1 + i). On
 * KV_VERSION_MISMATCH a cas failed and nothing was applied: *failed_index (if non-NULL) names
 * it. KV_INVALID (empty batch, argument error), KV_TOO_LARGE, KV_FAILED (a mirror bucket), other
 * errors as kv_put. */
int kv_bucket_write(kv_bucket* bucket, const kv_batch* batch, uint64_t* version,
                    size_t* failed_index);
/* Queues the batch (async, as kv_put_async); kv_flush reports it if it failed. */
int kv_bucket_write_async(kv_bucket* bucket, const kv_batch* batch);

/* ---- Snapshots: a read view of a whole bucket at one moment (kv::Snapshot) ---- */

/* Takes a snapshot (*snap; close it with kv_snapshot_close). It pins at most 256 MiB of a
 * replaced generation. Errors: KV_INVALID, KV_NO_BUCKET, KV_UNAVAILABLE, KV_CORRUPT. A snapshot
 * is used by one thread at a time; it stays valid after `bucket` is closed. */
int kv_bucket_snapshot(kv_bucket* bucket, kv_snapshot** snap);
/* As kv_get_versioned (version may be NULL), at the snapshot's moment. Plus
 * KV_SNAPSHOT_TOO_OLD: more than 65536 slot changes were made since the snapshot before it read
 * them, or its replaced generation is larger than it may pin. */
int kv_snapshot_get(kv_snapshot* snap, const void* key, size_t key_len, void** value,
                    size_t* value_len, uint64_t* version);
/* As kv_scan, at the snapshot's moment (every key present then, each once). Plus
 * KV_SNAPSHOT_TOO_OLD. */
int kv_snapshot_scan(kv_snapshot* snap, const void* prefix, size_t prefix_len,
                     int (*fn)(void* ctx, const void* key, size_t key_len, const void* value,
                               size_t value_len),
                     void* ctx);
/* The bucket's change sequence the snapshot reads at; 0 if snap is NULL. */
uint64_t kv_snapshot_sequence(const kv_snapshot* snap);
/* Closes a snapshot (releases what it pins). NULL is ignored. */
void kv_snapshot_close(kv_snapshot* snap);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* KV_KV_H */
