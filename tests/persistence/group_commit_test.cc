// Group commit with appendfsync always and several clients at once (docs/persistence.md, "Group
// commit"): the commit waits for the clients the last one answered (commit_gather.h), so one sync
// carries the writes of many channels. A worker killed inside that commit, or a disk that fills
// under it, must still never leave a write acknowledged that is not durable.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "daemon/persistence/commit_gather.h"
#include "tests/persistence/persistence_testing.h"
#include "tests/supervisor/supervisor_test_util.h"

namespace kv {
namespace {

using namespace kv::testing;
using daemon::persistence::CommitGather;

constexpr int kWriters = 4;

std::string Key(int writer, int i) {
  return "w" + std::to_string(writer) + "-" + std::to_string(i);
}
std::string Value(int writer, int i, std::size_t size) {
  std::string v = "value-" + std::to_string(writer) + "-" + std::to_string(i);
  v.resize(std::max(size, v.size()), 'v');
  return v;
}

// kWriters threads, each with a client (and so a channel) of its own, put `count` keys each into
// bucket "b" one sync put at a time; a writer stops at its first PERSISTENCE error if
// `stop_on_persistence`. Returns each writer's acknowledged keys.
std::vector<std::vector<int>> WriteTogether(KvdInstance& kvd, int count, std::size_t value_size,
                                            bool stop_on_persistence,
                                            std::vector<Status>* last_errors = nullptr) {
  std::vector<std::shared_ptr<Client>> clients;
  for (int w = 0; w < kWriters; ++w) {
    clients.push_back(kvd.NewClient(std::chrono::seconds(10)));
    EXPECT_TRUE(clients.back());
  }
  std::vector<std::vector<int>> acked(kWriters);
  std::vector<Status> errors(kWriters);
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      if (!clients[w]) return;
      for (int i = 0; i < count; ++i) {
        Result<Bucket> b = clients[w]->OpenBucket("b");
        if (!b.ok()) continue;
        Status s = b->Put(Key(w, i), Value(w, i, value_size));
        if (s.ok()) {
          acked[w].push_back(i);
        } else {
          errors[w] = s;
          if (stop_on_persistence && s.code() == Code::kPersistence) return;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  if (last_errors != nullptr) *last_errors = errors;
  return acked;
}

void ExpectAcked(KvdInstance& kvd, const std::vector<std::vector<int>>& acked,
                 std::size_t value_size) {
  ASSERT_TRUE(WaitForState(kvd.ns(), "b", shm::kBucketRunning, std::chrono::seconds(20), 0));
  auto client = kvd.NewClient();
  Result<Bucket> b = client->OpenBucket("b");
  ASSERT_TRUE(b.ok());
  for (int w = 0; w < kWriters; ++w) {
    for (int i : acked[w]) EXPECT_EQ(Get(*b, Key(w, i)), Value(w, i, value_size)) << Key(w, i);
  }
}

class GroupCommitCrashTest : public ::testing::TestWithParam<const char*> {};

// The worker dies between the gathered commit's write and its sync, between the sync and the
// replies, or after an apply: whatever several channels had acknowledged survives a reboot.
TEST_P(GroupCommitCrashTest, WorkerKilledInsideASharedCommitLosesNoAcknowledgedWrite) {
  TempDir data;
  ScopedPath gate("kv-crash-gate");
  gate.Write("on");
  ScopedEnv point("KV_CRASH_POINT", std::string(GetParam()) + ":r40");
  ScopedEnv gate_env("KV_CRASH_POINT_GATE", gate.path());
  KvdInstance kvd({"--data-dir", data.path(), "--appendfsync", "always", "--save", "",
                   "--max-restarts", "1000"});
  auto client = kvd.NewClient();
  ASSERT_TRUE(client->CreateBucket("b").ok());
  std::vector<std::vector<int>> acked = WriteTogether(kvd, 150, 0, false);
  ::unlink(gate.path().c_str());
  std::size_t total = 0;
  for (const auto& a : acked) total += a.size();
  ASSERT_GE(total, 100u);
  client.reset();
  ASSERT_TRUE(Reboot(kvd));
  ExpectAcked(kvd, acked, 0);
}

INSTANTIATE_TEST_SUITE_P(LogPoints, GroupCommitCrashTest,
                         ::testing::Values("log-appended", "log-synced", "after-apply",
                                           "before-request-release"));

// The disk fills while several channels wait in one commit: each of them gets PERSISTENCE, none
// an acknowledgement the disk does not hold.
TEST(GroupCommitTest, FullDiskUnderSeveralClientsAcknowledgesNoWriteThatIsNotDurable) {
  TinyTmpfs disk("1m");
  if (!disk.mounted()) GTEST_SKIP() << disk.why();
  KvdInstance kvd({"--data-dir", disk.path(), "--appendfsync", "always", "--save", ""});
  auto client = kvd.NewClient();
  ASSERT_TRUE(client->CreateBucket("b").ok());
  constexpr std::size_t kValue = 4000;
  std::vector<Status> errors;
  std::vector<std::vector<int>> acked = WriteTogether(kvd, 1000, kValue, true, &errors);
  for (int w = 0; w < kWriters; ++w) {
    EXPECT_EQ(errors[w].code(), Code::kPersistence) << w << ": " << errors[w].ToString();
  }
  ASSERT_TRUE(disk.Resize("64m"));
  Result<Bucket> b = client->OpenBucket("b");
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(WaitFor([&] { return b->Put("more", "x").ok(); }, std::chrono::seconds(20)));
  b = Status(Code::kInternal, "released");
  client.reset();
  ASSERT_TRUE(Reboot(kvd));
  ExpectAcked(kvd, acked, kValue);
}

// CommitGather's rule, on given instants (no clock involved).
TEST(CommitGatherTest, WaitsForTheClientsTheLastCommitAnsweredAtMostOneSync) {
  using Clock = CommitGather::Clock;
  using std::chrono::microseconds;
  CommitGather g(/*watch_contention=*/false);
  Clock::time_point t0{};
  EXPECT_FALSE(g.Wait(t0)) << "nobody answered yet: commit at once";
  EXPECT_FALSE(g.Expecting(t0));
  g.Committed(3, microseconds(200), t0);  // answered three channels, tagged g.last()
  std::uint64_t round = g.last();
  EXPECT_TRUE(g.Expecting(t0 + microseconds(100))) << "their next writes are on their way";
  EXPECT_FALSE(g.Expecting(t0 + microseconds(5000))) << "but not for longer than a sync";
  g.Joined(round);
  EXPECT_FALSE(g.Expecting(t0 + microseconds(10)));
  g.Joined(0);  // a channel the last commit did not answer does not count
  Clock::time_point t1 = t0 + microseconds(20);
  EXPECT_TRUE(g.Wait(t1));
  g.Joined(round);
  EXPECT_TRUE(g.Wait(t1 + microseconds(10)));
  EXPECT_FALSE(g.Wait(t1 + microseconds(10'000))) << "the wait ends after about one sync";
  g.Committed(2, microseconds(200), t1);
  round = g.last();
  g.Joined(round);
  EXPECT_TRUE(g.Wait(t1));
  g.Left();  // the other one hung up
  EXPECT_FALSE(g.Wait(t1)) << "every client still there has joined";
  g.Committed(1, microseconds(200), t1);
  g.Joined(g.last());
  EXPECT_FALSE(g.Wait(t1)) << "one client: its commit never waits";
}

}  // namespace
}  // namespace kv
