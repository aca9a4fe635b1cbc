// The registry never shows a bucket "running" without its worker (shm/registry.h, R4): a reader
// polling it while workers are killed over and over, and while kvd stops, sees every worker
// exit as a change of state and worker together.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <thread>

#include "shm/registry.h"
#include "tests/supervisor/supervisor_test_util.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using namespace kv::testing;
using std::chrono::seconds;

constexpr int kBuckets = 3;
constexpr int kRounds = 60;  // each kills every bucket's worker once

// Reads every registry entry in a loop until stopped; counts entries that say "running" with no
// worker.
class RegistryWatcher {
 public:
  explicit RegistryWatcher(const std::string& ns) {
    shm::ShmError error;
    registry_ = shm::RegistryReader::Open(ns, &error);
    EXPECT_TRUE(registry_) << error.message;
    if (registry_) thread_ = std::thread([this] { Run(); });
  }
  ~RegistryWatcher() { Stop(); }

  void Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  std::uint64_t reads() const { return reads_.load(); }
  std::uint64_t running_without_worker() const { return bad_.load(); }

 private:
  void Run() {
    while (!stop_.load(std::memory_order_relaxed)) {
      for (std::uint32_t i = 0; i < registry_->capacity() && i < 2 * kBuckets; ++i) {
        std::optional<shm::BucketRecord> r = registry_->Read(i);
        if (r && r->state == shm::kBucketRunning && r->worker_pid == 0) bad_.fetch_add(1);
        reads_.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }

  std::optional<shm::RegistryReader> registry_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> reads_{0};
  std::atomic<std::uint64_t> bad_{0};
};

std::string Name(int b) { return "b" + std::to_string(b); }

TEST(SupervisorRegistryTest, RunningAlwaysComesWithAWorkerWhileWorkersDieAndKvdStops) {
  // Restarted at once, never failed, whatever the crash rate.
  KvdInstance kvd({"--max-restarts", "1000", "--max-seconds", "1", "--backoff-ms", "1",
                   "--max-backoff-ms", "1"});
  {
    auto client = kvd.NewClient();
    ASSERT_TRUE(client);
    for (int b = 0; b < kBuckets; ++b) ASSERT_TRUE(client->CreateBucket(Name(b)).ok());
  }
  RegistryWatcher watcher(kvd.ns());
  for (int round = 0; round < kRounds; ++round) {
    std::vector<pid_t> killed;
    for (int b = 0; b < kBuckets; ++b) {
      ASSERT_TRUE(WaitForState(kvd.ns(), Name(b), shm::kBucketRunning, seconds(10), 0));
      pid_t pid = kvd.WorkerPid(Name(b));
      ASSERT_GT(pid, 0);
      ASSERT_EQ(::kill(pid, SIGKILL), 0);
      killed.push_back(pid);
    }
    for (int b = 0; b < kBuckets; ++b) {
      ASSERT_TRUE(WaitForState(kvd.ns(), Name(b), shm::kBucketRunning, seconds(10), killed[b]))
          << Name(b) << " round " << round;
    }
  }
  EXPECT_EQ(watcher.running_without_worker(), 0u) << "while workers were killed";
  // A clean stop: every worker exits, and the registry stays for the next kvd.
  EXPECT_EQ(kvd.Stop(), 0);
  watcher.Stop();
  EXPECT_GT(watcher.reads(), 0u);
  EXPECT_EQ(watcher.running_without_worker(), 0u) << "in all, with kvd stopping";
  for (int b = 0; b < kBuckets; ++b) {
    std::optional<shm::BucketRecord> r = Record(kvd.ns(), Name(b));
    ASSERT_TRUE(r) << Name(b);
    EXPECT_EQ(r->worker_pid, 0) << Name(b);
    EXPECT_NE(r->state, shm::kBucketRunning) << Name(b) << " has no worker after kvd stopped";
  }
}

}  // namespace
}  // namespace kv
