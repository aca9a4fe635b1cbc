// The exactly-once log's crash recovery, step by step (shm/channel_dedup.h): a worker killed at
// each point between a request's intent and its outcome is simulated by stopping there and
// opening the log again, as the next worker does; Recover must then say "applied" exactly when
// the table holds the write, rebuild its reply, and count it once in writes_applied.
#include "shm/channel_dedup.h"

#include <gtest/gtest.h>

#include "shm/message.h"
#include "tests/testing/kvd_harness.h"

namespace kv::shm {
namespace {

constexpr std::uint8_t kPut = static_cast<std::uint8_t>(Op::kPut);
constexpr std::uint8_t kDelete = static_cast<std::uint8_t>(Op::kDelete);
constexpr std::uint8_t kIncr = static_cast<std::uint8_t>(Op::kIncr);

class ChannelDedupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ns_ = kv::testing::UniqueNamespace();
    ShmError e;
    table_ = TableWriter::Create(ns_ + ".b1.g1", 1, 1, 64, 16 * 1024, 0600, &e);
    ASSERT_TRUE(table_.valid()) << e.message;
    table_.Publish();
    dedup_ = Open();
    table_.SetSwingHook(&ChannelDedup::Swung, dedup_.swing_context());
    entry_ = dedup_.Claim(42, [](std::uint32_t) { return false; });
    ASSERT_NE(entry_, kNoDedupEntry);
  }
  void TearDown() override {
    Segment::Remove(ns_ + ".b1.g1");
    Segment::Remove(ns_ + ".b1.g2");
    Segment::Remove(ns_ + ".b1.dedup");
  }
  ChannelDedup Open() {
    bool reset = false;
    ShmError e;
    ChannelDedup d = ChannelDedup::OpenOrCreate(ns_ + ".b1.dedup", 1, 0600, &reset, &e);
    EXPECT_TRUE(d.valid()) << e.message;
    return d;
  }
  // What the next worker does after a SIGKILL: map the log again and recover.
  const DedupEntry& Restart() {
    dedup_ = Open();
    dedup_.Recover(table_);
    table_.SetSwingHook(&ChannelDedup::Swung, dedup_.swing_context());
    EXPECT_EQ(dedup_.Find(42), entry_);
    return dedup_.entry(entry_);
  }
  std::uint64_t OffsetOf(std::string_view key) {
    RecordRef ref;
    EXPECT_EQ(table_.view().Find(key, &ref), ReadResult::kFound);
    return table_.view().RecordOffset(ref);
  }
  std::uint64_t Writes() { return table_.view().Stats().writes_applied; }

  std::string ns_;
  TableWriter table_;
  ChannelDedup dedup_;
  std::uint32_t entry_ = kNoDedupEntry;
};

TEST_F(ChannelDedupTest, FinishedRequestIsRecorded) {
  std::uint64_t version = 0;
  dedup_.Begin(entry_, 1, kPut, table_.view());
  ASSERT_EQ(table_.Put("k", "v", &version), WriteResult::kOk);
  dedup_.Finish(0, static_cast<std::int64_t>(version));
  const DedupEntry& e = Restart();
  EXPECT_EQ(e.applied_seq, 1u);
  EXPECT_EQ(e.number, static_cast<std::int64_t>(version));
  EXPECT_EQ(Writes(), 1u);
}

TEST_F(ChannelDedupTest, BegunButNothingWrittenIsNotApplied) {
  dedup_.Begin(entry_, 1, kPut, table_.view());
  const DedupEntry& e = Restart();
  EXPECT_EQ(e.applied_seq, 0u);
  EXPECT_EQ(Writes(), 0u);
}

TEST_F(ChannelDedupTest, SwungAndStoredPutIsAppliedWithItsVersion) {
  std::uint64_t version = 0;
  dedup_.Begin(entry_, 7, kPut, table_.view());
  ASSERT_EQ(table_.Put("k", "v", &version), WriteResult::kOk);  // killed before Finish
  const DedupEntry& e = Restart();
  EXPECT_EQ(e.applied_seq, 7u);
  EXPECT_EQ(e.status, 0);
  EXPECT_EQ(e.number, static_cast<std::int64_t>(version));
  EXPECT_EQ(Writes(), 1u);
}

TEST_F(ChannelDedupTest, SwungButNotStoredPutIsNotApplied) {
  ASSERT_EQ(table_.Put("k", "old", nullptr), WriteResult::kOk);
  std::uint64_t appended = OffsetOf("k");
  ASSERT_EQ(table_.Put("k", "current", nullptr), WriteResult::kOk);
  // Killed between the intent naming a record and the slot store: the slot points elsewhere.
  dedup_.Begin(entry_, 3, kPut, table_.view());
  ChannelDedup::Swung(dedup_.swing_context(), 1, appended);
  const DedupEntry& e = Restart();
  EXPECT_EQ(e.applied_seq, 0u);
  EXPECT_EQ(Writes(), 2u);
}

TEST_F(ChannelDedupTest, SwungIncrementIsAnsweredWithItsValue) {
  dedup_.Begin(entry_, 4, kIncr, table_.view());
  ASSERT_EQ(table_.Put("n", "41", nullptr), WriteResult::kOk);  // what an increment writes
  const DedupEntry& e = Restart();
  EXPECT_EQ(e.applied_seq, 4u);
  EXPECT_EQ(e.number, 41);
}

TEST_F(ChannelDedupTest, SwungDeleteIsAppliedIffTheKeyIsGoneAndKeepsTheOldValue) {
  ASSERT_EQ(table_.Put("k", "old value", nullptr), WriteResult::kOk);
  std::uint64_t record = OffsetOf("k");
  // Not applied: the intent names the key's record, which the slot still points at.
  dedup_.Begin(entry_, 5, kDelete, table_.view());
  ChannelDedup::Swung(dedup_.swing_context(), 1, record);
  EXPECT_EQ(Restart().applied_seq, 0u);
  // Applied: tombstoned, killed before Finish.
  dedup_.Begin(entry_, 5, kDelete, table_.view());
  ASSERT_EQ(table_.Delete("k", nullptr), WriteResult::kOk);
  const DedupEntry& e = Restart();
  EXPECT_EQ(e.applied_seq, 5u);
  std::string value;
  ASSERT_TRUE(ChannelDedup::ReplyValue(e, table_.view(), &value));
  EXPECT_EQ(value, "old value");
  EXPECT_EQ(Writes(), 2u);
}

TEST_F(ChannelDedupTest, DeletedValueIsCarriedIntoTheNextGeneration) {
  ASSERT_EQ(table_.Put("k", "old value", nullptr), WriteResult::kOk);
  dedup_.Begin(entry_, 9, kDelete, table_.view());
  ASSERT_EQ(table_.Delete("k", nullptr), WriteResult::kOk);
  dedup_.Finish(0, 0);
  ShmError e;
  TableWriter next = table_.BuildNext(ns_ + ".b1.g2", 0, false, 0, &e);
  ASSERT_TRUE(next.valid()) << e.message;
  dedup_.CarryValues(table_.view(), next, 2);
  next.Publish();
  // Killed after the anchor named generation 2, before AdoptGeneration: recovery finishes it.
  table_ = std::move(next);
  const DedupEntry& entry = Restart();
  EXPECT_EQ(entry.value_generation, 2u);
  std::string value;
  ASSERT_TRUE(ChannelDedup::ReplyValue(entry, table_.view(), &value));
  EXPECT_EQ(value, "old value");
}

TEST_F(ChannelDedupTest, EntriesAreReusedOldestFirstButNeverWhileInUse) {
  for (std::uint64_t id = 100; id < 100 + kDedupEntries - 1; ++id) {
    ASSERT_NE(dedup_.Claim(id, [](std::uint32_t) { return false; }), kNoDedupEntry);
  }
  // Full now: 42 is the oldest, then 100, 101, ...
  std::uint32_t in_use = entry_;
  std::uint32_t evicted = dedup_.Claim(7, [&](std::uint32_t i) { return i == in_use; });
  ASSERT_NE(evicted, kNoDedupEntry);
  EXPECT_EQ(dedup_.Find(42), entry_);  // in use: kept
  EXPECT_EQ(dedup_.Find(100), kNoDedupEntry);
  EXPECT_EQ(dedup_.Find(7), evicted);
  EXPECT_EQ(dedup_.entry(evicted).applied_seq, 0u);
  EXPECT_EQ(dedup_.Claim(8, [](std::uint32_t) { return true; }), kNoDedupEntry);
  // A retired entry (its client hung up) goes before older ones, and only when space is needed.
  std::uint32_t recent = dedup_.Find(100 + kDedupEntries - 2);
  dedup_.Retire(recent);
  EXPECT_EQ(dedup_.Find(100 + kDedupEntries - 2), recent);
  EXPECT_EQ(dedup_.Claim(9, [&](std::uint32_t i) { return i == in_use; }), recent);
  EXPECT_EQ(dedup_.Find(100 + kDedupEntries - 2), kNoDedupEntry);
}

}  // namespace
}  // namespace kv::shm
