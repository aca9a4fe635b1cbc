// Clients SIGKILLed at random moments while they write (inside a send, between frames, while
// staging a large value, waiting for a reply, or while still registering): afterwards every
// bucket answers a write within 1 s, nothing acknowledged is lost, and the worker has released
// the dead clients' channels.
//
// CI runs a reduced count; KV_CLIENT_KILL_FULL=1 runs the full 500 kills.
#include <dirent.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>

#include "tests/testing/child_process.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

constexpr int kBuckets = 2;

int KillCount() {
  const char* full = std::getenv("KV_CLIENT_KILL_FULL");
  return full != nullptr && std::string(full) == "1" ? 500 : 40;
}

// The value a child writes under `key` (large for some keys, to exercise staged values).
std::string ValueFor(const std::string& key, int j) {
  if (j % 97 == 5) return std::string(135000 + j, static_cast<char>('A' + j % 26)) + key;
  return key + "=" + std::to_string(j);
}

// A client that writes forever, reporting every acknowledged key ("key j") on `report`.
void WriteForever(const std::string& ns, const std::string& bucket, int id, int report) {
  ClientOptions options;
  options.ns = ns;
  Result<std::shared_ptr<Client>> client = Client::Open(options);
  if (!client.ok()) ::_exit(3);
  Result<Bucket> b = (*client)->OpenBucket(bucket);
  if (!b.ok()) ::_exit(4);
  std::vector<std::string> pending;  // async writes not yet flushed
  for (int j = 0;; ++j) {
    std::string key = "c" + std::to_string(id) + "-" + std::to_string(j);
    if (j % 10 < 7) {
      if (!b->Put(key, ValueFor(key, j)).ok()) ::_exit(5);
      testing::Report(report, key + " " + std::to_string(j));
    } else {
      if (!b->PutAsync(key, ValueFor(key, j)).ok()) ::_exit(6);
      pending.push_back(key + " " + std::to_string(j));
      if (j % 10 == 9) {
        if (!b->Flush().ok()) ::_exit(7);
        for (const std::string& p : pending) testing::Report(report, p);
        pending.clear();
      }
    }
  }
}

int OpenFds(pid_t pid) {
  int n = 0;
  DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (d == nullptr) return -1;
  while (::readdir(d) != nullptr) ++n;
  ::closedir(d);
  return n;
}

TEST(ClientKillTest, KilledWritersWedgeNoWorkerAndLoseNoAcknowledgedWrite) {
  testing::KvdInstance kvd({"--max-bucket-bytes", std::to_string(std::uint64_t{512} << 20)});
  auto client = kvd.NewClient();
  ASSERT_TRUE(client);
  for (int i = 0; i < kBuckets; ++i)
    ASSERT_TRUE(client->CreateBucket("b" + std::to_string(i)).ok());
  std::map<std::string, int> acked[kBuckets];
  std::mt19937 rng(std::random_device{}());
  int kills = KillCount();
  for (int k = 0; k < kills; ++k) {
    int bucket = k % kBuckets;
    std::string name = "b" + std::to_string(bucket);
    std::vector<testing::Child> children;
    children.push_back(
        testing::StartChild([&](int report) { WriteForever(kvd.ns(), name, k, report); }));
    ASSERT_GT(children[0].pid, 0);
    // Random moment: mostly while writing, sometimes while still connecting.
    int delay_us = static_cast<int>(rng() % 20000);
    ::usleep(static_cast<useconds_t>(delay_us));
    ::kill(children[0].pid, SIGKILL);
    std::vector<int> statuses = testing::CollectChildren(&children);
    ASSERT_TRUE(WIFSIGNALED(statuses[0]))
        << "writer " << k << " stopped by itself with status " << statuses[0];
    for (const std::string& line : testing::Lines(children[0].report)) {
      std::size_t space = line.find(' ');
      acked[bucket][line.substr(0, space)] = std::stoi(line.substr(space + 1));
    }
  }
  std::size_t total = 0;
  for (int i = 0; i < kBuckets; ++i) {
    std::string name = "b" + std::to_string(i);
    SCOPED_TRACE(name);
    // Every bucket answers a write within 1 s (the client's timeout).
    auto probe_client = kvd.NewClient(std::chrono::milliseconds(1000));
    Result<Bucket> b = probe_client->OpenBucket(name);
    ASSERT_TRUE(b.ok());
    Status s = b->Put("probe", "after the kills");
    ASSERT_TRUE(s.ok()) << s.ToString();
    // Nothing acknowledged is lost.
    for (const auto& [key, j] : acked[i]) {
      std::string value;
      ASSERT_TRUE(b->Get(key, &value).ok()) << key;
      ASSERT_EQ(value, ValueFor(key, j)) << key;
    }
    total += acked[i].size();
    // The dead clients' channels were released: the worker holds only a handful of fds.
    pid_t worker = kvd.WorkerPid(name);
    ASSERT_GT(worker, 0);
    EXPECT_TRUE(testing::WaitFor([&] { return OpenFds(worker) < 40; }, std::chrono::seconds(10)))
        << "worker holds " << OpenFds(worker) << " fds";
  }
  // How many writes were acknowledged before each kill depends on the machine's speed (under
  // ASan on a loaded machine maybe none): the count is printed, not asserted.
  std::printf("%d clients killed, %zu acknowledged writes verified\n", kills, total);
}

}  // namespace
}  // namespace kv
