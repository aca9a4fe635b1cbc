// kv::Bucket: every read and write, with its errors (missing key, bad and oversize keys and
// values, small buffers), on keys that include '\0' and '\xff'.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include "tests/client/client_testing.h"
#include "tests/testing/bucket_fixture.h"

namespace kv {
namespace {

using kv::client_testing::Get;

class BucketTest : public kv::testing::BucketFixture {};

const std::string kBinaryKey("k\0\xff", 3);
const std::string kBinaryValue("v\0\xff\0", 4);

TEST_F(BucketTest, NameAndIdDescribeTheBucket) {
  EXPECT_EQ(bucket_->name(), "b");
  EXPECT_GT(bucket_->id(), 0u);
  Bucket copy = *bucket_;
  EXPECT_EQ(copy.id(), bucket_->id());
  EXPECT_EQ(copy.name(), "b");
}

TEST_F(BucketTest, PutThenGetReturnsValueAndVersion) {
  std::uint64_t v1 = 0, v2 = 0, read = 0;
  ASSERT_TRUE(bucket_->Put(kBinaryKey, kBinaryValue, &v1).ok());
  std::string value;
  ASSERT_TRUE(bucket_->Get(kBinaryKey, &value, &read).ok());
  EXPECT_EQ(value, kBinaryValue);
  EXPECT_EQ(read, v1);
  ASSERT_TRUE(bucket_->Put(kBinaryKey, "", &v2).ok());  // empty values are values
  EXPECT_GT(v2, v1);
  ASSERT_TRUE(bucket_->Get(kBinaryKey, &value).ok());
  EXPECT_EQ(value, "");
}

TEST_F(BucketTest, MissingKeyIsNotFoundAndLeavesOutputsAlone) {
  std::string value = "unchanged";
  Status s = bucket_->Get("missing", &value);
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_TRUE(s.IsNotFound());
  EXPECT_EQ(value, "unchanged");
  char buf[4];
  std::size_t size = 99;
  EXPECT_EQ(bucket_->Get("missing", buf, sizeof buf, &size).code(), Code::kNotFound);
  EXPECT_EQ(bucket_->Delete("missing").code(), Code::kNotFound);
}

TEST_F(BucketTest, BadKeysAreRefusedByEveryOperation) {
  const std::string oversize(kMaxKeySize + 1, 'k');
  std::string value;
  char buf[4];
  std::size_t size = 0;
  for (const std::string& key : {std::string(), oversize}) {
    Code want = key.empty() ? Code::kInvalidArgument : Code::kTooLarge;
    EXPECT_EQ(bucket_->Get(key, &value).code(), want);
    EXPECT_EQ(bucket_->Get(key, buf, sizeof buf, &size).code(), want);
    EXPECT_EQ(bucket_->Put(key, "v").code(), want);
    EXPECT_EQ(bucket_->Delete(key).code(), want);
    EXPECT_EQ(bucket_->CompareAndSet(key, 0, "v").code(), want);
    EXPECT_EQ(bucket_->Increment(key).status().code(), want);
    EXPECT_EQ(bucket_->PutAsync(key, "v").code(), want);
    EXPECT_EQ(bucket_->DeleteAsync(key).code(), want);
    std::vector<std::string> values;
    std::vector<Status> st = bucket_->MultiGet({key}, &values);
    ASSERT_EQ(st.size(), 1u);
    EXPECT_EQ(st[0].code(), want);
  }
  Status s = bucket_->Put(oversize, "v");
  EXPECT_NE(s.message().find(std::to_string(kMaxKeySize)), std::string::npos) << s.ToString();
  const std::string longest(kMaxKeySize, 'k');
  ASSERT_TRUE(bucket_->Put(longest, "v").ok());
  EXPECT_EQ(Get(*bucket_, longest), "v");
}

TEST_F(BucketTest, OversizeValueIsTooLargeAndStoresNothing) {
  const std::string oversize(kMaxValueSize + 1, 'v');
  Status s = bucket_->Put("k", oversize);
  EXPECT_EQ(s.code(), Code::kTooLarge);
  EXPECT_NE(s.message().find(std::to_string(kMaxValueSize)), std::string::npos) << s.ToString();
  EXPECT_EQ(bucket_->CompareAndSet("k", 0, oversize).code(), Code::kTooLarge);
  EXPECT_EQ(bucket_->PutAsync("k", oversize).code(), Code::kTooLarge);
  ASSERT_TRUE(bucket_->Flush().ok());
  EXPECT_EQ(Get(*bucket_, "k"), "NOT_FOUND");
  const std::string big(64 * 1024, 'v');
  ASSERT_TRUE(bucket_->Put("k", big).ok());
  EXPECT_EQ(Get(*bucket_, "k"), big);
}

TEST_F(BucketTest, BufferGetCopiesOrReportsTheSizeNeeded) {
  ASSERT_TRUE(bucket_->Put("k", "12345").ok());
  char buf[8];
  std::size_t size = 0;
  ASSERT_TRUE(bucket_->Get("k", buf, sizeof buf, &size).ok());
  EXPECT_EQ(std::string(buf, size), "12345");
  ASSERT_TRUE(bucket_->Get("k", buf, 5, &size).ok());  // exact fit
  EXPECT_EQ(size, 5u);
  std::memset(buf, '-', sizeof buf);
  EXPECT_EQ(bucket_->Get("k", buf, 4, &size).code(), Code::kTooLarge);
  EXPECT_EQ(size, 5u);
  EXPECT_EQ(buf[0], '-');  // nothing copied
  ASSERT_TRUE(bucket_->Put("empty", "").ok());
  ASSERT_TRUE(bucket_->Get("empty", nullptr, 0, &size).ok());
  EXPECT_EQ(size, 0u);
}

TEST_F(BucketTest, StringGetReusesCapacity) {
  ASSERT_TRUE(bucket_->Put("k", "short").ok());
  std::string value;
  value.reserve(1000);
  const char* data = value.data();
  ASSERT_TRUE(bucket_->Get("k", &value).ok());
  EXPECT_EQ(value, "short");
  EXPECT_EQ(value.data(), data);
}

TEST_F(BucketTest, MultiGetReportsEachKey) {
  ASSERT_TRUE(bucket_->Put("a", "1").ok());
  ASSERT_TRUE(bucket_->Put(kBinaryKey, kBinaryValue).ok());
  std::vector<std::string> values = {"stale", "stale", "stale", "stale"};
  std::vector<Status> st = bucket_->MultiGet({"a", "missing", kBinaryKey, ""}, &values);
  ASSERT_EQ(st.size(), 4u);
  ASSERT_EQ(values.size(), 4u);
  EXPECT_TRUE(st[0].ok());
  EXPECT_EQ(values[0], "1");
  EXPECT_EQ(st[1].code(), Code::kNotFound);
  EXPECT_TRUE(st[2].ok());
  EXPECT_EQ(values[2], kBinaryValue);
  EXPECT_EQ(st[3].code(), Code::kInvalidArgument);
  EXPECT_TRUE(bucket_->MultiGet({}, &values).empty());
  EXPECT_TRUE(values.empty());
}

TEST_F(BucketTest, ScanVisitsMatchingKeysOnceAndStopsWhenAsked) {
  std::map<std::string, std::string> model;
  for (int i = 0; i < 300; ++i) {
    std::string key = (i % 2 ? "p:" : "q:") + std::to_string(i) + std::string("\0\xff", 2);
    ASSERT_TRUE(bucket_->Put(key, std::to_string(i)).ok());
    model[key] = std::to_string(i);
  }
  std::map<std::string, std::string> seen;
  ASSERT_TRUE(bucket_
                  ->Scan("p:",
                         [&](std::string_view k, std::string_view v) {
                           EXPECT_TRUE(seen.emplace(k, v).second) << k;
                           return true;
                         })
                  .ok());
  EXPECT_EQ(seen.size(), 150u);
  for (const auto& [k, v] : seen) EXPECT_EQ(model.at(k), v);
  int calls = 0;
  ASSERT_TRUE(
      bucket_->Scan("", [&](std::string_view, std::string_view) { return ++calls < 7; }).ok());
  EXPECT_EQ(calls, 7);
  calls = 0;
  ASSERT_TRUE(
      bucket_->Scan("zzz", [&](std::string_view, std::string_view) { return ++calls; }).ok());
  EXPECT_EQ(calls, 0);
}

TEST_F(BucketTest, StatsCountKeysAndWrites) {
  Result<BucketStats> before = bucket_->Stats();
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->keys, 0u);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(bucket_->Put("k" + std::to_string(i), "v").ok());
  ASSERT_TRUE(bucket_->Delete("k0").ok());
  Result<BucketStats> after = bucket_->Stats();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->keys, 9u);
  EXPECT_EQ(after->writes, before->writes + 11);
  EXPECT_GE(after->generation, 1u);
  EXPECT_GT(after->memory_bytes, 0u);
  EXPECT_GE(after->used_bytes, after->live_bytes);
  EXPECT_GT(after->live_bytes, 0u);
}

// The queue depth gauge: requests that waited while the worker was stopped are taken in one look
// once it runs again; the gauge shows them within its one-second window, then 0 once idle.
TEST_F(BucketTest, QueueDepthShowsRequestsThatWaitedThenZeroWhenIdle) {
  ASSERT_TRUE(bucket_->Put("k", "v").ok());  // the write channel exists before the worker stops
  pid_t worker = kvd_.WorkerPid("b");
  ASSERT_GT(worker, 0);
  ASSERT_EQ(::kill(worker, SIGSTOP), 0);
  for (int i = 0; i < 100; ++i) {
    Status s = bucket_->PutAsync("q" + std::to_string(i), "v");
    if (!s.ok()) {
      ::kill(worker, SIGCONT);
      FAIL() << s.ToString();
    }
  }
  ASSERT_EQ(::kill(worker, SIGCONT), 0);
  ASSERT_TRUE(bucket_->Flush().ok());
  auto depth = [&] {
    Result<BucketStats> stats = bucket_->Stats();
    return stats.ok() ? stats->queue_depth : ~std::uint64_t{0};
  };
  std::uint64_t seen = 0;
  EXPECT_TRUE(
      kv::testing::WaitFor([&] { return (seen = depth()) >= 100; }, std::chrono::seconds(5)))
      << "queue depth " << seen;
  EXPECT_TRUE(kv::testing::WaitFor([&] { return (seen = depth()) == 0; }, std::chrono::seconds(5)))
      << "queue depth " << seen;
  Result<InstanceStatus> status = client_->GetStatus();
  ASSERT_TRUE(status.ok());
  ASSERT_EQ(status->buckets.size(), 1u);
  EXPECT_EQ(status->buckets[0].queue_depth, 0u);
}

TEST_F(BucketTest, DeleteReturnsTheOldValue) {
  ASSERT_TRUE(bucket_->Put(kBinaryKey, kBinaryValue).ok());
  std::string old;
  ASSERT_TRUE(bucket_->Delete(kBinaryKey, &old).ok());
  EXPECT_EQ(old, kBinaryValue);
  EXPECT_EQ(Get(*bucket_, kBinaryKey), "NOT_FOUND");
  old = "unchanged";
  EXPECT_EQ(bucket_->Delete(kBinaryKey, &old).code(), Code::kNotFound);
  EXPECT_EQ(old, "unchanged");
  ASSERT_TRUE(bucket_->Put("k", "v").ok());
  EXPECT_TRUE(bucket_->Delete("k").ok());  // old value not wanted
}

TEST_F(BucketTest, CompareAndSetIsARetryLoopPrimitive) {
  std::uint64_t v = 0;
  ASSERT_TRUE(bucket_->CompareAndSet("k", 0, "a", &v).ok());  // 0: only if absent
  const std::uint64_t first = v;
  v = 12345;
  EXPECT_EQ(bucket_->CompareAndSet("k", 0, "b", &v).code(), Code::kVersionMismatch);
  EXPECT_EQ(v, first);  // the current version, to retry with
  EXPECT_EQ(bucket_->CompareAndSet("k", first + 1000, "b").code(), Code::kVersionMismatch);
  ASSERT_TRUE(bucket_->CompareAndSet("k", first, "b", &v).ok());
  EXPECT_GT(v, first);
  EXPECT_EQ(Get(*bucket_, "k"), "b");
  ASSERT_TRUE(bucket_->Delete("k").ok());
  EXPECT_EQ(bucket_->CompareAndSet("k", v, "c", &v).code(), Code::kVersionMismatch);
  EXPECT_EQ(v, 0u);  // absent
}

TEST_F(BucketTest, IncrementAddsToDecimalIntegers) {
  Result<std::int64_t> n = bucket_->Increment("n");
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(bucket_->Increment("n", 41).value(), 42);
  EXPECT_EQ(bucket_->Increment("n", -50).value(), -8);
  EXPECT_EQ(Get(*bucket_, "n"), "-8");
  ASSERT_TRUE(bucket_->Put("s", "milk").ok());
  EXPECT_EQ(bucket_->Increment("s").status().code(), Code::kNotAnInteger);
  ASSERT_TRUE(bucket_->Put("max", "9223372036854775807").ok());
  EXPECT_EQ(bucket_->Increment("max").status().code(), Code::kNotAnInteger);
  EXPECT_EQ(Get(*bucket_, "max"), "9223372036854775807");
}

TEST_F(BucketTest, ClearRemovesEveryKey) {
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(bucket_->Put("k" + std::to_string(i), "v").ok());
  ASSERT_TRUE(bucket_->Clear().ok());
  EXPECT_EQ(bucket_->Stats()->keys, 0u);
  EXPECT_EQ(Get(*bucket_, "k1"), "NOT_FOUND");
  ASSERT_TRUE(bucket_->Clear().ok());  // clearing an empty bucket is fine
  ASSERT_TRUE(bucket_->Put("k1", "again").ok());
  EXPECT_EQ(Get(*bucket_, "k1"), "again");
}

TEST_F(BucketTest, AsyncWritesAreVisibleAfterFlush) {
  for (int i = 0; i < 500; ++i) {
    ASSERT_TRUE(bucket_->PutAsync("k" + std::to_string(i), std::to_string(i)).ok());
  }
  ASSERT_TRUE(bucket_->DeleteAsync("k7").ok());
  ASSERT_TRUE(bucket_->DeleteAsync("never-existed").ok());  // a miss is not a failure
  ASSERT_TRUE(bucket_->Flush().ok());
  EXPECT_EQ(Get(*bucket_, "k7"), "NOT_FOUND");
  EXPECT_EQ(Get(*bucket_, "k499"), "499");
  EXPECT_EQ(bucket_->Stats()->keys, 499u);
  ASSERT_TRUE(bucket_->Flush().ok());  // an empty flush
}

TEST(BucketLimitTest, FullBucketIsBucketFullAndFlushReportsAsyncFailuresOnce) {
  kv::testing::KvdInstance kvd({"--max-bucket-bytes", "131072"});
  auto client = kvd.NewClient();
  Status created = client->CreateBucket("small");
  ASSERT_TRUE(created.ok()) << created.ToString();
  Result<Bucket> b = client->OpenBucket("small");
  ASSERT_TRUE(b.ok());
  const std::string value(1000, 'v');
  int stored = 0;
  Status s;
  while ((s = b->Put("k" + std::to_string(stored), value)).ok()) ++stored;
  EXPECT_EQ(s.code(), Code::kBucketFull) << s.ToString();
  EXPECT_EQ(b->CompareAndSet("new", 0, value).code(), Code::kBucketFull);
  ASSERT_TRUE(b->PutAsync("more", value).ok());
  Status flushed = b->Flush();
  EXPECT_EQ(flushed.code(), Code::kFailed) << flushed.ToString();
  EXPECT_TRUE(b->Flush().ok());
  EXPECT_EQ(Get(*b, "k0"), value);  // nothing stored was lost
}

// The generations of this bucket's table that this process maps (/proc/self/maps).
std::set<std::uint64_t> MappedGenerations(const std::string& ns, std::uint64_t id) {
  std::set<std::uint64_t> out;
  std::ifstream maps("/proc/self/maps");
  const std::string prefix = "/dev/shm/" + ns + ".b" + std::to_string(id) + ".g";
  for (std::string line; std::getline(maps, line);) {
    std::size_t at = line.find(prefix);
    if (at != std::string::npos) out.insert(std::stoull(line.substr(at + prefix.size())));
  }
  return out;
}

// A handle that only writes follows the table to its new generations, so a replaced generation's
// memory is not kept allocated by it (only readers used to remap).
TEST_F(BucketTest, AHandleThatOnlyWritesMapsTheCurrentGeneration) {
  auto generation = [&] {
    Result<InstanceStatus> st = client_->GetStatus();  // maps the table only during the call
    return st.ok() && st->buckets.size() == 1 ? st->buckets[0].generation : 0;
  };
  const std::string value(200, 'v');
  std::uint64_t first = generation();
  for (int i = 0; generation() < first + 3; ++i) {
    ASSERT_LT(i, 1'000'000) << "the table did not move to a new generation";
    ASSERT_TRUE(bucket_->Put("k" + std::to_string(i % 100), value).ok());
  }
  std::uint64_t before = generation();
  ASSERT_TRUE(bucket_->Put("last", value).ok());
  std::set<std::uint64_t> mapped = MappedGenerations(kvd_.ns(), bucket_->id());
  ASSERT_EQ(mapped.size(), 1u);
  EXPECT_GE(*mapped.begin(), before);
}

TEST_F(BucketTest, CopiesAndMovesShareTheBucket) {
  Bucket copy = *bucket_;
  ASSERT_TRUE(copy.Put("k", "from copy").ok());
  EXPECT_EQ(Get(*bucket_, "k"), "from copy");
  Bucket moved = std::move(copy);
  ASSERT_TRUE(moved.Put("k", "from moved").ok());
  EXPECT_EQ(Get(*bucket_, "k"), "from moved");
  Bucket assigned = *bucket_;
  assigned = moved;
  EXPECT_EQ(Get(assigned, "k"), "from moved");
  Result<Bucket> second = client_->OpenBucket("b");  // a handle with a channel of its own
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(second->PutAsync("a", "1").ok());
  ASSERT_TRUE(second->Flush().ok());
  EXPECT_EQ(Get(*bucket_, "a"), "1");
}

TEST_F(BucketTest, AHandleOutlivesItsClient) {
  Bucket b = *bucket_;
  bucket_.reset();
  client_.reset();
  ASSERT_TRUE(b.Put("k", "v").ok());
  EXPECT_EQ(Get(b, "k"), "v");
}

}  // namespace
}  // namespace kv
