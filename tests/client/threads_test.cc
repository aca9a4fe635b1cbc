// One Client shared by 8 threads, each with its own copy of the Bucket handle (the documented
// rule), doing every kind of operation at once. Run under ASan+UBSan in CI; the checks at the end
// prove no write was lost or applied twice.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "tests/client/client_testing.h"
#include "tests/testing/bucket_fixture.h"

namespace kv {
namespace {

using kv::client_testing::Get;

constexpr int kThreads = 8;
constexpr int kRounds = 60;

class ThreadsTest : public kv::testing::BucketFixture {};

TEST_F(ThreadsTest, EightThreadsShareOneClientWithMixedOps) {
  ASSERT_TRUE(bucket_->Put("cas", "0").ok());
  std::atomic<int> errors{0};
  auto fail = [&](int t, int round, const std::string& what) {
    ADD_FAILURE() << "thread " << t << " round " << round << ": " << what;
    ++errors;
  };
  auto worker = [&](int t, Bucket b) {
    const std::string mine = "t" + std::to_string(t) + ":";
    // Half the threads also use a handle of their own (its own write channel).
    std::optional<Bucket> own;
    if (t % 2 == 1) {
      Result<Bucket> opened = client_->OpenBucket("b");
      if (!opened.ok()) return fail(t, -1, opened.status().ToString());
      own.emplace(std::move(opened).value());
    }
    Bucket& w = own ? *own : b;
    for (int round = 0; round < kRounds && errors < 10; ++round) {
      const std::string key = mine + std::to_string(round);
      const std::string value = std::string(1 + (round * 37) % 300, static_cast<char>('a' + t));
      if (Status s = w.Put(key, value); !s.ok()) fail(t, round, s.ToString());
      std::string got;
      if (Status s = b.Get(key, &got); !s.ok() || got != value) fail(t, round, "read own put");
      if (Result<std::int64_t> n = b.Increment("counter"); !n.ok()) {
        fail(t, round, n.status().ToString());
      }
      // A read-modify-write through compare-and-set: each thread adds 1 to "cas".
      for (int attempt = 0;; ++attempt) {
        std::string current;
        std::uint64_t version = 0;
        if (Status s = b.Get("cas", &current, &version); !s.ok()) {
          fail(t, round, s.ToString());
          break;
        }
        std::string next = std::to_string(std::stoll(current) + 1);
        Status s = w.CompareAndSet("cas", version, next);
        if (s.ok()) break;
        if (s.code() != Code::kVersionMismatch || attempt > 10000) {
          fail(t, round, s.ToString());
          break;
        }
      }
      if (Status s = b.PutAsync(mine + "async" + std::to_string(round), "x"); !s.ok()) {
        fail(t, round, s.ToString());
      }
      switch (round % 6) {
        case 0: {
          std::string old;
          if (Status s = w.Delete(key, &old); !s.ok() || old != value) fail(t, round, "delete");
          break;
        }
        case 1: {
          std::vector<std::string> values;
          std::vector<Status> st = b.MultiGet({key, "nope"}, &values);
          if (!st[0].ok() || values[0] != value || st[1].code() != Code::kNotFound) {
            fail(t, round, "multiget");
          }
          break;
        }
        case 2: {
          int n = 0;
          Status s = b.Scan(mine, [&](std::string_view, std::string_view) { return ++n < 50; });
          if (!s.ok() || n == 0) fail(t, round, "scan " + s.ToString());
          break;
        }
        case 3:
          if (!b.Stats().ok()) fail(t, round, "stats");
          if (!client_->GetStatus().ok()) fail(t, round, "status");
          break;
        case 4:
          if (!b.Flush().ok()) fail(t, round, "flush");
          break;
        case 5: {
          char buf[512];
          std::size_t size = 0;
          if (!b.Get(key, buf, sizeof buf, &size).ok() || size != value.size()) {
            fail(t, round, "buffer get");
          }
          Status created = client_->CreateBucket("side" + std::to_string(t));
          if (!created.ok()) fail(t, round, created.ToString());
          break;
        }
      }
    }
    if (Status s = b.Flush(); !s.ok()) fail(t, kRounds, s.ToString());
  };

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t, *bucket_);
  for (std::thread& th : threads) th.join();
  ASSERT_EQ(errors, 0);

  ASSERT_TRUE(bucket_->Flush().ok());
  EXPECT_EQ(Get(*bucket_, "counter"), std::to_string(kThreads * kRounds));
  EXPECT_EQ(Get(*bucket_, "cas"), std::to_string(kThreads * kRounds));
  for (int t = 0; t < kThreads; ++t) {
    std::string mine = "t" + std::to_string(t) + ":";
    for (int round = 0; round < kRounds; ++round) {
      std::string key = mine + std::to_string(round);
      EXPECT_EQ(Get(*bucket_, key) == "NOT_FOUND", round % 6 == 0) << key;
      EXPECT_EQ(Get(*bucket_, mine + "async" + std::to_string(round)), "x");
    }
  }
  Result<InstanceStatus> status = client_->GetStatus();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->buckets.size(), 1u + kThreads);
}

}  // namespace
}  // namespace kv
