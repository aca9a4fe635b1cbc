// A worker restart is invisible to a long-lived client (docs/protocol.md, "When a peer dies"):
// its worker is SIGKILLed again and again while it writes, and not one call fails, no write is
// lost and none is applied twice. Every increment must return exactly one more than the one
// before, the final counter must equal the number of increments, and the bucket's count of
// applied writes (BucketStats::writes) must equal the number of writes made.
//
// KV_RESTART_KILLS sets how many kills each test makes (default 60; the acceptance run
// uses 200). Each kill waits for the client to have made progress since the previous restart, a
// condition, and for kvd to have started a new worker; the instant of the kill is randomised.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::testing::KvdInstance;
using kv::testing::WaitFor;
using std::chrono::seconds;

int Kills() {
  const char* env = std::getenv("KV_RESTART_KILLS");
  int n = env != nullptr ? std::atoi(env) : 0;
  return n > 0 ? n : 60;
}

class WorkerRestartTest : public ::testing::Test {
 protected:
  // Restart at once, every time: the test is about the client, not the restart policy.
  KvdInstance kvd_{{"--max-restarts", "1000", "--max-seconds", "1", "--backoff-ms", "0",
                    "--max-backoff-ms", "0"}};

  // Kills the worker of `bucket` `kills` times, each time once `progress` has moved on since the
  // previous restart, at a random instant shortly after. Returns the number of kills made.
  int KillRepeatedly(const std::string& bucket, int kills,
                     const std::atomic<std::uint64_t>& progress,
                     const std::atomic<bool>& writer_done) {
    std::mt19937_64 rng(18);
    int made = 0;
    for (int i = 0; i < kills && !writer_done.load(); ++i) {
      std::uint64_t target = progress.load() + 1 + rng() % 4;
      if (!WaitFor([&] { return writer_done.load() || progress.load() >= target; }, seconds(30))) {
        ADD_FAILURE() << "the client made no progress after restart " << made;
        break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 400));
      pid_t pid = kvd_.WorkerPid(bucket);
      if (pid <= 0 || ::kill(pid, SIGKILL) != 0) {
        ADD_FAILURE() << "no worker to kill";
        break;
      }
      ++made;
      if (!WaitFor(
              [&] {
                pid_t now = kvd_.WorkerPid(bucket);
                return now > 0 && now != pid;
              },
              seconds(30))) {
        ADD_FAILURE() << "worker not restarted after kill " << made;
        break;
      }
    }
    return made;
  }

  std::uint64_t Writes(Bucket& bucket) {
    Result<BucketStats> stats = bucket.Stats();
    EXPECT_TRUE(stats.ok()) << stats.status().ToString();
    return stats.ok() ? stats->writes : 0;
  }
};

TEST_F(WorkerRestartTest, SyncPutsAndIncrementsNeitherFailNorRepeat) {
  auto client = kvd_.NewClient(seconds(20));
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->CreateBucket("r").ok());
  Bucket bucket = client->OpenBucket("r").value();

  std::atomic<std::uint64_t> progress{0};
  std::atomic<bool> stop{false}, writer_done{false};
  std::vector<std::string> errors;
  std::uint64_t puts = 0, incrs = 0;
  std::thread writer([&] {
    Bucket b = bucket;  // a handle of its own on the same channel
    for (std::uint64_t i = 0; !stop.load() && errors.size() < 5; ++i) {
      Status s = b.Put("k" + std::to_string(i % 32), std::to_string(i));
      ++puts;
      if (!s.ok()) errors.push_back("put " + std::to_string(i) + ": " + s.ToString());
      Result<std::int64_t> r = b.Increment("counter");
      ++incrs;
      if (!r.ok()) {
        errors.push_back("incr " + std::to_string(incrs) + ": " + r.status().ToString());
      } else if (r.value() != static_cast<std::int64_t>(incrs)) {
        errors.push_back("incr " + std::to_string(incrs) + " returned " +
                         std::to_string(r.value()));
      }
      progress.fetch_add(1);
    }
    writer_done.store(true);
  });
  int kills = KillRepeatedly("r", Kills(), progress, writer_done);
  stop.store(true);
  writer.join();

  for (const std::string& e : errors) ADD_FAILURE() << e;
  EXPECT_EQ(kills, Kills());
  std::string value;
  ASSERT_TRUE(bucket.Get("counter", &value).ok());
  EXPECT_EQ(value, std::to_string(incrs)) << "increments made: " << incrs;
  for (std::uint64_t k = 0; k < 32 && k < puts; ++k) {
    std::uint64_t last = k + (puts - 1 - k) / 32 * 32;  // the last i with i % 32 == k
    ASSERT_TRUE(bucket.Get("k" + std::to_string(k), &value).ok());
    EXPECT_EQ(value, std::to_string(last)) << "key k" << k;
  }
  EXPECT_EQ(Writes(bucket), puts + incrs) << "each write applied exactly once";
  std::printf("restarts: %d worker kills, %llu puts, %llu increments, %zu failed calls\n", kills,
              static_cast<unsigned long long>(puts), static_cast<unsigned long long>(incrs),
              errors.size());
}

TEST_F(WorkerRestartTest, AsyncPutsAndFlushNeitherFailNorRepeat) {
  auto client = kvd_.NewClient(seconds(20));
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->CreateBucket("a").ok());
  Bucket bucket = client->OpenBucket("a").value();

  constexpr int kBatch = 50;
  std::atomic<std::uint64_t> progress{0};
  std::atomic<bool> stop{false}, writer_done{false};
  std::vector<std::string> errors;
  std::uint64_t puts = 0;
  std::thread writer([&] {
    Bucket b = bucket;
    while (!stop.load() && errors.size() < 5) {
      for (int j = 0; j < kBatch; ++j) {
        // A key per write: every one must be there, with the value of the last write to it.
        Status s = b.PutAsync("a" + std::to_string(puts), std::to_string(puts));
        if (!s.ok()) errors.push_back("put-async " + std::to_string(puts) + ": " + s.ToString());
        ++puts;
      }
      if (Status s = b.Flush(); !s.ok()) errors.push_back("flush: " + s.ToString());
      progress.fetch_add(1);
    }
    writer_done.store(true);
  });
  int kills = KillRepeatedly("a", Kills(), progress, writer_done);
  stop.store(true);
  writer.join();

  for (const std::string& e : errors) ADD_FAILURE() << e;
  EXPECT_EQ(kills, Kills());
  std::uint64_t missing = 0;
  for (std::uint64_t i = 0; i < puts; ++i) {
    std::string value;
    if (!bucket.Get("a" + std::to_string(i), &value).ok() || value != std::to_string(i)) ++missing;
  }
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(Writes(bucket), puts) << "each write applied exactly once";
  std::printf("restarts: %d worker kills, %llu async puts in flushed batches of %d, %zu failed\n",
              kills, static_cast<unsigned long long>(puts), kBatch, errors.size());
}

// The worker kills itself at the points where exactly-once is hardest: after a write is applied
// and before its reply (after-apply), between a reply's publication and its request's release
// (before-request-release: the successor answers it again), before the wake-up
// (before-reply-wake), between a record's append and its slot
// store (table-record-appended), between the slot store and the stats (table-slot-stored), and
// inside generation changes (growth). Every kind of write is made (with values small and large
// enough to travel in a memfd); each must succeed once with
// the answer a single application gives (an increment one more than the last, a delete the value
// put before it, a cas on the version just read), and the bucket must count each write once.
TEST(WorkerCrashPointTest, EveryWriteKindIsAppliedOnceAcrossCrashes) {
  ::setenv("KV_CRASH_POINT",
           "after-apply:r25,before-request-release:r25,before-reply-wake:r25,"
           "table-record-appended:r25,"
           "table-slot-stored:r25,generation-built:r3,generation-published:r3,anchor-updated:r3",
           1);
  KvdInstance kvd({"--max-restarts", "1000", "--max-seconds", "1", "--backoff-ms", "0",
                   "--max-backoff-ms", "0"});
  ::unsetenv("KV_CRASH_POINT");
  auto client = kvd.NewClient(seconds(20));
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->CreateBucket("p").ok());
  Bucket bucket = client->OpenBucket("p").value();
  auto restarts = [&] {
    auto status = client->GetStatus();
    if (!status.ok()) return 0u;
    for (const BucketInfo& b : status.value().buckets) {
      if (b.name == "p") return b.restarts;
    }
    return 0u;
  };
  const std::uint32_t crashes = static_cast<std::uint32_t>(Kills());
  std::uint64_t writes = 0, incrs = 0, i = 0;
  std::vector<std::string> errors;
  auto check = [&](const Status& s, const std::string& what) {
    if (!s.ok() && errors.size() < 10) errors.push_back(what + ": " + s.ToString());
    return s.ok();
  };
  auto deadline = std::chrono::steady_clock::now() + seconds(240);
  while (restarts() < crashes && errors.empty() && std::chrono::steady_clock::now() < deadline) {
    for (int round = 0; round < 20; ++round, ++i) {
      // Keys accumulate: the table grows through several generations.
      writes += check(bucket.Put("k" + std::to_string(i), std::string(40, 'v')), "put");
      Result<std::int64_t> r = bucket.Increment("counter");
      ++incrs;
      ++writes;
      if (check(r.status(), "incr") && r.value() != static_cast<std::int64_t>(incrs)) {
        errors.push_back("incr " + std::to_string(incrs) + " returned " +
                         std::to_string(r.value()));
      }
      writes += check(bucket.Put("d", "old" + std::to_string(i)), "put d");
      std::string old;
      if (check(bucket.Delete("d", &old), "delete") && old != "old" + std::to_string(i)) {
        errors.push_back("delete returned '" + old + "'");
      }
      ++writes;
      std::string value;
      std::uint64_t version = 0;
      Status g = bucket.Get("c", &value, &version);
      if (g.ok() || g.IsNotFound()) {
        writes += check(bucket.CompareAndSet("c", g.ok() ? version : 0, std::to_string(i)), "cas");
      }
      writes +=
          check(bucket.PutAsync("a" + std::to_string(i % 100), std::to_string(i)), "put-async");
      if (i % 16 == 0) {  // values that travel in a memfd, both ways
        std::string big(200 * 1024, static_cast<char>('a' + i % 26));
        writes += check(bucket.Put("big", big), "staged put");
        std::string back;
        if (check(bucket.Delete("big", &back), "staged delete") && back != big) {
          errors.push_back("staged delete returned " + std::to_string(back.size()) + " bytes");
        }
        ++writes;
      }
      if (round % 5 == 4) check(bucket.Flush(), "flush");
    }
  }
  check(bucket.Flush(), "flush");
  for (const std::string& e : errors) ADD_FAILURE() << e;
  EXPECT_GE(restarts(), crashes) << "too few crashes before the deadline";
  std::string value;
  ASSERT_TRUE(bucket.Get("counter", &value).ok());
  EXPECT_EQ(value, std::to_string(incrs));
  Result<BucketStats> stats = bucket.Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->writes, writes) << "each write applied exactly once";
  std::printf("crash points: %u restarts, %llu writes, %llu increments, generation %llu\n",
              restarts(), static_cast<unsigned long long>(writes),
              static_cast<unsigned long long>(incrs),
              static_cast<unsigned long long>(stats->generation));
}

}  // namespace
}  // namespace kv
