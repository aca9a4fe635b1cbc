// Snapshots (issue 20, item 3): Bucket::Snapshot reads the bucket as it was when taken, while
// writes, growth and clears continue; its bounds (the history window, the pinned generation)
// end it with SNAPSHOT_TOO_OLD, never a wrong answer; and `kvctl dump` taken during a write
// storm equals the bucket's state at one moment of the writer's sequence.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <set>
#include <string>

#include "tests/table/table_testing.h"
#include "tests/testing/bucket_fixture.h"
#include "tests/testing/child_process.h"

namespace kv {
namespace {

using kv::testing::ForkChild;
using kv::testing::WaitChild;

class SnapshotTest : public kv::testing::BucketFixture {};

std::string SnapGet(Snapshot& s, std::string_view key) {
  std::string value;
  Status st = s.Get(key, &value);
  if (st.IsNotFound()) return "NOT_FOUND";
  return st.ok() ? value : st.ToString();
}

std::map<std::string, std::string> SnapScan(Snapshot& s, Status* status = nullptr) {
  std::map<std::string, std::string> out;
  Status st = s.Scan("", [&](std::string_view k, std::string_view v) {
    EXPECT_TRUE(out.emplace(std::string(k), std::string(v)).second) << "key seen twice";
    return true;
  });
  if (status != nullptr) *status = st;
  EXPECT_TRUE(st.ok() || status != nullptr) << st.ToString();
  return out;
}

TEST_F(SnapshotTest, SeesTheBucketAsItWasWhenTaken) {
  ASSERT_TRUE(bucket_->Put("a", "1").ok());
  ASSERT_TRUE(bucket_->Put("b", "1").ok());
  Result<Snapshot> snap = bucket_->Snapshot();
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  ASSERT_TRUE(bucket_->Put("a", "2").ok());
  ASSERT_TRUE(bucket_->Delete("b").ok());
  ASSERT_TRUE(bucket_->Put("c", "new").ok());
  ASSERT_TRUE(bucket_->Put("b", "back").ok());  // b back in a (possibly) different slot
  EXPECT_EQ(SnapGet(*snap, "a"), "1");
  EXPECT_EQ(SnapGet(*snap, "b"), "1");
  EXPECT_EQ(SnapGet(*snap, "c"), "NOT_FOUND");
  EXPECT_EQ(SnapScan(*snap), (std::map<std::string, std::string>{{"a", "1"}, {"b", "1"}}));
  Result<Snapshot> now = bucket_->Snapshot();
  ASSERT_TRUE(now.ok());
  EXPECT_GT(now->sequence(), snap->sequence());
  EXPECT_EQ(SnapScan(*now),
            (std::map<std::string, std::string>{{"a", "2"}, {"b", "back"}, {"c", "new"}}));
}

TEST_F(SnapshotTest, SurvivesGrowthAndClearOfTheBucket) {
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(bucket_->Put("k" + std::to_string(i), "old").ok());
  Result<Snapshot> snap = bucket_->Snapshot();
  ASSERT_TRUE(snap.ok());
  for (int i = 0; i < 3000; ++i)
    ASSERT_TRUE(bucket_->PutAsync("k" + std::to_string(i), "new").ok());
  ASSERT_TRUE(bucket_->Flush().ok());
  ASSERT_TRUE(bucket_->Clear().ok());
  Result<BucketStats> stats = bucket_->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_GT(stats->generation, 2u) << "the test needs the table to have grown";
  std::map<std::string, std::string> seen = SnapScan(*snap);
  EXPECT_EQ(seen.size(), 50u);
  for (const auto& [k, v] : seen) EXPECT_EQ(v, "old") << k;
  EXPECT_EQ(SnapGet(*snap, "k7"), "old");
  EXPECT_EQ(SnapGet(*snap, "k700"), "NOT_FOUND");
}

TEST_F(SnapshotTest, AReplacedGenerationOverThePinningLimitIsTooOld) {
  ASSERT_TRUE(bucket_->Put("a", "1").ok());
  SnapshotOptions tiny;
  tiny.max_pinned_bytes = 4096;  // smaller than any generation
  Result<Snapshot> snap = bucket_->Snapshot(tiny);
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ(SnapGet(*snap, "a"), "1");  // its generation is current: nothing is pinned
  ASSERT_TRUE(bucket_->Clear().ok());   // replaces the generation
  std::string value;
  Status s = snap->Get("a", &value);
  EXPECT_EQ(s.code(), Code::kSnapshotTooOld) << s.ToString();
  EXPECT_NE(s.message().find("max_pinned_bytes"), std::string::npos) << s.message();
  EXPECT_EQ(snap->Scan("", [](std::string_view, std::string_view) { return true; }).code(),
            Code::kSnapshotTooOld);
  // A default snapshot keeps reading the replaced generation.
  ASSERT_TRUE(bucket_->Put("a", "2").ok());
  Result<Snapshot> kept = bucket_->Snapshot();
  ASSERT_TRUE(kept.ok());
  ASSERT_TRUE(bucket_->Clear().ok());
  EXPECT_EQ(SnapGet(*kept, "a"), "2");
}

TEST_F(SnapshotTest, FallingOutOfTheHistoryWindowIsTooOldNeverWrong) {
  ASSERT_TRUE(bucket_->Put("a", "before").ok());
  Result<Snapshot> snap = bucket_->Snapshot();
  ASSERT_TRUE(snap.ok());
  Result<Snapshot> reading = bucket_->Snapshot();  // keeps up: reads between the writes
  ASSERT_TRUE(reading.ok());
  // More slot changes than the window (65536) before `snap` looks again.
  for (int i = 0; i < 70'000; ++i) {
    ASSERT_TRUE(bucket_->PutAsync("a", std::to_string(i)).ok());
    if (i % 8192 == 0) {
      ASSERT_TRUE(bucket_->Flush().ok());
      EXPECT_EQ(SnapGet(*reading, "a"), "before");
    }
  }
  ASSERT_TRUE(bucket_->Flush().ok());
  std::string value;
  Status s = snap->Get("a", &value);
  EXPECT_EQ(s.code(), Code::kSnapshotTooOld) << s.ToString();
  EXPECT_NE(s.message().find("65536"), std::string::npos) << s.message();
  EXPECT_EQ(snap->Get("a", &value).code(), Code::kSnapshotTooOld) << "sticky";
  // The one that kept reading answers still.
  EXPECT_EQ(SnapGet(*reading, "a"), "before");
}

// --- dump during a write storm --------------------------------------------------------------

constexpr int kStormKeys = 1500;

// The writer's schedule: write `seq` (1-based) stores "seq" under key StormKey(seq): every key
// is written for seq 1..kStormKeys, then keys in a scrambled order.
std::string StormKey(std::uint64_t seq) {
  std::uint64_t k = seq <= kStormKeys ? seq - 1 : (seq * 7919) % kStormKeys;
  return "storm" + std::to_string(k);
}

struct StormShared {
  std::atomic<int> stop{0};
  std::atomic<std::uint64_t> acked{0};  // writes acknowledged so far
};

int StormWriter(const std::string& ns, StormShared* shared) {
  auto bucket = kv::testing::OpenInChild(ns, "b");
  if (!bucket.ok()) return 21;
  for (std::uint64_t seq = 1; shared->stop.load() == 0; ++seq) {
    if (!bucket->Put(StormKey(seq), std::to_string(seq)).ok()) return 22;
    shared->acked.store(seq, std::memory_order_release);
  }
  return 0;
}

// `state` must be the bucket after writes 1..X of the schedule for one X in [lo, hi]. Returns
// an empty string or what is wrong.
std::string CheckPointInTime(const std::map<std::string, std::string>& state, std::uint64_t lo,
                             std::uint64_t hi) {
  std::uint64_t x = 0;
  for (const auto& [k, v] : state) x = std::max<std::uint64_t>(x, std::stoull(v));
  if (x < lo || x > hi) {
    return "newest write " + std::to_string(x) + " outside [" + std::to_string(lo) + ", " +
           std::to_string(hi) + "]";
  }
  std::map<std::string, std::string> expected;
  for (std::uint64_t seq = 1; seq <= x; ++seq) expected[StormKey(seq)] = std::to_string(seq);
  if (expected == state) return {};
  for (const auto& [k, v] : expected) {
    auto it = state.find(k);
    if (it == state.end()) return "key " + k + " missing at write " + std::to_string(x);
    if (it->second != v) {
      return "key " + k + " is " + it->second + ", at write " + std::to_string(x) + " it was " + v;
    }
  }
  return "extra keys at write " + std::to_string(x);
}

TEST_F(SnapshotTest, DumpDuringAWriteStormIsTheStateAtOneMoment) {
  kv::testing::SharedMemory<StormShared> shared;
  pid_t writer = ForkChild([&] { return StormWriter(kvd_.ns(), &*shared); });
  ASSERT_GT(writer, 0);
  ASSERT_TRUE(kv::testing::WaitFor([&] { return shared->acked.load() > 3 * kStormKeys; },
                                   std::chrono::seconds(60)));
  std::string file = ::testing::TempDir() + "/storm-" + kvd_.ns() + ".kvdump";
  for (int round = 0; round < 5; ++round) {
    std::uint64_t lo = shared->acked.load();
    kv::testing::CommandResult dump =
        kv::testing::RunCommand({kv::testing::KvctlPath(), "-n", kvd_.ns(), "dump", "b", file});
    std::uint64_t hi = shared->acked.load() + 1;  // the write in flight may be in it
    ASSERT_EQ(dump.exit_code, 0) << dump.err;
    // Load it into another bucket and read it back.
    std::string copy = "copy" + std::to_string(round);
    kv::testing::CommandResult load =
        kv::testing::RunCommand({kv::testing::KvctlPath(), "-n", kvd_.ns(), "load", copy, file});
    ASSERT_EQ(load.exit_code, 0) << load.err;
    Result<Bucket> b = client_->OpenBucket(copy);
    ASSERT_TRUE(b.ok());
    std::map<std::string, std::string> state;
    ASSERT_TRUE(b->Scan("", [&](std::string_view k, std::string_view v) {
                   state.emplace(std::string(k), std::string(v));
                   return true;
                 }).ok());
    EXPECT_EQ(CheckPointInTime(state, lo, hi), "") << "dump round " << round;
    // And a snapshot taken in-process, scanned while the storm goes on.
    lo = shared->acked.load();
    Result<Snapshot> snap = bucket_->Snapshot();
    hi = shared->acked.load() + 1;
    ASSERT_TRUE(snap.ok());
    std::map<std::string, std::string> seen = SnapScan(*snap);
    EXPECT_EQ(CheckPointInTime(seen, lo, hi), "") << "snapshot round " << round;
  }
  std::remove(file.c_str());
  shared->stop.store(1);
  EXPECT_EQ(WaitChild(writer, std::chrono::seconds(30)), 0);
  std::printf("storm: %llu writes\n", static_cast<unsigned long long>(shared->acked.load()));
}

}  // namespace
}  // namespace kv
