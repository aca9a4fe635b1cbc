// The C ABI (kv/kv.h): every entry point, its result codes, NULL handling, and memory ownership
// (run under ASan: every kv_get/kv_del buffer is freed with kv_free, misses allocate nothing).
#include "kv/kv.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <string>

#include "shm/change_feed.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

// The value of `key`, or the result code's word ("NOT_FOUND", ...).
std::string CGet(kv_bucket* b, const std::string& key) {
  void* value = nullptr;
  size_t len = 0;
  int rc = kv_get(b, key.data(), key.size(), &value, &len);
  if (rc != KV_OK) {
    EXPECT_EQ(value, nullptr);
    EXPECT_EQ(len, 0u);
    std::string word = kv_strerror(rc);
    return word.substr(0, word.find(':'));
  }
  EXPECT_EQ(static_cast<const char*>(value)[len], '\0');
  std::string out(static_cast<const char*>(value), len);
  kv_free(value);
  return out;
}

class CApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(kv_client_open(kvd_.ns().c_str(), 5000, &client_), KV_OK) << kv_last_error();
    ASSERT_EQ(kv_bucket_create(client_, "b"), KV_OK) << kv_last_error();
    ASSERT_EQ(kv_bucket_open(client_, "b", &bucket_), KV_OK) << kv_last_error();
  }
  void TearDown() override {
    kv_bucket_close(bucket_);
    kv_client_close(client_);
  }

  kv::testing::KvdInstance kvd_;
  kv_client* client_ = nullptr;
  kv_bucket* bucket_ = nullptr;
};

TEST(CApiErrorsTest, CodesMirrorTheCppCodesAndHaveWords) {
  const std::map<int, Code> codes = {{KV_NOTFOUND, Code::kNotFound},
                                     {KV_NO_BUCKET, Code::kBucketNotFound},
                                     {KV_INVALID, Code::kInvalidArgument},
                                     {KV_TOO_LARGE, Code::kTooLarge},
                                     {KV_BUCKET_FULL, Code::kBucketFull},
                                     {KV_TIMEOUT, Code::kTimeout},
                                     {KV_UNAVAILABLE, Code::kUnavailable},
                                     {KV_VERSION_MISMATCH, Code::kVersionMismatch},
                                     {KV_NOT_AN_INTEGER, Code::kNotAnInteger},
                                     {KV_PERMISSION, Code::kPermissionDenied},
                                     {KV_CORRUPT, Code::kCorrupt},
                                     {KV_FAILED, Code::kFailed},
                                     {KV_INTERNAL, Code::kInternal}};
  for (const auto& [rc, code] : codes) {
    EXPECT_LT(rc, 0);
    EXPECT_EQ(rc, -static_cast<int>(code));
    std::string message = kv_strerror(rc);
    EXPECT_EQ(message.rfind(std::string(CodeName(code)) + ": ", 0), 0u) << message;
  }
  EXPECT_STREQ(kv_strerror(KV_OK), "OK");
  EXPECT_EQ(std::string(kv_strerror(12345)).rfind("UNKNOWN", 0), 0u);
  EXPECT_EQ(std::string(kv_strerror(-12345)).rfind("UNKNOWN", 0), 0u);
  EXPECT_EQ(KV_MAX_KEY_SIZE, kMaxKeySize);
  EXPECT_EQ(KV_MAX_VALUE_SIZE, kMaxValueSize);
  EXPECT_EQ(KV_MAX_BUCKET_NAME_SIZE, kMaxBucketNameSize);
  kv_free(nullptr);
  kv_client_close(nullptr);
  kv_bucket_close(nullptr);
}

TEST(CApiOpenTest, BadOrDeadNamespaceFailsWithNullHandle) {
  kv_client* client = reinterpret_cast<kv_client*>(0x1);
  EXPECT_EQ(kv_client_open("bad/namespace", 0, &client), KV_INVALID);
  EXPECT_EQ(client, nullptr);
  EXPECT_EQ(std::string(kv_last_error()).rfind("INVALID: namespace", 0), 0u) << kv_last_error();
  std::string ns = kv::testing::UniqueNamespace();
  EXPECT_EQ(kv_client_open(ns.c_str(), 0, &client), KV_UNAVAILABLE);
  EXPECT_NE(std::string(kv_last_error()).find(ns), std::string::npos) << kv_last_error();
  EXPECT_EQ(kv_client_open(ns.c_str(), 0, nullptr), KV_INVALID);
}

TEST(CApiOpenTest, NullNamespaceMeansTheEnvironment) {
  kv::testing::KvdInstance kvd;
  ::setenv("KV_NAMESPACE", kvd.ns().c_str(), 1);
  kv_client* client = nullptr;
  int rc = kv_client_open(nullptr, 0, &client);
  ::unsetenv("KV_NAMESPACE");
  ASSERT_EQ(rc, KV_OK) << kv_last_error();
  EXPECT_STREQ(kv_last_error(), "OK");
  EXPECT_EQ(kv_bucket_create(client, "x"), KV_OK);
  kv_client_close(client);
}

TEST_F(CApiTest, BucketLifecycle) {
  kv_bucket* b = reinterpret_cast<kv_bucket*>(0x1);
  EXPECT_EQ(kv_bucket_open(client_, "nope", &b), KV_NO_BUCKET);
  EXPECT_EQ(b, nullptr);
  EXPECT_NE(std::string(kv_last_error()).find("nope"), std::string::npos) << kv_last_error();
  EXPECT_EQ(kv_bucket_create(client_, "bad name"), KV_INVALID);
  EXPECT_EQ(kv_bucket_drop(client_, "nope"), KV_NO_BUCKET);
  EXPECT_EQ(kv_bucket_restart(client_, "nope"), KV_NO_BUCKET);
  ASSERT_EQ(kv_bucket_create(client_, "c"), KV_OK);
  ASSERT_EQ(kv_bucket_create(client_, "c"), KV_OK);
  ASSERT_EQ(kv_bucket_open(client_, "c", &b), KV_OK);
  ASSERT_EQ(kv_put(b, "k", 1, "v", 1), KV_OK);
  ASSERT_EQ(kv_bucket_restart(client_, "c"), KV_OK) << kv_last_error();
  EXPECT_EQ(CGet(b, "k"), "v");
  ASSERT_EQ(kv_bucket_drop(client_, "c"), KV_OK);
  EXPECT_EQ(CGet(b, "k"), "NO_BUCKET");  // a stale handle
  EXPECT_NE(kv_put(b, "k", 1, "v", 1), KV_OK);
  kv_bucket_close(b);
}

TEST_F(CApiTest, GetPutDelRoundTripBinarySafe) {
  const std::string key("k\0\xff", 3), value("v\0\xff\0", 4);
  ASSERT_EQ(kv_put(bucket_, key.data(), key.size(), value.data(), value.size()), KV_OK);
  EXPECT_EQ(CGet(bucket_, key), value);
  uint64_t version = 0;
  void* got = nullptr;
  size_t len = 0;
  ASSERT_EQ(kv_get_versioned(bucket_, key.data(), key.size(), &got, &len, &version), KV_OK);
  EXPECT_EQ(std::string(static_cast<char*>(got), len), value);
  EXPECT_GT(version, 0u);
  kv_free(got);

  void* old = nullptr;
  size_t old_len = 0;
  ASSERT_EQ(kv_del(bucket_, key.data(), key.size(), &old, &old_len), KV_OK);
  EXPECT_EQ(std::string(static_cast<char*>(old), old_len), value);
  kv_free(old);
  EXPECT_EQ(CGet(bucket_, key), "NOT_FOUND");
  EXPECT_EQ(kv_del(bucket_, key.data(), key.size(), &old, &old_len), KV_NOTFOUND);
  EXPECT_EQ(old, nullptr);
  ASSERT_EQ(kv_put(bucket_, "k", 1, nullptr, 0), KV_OK);  // empty value
  EXPECT_EQ(CGet(bucket_, "k"), "");
  EXPECT_EQ(kv_del(bucket_, "k", 1, nullptr, nullptr), KV_OK);
}

TEST_F(CApiTest, BadArgumentsAreInvalidOrTooLarge) {
  void* value = nullptr;
  size_t len = 0;
  std::string big_key(KV_MAX_KEY_SIZE + 1, 'k');
  std::string big_value(KV_MAX_VALUE_SIZE + 1, 'v');
  EXPECT_EQ(kv_put(bucket_, "", 0, "v", 1), KV_INVALID);
  EXPECT_EQ(kv_put(bucket_, big_key.data(), big_key.size(), "v", 1), KV_TOO_LARGE);
  EXPECT_NE(std::string(kv_last_error()).find("1024"), std::string::npos) << kv_last_error();
  EXPECT_EQ(kv_put(bucket_, "k", 1, big_value.data(), big_value.size()), KV_TOO_LARGE);
  EXPECT_EQ(kv_put_async(bucket_, "k", 1, big_value.data(), big_value.size()), KV_TOO_LARGE);
  EXPECT_EQ(kv_cas(bucket_, "k", 1, 0, big_value.data(), big_value.size(), nullptr), KV_TOO_LARGE);
  EXPECT_EQ(kv_get(bucket_, big_key.data(), big_key.size(), &value, &len), KV_TOO_LARGE);
  EXPECT_EQ(kv_get(bucket_, "", 0, &value, &len), KV_INVALID);
  // NULL handles and outputs.
  EXPECT_EQ(kv_put(nullptr, "k", 1, "v", 1), KV_INVALID);
  EXPECT_EQ(std::string(kv_last_error()), "INVALID: bucket is NULL");
  EXPECT_EQ(kv_put(bucket_, nullptr, 1, "v", 1), KV_INVALID);
  EXPECT_EQ(kv_put(bucket_, "k", 1, nullptr, 1), KV_INVALID);
  EXPECT_EQ(kv_get(bucket_, "k", 1, nullptr, &len), KV_INVALID);
  EXPECT_EQ(kv_get(bucket_, "k", 1, &value, nullptr), KV_INVALID);
  EXPECT_EQ(kv_get_buf(bucket_, "k", 1, nullptr, 4, &len), KV_INVALID);
  EXPECT_EQ(kv_get_buf(bucket_, "k", 1, nullptr, 0, nullptr), KV_INVALID);
  EXPECT_EQ(kv_bucket_create(nullptr, "b"), KV_INVALID);
  EXPECT_EQ(kv_bucket_create(client_, nullptr), KV_INVALID);
  EXPECT_EQ(kv_bucket_drop(nullptr, "b"), KV_INVALID);
  EXPECT_EQ(kv_bucket_open(client_, "b", nullptr), KV_INVALID);
  EXPECT_EQ(kv_bucket_dup(nullptr, nullptr), KV_INVALID);
  EXPECT_EQ(kv_stats(bucket_, nullptr), KV_INVALID);
  EXPECT_EQ(kv_scan(bucket_, nullptr, 0, nullptr, nullptr), KV_INVALID);
  EXPECT_EQ(kv_incr(nullptr, "n", 1, 1, nullptr), KV_INVALID);
  EXPECT_EQ(kv_clear(nullptr), KV_INVALID);
  EXPECT_EQ(kv_flush(nullptr), KV_INVALID);
  EXPECT_EQ(kv_del_async(nullptr, "k", 1), KV_INVALID);
  EXPECT_EQ(kv_get(bucket_, "k", 1, &value, &len), KV_NOTFOUND);  // nothing was stored
}

TEST_F(CApiTest, BadKeysAreRefusedByEveryCall) {
  kv_stat before;
  ASSERT_EQ(kv_stats(bucket_, &before), KV_OK);
  const std::string oversize(KV_MAX_KEY_SIZE + 1, 'k');
  for (const std::string& key : {std::string(), oversize}) {
    const int want = key.empty() ? KV_INVALID : KV_TOO_LARGE;
    const char* k = key.empty() ? "" : key.data();
    void* value = nullptr;
    size_t len = 0;
    uint64_t version = 0;
    char buf[4];
    int64_t n = 0;
    EXPECT_EQ(kv_get(bucket_, k, key.size(), &value, &len), want);
    EXPECT_EQ(kv_get_versioned(bucket_, k, key.size(), &value, &len, &version), want);
    EXPECT_EQ(value, nullptr);
    EXPECT_EQ(kv_get_buf(bucket_, k, key.size(), buf, sizeof buf, &len), want);
    EXPECT_EQ(kv_put(bucket_, k, key.size(), "v", 1), want);
    EXPECT_EQ(kv_del(bucket_, k, key.size(), &value, &len), want);
    EXPECT_EQ(value, nullptr);
    EXPECT_EQ(kv_cas(bucket_, k, key.size(), 0, "v", 1, &version), want);
    EXPECT_EQ(kv_incr(bucket_, k, key.size(), 1, &n), want);
    EXPECT_EQ(kv_put_async(bucket_, k, key.size(), "v", 1), want);
    EXPECT_EQ(kv_del_async(bucket_, k, key.size()), want);
  }
  EXPECT_EQ(kv_flush(bucket_), KV_OK);  // refused writes were never queued
  kv_stat stat;
  ASSERT_EQ(kv_stats(bucket_, &stat), KV_OK);
  EXPECT_EQ(stat.keys, 0u);
  EXPECT_EQ(stat.writes, before.writes);
  const std::string longest(KV_MAX_KEY_SIZE, 'k');
  ASSERT_EQ(kv_put(bucket_, longest.data(), longest.size(), "v", 1), KV_OK) << kv_last_error();
  EXPECT_EQ(CGet(bucket_, longest), "v");
}

TEST_F(CApiTest, MissingKeyIsNotFoundForEveryRead) {
  void* value = reinterpret_cast<void*>(0x1);
  size_t len = 99;
  uint64_t version = 99;
  EXPECT_EQ(kv_get_versioned(bucket_, "missing", 7, &value, &len, &version), KV_NOTFOUND);
  EXPECT_EQ(value, nullptr);
  EXPECT_EQ(len, 0u);
  EXPECT_EQ(version, 0u);
  EXPECT_EQ(std::string(kv_last_error()).rfind("NOT_FOUND", 0), 0u) << kv_last_error();
  char buf[4];
  EXPECT_EQ(kv_get_buf(bucket_, "missing", 7, buf, sizeof buf, &len), KV_NOTFOUND);
  EXPECT_EQ(kv_del(bucket_, "missing", 7, nullptr, nullptr), KV_NOTFOUND);
  EXPECT_EQ(kv_del_async(bucket_, "missing", 7), KV_OK);  // a miss is not a failure
  EXPECT_EQ(kv_flush(bucket_), KV_OK);
}

TEST_F(CApiTest, StaleHandleAfterDropFailsEveryCall) {
  ASSERT_EQ(kv_put(bucket_, "k", 1, "v", 1), KV_OK);
  kv_bucket* copy = nullptr;
  ASSERT_EQ(kv_bucket_dup(bucket_, &copy), KV_OK);
  ASSERT_EQ(kv_bucket_drop(client_, "b"), KV_OK) << kv_last_error();

  // Reads: exactly KV_NO_BUCKET, outputs cleared.
  void* value = reinterpret_cast<void*>(0x1);
  size_t len = 99;
  uint64_t version = 0;
  EXPECT_EQ(kv_get(bucket_, "k", 1, &value, &len), KV_NO_BUCKET);
  EXPECT_EQ(value, nullptr);
  EXPECT_NE(std::string(kv_last_error()).find("NO_BUCKET"), std::string::npos) << kv_last_error();
  EXPECT_EQ(kv_get_versioned(copy, "k", 1, &value, &len, &version), KV_NO_BUCKET);
  char buf[8];
  EXPECT_EQ(kv_get_buf(bucket_, "k", 1, buf, sizeof buf, &len), KV_NO_BUCKET);
  auto never = [](void*, const void*, size_t, const void*, size_t) -> int {
    ADD_FAILURE() << "kv_scan called back on a dropped bucket";
    return 1;
  };
  EXPECT_EQ(kv_scan(bucket_, nullptr, 0, never, nullptr), KV_NO_BUCKET);
  kv_stat stat;
  EXPECT_EQ(kv_stats(bucket_, &stat), KV_NO_BUCKET);
  kv_subscription* sub = nullptr;
  EXPECT_EQ(kv_subscribe(bucket_, 0, &sub), KV_NO_BUCKET);

  // Writes fail too (the worker is gone); the exact code depends on how far the drop got.
  int64_t n = 0;
  EXPECT_NE(kv_put(bucket_, "k", 1, "v2", 2), KV_OK);
  EXPECT_NE(kv_del(bucket_, "k", 1, nullptr, nullptr), KV_OK);
  EXPECT_NE(kv_cas(bucket_, "k", 1, 0, "v", 1, nullptr), KV_OK);
  EXPECT_NE(kv_incr(bucket_, "n", 1, 1, &n), KV_OK);
  EXPECT_NE(kv_clear(bucket_), KV_OK);
  int async = kv_put_async(copy, "k", 1, "v", 1);
  if (async == KV_OK) async = kv_del_async(copy, "k", 1);
  if (async == KV_OK) async = kv_flush(copy);
  EXPECT_NE(async, KV_OK);

  // A new bucket of the same name is a different bucket: the stale handles never reach it.
  ASSERT_EQ(kv_bucket_create(client_, "b"), KV_OK);
  kv_bucket* fresh = nullptr;
  ASSERT_EQ(kv_bucket_open(client_, "b", &fresh), KV_OK);
  ASSERT_EQ(kv_put(fresh, "k", 1, "new", 3), KV_OK);
  EXPECT_EQ(CGet(bucket_, "k"), "NO_BUCKET");
  EXPECT_EQ(CGet(copy, "k"), "NO_BUCKET");
  EXPECT_NE(kv_put(copy, "k", 1, "stale", 5), KV_OK);
  EXPECT_EQ(CGet(fresh, "k"), "new");
  kv_bucket_close(fresh);
  kv_bucket_close(copy);
}

TEST_F(CApiTest, BufferGetCopiesOrReportsTheSizeNeeded) {
  ASSERT_EQ(kv_put(bucket_, "k", 1, "12345", 5), KV_OK);
  char buf[8];
  size_t len = 0;
  ASSERT_EQ(kv_get_buf(bucket_, "k", 1, buf, sizeof buf, &len), KV_OK);
  EXPECT_EQ(std::string(buf, len), "12345");
  EXPECT_EQ(kv_get_buf(bucket_, "k", 1, buf, 4, &len), KV_TOO_LARGE);
  EXPECT_EQ(len, 5u);
  EXPECT_EQ(kv_get_buf(bucket_, "k", 1, nullptr, 0, &len), KV_TOO_LARGE);  // size query
  EXPECT_EQ(len, 5u);
  EXPECT_EQ(kv_get_buf(bucket_, "missing", 7, buf, sizeof buf, &len), KV_NOTFOUND);
  EXPECT_EQ(len, 0u);
}

TEST_F(CApiTest, CasIncrClearAsyncFlushStatsScan) {
  uint64_t v = 0;
  ASSERT_EQ(kv_cas(bucket_, "c", 1, 0, "a", 1, &v), KV_OK);
  uint64_t first = v;
  EXPECT_EQ(kv_cas(bucket_, "c", 1, 0, "b", 1, &v), KV_VERSION_MISMATCH);
  EXPECT_EQ(v, first);
  ASSERT_EQ(kv_cas(bucket_, "c", 1, first, "b", 1, &v), KV_OK);
  EXPECT_EQ(CGet(bucket_, "c"), "b");

  int64_t n = 0;
  ASSERT_EQ(kv_incr(bucket_, "n", 1, 5, &n), KV_OK);
  EXPECT_EQ(n, 5);
  ASSERT_EQ(kv_incr(bucket_, "n", 1, -7, &n), KV_OK);
  EXPECT_EQ(n, -2);
  EXPECT_EQ(kv_incr(bucket_, "c", 1, 1, &n), KV_NOT_AN_INTEGER);
  ASSERT_EQ(kv_incr(bucket_, "n", 1, 1, nullptr), KV_OK);

  for (int i = 0; i < 100; ++i) {
    std::string key = "a" + std::to_string(i);
    ASSERT_EQ(kv_put_async(bucket_, key.data(), key.size(), "x", 1), KV_OK);
  }
  ASSERT_EQ(kv_del_async(bucket_, "a0", 2), KV_OK);
  ASSERT_EQ(kv_flush(bucket_), KV_OK);
  EXPECT_EQ(CGet(bucket_, "a99"), "x");
  EXPECT_EQ(CGet(bucket_, "a0"), "NOT_FOUND");

  kv_stat stat;
  ASSERT_EQ(kv_stats(bucket_, &stat), KV_OK);
  EXPECT_EQ(stat.keys, 2u + 99u);
  EXPECT_GT(stat.writes, 100u);
  EXPECT_GT(stat.memory_bytes, 0u);
  EXPECT_GE(stat.generation, 1u);
  EXPECT_GE(stat.used_bytes, stat.live_bytes);

  struct Seen {
    std::map<std::string, std::string> keys;
    int stop_after = 1000;
  } seen;
  auto collect = [](void* ctx, const void* k, size_t kl, const void* val, size_t vl) -> int {
    auto* s = static_cast<Seen*>(ctx);
    s->keys.emplace(std::string(static_cast<const char*>(k), kl),
                    std::string(static_cast<const char*>(val), vl));
    return static_cast<int>(s->keys.size()) >= s->stop_after;
  };
  ASSERT_EQ(kv_scan(bucket_, "a1", 2, collect, &seen), KV_OK);
  EXPECT_EQ(seen.keys.size(), 11u);  // a1, a10..a19
  EXPECT_EQ(seen.keys["a15"], "x");
  seen.keys.clear();
  seen.stop_after = 3;
  ASSERT_EQ(kv_scan(bucket_, nullptr, 0, collect, &seen), KV_OK);
  EXPECT_EQ(seen.keys.size(), 3u);

  ASSERT_EQ(kv_clear(bucket_), KV_OK);
  ASSERT_EQ(kv_stats(bucket_, &stat), KV_OK);
  EXPECT_EQ(stat.keys, 0u);
}

TEST_F(CApiTest, DupGivesAnIndependentHandleToTheSameBucket) {
  kv_bucket* copy = nullptr;
  ASSERT_EQ(kv_bucket_dup(bucket_, &copy), KV_OK);
  ASSERT_EQ(kv_put(copy, "k", 1, "v", 1), KV_OK);
  kv_bucket_close(copy);
  EXPECT_EQ(CGet(bucket_, "k"), "v");
  kv_client_close(client_);  // buckets outlive their client
  client_ = nullptr;
  ASSERT_EQ(kv_put(bucket_, "k", 1, "w", 1), KV_OK);
  EXPECT_EQ(CGet(bucket_, "k"), "w");
}

TEST_F(CApiTest, DeadWorkerThenDeadKvd) {
  ASSERT_EQ(kv_put(bucket_, "k", 1, "v", 1), KV_OK);
  pid_t worker = kvd_.WorkerPid("b");
  ASSERT_GT(worker, 0);
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  EXPECT_EQ(CGet(bucket_, "k"), "v");  // reads are served while the worker is down
  EXPECT_TRUE(kv::testing::WaitFor([&] { return kv_put(bucket_, "k", 1, "w", 1) == KV_OK; },
                                   std::chrono::seconds(20)))
      << kv_last_error();
  EXPECT_EQ(CGet(bucket_, "k"), "w");

  kvd_.Signal(SIGKILL);
  EXPECT_EQ(CGet(bucket_, "k"), "w");
  EXPECT_EQ(kv_bucket_create(client_, "c"), KV_UNAVAILABLE);
  EXPECT_EQ(kv_bucket_drop(client_, "b"), KV_UNAVAILABLE);
  EXPECT_EQ(kv_bucket_restart(client_, "b"), KV_UNAVAILABLE);
  kv_bucket* again = nullptr;
  ASSERT_EQ(kv_bucket_open(client_, "b", &again), KV_OK);  // from the registry, without kvd
  EXPECT_EQ(CGet(again, "k"), "w");
  kv_bucket_close(again);
}

// The next change as "<kind> <key> <value>" ("PUT k v", "DELETE k", "CLEAR", "MISSED <n>",
// "RESYNC"), or the result code's word; checks the change's layout on the way.
std::string CNext(kv_subscription* sub, int timeout_ms, uint64_t* sequence = nullptr) {
  kv_change* c = nullptr;
  int rc = kv_subscription_next(sub, timeout_ms, &c);
  if (rc != KV_OK) {
    EXPECT_EQ(c, nullptr);
    std::string word = kv_strerror(rc);
    return word.substr(0, word.find(':'));
  }
  EXPECT_EQ(static_cast<const char*>(c->key)[c->key_len], '\0');
  EXPECT_EQ(static_cast<const char*>(c->value)[c->value_len], '\0');
  std::string key(static_cast<const char*>(c->key), c->key_len);
  std::string value(static_cast<const char*>(c->value), c->value_len);
  if (sequence != nullptr) *sequence = c->sequence;
  std::string out;
  switch (c->kind) {
    case KV_CHANGE_PUT:
      out = "PUT " + key + " " + value;
      break;
    case KV_CHANGE_DELETE:
      out = "DELETE " + key;
      break;
    case KV_CHANGE_CLEAR:
      out = "CLEAR";
      break;
    case KV_CHANGE_MISSED:
      out = "MISSED " + std::to_string(c->missed);
      break;
    case KV_CHANGE_RESYNC:
      out = "RESYNC";
      break;
    default:
      out = "kind " + std::to_string(c->kind);
  }
  kv_change_free(c);
  return out;
}

TEST_F(CApiTest, SubscriptionDeliversEveryChangeBinarySafe) {
  kv_subscription* sub = nullptr;
  ASSERT_EQ(kv_subscribe(bucket_, 0, &sub), KV_OK) << kv_last_error();
  uint64_t start = kv_subscription_position(sub);
  EXPECT_GT(start, 0u);
  EXPECT_EQ(CNext(sub, 0), "TIMEOUT");

  const std::string key("k\0\xff", 3), value("v\0\xff", 3);
  ASSERT_EQ(kv_put(bucket_, key.data(), key.size(), value.data(), value.size()), KV_OK);
  uint64_t v = 0;
  ASSERT_EQ(kv_cas(bucket_, "c", 1, 0, "a", 1, &v), KV_OK);
  ASSERT_EQ(kv_incr(bucket_, "n", 1, 5, nullptr), KV_OK);
  ASSERT_EQ(kv_del(bucket_, key.data(), key.size(), nullptr, nullptr), KV_OK);
  ASSERT_EQ(kv_clear(bucket_), KV_OK);
  kv_bucket_close(bucket_);  // the subscription outlives the handle it came from
  bucket_ = nullptr;

  uint64_t seq = 0;
  EXPECT_EQ(CNext(sub, 1000, &seq), "PUT " + key + " " + value);
  EXPECT_EQ(seq, start);
  EXPECT_EQ(CNext(sub, 1000, &seq), "PUT c a");  // cas: the value stored
  EXPECT_EQ(seq, start + 1);
  EXPECT_EQ(CNext(sub, 1000), "PUT n 5");  // incr: the result
  EXPECT_EQ(CNext(sub, 1000), "DELETE " + key);
  EXPECT_EQ(CNext(sub, 1000, &seq), "CLEAR");
  EXPECT_EQ(seq, start + 4);
  EXPECT_EQ(kv_subscription_position(sub), start + 5);
  EXPECT_EQ(CNext(sub, 10), "TIMEOUT");

  ASSERT_EQ(kv_bucket_drop(client_, "b"), KV_OK);
  EXPECT_EQ(CNext(sub, 2000), "NO_BUCKET");
  kv_subscription_close(sub);
}

TEST_F(CApiTest, SubscriptionFromAnOldSequenceIsToldWhatItMissed) {
  constexpr std::uint64_t kChanges = kv::shm::kFeedSlots + 904;
  for (std::uint64_t i = 0; i < kChanges; ++i) {  // more changes than the feed keeps
    std::string k = "k" + std::to_string(i);
    ASSERT_EQ(kv_put_async(bucket_, k.data(), k.size(), "x", 1), KV_OK);
  }
  ASSERT_EQ(kv_flush(bucket_), KV_OK);
  kv_subscription* sub = nullptr;
  ASSERT_EQ(kv_subscribe(bucket_, 1, &sub), KV_OK) << kv_last_error();
  uint64_t seq = 0, missed = 0;
  std::string next;
  for (;;) {  // the feed keeps the last kFeedSlots changes: the rest are reported, in order
    next = CNext(sub, 1000, &seq);
    ASSERT_EQ(seq, 1 + missed) << next;
    if (next.rfind("MISSED ", 0) != 0) break;
    missed += std::stoull(next.substr(7));
  }
  EXPECT_GE(missed, kChanges - kv::shm::kFeedSlots);
  EXPECT_EQ(next, "PUT k" + std::to_string(seq - 1) + " x");  // change n put k<n-1>
  for (uint64_t s = seq + 1; s <= kChanges; ++s) {
    ASSERT_EQ(CNext(sub, 1000), "PUT k" + std::to_string(s - 1) + " x");
  }
  EXPECT_EQ(CNext(sub, 0), "TIMEOUT");
  kv_subscription_close(sub);
}

TEST_F(CApiTest, SubscriptionBadArgumentsAreInvalid) {
  kv_subscription* sub = reinterpret_cast<kv_subscription*>(0x1);
  EXPECT_EQ(kv_subscribe(nullptr, 0, &sub), KV_INVALID);
  EXPECT_EQ(sub, nullptr);
  EXPECT_EQ(kv_subscribe(bucket_, 0, nullptr), KV_INVALID);
  kv_change* c = reinterpret_cast<kv_change*>(0x1);
  EXPECT_EQ(kv_subscription_next(nullptr, 0, &c), KV_INVALID);
  EXPECT_EQ(c, nullptr);
  ASSERT_EQ(kv_subscribe(bucket_, 0, &sub), KV_OK);
  EXPECT_EQ(kv_subscription_next(sub, 0, nullptr), KV_INVALID);
  EXPECT_EQ(kv_subscription_next(sub, -1, &c), KV_INVALID);
  EXPECT_NE(std::string(kv_last_error()).find("negative"), std::string::npos) << kv_last_error();
  EXPECT_EQ(kv_subscription_position(nullptr), 0u);
  kv_change_free(nullptr);
  kv_subscription_close(nullptr);
  kv_subscription_close(sub);
  ASSERT_EQ(kv_bucket_drop(client_, "b"), KV_OK);
  EXPECT_EQ(kv_subscribe(bucket_, 0, &sub), KV_NO_BUCKET);
  EXPECT_EQ(sub, nullptr);
}

}  // namespace
}  // namespace kv
