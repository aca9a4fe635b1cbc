// The worker spawner (daemon/spawner.h): workers are forked from it, are kvd's children, show
// their own command line, and supervision works the same whether the spawner lives, dies, or
// is switched off (--exec-workers).
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <string>
#include <vector>

#include "daemon/process_info.h"
#include "tests/supervisor/supervisor_test_util.h"
#include "tests/testing/kvd_harness.h"

namespace kv::testing {
namespace {

pid_t ParentOf(pid_t pid) {
  std::string stat = daemon::ReadProcFile("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  return static_cast<pid_t>(std::atoi(stat.c_str() + close + 4));  // ") S <ppid>"
}

int ZombieChildrenOf(pid_t parent) {
  int zombies = 0;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return -1;
  while (dirent* e = ::readdir(proc)) {
    if (std::atoi(e->d_name) <= 0) continue;
    std::string stat = daemon::ReadProcFile(std::string("/proc/") + e->d_name + "/stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos || close + 4 > stat.size()) continue;
    if (stat[close + 2] == 'Z' && std::atoi(stat.c_str() + close + 4) == parent) ++zombies;
  }
  ::closedir(proc);
  return zombies;
}

std::string CommandLineOf(pid_t pid) {
  std::string cmdline = daemon::ReadProcFile("/proc/" + std::to_string(pid) + "/cmdline");
  std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
  return cmdline;
}

std::vector<pid_t> SpawnersOf(const std::string& ns) {
  std::vector<pid_t> all = ProcessesOfNamespace(ns);
  std::vector<pid_t> serving = KvdAndWorkersOfNamespace(ns);
  std::vector<pid_t> out;
  for (pid_t pid : all) {
    if (std::find(serving.begin(), serving.end(), pid) == serving.end()) out.push_back(pid);
  }
  return out;
}

// A created bucket's worker is kvd's child, says which bucket it serves, and takes writes.
void ExpectServingWorker(KvdInstance& kvd, Client& client, const std::string& bucket) {
  ASSERT_TRUE(client.CreateBucket(bucket).ok());
  pid_t worker = kvd.WorkerPid(bucket);
  ASSERT_GT(worker, 0);
  EXPECT_EQ(ParentOf(worker), kvd.pid()) << "workers are reaped by kvd";
  std::optional<shm::BucketRecord> record = Record(kvd.ns(), bucket);
  ASSERT_TRUE(record.has_value());
  EXPECT_NE(CommandLineOf(worker).find("--worker --bucket-id " + std::to_string(record->bucket_id) +
                                       " --namespace " + kvd.ns() + " "),
            std::string::npos)
      << CommandLineOf(worker);
  Result<Bucket> b = client.OpenBucket(bucket);
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->Put("k", bucket).ok());
  EXPECT_EQ(Get(*b, "k"), bucket);
}

TEST(SpawnerTest, WorkersAreForkedByTheSpawnerAndAreKvdsChildren) {
  KvdInstance kvd;
  auto client = kvd.NewClient();
  ExpectServingWorker(kvd, *client, "a");
  ExpectServingWorker(kvd, *client, "b");
  // The spawner and its spare are kvd's children (the spare once its first parent has exited).
  EXPECT_TRUE(WaitFor(
      [&] {
        std::vector<pid_t> spawners = SpawnersOf(kvd.ns());
        return !spawners.empty() && std::all_of(spawners.begin(), spawners.end(),
                                                [&](pid_t p) { return ParentOf(p) == kvd.pid(); });
      },
      std::chrono::seconds(5)));

  // A killed worker is restarted by the spawner too, on its data.
  pid_t before = kvd.WorkerPid("a");
  ::kill(before, SIGKILL);
  ASSERT_TRUE(WaitForState(kvd.ns(), "a", shm::kBucketRunning, std::chrono::seconds(10), before));
  Result<Bucket> a = client->OpenBucket("a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(Get(*a, "k"), "a");
  EXPECT_EQ(ParentOf(kvd.WorkerPid("a")), kvd.pid());

  // A clean stop leaves no process: workers, spawner and spare alike.
  EXPECT_EQ(kvd.Stop(), 0);
  EXPECT_TRUE(
      WaitFor([&] { return ProcessesOfNamespace(kvd.ns()).empty(); }, std::chrono::seconds(5)));
}

TEST(SpawnerTest, ADeadSpawnerIsReplacedAndLeavesNoStrayProcess) {
  KvdInstance kvd;
  auto client = kvd.NewClient();
  ExpectServingWorker(kvd, *client, "a");
  for (pid_t pid : SpawnersOf(kvd.ns())) ::kill(pid, SIGKILL);  // the spawner and its spare
  ExpectServingWorker(kvd, *client, "b");
  ExpectServingWorker(kvd, *client, "c");
  // kvd reaped what died (no zombie child left), and one spawner (plus its spare) runs again.
  EXPECT_TRUE(WaitFor(
      [&] {
        std::size_t spawners = SpawnersOf(kvd.ns()).size();
        return ZombieChildrenOf(kvd.pid()) == 0 && spawners >= 1 && spawners <= 2;
      },
      std::chrono::seconds(5)))
      << ZombieChildrenOf(kvd.pid()) << " zombies";
  EXPECT_EQ(KvdAndWorkersOfNamespace(kvd.ns()).size(), 4u);  // kvd + 3 workers
}

TEST(SpawnerTest, ExecWorkersStartsEveryWorkerByExec) {
  KvdInstance kvd({"--exec-workers"});
  auto client = kvd.NewClient();
  ExpectServingWorker(kvd, *client, "a");
  EXPECT_TRUE(SpawnersOf(kvd.ns()).empty());
}

}  // namespace
}  // namespace kv::testing
