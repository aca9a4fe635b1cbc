// Batches across a worker crash (issue 20, item 2): the worker is SIGKILLed at each named crash
// point inside a batch (KV_CRASH_POINT, armed while a gate file exists). Whatever the point:
//  - readers never see part of the batch through a snapshot, and a key a plain Get saw changed
//    never changes back (the dead worker's batch is completed, never undone, once published);
//  - the client's Write returns OK once and the batch is applied exactly once (the
//    exactly-once log answers a replay of an applied batch);
//  - the change feed holds all of the batch's changes, together, or none of them and a RESYNC.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <thread>

#include "tests/table/table_testing.h"
#include "tests/testing/bucket_fixture.h"
#include "tests/testing/child_process.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::testing::ForkChild;
using kv::testing::KvdInstance;
using kv::testing::WaitChild;

constexpr int kAccounts = 8;
constexpr std::int64_t kStart = 1000;

std::string Account(int i) { return "acct" + std::to_string(i); }
std::int64_t Delta(int i) { return i < kAccounts / 2 ? -10 : 10; }

struct ReaderShared {
  std::atomic<int> stop{0};
  std::atomic<std::uint64_t> checks{0};
  std::atomic<std::uint64_t> bad{0};
  kv::testing::ErrorSlot error;
};

int Reader(const std::string& ns, ReaderShared* shared) {
  auto bucket = kv::testing::OpenInChild(ns, "b");
  if (!bucket.ok()) return 21;
  std::vector<bool> changed(kAccounts, false);
  std::string value;
  auto bad = [&](const std::string& why) {
    shared->bad.fetch_add(1);
    shared->error.Set(why);
  };
  while (shared->stop.load() == 0) {
    Result<Snapshot> snap = bucket->Snapshot();
    if (!snap.ok()) {
      bad("snapshot: " + snap.status().ToString());
      continue;
    }
    std::int64_t sum = 0;
    int after = 0;
    for (int i = 0; i < kAccounts; ++i) {
      if (!snap->Get(Account(i), &value).ok()) {
        bad("snapshot get failed");
        break;
      }
      sum += std::stoll(value);
      after += value != std::to_string(kStart);
    }
    bool created = snap->Get("created", &value).ok();
    bool victim = snap->Get("victim", &value).ok();
    if (sum != kStart * kAccounts || !(after == 0 || after == kAccounts) ||
        created != (after == kAccounts) || victim == created) {
      bad("snapshot saw part of the batch: sum " + std::to_string(sum) + ", " +
          std::to_string(after) + " accounts changed, created " + std::to_string(created) +
          ", victim " + std::to_string(victim));
    }
    for (int i = 0; i < kAccounts; ++i) {  // plain reads: never undone once seen
      if (!bucket->Get(Account(i), &value).ok()) continue;
      bool now = value != std::to_string(kStart);
      if (changed[i] && !now) bad("account " + std::to_string(i) + " changed back");
      changed[i] = changed[i] || now;
    }
    shared->checks.fetch_add(1);
  }
  return 0;
}

std::uint32_t Restarts(Client& client) {
  auto status = client.GetStatus();
  if (!status.ok()) return 0;
  for (const BucketInfo& b : status.value().buckets) {
    if (b.name == "b") return b.restarts;
  }
  return 0;
}

class BatchCrashTest : public ::testing::TestWithParam<const char*> {};

TEST_P(BatchCrashTest, WorkerKilledInsideABatchLeavesAllOrNothing) {
  std::string gate = ::testing::TempDir() + "/kvt-batch-gate-" + std::to_string(::getpid());
  ::unlink(gate.c_str());
  ::setenv("KV_CRASH_POINT", GetParam(), 1);
  ::setenv("KV_CRASH_POINT_GATE", gate.c_str(), 1);
  KvdInstance kvd({"--max-restarts", "100", "--max-seconds", "1"});
  ::unsetenv("KV_CRASH_POINT");
  ::unsetenv("KV_CRASH_POINT_GATE");
  auto client = kvd.NewClient(std::chrono::seconds(20));
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->CreateBucket("b").ok());
  Result<Bucket> opened = client->OpenBucket("b");
  ASSERT_TRUE(opened.ok());
  Bucket bucket = opened.value();
  WriteBatch init;
  for (int i = 0; i < kAccounts; ++i) init.Put(Account(i), std::to_string(kStart));
  init.Put("victim", "v");
  ASSERT_TRUE(bucket.Write(init).ok());
  Result<Subscription> sub = bucket.Subscribe();
  ASSERT_TRUE(sub.ok());

  kv::testing::SharedMemory<ReaderShared> shared;
  pid_t reader = ForkChild([&] { return Reader(kvd.ns(), &*shared); });
  ASSERT_GT(reader, 0);
  ASSERT_TRUE(
      kv::testing::WaitFor([&] { return shared->checks.load() > 10; }, std::chrono::seconds(30)));

  std::ofstream(gate) << "crash\n";
  std::thread ungate([&] {  // the first crash is enough: let the restarted worker finish it
    kv::testing::WaitFor([&] { return Restarts(*client) >= 1; }, std::chrono::seconds(30));
    ::unlink(gate.c_str());
  });
  WriteBatch batch;
  for (int i = 0; i < kAccounts; ++i) batch.Put(Account(i), std::to_string(kStart + Delta(i)));
  batch.Put("created", "1");
  batch.Delete("victim");
  Status s = bucket.Write(batch);
  ungate.join();
  ::unlink(gate.c_str());
  EXPECT_TRUE(s.ok()) << s.ToString();
  std::uint32_t restarts = Restarts(*client);
  EXPECT_GE(restarts, 1u) << "the worker never reached " << GetParam();

  // Applied exactly once.
  std::string value;
  for (int i = 0; i < kAccounts; ++i) {
    ASSERT_TRUE(bucket.Get(Account(i), &value).ok());
    EXPECT_EQ(value, std::to_string(kStart + Delta(i))) << Account(i);
  }
  EXPECT_TRUE(bucket.Get("created", &value).ok());
  EXPECT_TRUE(bucket.Get("victim", &value).IsNotFound());

  // The feed: the batch's ten changes together, or none and a RESYNC.
  int batch_changes = 0, resyncs = 0, runs = 0;
  bool in_run = false;
  Change c;
  while (sub->Next(&c, std::chrono::milliseconds(300)).ok()) {
    bool mine = c.kind == Change::Kind::kPut || c.kind == Change::Kind::kDelete;
    if (mine) {
      ++batch_changes;
      if (!in_run) ++runs;
    }
    in_run = mine;
    resyncs += c.kind == Change::Kind::kResync;
    EXPECT_NE(c.kind, Change::Kind::kMissed);
  }
  EXPECT_TRUE((batch_changes == kAccounts + 2 && runs == 1) || (batch_changes == 0 && resyncs > 0))
      << batch_changes << " changes in " << runs << " runs, " << resyncs << " resyncs";

  shared->stop.store(1);
  EXPECT_EQ(WaitChild(reader, std::chrono::seconds(30)), 0);
  EXPECT_EQ(shared->bad.load(), 0u) << shared->error.text;
  std::printf("%s: %u restarts, %llu reader checks, feed: %d batch changes, %d resyncs\n",
              GetParam(), restarts, static_cast<unsigned long long>(shared->checks.load()),
              batch_changes, resyncs);
}

INSTANTIATE_TEST_SUITE_P(Points, BatchCrashTest,
                         ::testing::Values("batch-planned", "batch-history-published",
                                           "batch-half-applied", "batch-slots-stored",
                                           "batch-feed-appended", "after-apply",
                                           "before-request-release", "before-reply-wake"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           std::string name;
                           for (const char* p = info.param; *p != 0; ++p) {
                             if (*p != '-') name += *p;
                           }
                           return name;
                         });

}  // namespace
}  // namespace kv
