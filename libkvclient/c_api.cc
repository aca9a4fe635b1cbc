// The C ABI (kv/kv.h) over the C++ API. Each entry point validates its pointers, calls the C++
// API inside a catch-all (no exception crosses into C), records the Status message for
// kv_last_error() and returns -code. Handles are heap structs holding the C++ objects.
#include "kv/kv.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <string>
#include <string_view>

#include "kv/client.h"

struct kv_client {
  std::shared_ptr<kv::Client> client;
};

struct kv_bucket {
  kv::Bucket bucket;
};

struct kv_subscription {
  kv::Subscription subscription;
};

struct kv_batch {
  kv::WriteBatch batch;
};

struct kv_snapshot {
  kv::Snapshot snapshot;
};

namespace {

static_assert(KV_MAX_KEY_SIZE == kv::kMaxKeySize);
static_assert(KV_MAX_VALUE_SIZE == kv::kMaxValueSize);
static_assert(KV_MAX_BUCKET_NAME_SIZE == kv::kMaxBucketNameSize);
static_assert(KV_NOTFOUND == -static_cast<int>(kv::Code::kNotFound));
static_assert(KV_NO_BUCKET == -static_cast<int>(kv::Code::kBucketNotFound));
static_assert(KV_INVALID == -static_cast<int>(kv::Code::kInvalidArgument));
static_assert(KV_TOO_LARGE == -static_cast<int>(kv::Code::kTooLarge));
static_assert(KV_BUCKET_FULL == -static_cast<int>(kv::Code::kBucketFull));
static_assert(KV_TIMEOUT == -static_cast<int>(kv::Code::kTimeout));
static_assert(KV_UNAVAILABLE == -static_cast<int>(kv::Code::kUnavailable));
static_assert(KV_VERSION_MISMATCH == -static_cast<int>(kv::Code::kVersionMismatch));
static_assert(KV_NOT_AN_INTEGER == -static_cast<int>(kv::Code::kNotAnInteger));
static_assert(KV_PERMISSION == -static_cast<int>(kv::Code::kPermissionDenied));
static_assert(KV_CORRUPT == -static_cast<int>(kv::Code::kCorrupt));
static_assert(KV_FAILED == -static_cast<int>(kv::Code::kFailed));
static_assert(KV_INTERNAL == -static_cast<int>(kv::Code::kInternal));
static_assert(KV_PERSISTENCE == -static_cast<int>(kv::Code::kPersistence));
static_assert(KV_SNAPSHOT_TOO_OLD == -static_cast<int>(kv::Code::kSnapshotTooOld));

int ChangeKind(kv::Change::Kind kind) {
  switch (kind) {
    case kv::Change::Kind::kPut:
      return KV_CHANGE_PUT;
    case kv::Change::Kind::kDelete:
      return KV_CHANGE_DELETE;
    case kv::Change::Kind::kClear:
      return KV_CHANGE_CLEAR;
    case kv::Change::Kind::kMissed:
      return KV_CHANGE_MISSED;
    case kv::Change::Kind::kResync:
      return KV_CHANGE_RESYNC;
    case kv::Change::Kind::kExpired:
      return KV_CHANGE_EXPIRED;
  }
  return 0;
}

// The message of this thread's last call; a fixed buffer, so recording it cannot throw.
thread_local char t_last_error[512] = "OK";

void SetLastError(const char* message) {
  std::size_t n = std::strlen(message);
  if (n >= sizeof t_last_error) n = sizeof t_last_error - 1;
  std::memcpy(t_last_error, message, n);
  t_last_error[n] = '\0';
}

int Fail(int rc, const char* message) {
  SetLastError(message);
  return rc;
}

int Report(const kv::Status& s) {
  if (s.ok()) {
    SetLastError("OK");
    return KV_OK;
  }
  SetLastError(s.ToString().c_str());
  return -static_cast<int>(s.code());
}

int Null(const char* what) {
  std::string message = std::string("INVALID: ") + what + " is NULL";
  return Fail(KV_INVALID, message.c_str());
}

int Internal(const char* what) { return Fail(KV_INTERNAL, what); }

std::string_view Bytes(const void* p, std::size_t n) {
  return std::string_view(static_cast<const char*>(p), n);
}

// A NULL pointer with a non-zero length is an error; NULL with length 0 is the empty string.
bool BadBytes(const void* p, std::size_t n) { return p == nullptr && n != 0; }

// Copies `s` into a malloc'd, '\0'-terminated buffer.
int CopyOut(const std::string& s, void** out, std::size_t* out_len) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p == nullptr) return Internal("INTERNAL: out of memory copying a value");
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  *out = p;
  if (out_len != nullptr) *out_len = s.size();
  return KV_OK;
}

int GetImpl(kv_bucket* bucket, const void* key, std::size_t key_len, void** value,
            std::size_t* value_len, std::uint64_t* version) {
  if (value != nullptr) *value = nullptr;
  if (value_len != nullptr) *value_len = 0;
  if (bucket == nullptr) return Null("bucket");
  if (value == nullptr) return Null("value");
  if (value_len == nullptr) return Null("value_len");
  if (BadBytes(key, key_len)) return Null("key");
  std::string v;
  int rc = Report(bucket->bucket.Get(Bytes(key, key_len), &v, version));
  if (rc != KV_OK) return rc;
  return CopyOut(v, value, value_len);
}

template <typename Fn>
int Control(kv_client* client, const char* name, Fn fn) {
  if (client == nullptr) return Null("client");
  if (name == nullptr) return Null("name");
  return Report(fn(*client->client, std::string_view(name)));
}

#define KV_CATCH_ALL                                                                  \
  catch (const std::bad_alloc&) {                                                     \
    return Internal("INTERNAL: out of memory");                                       \
  }                                                                                   \
  catch (const std::exception& e) {                                                   \
    std::string message = std::string("INTERNAL: unexpected exception: ") + e.what(); \
    return Internal(message.c_str());                                                 \
  }                                                                                   \
  catch (...) {                                                                       \
    return Internal("INTERNAL: unexpected exception");                                \
  }

// Copies `c` into one malloc'd block: the kv_change, then key and value, each '\0'-terminated.
int CopyOutChange(const kv::Change& c, kv_change** out) {
  const std::size_t size = sizeof(kv_change) + c.key.size() + 1 + c.value.size() + 1;
  auto* block = static_cast<char*>(std::malloc(size));
  if (block == nullptr) return Internal("INTERNAL: out of memory copying a change");
  char* key = block + sizeof(kv_change);
  char* value = key + c.key.size() + 1;
  std::memcpy(key, c.key.data(), c.key.size());
  key[c.key.size()] = '\0';
  std::memcpy(value, c.value.data(), c.value.size());
  value[c.value.size()] = '\0';
  auto* change = new (block) kv_change{};
  change->kind = ChangeKind(c.kind);
  change->value_omitted = c.value_omitted ? 1 : 0;
  change->sequence = c.sequence;
  change->missed = c.missed;
  change->key = key;
  change->key_len = c.key.size();
  change->value = value;
  change->value_len = c.value.size();
  *out = change;
  return KV_OK;
}

}  // namespace

extern "C" {

const char* kv_strerror(int rc) {
  switch (rc) {
    case KV_OK:
      return "OK";
    case KV_NOTFOUND:
      return "NOT_FOUND: the key does not exist";
    case KV_NO_BUCKET:
      return "NO_BUCKET: the bucket does not exist (or was dropped)";
    case KV_INVALID:
      return "INVALID: bad name, namespace, key or argument";
    case KV_TOO_LARGE:
      return "TOO_LARGE: key or value over its limit, or buffer too small";
    case KV_BUCKET_FULL:
      return "BUCKET_FULL: the bucket reached its maximum size, or /dev/shm is full";
    case KV_TIMEOUT:
      return "TIMEOUT: no answer in time (the write may still be applied)";
    case KV_UNAVAILABLE:
      return "UNAVAILABLE: kvd or the bucket's worker is not running";
    case KV_VERSION_MISMATCH:
      return "VERSION_MISMATCH: compare-and-set lost";
    case KV_NOT_AN_INTEGER:
      return "NOT_AN_INTEGER: the value is not a decimal 64-bit integer, or the sum overflows";
    case KV_PERMISSION:
      return "PERMISSION: not allowed to open the instance's objects";
    case KV_CORRUPT:
      return "CORRUPT: a segment failed validation";
    case KV_FAILED:
      return "FAILED: the operation could not be done";
    case KV_INTERNAL:
      return "INTERNAL: a bug, out of memory, or an unexpected system error";
    case KV_PERSISTENCE:
      return "PERSISTENCE: the write is not durable (disk failure), or writes are refused";
    case KV_SNAPSHOT_TOO_OLD:
      return "SNAPSHOT_TOO_OLD: the snapshot outlived its history window or pinning limit";
    default:
      return "UNKNOWN: not a kv result code";
  }
}

const char* kv_last_error(void) { return t_last_error; }

void kv_free(void* ptr) { std::free(ptr); }

int kv_client_open(const char* ns, int timeout_ms, kv_client** client) try {
  if (client == nullptr) return Null("client");
  *client = nullptr;
  kv::ClientOptions options;
  if (ns != nullptr) options.ns = ns;
  if (timeout_ms > 0) options.timeout = std::chrono::milliseconds(timeout_ms);
  kv::Result<std::shared_ptr<kv::Client>> opened = kv::Client::Open(options);
  if (!opened.ok()) return Report(opened.status());
  *client = new kv_client{std::move(opened).value()};
  return Report(kv::Status());
}
KV_CATCH_ALL

void kv_client_close(kv_client* client) {
  try {
    delete client;
  } catch (...) {
    // Destructors do not throw; nothing to report from a void function.
  }
}

int kv_bucket_create(kv_client* client, const char* name) try {
  return Control(client, name, [](kv::Client& c, std::string_view n) { return c.CreateBucket(n); });
}
KV_CATCH_ALL

int kv_bucket_create_mirror(kv_client* client, const char* name, const char* url,
                            const char* prefix, const char* password_file) try {
  if (url == nullptr) return Null("url");
  kv::Upstream upstream;
  upstream.url = url;
  if (prefix != nullptr) upstream.prefix = std::string(prefix);
  if (password_file != nullptr) upstream.password_file = password_file;
  return Control(client, name,
                 [&](kv::Client& c, std::string_view n) { return c.CreateBucket(n, upstream); });
}
KV_CATCH_ALL

int kv_bucket_drop(kv_client* client, const char* name) try {
  return Control(client, name, [](kv::Client& c, std::string_view n) { return c.DropBucket(n); });
}
KV_CATCH_ALL

int kv_bucket_restart(kv_client* client, const char* name) try {
  return Control(client, name,
                 [](kv::Client& c, std::string_view n) { return c.RestartBucket(n); });
}
KV_CATCH_ALL

int kv_bucket_open(kv_client* client, const char* name, kv_bucket** bucket) try {
  if (bucket == nullptr) return Null("bucket");
  *bucket = nullptr;
  if (client == nullptr) return Null("client");
  if (name == nullptr) return Null("name");
  kv::Result<kv::Bucket> opened = client->client->OpenBucket(name);
  if (!opened.ok()) return Report(opened.status());
  *bucket = new kv_bucket{std::move(opened).value()};
  return Report(kv::Status());
}
KV_CATCH_ALL

int kv_bucket_dup(kv_bucket* bucket, kv_bucket** copy) try {
  if (copy == nullptr) return Null("copy");
  *copy = nullptr;
  if (bucket == nullptr) return Null("bucket");
  *copy = new kv_bucket{bucket->bucket};
  return Report(kv::Status());
}
KV_CATCH_ALL

void kv_bucket_close(kv_bucket* bucket) {
  try {
    delete bucket;
  } catch (...) {
    // As kv_client_close.
  }
}

int kv_get(kv_bucket* bucket, const void* key, size_t key_len, void** value,
           size_t* value_len) try {
  return GetImpl(bucket, key, key_len, value, value_len, nullptr);
}
KV_CATCH_ALL

int kv_get_versioned(kv_bucket* bucket, const void* key, size_t key_len, void** value,
                     size_t* value_len, uint64_t* version) try {
  if (version != nullptr) *version = 0;
  return GetImpl(bucket, key, key_len, value, value_len, version);
}
KV_CATCH_ALL

int kv_get_buf(kv_bucket* bucket, const void* key, size_t key_len, void* buf, size_t buf_size,
               size_t* value_len) try {
  if (value_len == nullptr) return Null("value_len");
  *value_len = 0;
  if (bucket == nullptr) return Null("bucket");
  if (BadBytes(key, key_len)) return Null("key");
  if (buf == nullptr && buf_size != 0) return Null("buf");
  return Report(
      bucket->bucket.Get(Bytes(key, key_len), static_cast<char*>(buf), buf_size, value_len));
}
KV_CATCH_ALL

int kv_scan(kv_bucket* bucket, const void* prefix, size_t prefix_len,
            int (*fn)(void* ctx, const void* key, size_t key_len, const void* value,
                      size_t value_len),
            void* ctx) try {
  if (bucket == nullptr) return Null("bucket");
  if (fn == nullptr) return Null("fn");
  if (BadBytes(prefix, prefix_len)) return Null("prefix");
  return Report(
      bucket->bucket.Scan(Bytes(prefix, prefix_len), [&](std::string_view k, std::string_view v) {
        return fn(ctx, k.data(), k.size(), v.data(), v.size()) == 0;
      }));
}
KV_CATCH_ALL

int kv_stats(kv_bucket* bucket, kv_stat* stat) try {
  if (bucket == nullptr) return Null("bucket");
  if (stat == nullptr) return Null("stat");
  std::memset(stat, 0, sizeof *stat);
  kv::Result<kv::BucketStats> s = bucket->bucket.Stats();
  if (!s.ok()) return Report(s.status());
  stat->keys = s->keys;
  stat->generation = s->generation;
  stat->memory_bytes = s->memory_bytes;
  stat->used_bytes = s->used_bytes;
  stat->live_bytes = s->live_bytes;
  stat->writes = s->writes;
  return Report(kv::Status());
}
KV_CATCH_ALL

int kv_put(kv_bucket* bucket, const void* key, size_t key_len, const void* value,
           size_t value_len) try {
  if (bucket == nullptr) return Null("bucket");
  if (BadBytes(key, key_len)) return Null("key");
  if (BadBytes(value, value_len)) return Null("value");
  return Report(bucket->bucket.Put(Bytes(key, key_len), Bytes(value, value_len)));
}
KV_CATCH_ALL

int kv_del(kv_bucket* bucket, const void* key, size_t key_len, void** old_value,
           size_t* old_len) try {
  if (old_value != nullptr) *old_value = nullptr;
  if (old_len != nullptr) *old_len = 0;
  if (bucket == nullptr) return Null("bucket");
  if (BadBytes(key, key_len)) return Null("key");
  std::string old;
  int rc = Report(bucket->bucket.Delete(Bytes(key, key_len), old_value ? &old : nullptr));
  if (rc != KV_OK || old_value == nullptr) return rc;
  return CopyOut(old, old_value, old_len);
}
KV_CATCH_ALL

int kv_cas(kv_bucket* bucket, const void* key, size_t key_len, uint64_t expected_version,
           const void* value, size_t value_len, uint64_t* version) try {
  if (bucket == nullptr) return Null("bucket");
  if (BadBytes(key, key_len)) return Null("key");
  if (BadBytes(value, value_len)) return Null("value");
  return Report(bucket->bucket.CompareAndSet(Bytes(key, key_len), expected_version,
                                             Bytes(value, value_len), version));
}
KV_CATCH_ALL

int kv_incr(kv_bucket* bucket, const void* key, size_t key_len, int64_t delta,
            int64_t* result) try {
  if (bucket == nullptr) return Null("bucket");
  if (BadBytes(key, key_len)) return Null("key");
  kv::Result<std::int64_t> sum = bucket->bucket.Increment(Bytes(key, key_len), delta);
  if (!sum.ok()) return Report(sum.status());
  if (result != nullptr) *result = *sum;
  return Report(kv::Status());
}
KV_CATCH_ALL

int kv_clear(kv_bucket* bucket) try {
  if (bucket == nullptr) return Null("bucket");
  return Report(bucket->bucket.Clear());
}
KV_CATCH_ALL

int kv_put_async(kv_bucket* bucket, const void* key, size_t key_len, const void* value,
                 size_t value_len) try {
  if (bucket == nullptr) return Null("bucket");
  if (BadBytes(key, key_len)) return Null("key");
  if (BadBytes(value, value_len)) return Null("value");
  return Report(bucket->bucket.PutAsync(Bytes(key, key_len), Bytes(value, value_len)));
}
KV_CATCH_ALL

int kv_put_ttl(kv_bucket* bucket, const void* key, size_t key_len, const void* value,
               size_t value_len, int64_t ttl_ms) try {
  if (bucket == nullptr) return Null("bucket");
  if (BadBytes(key, key_len)) return Null("key");
  if (BadBytes(value, value_len)) return Null("value");
  return Report(bucket->bucket.Put(Bytes(key, key_len), Bytes(value, value_len),
                                   std::chrono::milliseconds(ttl_ms)));
}
KV_CATCH_ALL

int kv_put_ttl_async(kv_bucket* bucket, const void* key, size_t key_len, const void* value,
                     size_t value_len, int64_t ttl_ms) try {
  if (bucket == nullptr) return Null("bucket");
  if (BadBytes(key, key_len)) return Null("key");
  if (BadBytes(value, value_len)) return Null("value");
  return Report(bucket->bucket.PutAsync(Bytes(key, key_len), Bytes(value, value_len),
                                        std::chrono::milliseconds(ttl_ms)));
}
KV_CATCH_ALL

int kv_expire(kv_bucket* bucket, const void* key, size_t key_len, int64_t ttl_ms) try {
  if (bucket == nullptr) return Null("bucket");
  if (BadBytes(key, key_len)) return Null("key");
  return Report(bucket->bucket.Expire(Bytes(key, key_len), std::chrono::milliseconds(ttl_ms)));
}
KV_CATCH_ALL

int kv_persist(kv_bucket* bucket, const void* key, size_t key_len, int* removed) try {
  if (removed != nullptr) *removed = 0;
  if (bucket == nullptr) return Null("bucket");
  if (BadBytes(key, key_len)) return Null("key");
  kv::Result<bool> r = bucket->bucket.Persist(Bytes(key, key_len));
  if (!r.ok()) return Report(r.status());
  if (removed != nullptr) *removed = *r ? 1 : 0;
  return Report(kv::Status());
}
KV_CATCH_ALL

int kv_ttl(kv_bucket* bucket, const void* key, size_t key_len, int64_t* ttl_ms) try {
  if (ttl_ms == nullptr) return Null("ttl_ms");
  *ttl_ms = 0;
  if (bucket == nullptr) return Null("bucket");
  if (BadBytes(key, key_len)) return Null("key");
  kv::Result<std::optional<std::chrono::milliseconds>> r = bucket->bucket.Ttl(Bytes(key, key_len));
  if (!r.ok()) return Report(r.status());
  *ttl_ms = r->has_value() ? static_cast<int64_t>((*r)->count()) : -1;
  return Report(kv::Status());
}
KV_CATCH_ALL

int kv_del_async(kv_bucket* bucket, const void* key, size_t key_len) try {
  if (bucket == nullptr) return Null("bucket");
  if (BadBytes(key, key_len)) return Null("key");
  return Report(bucket->bucket.DeleteAsync(Bytes(key, key_len)));
}
KV_CATCH_ALL

int kv_flush(kv_bucket* bucket) try {
  if (bucket == nullptr) return Null("bucket");
  return Report(bucket->bucket.Flush());
}
KV_CATCH_ALL

int kv_subscribe(kv_bucket* bucket, uint64_t from_sequence, kv_subscription** sub) try {
  if (sub == nullptr) return Null("sub");
  *sub = nullptr;
  if (bucket == nullptr) return Null("bucket");
  kv::Result<kv::Subscription> opened = bucket->bucket.Subscribe(from_sequence);
  if (!opened.ok()) return Report(opened.status());
  *sub = new kv_subscription{std::move(opened).value()};
  return Report(kv::Status());
}
KV_CATCH_ALL

int kv_subscription_next(kv_subscription* sub, int timeout_ms, kv_change** change) try {
  if (change == nullptr) return Null("change");
  *change = nullptr;
  if (sub == nullptr) return Null("sub");
  kv::Change c;
  int rc = Report(sub->subscription.Next(&c, std::chrono::milliseconds(timeout_ms)));
  if (rc != KV_OK) return rc;
  return CopyOutChange(c, change);
}
KV_CATCH_ALL

int kv_subscription_try_next(kv_subscription* sub, kv_change** change) try {
  if (change == nullptr) return Null("change");
  *change = nullptr;
  if (sub == nullptr) return Null("sub");
  kv::Change c;
  int rc = Report(sub->subscription.TryNext(&c));
  if (rc != KV_OK) return rc;
  return CopyOutChange(c, change);
}
KV_CATCH_ALL

int kv_subscription_fd(kv_subscription* sub) try {
  if (sub == nullptr) return Null("sub");
  int fd = sub->subscription.fd();
  if (fd < 0) return Fail(KV_FAILED, "FAILED: cannot create the subscription's eventfd or thread");
  SetLastError("OK");
  return fd;
}
KV_CATCH_ALL

uint64_t kv_subscription_position(kv_subscription* sub) {
  try {
    return sub == nullptr ? 0 : sub->subscription.position();
  } catch (...) {
    return 0;  // position() takes a mutex; a failure to lock leaves nothing to report
  }
}

void kv_change_free(kv_change* change) { std::free(change); }

void kv_subscription_close(kv_subscription* sub) {
  try {
    delete sub;
  } catch (...) {
    // As kv_client_close.
  }
}

int kv_batch_create(kv_batch** batch) try {
  if (batch == nullptr) return Null("batch");
  *batch = new kv_batch{};
  return Report(kv::Status());
}
KV_CATCH_ALL

// The batch's argument error (WriteBatch keeps the first: every later add reports it too).
static int BatchAdded(kv_batch* batch) { return Report(batch->batch.error()); }

int kv_batch_put(kv_batch* batch, const void* key, size_t key_len, const void* value,
                 size_t value_len) try {
  if (batch == nullptr) return Null("batch");
  if (BadBytes(key, key_len)) return Null("key");
  if (BadBytes(value, value_len)) return Null("value");
  batch->batch.Put(Bytes(key, key_len), Bytes(value, value_len));
  return BatchAdded(batch);
}
KV_CATCH_ALL

int kv_batch_del(kv_batch* batch, const void* key, size_t key_len) try {
  if (batch == nullptr) return Null("batch");
  if (BadBytes(key, key_len)) return Null("key");
  batch->batch.Delete(Bytes(key, key_len));
  return BatchAdded(batch);
}
KV_CATCH_ALL

int kv_batch_cas(kv_batch* batch, const void* key, size_t key_len, uint64_t expected_version,
                 const void* value, size_t value_len) try {
  if (batch == nullptr) return Null("batch");
  if (BadBytes(key, key_len)) return Null("key");
  if (BadBytes(value, value_len)) return Null("value");
  batch->batch.Cas(Bytes(key, key_len), expected_version, Bytes(value, value_len));
  return BatchAdded(batch);
}
KV_CATCH_ALL

size_t kv_batch_count(const kv_batch* batch) { return batch == nullptr ? 0 : batch->batch.Count(); }

void kv_batch_free(kv_batch* batch) { delete batch; }

int kv_bucket_write(kv_bucket* bucket, const kv_batch* batch, uint64_t* version,
                    size_t* failed_index) try {
  if (version != nullptr) *version = 0;
  if (bucket == nullptr) return Null("bucket");
  if (batch == nullptr) return Null("batch");
  return Report(bucket->bucket.Write(batch->batch, version, failed_index));
}
KV_CATCH_ALL

int kv_bucket_write_async(kv_bucket* bucket, const kv_batch* batch) try {
  if (bucket == nullptr) return Null("bucket");
  if (batch == nullptr) return Null("batch");
  return Report(bucket->bucket.WriteAsync(batch->batch));
}
KV_CATCH_ALL

int kv_bucket_snapshot(kv_bucket* bucket, kv_snapshot** snap) try {
  if (snap == nullptr) return Null("snap");
  *snap = nullptr;
  if (bucket == nullptr) return Null("bucket");
  kv::Result<kv::Snapshot> taken = bucket->bucket.Snapshot();
  if (!taken.ok()) return Report(taken.status());
  *snap = new kv_snapshot{std::move(taken).value()};
  return Report(kv::Status());
}
KV_CATCH_ALL

int kv_snapshot_get(kv_snapshot* snap, const void* key, size_t key_len, void** value,
                    size_t* value_len, uint64_t* version) try {
  if (value != nullptr) *value = nullptr;
  if (value_len != nullptr) *value_len = 0;
  if (version != nullptr) *version = 0;
  if (snap == nullptr) return Null("snap");
  if (value == nullptr) return Null("value");
  if (value_len == nullptr) return Null("value_len");
  if (BadBytes(key, key_len)) return Null("key");
  std::string v;
  int rc = Report(snap->snapshot.Get(Bytes(key, key_len), &v, version));
  if (rc != KV_OK) return rc;
  return CopyOut(v, value, value_len);
}
KV_CATCH_ALL

int kv_snapshot_scan(kv_snapshot* snap, const void* prefix, size_t prefix_len,
                     int (*fn)(void* ctx, const void* key, size_t key_len, const void* value,
                               size_t value_len),
                     void* ctx) try {
  if (snap == nullptr) return Null("snap");
  if (fn == nullptr) return Null("fn");
  if (BadBytes(prefix, prefix_len)) return Null("prefix");
  return Report(
      snap->snapshot.Scan(Bytes(prefix, prefix_len), [&](std::string_view k, std::string_view v) {
        return fn(ctx, k.data(), k.size(), v.data(), v.size()) == 0;
      }));
}
KV_CATCH_ALL

uint64_t kv_snapshot_sequence(const kv_snapshot* snap) {
  return snap == nullptr ? 0 : snap->snapshot.sequence();
}

void kv_snapshot_close(kv_snapshot* snap) {
  try {
    delete snap;
  } catch (...) {
    // As kv_client_close.
  }
}

}  // extern "C"
