// Every write op through a real worker: cas, incr, clear, async writes with flush; and the
// read-side helpers (scan, multi_get, stats, allocation-free get).
#include <gtest/gtest.h>

#include <map>

#include "tests/testing/bucket_fixture.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

class WriteOpsTest : public kv::testing::BucketFixture {};

TEST_F(WriteOpsTest, CompareAndSetFollowsVersions) {
  std::uint64_t v = 0;
  ASSERT_TRUE(bucket_->CompareAndSet("k", 0, "a", &v).ok());
  std::uint64_t first = v;
  EXPECT_EQ(bucket_->CompareAndSet("k", 0, "b", &v).code(), Code::kVersionMismatch);
  EXPECT_EQ(v, first);
  std::string value;
  std::uint64_t read_version = 0;
  ASSERT_TRUE(bucket_->Get("k", &value, &read_version).ok());
  EXPECT_EQ(read_version, first);
  ASSERT_TRUE(bucket_->CompareAndSet("k", first, "c", &v).ok());
  EXPECT_GT(v, first);
  ASSERT_TRUE(bucket_->Get("k", &value).ok());
  EXPECT_EQ(value, "c");
}

TEST_F(WriteOpsTest, IncrementCountsAndRefusesNonIntegers) {
  EXPECT_EQ(bucket_->Increment("n").value(), 1);
  EXPECT_EQ(bucket_->Increment("n", 41).value(), 42);
  EXPECT_EQ(bucket_->Increment("n", -50).value(), -8);
  ASSERT_TRUE(bucket_->Put("s", "milk").ok());
  EXPECT_EQ(bucket_->Increment("s").status().code(), Code::kNotAnInteger);
  ASSERT_TRUE(bucket_->Put("big", "9223372036854775807").ok());
  EXPECT_EQ(bucket_->Increment("big").status().code(), Code::kNotAnInteger);
  std::string value;
  ASSERT_TRUE(bucket_->Get("s", &value).ok());
  EXPECT_EQ(value, "milk");  // a refused incr changes nothing
}

TEST_F(WriteOpsTest, ClearRemovesEverything) {
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(bucket_->Put("k" + std::to_string(i), "v").ok());
  ASSERT_TRUE(bucket_->Clear().ok());
  std::string value;
  EXPECT_EQ(bucket_->Get("k1", &value).code(), Code::kNotFound);
  EXPECT_EQ(bucket_->Stats()->keys, 0u);
  ASSERT_TRUE(bucket_->Put("after", "clear").ok());
  EXPECT_EQ(bucket_->Stats()->keys, 1u);
}

TEST_F(WriteOpsTest, AsyncPutsAreVisibleAfterFlush) {
  for (int i = 0; i < 10000; ++i) {
    ASSERT_TRUE(bucket_->PutAsync("k" + std::to_string(i), std::to_string(i)).ok()) << i;
  }
  ASSERT_TRUE(bucket_->DeleteAsync("k0").ok());
  ASSERT_TRUE(bucket_->DeleteAsync("never-existed").ok());
  ASSERT_TRUE(bucket_->Flush().ok());
  std::string value;
  EXPECT_EQ(bucket_->Get("k0", &value).code(), Code::kNotFound);
  for (int i = 1; i < 10000; i += 101) {
    ASSERT_TRUE(bucket_->Get("k" + std::to_string(i), &value).ok());
    EXPECT_EQ(value, std::to_string(i));
  }
}

TEST(WriteOpsLimitTest, FullBucketRefusesWritesAndFlushReportsAsyncFailures) {
  kv::testing::KvdInstance kvd({"--max-bucket-bytes", "131072"});
  auto client = kvd.NewClient();
  ASSERT_TRUE(client->CreateBucket("small").ok());
  Result<Bucket> b = client->OpenBucket("small");
  ASSERT_TRUE(b.ok());
  std::string value(1000, 'v');
  int stored = 0;
  Status s;
  while ((s = b->Put("k" + std::to_string(stored), value)).ok()) ++stored;
  EXPECT_EQ(s.code(), Code::kBucketFull) << s.ToString();
  EXPECT_GT(stored, 50);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(b->PutAsync("more" + std::to_string(i), value).ok());
  Status flushed = b->Flush();
  EXPECT_EQ(flushed.code(), Code::kFailed) << flushed.ToString();
  EXPECT_NE(flushed.message().find("BUCKET_FULL"), std::string::npos) << flushed.ToString();
  EXPECT_TRUE(b->Flush().ok());  // failures are reported once
  // Nothing stored was lost, and deletes still work on a full bucket.
  std::string got;
  for (int i = 0; i < stored; ++i) ASSERT_TRUE(b->Get("k" + std::to_string(i), &got).ok()) << i;
  EXPECT_TRUE(b->Delete("k0").ok());
}

TEST_F(WriteOpsTest, ScanSeesEveryKeyOnceWithPrefix) {
  std::map<std::string, std::string> model;
  for (int i = 0; i < 3000; ++i) {
    std::string key = (i % 3 == 0 ? "user:" : "item:") + std::to_string(i);
    ASSERT_TRUE(bucket_->Put(key, std::to_string(i)).ok());
    model[key] = std::to_string(i);
  }
  std::map<std::string, std::string> seen;
  ASSERT_TRUE(bucket_
                  ->Scan("user:",
                         [&](std::string_view k, std::string_view v) {
                           EXPECT_TRUE(seen.emplace(std::string(k), std::string(v)).second);
                           return true;
                         })
                  .ok());
  EXPECT_EQ(seen.size(), 1000u);
  for (const auto& [k, v] : seen) EXPECT_EQ(model[k], v);
  int count = 0;
  ASSERT_TRUE(
      bucket_->Scan("", [&](std::string_view, std::string_view) { return ++count < 10; }).ok());
  EXPECT_EQ(count, 10);
}

TEST_F(WriteOpsTest, MultiGetAndBufferGet) {
  ASSERT_TRUE(bucket_->Put("a", "1").ok());
  ASSERT_TRUE(bucket_->Put("c", "333").ok());
  std::vector<std::string> values;
  std::vector<Status> st = bucket_->MultiGet({"a", "b", "c"}, &values);
  ASSERT_EQ(st.size(), 3u);
  EXPECT_TRUE(st[0].ok());
  EXPECT_EQ(st[1].code(), Code::kNotFound);
  EXPECT_EQ(values[2], "333");
  char buf[2];
  std::size_t size = 0;
  EXPECT_EQ(bucket_->Get("c", buf, sizeof buf, &size).code(), Code::kTooLarge);
  EXPECT_EQ(size, 3u);
  ASSERT_TRUE(bucket_->Get("a", buf, sizeof buf, &size).ok());
  EXPECT_EQ(std::string(buf, size), "1");
}

}  // namespace
}  // namespace kv
