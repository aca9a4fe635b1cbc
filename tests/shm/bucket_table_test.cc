#include "shm/bucket_table.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "shm/coarse_clock.h"
#include "shm/seqlock.h"
#include "tests/testing/kvd_harness.h"

namespace kv::shm {
namespace {

class BucketTableTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const std::string& n : names_) Segment::Remove(n);
  }
  std::string Name() {
    names_.push_back(kv::testing::UniqueNamespace() + ".b1.g" + std::to_string(names_.size() + 1));
    return names_.back();
  }
  TableWriter NewTable(std::uint64_t slots = 64, std::uint64_t heap = 16 * 1024) {
    ShmError e;
    TableWriter w = TableWriter::Create(Name(), 1, 1, slots, heap, 0600, &e);
    EXPECT_TRUE(w.valid()) << e.message;
    w.Publish();
    return w;
  }
  static std::string Get(const TableView& v, std::string_view key) {
    std::string value;
    switch (v.Get(key, &value, nullptr)) {
      case ReadResult::kFound:
        return value;
      case ReadResult::kNotFound:
        return "NOT_FOUND";
      default:
        return "ERROR";
    }
  }
  static std::string RandomBytes(std::mt19937_64& rng, std::size_t n) {
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 4 == 0 ? (rng() % 2 ? '\0' : '\xff') : rng());
    return s;
  }
  std::vector<std::string> names_;
};

TEST_F(BucketTableTest, ExpiringRecordsAreAbsentFromTheirTimeOnAndSurviveReopenAndGrowth) {
  TableWriter w = NewTable();
  const std::uint64_t future = RealtimeCoarseMillis() + 3'600'000;
  const std::uint64_t past = RealtimeCoarseMillis() - 1;
  std::uint64_t version = 0;
  ASSERT_EQ(w.Put("later", "1", &version, future), WriteResult::kOk);
  ASSERT_EQ(w.Put("gone", "2", &version, past), WriteResult::kOk);
  ASSERT_EQ(w.Put("plain", "3", &version), WriteResult::kOk);
  RecordRef r;
  ASSERT_EQ(w.view().Find("later", &r), ReadResult::kFound);
  EXPECT_EQ(r.expires_unix_ms, future);
  EXPECT_EQ(r.value, "1");
  EXPECT_EQ(Get(w.view(), "gone"), "NOT_FOUND");
  ASSERT_EQ(w.view().FindAny("gone", &r), ReadResult::kFound);  // the worker still sees it
  EXPECT_EQ(r.value, "2");
  EXPECT_EQ(w.Delete("gone", nullptr), WriteResult::kNotFound);
  EXPECT_EQ(w.SetExpiry("gone", future, &version), WriteResult::kNotFound);
  // The active expiry removes it only with the expiry it was queued with.
  EXPECT_FALSE(w.Expire("gone", past + 1, RealtimeCoarseMillis()));
  EXPECT_FALSE(w.Expire("later", future, RealtimeCoarseMillis()));  // not due
  EXPECT_TRUE(w.Expire("gone", past, RealtimeCoarseMillis()));
  EXPECT_EQ(w.view().FindAny("gone", &r), ReadResult::kNotFound);
  EXPECT_EQ(w.view().Stats().key_count, 2u);
  // A damaged expiry is caught by the record check.
  ASSERT_EQ(w.view().Find("later", &r), ReadResult::kFound);
  auto* expiry = const_cast<char*>(r.key.data()) - 8;
  expiry[0] ^= 1;
  EXPECT_EQ(w.view().Find("later", &r), ReadResult::kCorrupt);
  expiry[0] ^= 1;
  // Persist (expiry 0) rewrites the record without the flag; stats follow the record sizes.
  ASSERT_EQ(w.SetExpiry("later", 0, &version), WriteResult::kOk);
  ASSERT_EQ(w.view().Find("later", &r), ReadResult::kFound);
  EXPECT_EQ(r.expires_unix_ms, 0u);
  ASSERT_EQ(w.SetExpiry("plain", future, &version), WriteResult::kOk);
  EXPECT_EQ(w.view().Stats().live_bytes, RecordSize(5, 1) + RecordSize(5, 1, true));
  // Growth copies the records with their expiry; reopening (a worker restart) verifies them.
  ShmError e;
  TableWriter next = w.BuildNext(Name(), 0, false, 0, &e);
  ASSERT_TRUE(next.valid()) << e.message;
  next.Publish();
  ASSERT_EQ(next.view().Find("plain", &r), ReadResult::kFound);
  EXPECT_EQ(r.expires_unix_ms, future);
  std::string repairs;
  TableWriter reopened = TableWriter::Open(next.name(), &e, &repairs);
  ASSERT_TRUE(reopened.valid()) << e.message;
  EXPECT_EQ(repairs, "");
  EXPECT_EQ(reopened.view().Stats().live_bytes, RecordSize(5, 1) + RecordSize(5, 1, true));
}

TEST_F(BucketTableTest, PutGetDeleteWithBinaryKeysAndValues) {
  TableWriter w = NewTable();
  std::string key("\0k\xff", 3), value("v\0\xff", 3);
  std::uint64_t version = 0;
  ASSERT_EQ(w.Put(key, value, &version), WriteResult::kOk);
  EXPECT_EQ(version, 1u);
  EXPECT_EQ(Get(w.view(), key), value);
  EXPECT_EQ(Get(w.view(), std::string("\0k", 2)), "NOT_FOUND");
  std::string old;
  EXPECT_EQ(w.Delete(key, &old), WriteResult::kOk);
  EXPECT_EQ(old, value);
  EXPECT_EQ(Get(w.view(), key), "NOT_FOUND");
  EXPECT_EQ(w.Delete(key, &old), WriteResult::kNotFound);
}

TEST_F(BucketTableTest, OverwriteKeepsOneKeyAndBumpsVersion) {
  TableWriter w = NewTable();
  std::uint64_t v1, v2;
  ASSERT_EQ(w.Put("k", "a", &v1), WriteResult::kOk);
  ASSERT_EQ(w.Put("k", "bb", &v2), WriteResult::kOk);
  EXPECT_GT(v2, v1);
  EXPECT_EQ(Get(w.view(), "k"), "bb");
  EXPECT_EQ(w.view().Stats().key_count, 1u);
}

TEST_F(BucketTableTest, CasSucceedsOnlyOnMatchingVersion) {
  TableWriter w = NewTable();
  std::uint64_t v = 0;
  EXPECT_EQ(w.Cas("k", 0, "first", &v), WriteResult::kOk);  // 0: must be absent
  std::uint64_t current = v;
  EXPECT_EQ(w.Cas("k", 0, "again", &v), WriteResult::kVersionMismatch);
  EXPECT_EQ(v, current);
  EXPECT_EQ(w.Cas("k", current, "second", &v), WriteResult::kOk);
  EXPECT_EQ(Get(w.view(), "k"), "second");
}

TEST_F(BucketTableTest, FullTableAsksForGrowthAndNextGenerationKeepsEverything) {
  TableWriter w = NewTable();
  std::map<std::string, std::string> model;
  std::mt19937_64 rng(1);
  int generations = 1;
  for (int i = 0; i < 5000; ++i) {
    std::string key = RandomBytes(rng, 1 + rng() % 40);
    std::string value = RandomBytes(rng, rng() % 200);
    std::uint64_t version;
    WriteResult r = w.Put(key, value, &version);
    if (r == WriteResult::kNeedsGrowth) {
      ShmError e;
      TableWriter next = w.BuildNext(Name(), RecordSize(key.size(), value.size()), false, 0, &e);
      ASSERT_TRUE(next.valid()) << e.message;
      next.Publish();
      w.MarkMoved(next.generation());
      EXPECT_EQ(w.view().Get(key, &value, nullptr), ReadResult::kMoved);
      w = std::move(next);
      ++generations;
      r = w.Put(key, value, &version);
    }
    ASSERT_EQ(r, WriteResult::kOk);
    model[key] = value;
    if (i % 3 == 0) {
      auto it = model.begin();
      std::advance(it, static_cast<long>(rng() % model.size()));
      ASSERT_EQ(w.Delete(it->first, nullptr), WriteResult::kOk);
      model.erase(it);
    }
  }
  EXPECT_GE(generations, 8);
  for (const auto& [k, v] : model) ASSERT_EQ(Get(w.view(), k), v);
  EXPECT_EQ(w.view().Stats().key_count, model.size());
}

// The incremental build (StartNext, CopyNext, TakeNext) against a reference: random puts of new
// and existing keys, deletes, expiry changes and active expiry, between copy steps of random
// sizes. The finished generation must hold exactly the table's keys, values, versions and
// expiries, and pass the checks of a restarting worker (Open: no repair, so its statistics agree
// with its slots).
TEST_F(BucketTableTest, IncrementalNextGenerationHoldsExactlyWhatTheTableHoldsWhenDone) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 20; ++round) {
    TableWriter w = NewTable(4096, 4 << 20);
    std::map<std::string, std::string> ref;
    std::uint64_t version = 0;
    auto key = [&] { return "k" + std::to_string(rng() % 1500); };
    for (int i = 0; i < 1000; ++i) {
      std::string k = key(), v = RandomBytes(rng, rng() % 40);
      ASSERT_EQ(w.Put(k, v, &version), WriteResult::kOk);
      ref[k] = v;
    }
    ShmError e;
    ASSERT_TRUE(w.StartNext(Name(), 0, &e)) << e.message;
    bool done = false;
    const std::uint64_t far = RealtimeCoarseMillis() + 3'600'000;
    while (!done) {
      for (int n = static_cast<int>(rng() % 40); n > 0; --n) {
        std::string k = key();
        switch (rng() % 6) {
          case 0:
          case 1:
          case 2: {
            std::string v = RandomBytes(rng, rng() % 60);
            ASSERT_EQ(w.Put(k, v, &version), WriteResult::kOk);
            ref[k] = v;
            break;
          }
          case 3:
            EXPECT_EQ(w.Delete(k, nullptr),
                      ref.erase(k) ? WriteResult::kOk : WriteResult::kNotFound);
            break;
          case 4:
            if (ref.count(k) != 0) {
              ASSERT_EQ(w.SetExpiry(k, far, &version), WriteResult::kOk);
            }
            break;
          case 5: {  // a key that expires at once, reclaimed by the active expiry
            std::uint64_t past = RealtimeCoarseMillis() - 1;
            ASSERT_EQ(w.Put(k, "x", &version, past), WriteResult::kOk);
            EXPECT_TRUE(w.Expire(k, past, RealtimeCoarseMillis()));
            ref.erase(k);
            break;
          }
        }
      }
      ASSERT_TRUE(w.building_next());
      done = w.CopyNext(rng() % 300);
    }
    TableWriter next = w.TakeNext();
    EXPECT_FALSE(w.building_next());
    EXPECT_EQ(next.generation(), 2u);
    next.Publish();
    TableStats stats = next.view().Stats();
    EXPECT_EQ(stats.key_count, ref.size());
    EXPECT_EQ(stats.writes_applied, w.view().Stats().writes_applied);
    for (const auto& [k, v] : ref) {
      RecordRef old_ref, new_ref;
      ASSERT_EQ(w.view().Find(k, &old_ref), ReadResult::kFound) << k;
      ASSERT_EQ(next.view().Find(k, &new_ref), ReadResult::kFound) << k;
      EXPECT_EQ(new_ref.value, v);
      EXPECT_EQ(new_ref.version, old_ref.version);
      EXPECT_EQ(new_ref.expires_unix_ms, old_ref.expires_unix_ms);
    }
    std::uint64_t live = 0;
    for (std::uint64_t i = 0; i < next.view().slot_count(); ++i) {
      RecordRef r;
      if (next.view().SlotAt(i, &r) != ReadResult::kFound) continue;
      ++live;
      EXPECT_EQ(ref.count(std::string(r.key)), 1u) << r.key;
    }
    EXPECT_EQ(live, ref.size());
    std::string repairs;
    TableWriter reopened = TableWriter::Open(next.name(), &e, &repairs);
    ASSERT_TRUE(reopened.valid()) << e.message;
    EXPECT_EQ(repairs, "") << "round " << round;
  }
}

// A build whose next generation cannot take what is written meanwhile ends: its segment is
// removed, and the table keeps every write.
TEST_F(BucketTableTest, IncrementalBuildThatDoesNotFitEndsWithoutTouchingTheTable) {
  TableWriter w = NewTable(256, 1 << 20);
  std::uint64_t version = 0;
  for (int i = 0; i < 10; ++i)
    ASSERT_EQ(w.Put("k" + std::to_string(i), "v", &version), WriteResult::kOk);
  ShmError e;
  std::string name = Name();
  ASSERT_TRUE(w.StartNext(name, 0, &e)) << e.message;
  EXPECT_FALSE(w.CopyNext(w.view().slot_count() - 1));  // every key copied but one slot left
  ASSERT_TRUE(w.building_next());
  // The next heap is sized for ~10 small records (16 KiB at least): large values overflow it.
  const std::string big(4000, 'b');
  for (int i = 0; i < 10; ++i)
    ASSERT_EQ(w.Put("k" + std::to_string(i), big, &version), WriteResult::kOk);
  EXPECT_FALSE(w.building_next());
  ShmError gone;
  EXPECT_FALSE(Segment::OpenReadOnly(name, &gone).valid());
  for (int i = 0; i < 10; ++i) EXPECT_EQ(Get(w.view(), "k" + std::to_string(i)), big);
  // A new build starts from what the table holds now.
  ASSERT_TRUE(w.StartNext(name, 0, &e)) << e.message;
  ASSERT_TRUE(w.CopyNext(~std::uint64_t{0}));
  TableWriter next = w.TakeNext();
  next.Publish();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(Get(next.view(), "k" + std::to_string(i)), big);
}

TEST_F(BucketTableTest, NearlyFullOnlyWhenABuildWouldMakeRoom) {
  const std::string value(100, 'v');
  std::uint64_t version = 0;
  TableWriter live = NewTable(4096, 64 * 1024);
  const std::uint64_t size = live.view().header()->segment_size;
  for (int i = 0; !live.NearlyFull(0); ++i) {
    ASSERT_EQ(live.Put("k" + std::to_string(i), value, &version), WriteResult::kOk);
  }
  EXPECT_TRUE(live.NearlyFull(2 * size));  // it may grow
  EXPECT_FALSE(live.NearlyFull(size));     // at its maximum, every record live: no gain
  TableWriter overwritten = NewTable(4096, 64 * 1024);
  for (int i = 0; !overwritten.NearlyFull(0); ++i) {
    ASSERT_EQ(overwritten.Put("k" + std::to_string(i % 10), value, &version), WriteResult::kOk);
  }
  EXPECT_TRUE(overwritten.NearlyFull(size));  // mostly garbage: a copy frees it
}

TEST_F(BucketTableTest, ClearIsAnEmptyNextGeneration) {
  TableWriter w = NewTable();
  std::uint64_t v;
  ASSERT_EQ(w.Put("a", "1", &v), WriteResult::kOk);
  ShmError e;
  TableWriter next = w.BuildNext(Name(), 0, true, 0, &e);
  ASSERT_TRUE(next.valid()) << e.message;
  next.Publish();
  EXPECT_EQ(Get(next.view(), "a"), "NOT_FOUND");
  EXPECT_EQ(next.view().Stats().key_count, 0u);
  ASSERT_EQ(next.Put("b", "2", &v), WriteResult::kOk);
  EXPECT_GT(v, 1u);  // versions continue across generations
}

TEST_F(BucketTableTest, MaximumSizeRefusesGrowthWithoutLosingData) {
  TableWriter w = NewTable();
  std::uint64_t v;
  ASSERT_EQ(w.Put("keep", "me", &v), WriteResult::kOk);
  ShmError e;
  TableWriter next = w.BuildNext(Name(), 1 << 20, false, 64 * 1024, &e);
  EXPECT_FALSE(next.valid());
  EXPECT_EQ(e.kind, ShmError::kNoSpace);
  EXPECT_EQ(Get(w.view(), "keep"), "me");
}

TEST_F(BucketTableTest, ReopenRepairsOddStatsCounter) {
  std::string name;
  {
    TableWriter w = NewTable();
    name = w.name();
    std::uint64_t v;
    ASSERT_EQ(w.Put("a", "1", &v), WriteResult::kOk);
    ASSERT_EQ(w.Put("b", "2", &v), WriteResult::kOk);
    auto* h = const_cast<TableHeader*>(w.view().header());
    WriteBegin(h->stats_seq);  // as if killed between a slot store and the stats update
    h->key_count.store(99);
  }
  ShmError e;
  TableWriter w = TableWriter::Open(name, &e);
  ASSERT_TRUE(w.valid()) << e.message;
  EXPECT_EQ(w.view().Stats().key_count, 2u);
  EXPECT_EQ(w.view().header()->stats_seq.load() % 2, 0u);
  EXPECT_EQ(Get(w.view(), "b"), "2");
}

TEST_F(BucketTableTest, CorruptSlotsGiveErrorsNotCrashes) {
  TableWriter w = NewTable();
  std::uint64_t v;
  for (int i = 0; i < 40; ++i)
    ASSERT_EQ(w.Put("key" + std::to_string(i), "value", &v), WriteResult::kOk);
  auto* slots = reinterpret_cast<std::atomic<std::uint64_t>*>(
      const_cast<char*>(reinterpret_cast<const char*>(w.view().header())) +
      w.view().header()->slots_offset);
  std::mt19937_64 rng(7);
  for (std::uint64_t i = 0; i < w.view().slot_count(); ++i) {
    if (slots[i].load() > 1) slots[i].store(rng());  // garbage offsets everywhere
  }
  for (int i = 0; i < 40; ++i) {
    std::string value;
    ReadResult r = w.view().Get("key" + std::to_string(i), &value, nullptr);
    EXPECT_TRUE(r == ReadResult::kCorrupt || r == ReadResult::kNotFound || r == ReadResult::kFound);
  }
  ShmError e;
  TableWriter reopened = TableWriter::Open(w.name(), &e);
  EXPECT_FALSE(reopened.valid());
  EXPECT_EQ(e.kind, ShmError::kCorrupt);
}

TEST_F(BucketTableTest, AttachRejectsBadMagicVersionAndGeometry) {
  TableWriter w = NewTable();
  auto* h = const_cast<TableHeader*>(w.view().header());
  TableView view;
  const char* base = reinterpret_cast<const char*>(h);
  EXPECT_EQ(view.Attach(base, h->segment_size), "");
  h->format_version = 99;
  EXPECT_NE(view.Attach(base, h->segment_size), "");
  h->format_version = kFormatVersion;
  h->slot_count = 1ull << 60;
  EXPECT_NE(view.Attach(base, h->segment_size), "");
  EXPECT_NE(view.Attach(base, 100), "");
}

}  // namespace
}  // namespace kv::shm
