// The client when things go away: a dropped bucket under an open handle, kvd SIGKILLed (reads and
// writes go on; control requests are UNAVAILABLE until kvd is back), a worker SIGKILLed (reads
// are served throughout; writes wait for kvd to restart it and succeed).
#include <gtest/gtest.h>
#include <signal.h>

#include "tests/client/client_testing.h"
#include "tests/testing/bucket_fixture.h"

namespace kv {
namespace {

using kv::client_testing::Get;
using kv::testing::WaitFor;

class FaultsTest : public kv::testing::BucketFixture {};

TEST_F(FaultsTest, StaleHandleAfterDropFailsEveryOperation) {
  ASSERT_TRUE(bucket_->Put("k", "v").ok());
  Bucket copy = *bucket_;
  ASSERT_TRUE(client_->DropBucket("b").ok());

  std::string value;
  EXPECT_EQ(bucket_->Get("k", &value).code(), Code::kBucketNotFound);
  char buf[8];
  std::size_t size = 0;
  EXPECT_EQ(copy.Get("k", buf, sizeof buf, &size).code(), Code::kBucketNotFound);
  std::vector<std::string> values;
  std::vector<Status> st = bucket_->MultiGet({"k"}, &values);
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].code(), Code::kBucketNotFound);
  EXPECT_EQ(bucket_->Scan("", [](std::string_view, std::string_view) { return true; }).code(),
            Code::kBucketNotFound);
  EXPECT_EQ(bucket_->Stats().status().code(), Code::kBucketNotFound);
  // Writes fail too (the worker is gone); the exact code depends on how far the drop got.
  EXPECT_FALSE(bucket_->Put("k", "v2").ok());
  EXPECT_FALSE(bucket_->Delete("k").ok());
  EXPECT_FALSE(bucket_->CompareAndSet("k", 0, "v").ok());
  EXPECT_FALSE(bucket_->Increment("n").ok());
  EXPECT_FALSE(bucket_->Clear().ok());
  Status async = bucket_->PutAsync("k", "v");
  if (async.ok()) async = bucket_->DeleteAsync("k");
  if (async.ok()) async = bucket_->Flush();
  EXPECT_FALSE(async.ok());
  EXPECT_EQ(bucket_->Subscribe().status().code(), Code::kBucketNotFound);
  EXPECT_FALSE(copy.Flush().ok());

  // A new bucket of the same name is a different bucket: the stale handle never reaches it.
  ASSERT_TRUE(client_->CreateBucket("b").ok());
  Result<Bucket> fresh = client_->OpenBucket("b");
  ASSERT_TRUE(fresh.ok());
  EXPECT_NE(fresh->id(), bucket_->id());
  ASSERT_TRUE(fresh->Put("k", "new").ok());
  EXPECT_EQ(Get(*bucket_, "k"), "NO_BUCKET");
  EXPECT_FALSE(bucket_->Put("k", "stale").ok());
  EXPECT_EQ(Get(*fresh, "k"), "new");
}

TEST_F(FaultsTest, DeadKvdLeavesDataServedAndControlUnavailable) {
  ASSERT_TRUE(bucket_->Put("k", "v").ok());
  kvd_.Signal(SIGKILL);

  EXPECT_EQ(Get(*bucket_, "k"), "v");
  EXPECT_EQ(client_->CreateBucket("c").code(), Code::kUnavailable);
  EXPECT_EQ(client_->DropBucket("b").code(), Code::kUnavailable);
  EXPECT_EQ(client_->RestartBucket("b").code(), Code::kUnavailable);
  EXPECT_EQ(client_->Shutdown().code(), Code::kUnavailable);
  Result<InstanceStatus> status = client_->GetStatus();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->kvd_pid, 0);
  ASSERT_EQ(status->buckets.size(), 1u);
  // The worker outlives kvd: new handles open from the registry, and writes still apply.
  Result<Bucket> other = kvd_.NewClient()->OpenBucket("b");
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  EXPECT_EQ(Get(*other, "k"), "v");
  ASSERT_TRUE(bucket_->Put("k", "while kvd is down").ok());
  EXPECT_EQ(Get(*other, "k"), "while kvd is down");

  // A new kvd re-adopts the bucket; control requests work again.
  ASSERT_TRUE(kvd_.Start());
  EXPECT_TRUE(WaitFor([&] { return client_->CreateBucket("c").ok(); }, std::chrono::seconds(10)));
  EXPECT_EQ(Get(*bucket_, "k"), "while kvd is down");
  ASSERT_TRUE(bucket_->Put("k", "after").ok());
  EXPECT_EQ(Get(*other, "k"), "after");
}

TEST_F(FaultsTest, DeadWorkerStillServesReadsAndWritesResumeAfterRestart) {
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(bucket_->Put("k" + std::to_string(i), "v").ok());
  pid_t worker = kvd_.WorkerPid("b");
  ASSERT_GT(worker, 0);
  ASSERT_EQ(::kill(worker, SIGKILL), 0);

  // Reads never fail, whether the worker is dead, restarting or back.
  for (int i = 0; i < 100; ++i) EXPECT_EQ(Get(*bucket_, "k" + std::to_string(i)), "v") << i;
  char buf[8];
  std::size_t size = 0;
  ASSERT_TRUE(bucket_->Get("k1", buf, sizeof buf, &size).ok());
  EXPECT_EQ(std::string(buf, size), "v");
  std::vector<std::string> values;
  std::vector<Status> st = bucket_->MultiGet({"k2", "missing"}, &values);
  ASSERT_EQ(st.size(), 2u);
  EXPECT_TRUE(st[0].ok()) << st[0].ToString();
  EXPECT_EQ(values[0], "v");
  EXPECT_EQ(st[1].code(), Code::kNotFound);
  int scanned = 0;
  ASSERT_TRUE(bucket_
                  ->Scan("k",
                         [&](std::string_view, std::string_view) {
                           ++scanned;
                           return true;
                         })
                  .ok());
  EXPECT_EQ(scanned, 100);
  Result<BucketStats> stats = bucket_->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->keys, 100u);
  // The first write after the kill waits for the restarted worker and succeeds: a restart is
  // invisible to writers (docs/protocol.md, "When a peer dies").
  Status write = bucket_->Put("k0", "after restart");
  EXPECT_TRUE(write.ok()) << write.ToString();
  EXPECT_TRUE(WaitFor(
      [&] {
        pid_t now = kvd_.WorkerPid("b");
        return now > 0 && now != worker;
      },
      std::chrono::seconds(10)));
  EXPECT_EQ(Get(*bucket_, "k0"), "after restart");
  EXPECT_EQ(Get(*bucket_, "k99"), "v");  // no acknowledged write lost
  EXPECT_EQ(bucket_->Stats()->keys, 100u);
  ASSERT_TRUE(bucket_->PutAsync("k100", "async").ok());
  ASSERT_TRUE(bucket_->Flush().ok());
  EXPECT_EQ(Get(*bucket_, "k100"), "async");
}

}  // namespace
}  // namespace kv
