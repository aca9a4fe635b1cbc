// kvd itself dies (SIGKILL) and comes back: every bucket and key is still there and writable;
// running workers are adopted, dead ones replaced, and no orphan worker is left behind.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "shm/registry.h"
#include "tests/supervisor/supervisor_test_util.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using namespace kv::testing;

constexpr int kBuckets = 50;
constexpr int kKeys = 20;

std::string Name(int b) { return "bucket-" + std::to_string(b); }
std::string Value(int b, int i) { return std::to_string(b) + ":" + std::to_string(i); }

TEST(SupervisorReadoptionTest, KvdKilledWith50BucketsComesBackWithEveryBucketAndKey) {
  KvdInstance kvd;
  {
    auto client = kvd.NewClient();
    ASSERT_TRUE(client);
    for (int b = 0; b < kBuckets; ++b) {
      ASSERT_TRUE(client->CreateBucket(Name(b)).ok());
      Result<Bucket> bucket = client->OpenBucket(Name(b));
      ASSERT_TRUE(bucket.ok());
      for (int i = 0; i < kKeys; ++i)
        ASSERT_TRUE(bucket->Put("k" + std::to_string(i), Value(b, i)).ok());
    }
  }
  std::vector<pid_t> before;
  for (int b = 0; b < kBuckets; ++b) before.push_back(kvd.WorkerPid(Name(b)));

  kvd.Signal(SIGKILL);  // workers keep running, re-parented to this process (subreaper)
  // While kvd is down, a few workers die too: those must be replaced, the others adopted.
  std::set<int> killed = {3, 17, 42};
  for (int b : killed) ::kill(before[b], SIGKILL);
  // SIGKILL is asynchronous: wait until they are really gone (or zombies), else kvd adopts them.
  ASSERT_TRUE(WaitFor(
      [&] {
        ReapExited(before);
        for (int b : killed) {
          std::ifstream in("/proc/" + std::to_string(before[b]) + "/stat");
          std::string stat;
          std::getline(in, stat);
          std::size_t close = stat.rfind(')');
          if (close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z') {
            return false;
          }
        }
        return true;
      },
      std::chrono::seconds(10)));
  ASSERT_TRUE(kvd.Start());

  auto client = kvd.NewClient();
  ASSERT_TRUE(client);
  // A control round trip is answered only after kvd has gone through the registry (adopted or
  // restarted every worker): until then the registry still shows the previous kvd's view.
  ASSERT_TRUE(client->CreateBucket(Name(0)).ok());
  std::set<pid_t> workers;
  for (int b = 0; b < kBuckets; ++b) {
    SCOPED_TRACE(Name(b));
    ASSERT_TRUE(WaitForState(kvd.ns(), Name(b), shm::kBucketRunning, std::chrono::seconds(10), 0));
    pid_t pid = kvd.WorkerPid(Name(b));
    workers.insert(pid);
    if (killed.count(b) != 0) {
      EXPECT_NE(pid, before[b]) << "a dead worker must be replaced";
    } else {
      EXPECT_EQ(pid, before[b]) << "a running worker must be adopted";
    }
    Result<Bucket> bucket = client->OpenBucket(Name(b));
    ASSERT_TRUE(bucket.ok()) << bucket.status().ToString();
    for (int i = 0; i < kKeys; ++i) EXPECT_EQ(Get(*bucket, "k" + std::to_string(i)), Value(b, i));
    EXPECT_TRUE(bucket->Put("after", "restart").ok());
    EXPECT_EQ(Get(*bucket, "after"), "restart");
  }
  // No orphans: the namespace's processes are exactly kvd and one worker per bucket.
  std::vector<pid_t> running = KvdAndWorkersOfNamespace(kvd.ns());
  std::set<pid_t> expected = workers;
  expected.insert(kvd.pid());
  EXPECT_EQ(std::set<pid_t>(running.begin(), running.end()), expected);
  EXPECT_EQ(workers.size(), static_cast<std::size_t>(kBuckets));

  // A clean stop stops adopted workers too.
  EXPECT_EQ(kvd.Stop(), 0);
  EXPECT_TRUE(WaitFor(
      [&] {
        ReapExited(before);
        return ProcessesOfNamespace(kvd.ns()).empty();
      },
      std::chrono::seconds(10)));
}

}  // namespace
}  // namespace kv
