// The chaos run (DESIGN §6): a real kvd with several buckets, client processes doing mixed
// reads/writes/cas/incr and logging every acknowledged result, and a fault injector that SIGKILLs
// workers, SIGKILLs and restarts kvd, SIGKILLs and SIGSTOPs clients, and fills a bucket to its
// limit. The checker then proves: every acknowledged write is present (or superseded by a later
// one that may have been applied), no read returned a torn or never-written value, every bucket
// answers, and nothing leaked. Short in CI; KV_CHAOS_LONG=1 runs the full length.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <random>
#include <set>
#include <thread>

#include "tests/chaos/chaos_client.h"
#include "tests/testing/kvd_harness.h"

namespace kv::chaos {
namespace {

using kv::testing::KvdInstance;
using std::chrono::milliseconds;

struct Plan {
  int worker_kills;
  int kvd_kills;
  int client_kills;
  int client_stops;
};

Plan ChosenPlan() {
  const char* env = std::getenv("KV_CHAOS_LONG");
  if (env != nullptr && std::string(env) == "1") return {1000, 20, 500, 100};
  return {30, 3, 15, 5};
}

constexpr int kClients = 4;
constexpr int kBuckets = 4;

class ChaosTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/kv-chaos-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    log_dir_ = dir;
    for (int i = 0; i < kBuckets; ++i) buckets_.push_back("b" + std::to_string(i));
  }
  void TearDown() override {
    for (auto& [pid, id] : clients_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    std::filesystem::remove_all(log_dir_);
  }

  void SpawnClient() {
    int id = next_client_id_++;
    ClientConfig config{kvd_.ns(), id, buckets_, 16, log_dir_ + "/client" + std::to_string(id)};
    logs_.push_back(config.log_path);
    pid_t pid = ::fork();
    if (pid == 0) RunClient(config);
    clients_[pid] = id;
  }

  // Workers adopted by a restarted kvd are not its children; when they die they are re-parented
  // zombies of this process (the harness is a subreaper). Reap those, never the clients.
  void ReapOrphans() {
    for (;;) {
      siginfo_t info{};
      if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) return;
      if (clients_.count(info.si_pid) != 0 || info.si_pid == kvd_.pid()) return;
      ::waitpid(info.si_pid, nullptr, 0);
    }
  }

  bool WaitRunning(const std::string& bucket, pid_t not_pid, milliseconds timeout) {
    return kv::testing::WaitFor(
        [&] {
          ReapOrphans();
          pid_t p = kvd_.WorkerPid(bucket);
          return p > 0 && p != not_pid;
        },
        timeout);
  }

  KvdInstance kvd_{
      {"--max-restarts", "1000", "--max-seconds", "1", "--max-bucket-bytes", "2097152"}};
  std::string log_dir_;
  std::vector<std::string> buckets_;
  std::map<pid_t, int> clients_;
  std::vector<std::string> logs_;
  int next_client_id_ = 0;
};

TEST_F(ChaosTest, FaultsLoseNothingTearNothingWedgeNothing) {
  Plan plan = ChosenPlan();
  auto admin = kvd_.NewClient();
  ASSERT_TRUE(admin);
  for (const std::string& b : buckets_) ASSERT_TRUE(admin->CreateBucket(b).ok());
  ASSERT_TRUE(admin->CreateBucket("full").ok());
  for (int i = 0; i < kClients; ++i) SpawnClient();

  std::mt19937_64 rng(42);
  int worker_kills = 0, kvd_kills = 0, client_kills = 0, client_stops = 0, fills = 0;
  std::vector<char> faults;
  faults.insert(faults.end(), static_cast<std::size_t>(plan.worker_kills), 'w');
  faults.insert(faults.end(), static_cast<std::size_t>(plan.kvd_kills), 'k');
  faults.insert(faults.end(), static_cast<std::size_t>(plan.client_kills), 'c');
  faults.insert(faults.end(), static_cast<std::size_t>(plan.client_stops), 's');
  faults.push_back('f');
  std::shuffle(faults.begin(), faults.end(), rng);

  for (char fault : faults) {
    std::this_thread::sleep_for(milliseconds(2 + rng() % 10));
    ReapOrphans();
    switch (fault) {
      case 'w': {
        const std::string& b = buckets_[rng() % buckets_.size()];
        pid_t pid = kvd_.WorkerPid(b);
        if (pid <= 0 || ::kill(pid, SIGKILL) != 0) break;
        ++worker_kills;
        ASSERT_TRUE(WaitRunning(b, pid, std::chrono::seconds(10)))
            << "bucket " << b << " not restarted";
        break;
      }
      case 'k': {
        kvd_.Signal(SIGKILL);
        ++kvd_kills;
        ASSERT_TRUE(kvd_.Start()) << "kvd did not restart";
        break;
      }
      case 'c': {
        auto it = clients_.begin();
        std::advance(it, static_cast<long>(rng() % clients_.size()));
        ::kill(it->first, SIGKILL);
        ::waitpid(it->first, nullptr, 0);
        clients_.erase(it);
        ++client_kills;
        SpawnClient();
        break;
      }
      case 's': {
        pid_t pid = std::next(clients_.begin(), static_cast<long>(rng() % clients_.size()))->first;
        ::kill(pid, SIGSTOP);
        std::this_thread::sleep_for(milliseconds(30));
        ::kill(pid, SIGCONT);
        ++client_stops;
        break;
      }
      case 'f': {
        auto filler = kvd_.NewClient(std::chrono::seconds(5));
        Result<Bucket> full = filler->OpenBucket("full");
        ASSERT_TRUE(full.ok()) << full.status().ToString();
        Status s;
        std::string value(4000, 'x');
        for (int i = 0; i < 100000 && (s = full->Put("f" + std::to_string(i), value)).ok(); ++i) {
        }
        EXPECT_EQ(s.code(), Code::kBucketFull) << s.ToString();
        ++fills;
        break;
      }
    }
  }
  std::this_thread::sleep_for(milliseconds(200));
  for (auto& [pid, id] : clients_) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  clients_.clear();

  // Every bucket answers a write within 1 s once its worker runs.
  int wedged = 0;
  auto checker = kvd_.NewClient(std::chrono::seconds(1));
  ASSERT_TRUE(checker);
  for (const std::string& b : buckets_) {
    if (!WaitRunning(b, 0, std::chrono::seconds(10))) {
      ++wedged;
      continue;
    }
    Result<Bucket> bucket = checker->OpenBucket(b);
    if (!bucket.ok() || !bucket->Put("probe", "1").ok()) ++wedged;
  }

  // Check every client's log against the store.
  std::uint64_t ops = 0, lost = 0, torn = 0, doubled = 0, errors = 0;
  for (const std::string& path : logs_) {
    ClientLog log = ReadClientLog(path);
    ops += log.ops;
    torn += log.torn + log.stale;
    errors += log.errors;
    for (const std::string& line : log.error_lines) ADD_FAILURE() << "client error: " << line;
    for (const auto& [id, expect] : log.keys) {
      Result<Bucket> bucket = checker->OpenBucket(id.first);
      ASSERT_TRUE(bucket.ok());
      std::string value;
      Status s = bucket->Get(id.second, &value);
      std::optional<std::uint64_t> seq;
      if (s.ok()) {
        seq = ParseValue(id.second, value);
        if (!seq) {
          ++torn;
          continue;
        }
      } else if (!s.IsNotFound()) {
        ++torn;
        continue;
      }
      // The final state is the last acknowledged op, or one sent after it (maybe applied).
      auto matches = [&](std::uint64_t candidate, bool is_delete) {
        return is_delete ? !seq.has_value() : (seq && *seq == candidate);
      };
      bool ok =
          expect.acked == 0 ? !seq.has_value() : matches(expect.acked, expect.acked_is_delete);
      for (const auto& [candidate, is_delete] : expect.maybe)
        ok = ok || matches(candidate, is_delete);
      if (!ok) {
        ++lost;
        ADD_FAILURE() << "key " << id.first << "/" << id.second << " holds "
                      << (seq ? std::to_string(*seq) : "nothing") << ", acknowledged "
                      << expect.acked;
      }
    }
    for (const auto& [id, expect] : log.counters) {
      Result<Bucket> bucket = checker->OpenBucket(id.first);
      ASSERT_TRUE(bucket.ok());
      std::string value;
      std::int64_t n = bucket->Get(id.second, &value).ok() ? std::stoll(value) : 0;
      // Increments are applied exactly once: more than were sent is a doubled one.
      if (n > expect.sent) {
        ++doubled;
        ADD_FAILURE() << "counter " << id.first << "/" << id.second << " = " << n << ", only "
                      << expect.sent << " increments sent";
      } else if (n < expect.acked_max) {
        ++lost;
        ADD_FAILURE() << "counter " << id.first << "/" << id.second << " = " << n
                      << ", acknowledged " << expect.acked_max << ", sent " << expect.sent;
      }
    }
  }
  int faults_done = worker_kills + kvd_kills + client_kills + client_stops + fills;
  std::cout << "chaos faults: " << worker_kills << " worker kills, " << kvd_kills << " kvd kills, "
            << client_kills << " client kills, " << client_stops << " client stops, " << fills
            << " fills\n";
  std::cout << "chaos: " << ops << " ops, " << faults_done << " faults, " << lost << " lost, "
            << torn << " torn, " << wedged << " wedged, " << doubled << " doubled" << std::endl;
  std::cout << "chaos: " << errors << " client-visible write errors during the faults" << std::endl;
  EXPECT_EQ(lost, 0u);
  EXPECT_EQ(doubled, 0u);
  EXPECT_EQ(errors, 0u);
  EXPECT_EQ(torn, 0u);
  EXPECT_EQ(wedged, 0);
  EXPECT_GE(worker_kills, plan.worker_kills * 9 / 10);
  EXPECT_EQ(kvd_kills, plan.kvd_kills);
  EXPECT_EQ(client_kills, plan.client_kills);
  EXPECT_GT(ops, 1000u);

  // Nothing leaks: after a clean stop no process of the namespace remains.
  EXPECT_EQ(kvd_.Stop(), 0);
  ReapOrphans();
  EXPECT_TRUE(kv::testing::ProcessesOfNamespace(kvd_.ns()).empty());
}

}  // namespace
}  // namespace kv::chaos
