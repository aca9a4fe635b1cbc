// Supervision of workers: a killed worker is restarted on its segment with no data lost and no
// failed read; a worker that crashes at every start ends failed (reads still served, writes get
// FAILED) until `kvctl restart` once the cause is gone. Restart times are printed, never asserted.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "shm/registry.h"
#include "tests/supervisor/supervisor_test_util.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using namespace kv::testing;
using Clock = std::chrono::steady_clock;

std::string Key(int i) { return std::string("k\0", 2) + std::to_string(i) + "\xff"; }

TEST(SupervisorRestartTest, KilledWorkerRestartsWithDataIntactAndReadsNeverFail) {
  KvdInstance kvd;
  auto client = kvd.NewClient();
  ASSERT_TRUE(client);
  constexpr int kBuckets = 5;  // each killed once: every restart is a first crash (no backoff)
  constexpr int kKeys = 200;
  std::vector<Bucket> buckets;
  for (int b = 0; b < kBuckets; ++b) {
    std::string name = "b" + std::to_string(b);
    ASSERT_TRUE(client->CreateBucket(name).ok());
    Result<Bucket> bucket = client->OpenBucket(name);
    ASSERT_TRUE(bucket.ok()) << bucket.status().ToString();
    for (int i = 0; i < kKeys; ++i) ASSERT_TRUE(bucket->Put(Key(i), "v" + std::to_string(i)).ok());
    buckets.push_back(*bucket);
  }

  // A reader in another thread, with handles of its own, reads every key over and over.
  std::atomic<bool> stop{false};
  std::atomic<long> reads{0}, failed_reads{0};
  std::string first_failure;
  std::thread reader([&, copies = buckets]() mutable {
    while (!stop.load()) {
      for (Bucket& b : copies) {
        for (int i = 0; i < kKeys; i += 7) {
          std::string value;
          Status s = b.Get(Key(i), &value);
          if (!s.ok() || value != "v" + std::to_string(i)) {
            if (failed_reads.fetch_add(1) == 0) first_failure = s.ToString() + " / " + value;
          }
          reads.fetch_add(1);
        }
      }
    }
  });

  std::vector<double> restart_ms;
  for (int b = 0; b < kBuckets; ++b) {
    std::string name = "b" + std::to_string(b);
    pid_t old_pid = kvd.WorkerPid(name);
    ASSERT_GT(old_pid, 0);
    auto killed = Clock::now();
    ASSERT_EQ(::kill(old_pid, SIGKILL), 0);
    Status s;
    for (int attempt = 0; attempt < 100; ++attempt) {  // a write may hit the dying worker
      s = buckets[b].Put("after-restart", "yes");
      if (s.ok()) break;
    }
    ASSERT_TRUE(s.ok()) << s.ToString();
    restart_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - killed).count());
    EXPECT_TRUE(
        WaitForState(kvd.ns(), name, shm::kBucketRunning, std::chrono::seconds(5), old_pid));
    std::optional<shm::BucketRecord> r = Record(kvd.ns(), name);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->restarts, 1u);
    EXPECT_NE(r->worker_pid, old_pid);
    for (int i = 0; i < kKeys; ++i) EXPECT_EQ(Get(buckets[b], Key(i)), "v" + std::to_string(i));
    EXPECT_EQ(Get(buckets[b], "after-restart"), "yes");
  }
  stop = true;
  reader.join();
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(failed_reads.load(), 0) << first_failure;
  std::sort(restart_ms.begin(), restart_ms.end());
  std::printf(
      "kill to first successful write: median %.2f ms, max %.2f ms over %d kills "
      "(target <= 50 ms median; printed, not asserted)\n",
      restart_ms[restart_ms.size() / 2], restart_ms.back(), kBuckets);
}

TEST(SupervisorRestartTest, WorkerCrashingAtEveryStartEndsFailedUntilRestartedWithoutCause) {
  // The cause: crash point "worker-start", armed only while the gate file exists. kvd passes its
  // environment to every worker; the test controls the file, not the environment.
  ScopedPath gate("kvt-crash-gate");
  std::optional<KvdInstance> kvd;
  {
    ScopedEnv point("KV_CRASH_POINT", "worker-start");
    ScopedEnv gate_env("KV_CRASH_POINT_GATE", gate.path());
    kvd.emplace(std::vector<std::string>{"--max-restarts", "3", "--max-seconds", "60",
                                         "--backoff-ms", "5", "--max-backoff-ms", "40"});
  }
  auto client = kvd->NewClient();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->CreateBucket("fragile").ok());
  Result<Bucket> bucket = client->OpenBucket("fragile");
  ASSERT_TRUE(bucket.ok());
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(bucket->Put(Key(i), std::to_string(i)).ok());

  gate.Write("crash\n");
  pid_t first = kvd->WorkerPid("fragile");
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  ASSERT_TRUE(WaitForState(kvd->ns(), "fragile", shm::kBucketFailed, std::chrono::seconds(10)));
  std::optional<shm::BucketRecord> r = Record(kvd->ns(), "fragile");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->restarts, 4u);  // the kill, then 3 restarts that crashed: 4 > max-restarts 3
  EXPECT_EQ(r->worker_pid, 0);
  EXPECT_NE(r->reason.find("4 exits within 60 s"), std::string::npos) << r->reason;

  // Reads are served from the segment; writes get a clear FAILED.
  for (int i = 0; i < 50; ++i) EXPECT_EQ(Get(*bucket, Key(i)), std::to_string(i));
  Status put = bucket->Put("k", "v");
  EXPECT_EQ(put.code(), Code::kFailed) << put.ToString();
  EXPECT_NE(put.message().find("kvctl restart fragile"), std::string::npos) << put.ToString();
  auto status = RunCommand({KvctlPath(), "--namespace", kvd->ns(), "status"});
  EXPECT_NE(status.out.find("failed"), std::string::npos) << status.out << status.err;

  // While the cause is there, a restart fails again.
  auto again = RunCommand({KvctlPath(), "--namespace", kvd->ns(), "restart", "fragile"});
  EXPECT_NE(again.exit_code, 0) << again.out;
  EXPECT_TRUE(WaitForState(kvd->ns(), "fragile", shm::kBucketFailed, std::chrono::seconds(10)));

  // The cause is gone: `kvctl restart` recovers the bucket with its data.
  ::unlink(gate.path().c_str());
  auto fixed = RunCommand({KvctlPath(), "--namespace", kvd->ns(), "restart", "fragile"});
  EXPECT_EQ(fixed.exit_code, 0) << fixed.out << fixed.err;
  EXPECT_TRUE(WaitForState(kvd->ns(), "fragile", shm::kBucketRunning, std::chrono::seconds(5)));
  EXPECT_TRUE(bucket->Put("k", "v").ok());
  EXPECT_EQ(Get(*bucket, "k"), "v");
  for (int i = 0; i < 50; ++i) EXPECT_EQ(Get(*bucket, Key(i)), std::to_string(i));
  r = Record(kvd->ns(), "fragile");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->restarts, 0u);
  EXPECT_EQ(r->reason, "");
}

TEST(SupervisorRestartTest, WorkerThatCannotBeStartedCountsAsACrashWithBackoff) {
  // kvd runs from a copy of its executable; the copy loses its execute bit (as while a package
  // update replaces it), so starting a worker fails with EACCES. That is one more crash in the
  // window, retried after the backoff -- not a failed bucket at once.
  ScopedPath copy("kvt-kvd-copy");
  std::filesystem::copy_file(KvdPath(), copy.path());
  ::chmod(copy.path().c_str(), 0755);
  // --exec-workers: every start execs the binary (the spawner, already running, would not).
  KvdInstance kvd({"--max-restarts", "4", "--max-seconds", "60", "--backoff-ms", "300",
                   "--max-backoff-ms", "600", "--exec-workers"},
                  copy.path());
  auto client = kvd.NewClient();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->CreateBucket("b").ok());
  Result<Bucket> bucket = client->OpenBucket("b");
  ASSERT_TRUE(bucket.ok());
  ASSERT_TRUE(bucket->Put("k", "v").ok());

  auto record_has = [&](std::uint32_t state, const std::string& reason,
                        std::uint32_t min_restarts) {
    return WaitFor(
        [&] {
          std::optional<shm::BucketRecord> r = Record(kvd.ns(), "b");
          return r && r->state == state && r->reason.find(reason) != std::string::npos &&
                 r->restarts >= min_restarts;
        },
        std::chrono::seconds(10));
  };

  ASSERT_EQ(::chmod(copy.path().c_str(), 0644), 0);
  pid_t first = kvd.WorkerPid("b");
  ASSERT_GT(first, 0);
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  // The kill (restarted at once) and the failed start: restarting, not failed.
  EXPECT_TRUE(record_has(shm::kBucketRestarting, "could not be started", 2));
  ASSERT_EQ(::chmod(copy.path().c_str(), 0755), 0);
  EXPECT_TRUE(WaitForState(kvd.ns(), "b", shm::kBucketRunning, std::chrono::seconds(10), first));
  EXPECT_TRUE(bucket->Put("k2", "v2").ok());
  EXPECT_EQ(Get(*bucket, "k"), "v");

  // Failed starts count toward the restart intensity: 5 exits within 60 s > max-restarts 4.
  ASSERT_EQ(::chmod(copy.path().c_str(), 0644), 0);
  pid_t second = kvd.WorkerPid("b");
  ASSERT_GT(second, 0);
  ASSERT_EQ(::kill(second, SIGKILL), 0);
  EXPECT_TRUE(record_has(shm::kBucketFailed, "5 exits within 60 s", 5));
  std::optional<shm::BucketRecord> r = Record(kvd.ns(), "b");
  ASSERT_TRUE(r);
  EXPECT_NE(r->reason.find("could not be started"), std::string::npos) << r->reason;
  EXPECT_EQ(Get(*bucket, "k2"), "v2");  // reads still served
}

}  // namespace
}  // namespace kv
