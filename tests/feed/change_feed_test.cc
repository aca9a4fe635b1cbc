#include "shm/change_feed.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/testing/kvd_harness.h"

namespace kv::shm {
namespace {

// Reads as a subscriber does: Read, and once it reaches the head it knows, load the head again and
// retry.
FeedRead ReadNext(const FeedReader& r, std::uint64_t* seq, FeedRecord* rec, std::uint64_t* missed) {
  FeedRead res = r.Read(seq, rec, missed);
  if (res != FeedRead::kEmpty) return res;
  r.RefreshHead();
  return r.Read(seq, rec, missed);
}

class ChangeFeedTest : public ::testing::Test {
 protected:
  void TearDown() override { Segment::Remove(name_); }
  FeedWriter Open(bool* unclean, std::uint64_t slots = 64, std::uint64_t data = 4096) {
    ShmError e;
    FeedWriter w = FeedWriter::OpenOrCreate(name_, 1, slots, data, 0600, unclean, &e);
    EXPECT_TRUE(w.valid()) << e.message;
    return w;
  }
  FeedReader Reader() {
    ShmError e;
    reader_segment_ = Segment::OpenReadOnly(name_, &e);
    FeedReader r;
    EXPECT_EQ(r.Attach(reader_segment_.data(), reader_segment_.size()), "");
    return r;
  }
  std::string name_ = kv::testing::UniqueNamespace() + ".b1.feed";
  Segment reader_segment_;
};

TEST_F(ChangeFeedTest, RecordsComeOutInOrderWithKeysAndValues) {
  bool unclean = true;
  FeedWriter w = Open(&unclean);
  EXPECT_FALSE(unclean);
  FeedReader r = Reader();
  std::uint64_t seq = r.Head();
  w.Append(FeedOp::kPut, "milk", "3");
  w.Append(FeedOp::kDelete, std::string("\0k", 2), "");
  w.Append(FeedOp::kClear, "", "");
  FeedRecord rec;
  std::uint64_t missed = 0;
  std::uint32_t wake = r.WakeValue();
  ASSERT_EQ(ReadNext(r, &seq, &rec, &missed), FeedRead::kRecord);  // visible before the wake-up
  EXPECT_EQ(r.WakeValue(), wake);
  w.Publish(true);
  EXPECT_NE(r.WakeValue(), wake);
  EXPECT_EQ(rec.seq, 1u);
  EXPECT_EQ(rec.op, FeedOp::kPut);
  EXPECT_EQ(rec.key, "milk");
  EXPECT_EQ(rec.value, "3");
  ASSERT_EQ(ReadNext(r, &seq, &rec, &missed), FeedRead::kRecord);
  EXPECT_EQ(rec.op, FeedOp::kDelete);
  EXPECT_EQ(rec.key, std::string("\0k", 2));
  ASSERT_EQ(ReadNext(r, &seq, &rec, &missed), FeedRead::kRecord);
  EXPECT_EQ(rec.op, FeedOp::kClear);
  EXPECT_EQ(ReadNext(r, &seq, &rec, &missed), FeedRead::kEmpty);
}

TEST_F(ChangeFeedTest, SlowReaderIsToldExactlyHowManyItMissed) {
  bool unclean;
  FeedWriter w = Open(&unclean, 64, 1 << 16);
  FeedReader r = Reader();
  std::uint64_t seq = 1;
  for (int i = 0; i < 200; ++i) w.Append(FeedOp::kPut, "k" + std::to_string(i), "v");
  w.Publish(true);
  FeedRecord rec;
  std::uint64_t missed = 0;
  ASSERT_EQ(ReadNext(r, &seq, &rec, &missed), FeedRead::kMissed);
  EXPECT_EQ(missed, 200u - 64u);
  ASSERT_EQ(ReadNext(r, &seq, &rec, &missed), FeedRead::kRecord);
  EXPECT_EQ(rec.key, "k136");
}

TEST_F(ChangeFeedTest, OverwrittenDataCountsAsMissedNeverTorn) {
  bool unclean;
  FeedWriter w = Open(&unclean, 1024, 4096);  // data ring smaller than the slots can describe
  FeedReader r = Reader();
  std::uint64_t seq = 1;
  std::string value(500, 'x');
  for (int i = 0; i < 20; ++i) w.Append(FeedOp::kPut, "k" + std::to_string(i), value);
  w.Publish(true);
  FeedRecord rec;
  std::uint64_t missed = 0, total_missed = 0, records = 0;
  for (;;) {
    FeedRead res = ReadNext(r, &seq, &rec, &missed);
    if (res == FeedRead::kEmpty) break;
    if (res == FeedRead::kMissed) total_missed += missed;
    if (res == FeedRead::kRecord) {
      ++records;
      EXPECT_EQ(rec.value, value);
    }
    ASSERT_NE(res, FeedRead::kCorrupt);
  }
  EXPECT_EQ(records + total_missed, 20u);
  EXPECT_GT(total_missed, 0u);
}

TEST_F(ChangeFeedTest, ReopenContinuesSequenceAndReportsUncleanStop) {
  bool unclean;
  {
    FeedWriter w = Open(&unclean);
    w.Append(FeedOp::kPut, "a", "1");
    w.Publish(true);  // no Close(): as if killed
  }
  FeedWriter w = Open(&unclean);
  EXPECT_TRUE(unclean);
  EXPECT_EQ(w.next_seq(), 2u);
  w.Close();
  FeedWriter again = Open(&unclean);
  EXPECT_FALSE(unclean);
}

// A writer killed in the middle of a batch stored data_head only at its last Publish: the next
// writer must still put its data after every record readers can see, not over them.
TEST_F(ChangeFeedTest, WriterKilledMidBatchNeverOverwritesPublishedRecords) {
  bool unclean;
  {
    FeedWriter w = Open(&unclean);
    w.Append(FeedOp::kPut, "a", "1");
    w.Publish(true);
    w.Append(FeedOp::kPut, "bb", "22");  // visible to readers, data_head not yet stored
    w.Append(FeedOp::kPut, "ccc", "333");
  }
  FeedWriter w = Open(&unclean);
  EXPECT_TRUE(unclean);
  w.Append(FeedOp::kResync, "", "");
  w.Append(FeedOp::kPut, "dddd", "4444");
  FeedReader r = Reader();
  std::uint64_t seq = 1, missed = 0;
  FeedRecord rec;
  for (auto [key, value] : {std::pair<const char*, const char*>{"a", "1"},
                            {"bb", "22"},
                            {"ccc", "333"},
                            {"", ""},
                            {"dddd", "4444"}}) {
    ASSERT_EQ(ReadNext(r, &seq, &rec, &missed), FeedRead::kRecord) << "seq " << seq;
    EXPECT_EQ(rec.key, key);
    EXPECT_EQ(rec.value, value);
  }
  EXPECT_EQ(ReadNext(r, &seq, &rec, &missed), FeedRead::kEmpty);
}

// Bytes of /dev/shm memory the object holds (tmpfs counts only allocated pages).
std::uint64_t AllocatedBytes(const std::string& name) {
  struct stat st {};
  if (::stat(("/dev/shm/" + name).c_str(), &st) != 0) return ~0ull;
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

TEST_F(ChangeFeedTest, MemoryIsReservedOnlyAsRecordsAreWritten) {
  bool unclean;
  FeedWriter w = Open(&unclean, 4096, 256 * 1024);  // the worker's geometry
  EXPECT_LE(AllocatedBytes(name_), 4096u);          // a bucket nobody writes: one page
  FeedReader r = Reader();
  w.Append(FeedOp::kPut, "milk", "3");
  w.Publish(true);
  std::uint64_t one = AllocatedBytes(name_);
  EXPECT_LE(one, 3 * 4096u + 16 * 1024 + 64 * 1024);  // a chunk of slots and one of data
  std::uint64_t seq = 1, missed = 0;
  FeedRecord rec;
  ASSERT_EQ(ReadNext(r, &seq, &rec, &missed), FeedRead::kRecord);
  EXPECT_EQ(rec.key, "milk");
  std::string value(100, 'v');
  for (int i = 0; i < 10000; ++i) w.Append(FeedOp::kPut, "k" + std::to_string(i), value);
  w.Publish(true);
  EXPECT_GE(AllocatedBytes(name_), 4096u * sizeof(FeedSlot) + 256 * 1024);  // all of it, once
  std::uint64_t records = 0, total_missed = 0;
  for (;;) {
    FeedRead res = ReadNext(r, &seq, &rec, &missed);
    if (res == FeedRead::kEmpty) break;
    ASSERT_NE(res, FeedRead::kCorrupt);
    if (res == FeedRead::kMissed) total_missed += missed;
    if (res == FeedRead::kRecord) {
      ++records;
      EXPECT_EQ(rec.key, "k" + std::to_string(rec.seq - 2));
    }
  }
  EXPECT_EQ(records + total_missed, 10000u);
}

TEST_F(ChangeFeedTest, SubscriberInAnotherProcessWakesOnPublish) {
  bool unclean;
  FeedWriter w = Open(&unclean);
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  if (child == 0) {
    FeedReader r = Reader();
    std::uint64_t seq = r.Head();
    std::uint32_t wake = r.WakeValue();
    if (::write(ready[1], "x", 1) != 1) ::_exit(2);
    FeedRecord rec;
    std::uint64_t missed;
    for (int i = 0; i < 500; ++i) {  // bounded: 500 x 10 ms
      if (ReadNext(r, &seq, &rec, &missed) == FeedRead::kRecord) ::_exit(rec.key == "milk" ? 0 : 3);
      r.Wait(wake, 10'000'000);
      wake = r.WakeValue();
    }
    ::_exit(4);
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  w.Append(FeedOp::kPut, "milk", "3");
  w.Publish(true);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace kv::shm
