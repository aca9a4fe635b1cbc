// Acceptance 3 of issue 3: bytes flipped in a table segment at chosen offsets (every header
// field, every byte of every slot, every byte of some records) give readers a clear error or the
// right answer -- never a crash, an endless loop or a wrong value -- and the worker's Open either
// repairs the table or refuses it with a clear error. Then the same end to end through kvd.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <map>
#include <vector>

#include "shm/bucket_table.h"
#include "shm/names.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using shm::ReadResult;
using shm::TableView;
using shm::TableWriter;

struct Damage {
  std::string what;
  std::uint64_t offset;  // from the start of the segment
  std::uint8_t mask;     // XORed into the byte
};

class TableCorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override { ns_ = kv::testing::UniqueNamespace(); }
  void TearDown() override { kv::testing::SweepNamespace(ns_); }

  // A fresh table with live keys, overwritten keys and tombstones; fills model_.
  TableWriter Fill() {
    shm::Segment::Remove(Name());
    shm::ShmError e;
    TableWriter w = TableWriter::Create(Name(), 1, 1, 64, 16 * 1024, 0600, &e);
    EXPECT_TRUE(w.valid()) << e.message;
    w.Publish();
    model_.clear();
    std::uint64_t v;
    for (int i = 0; i < 40; ++i) {
      std::string key = "key" + std::to_string(i) + std::string("\0\xff", 2);
      std::string value = std::string(i % 7, '\xff') + "value" + std::to_string(i);
      EXPECT_EQ(w.Put(key, i % 5 == 0 ? "old" : value, &v), shm::WriteResult::kOk);
      if (i % 5 == 0) {
        EXPECT_EQ(w.Put(key, value, &v), shm::WriteResult::kOk);
      }
      model_[key] = value;
    }
    for (int i = 0; i < 40; i += 8) {
      std::string key = "key" + std::to_string(i) + std::string("\0\xff", 2);
      EXPECT_EQ(w.Delete(key, nullptr), shm::WriteResult::kOk);
      model_[key] = "NOT_FOUND";
    }
    return w;
  }
  std::string Name() const { return ns_ + ".b1.g1"; }

  // Reads every key of the model through a fresh read-only mapping: each read is the right
  // answer or an error, never a wrong answer. Returns how many reads reported an error.
  int ReadAll(const Damage& d) {
    shm::ShmError e;
    shm::Segment segment = shm::Segment::OpenReadOnly(Name(), &e);
    EXPECT_TRUE(segment.valid()) << e.message;
    TableView view;
    if (!view.Attach(segment.data(), segment.size()).empty()) return 1;  // a clear refusal
    int errors = 0;
    for (const auto& [key, expected] : model_) {
      std::string value;
      ReadResult r = view.Get(key, &value, nullptr);
      if (r == ReadResult::kFound) {
        EXPECT_EQ(value, expected) << d.what << ": wrong value";
      } else if (r == ReadResult::kNotFound) {
        EXPECT_EQ(expected, "NOT_FOUND") << d.what << ": key lost silently";
      } else {
        ++errors;
      }
      shm::RecordRef record;
      for (std::uint64_t i = 0; i < view.slot_count(); ++i) (void)view.SlotAt(i, &record);
    }
    return errors;
  }

  // Applies `d` to a fresh table, reads, then reopens as a restarted worker would.
  void Check(const Damage& d) {
    SCOPED_TRACE(d.what);
    {
      TableWriter w = Fill();
      char* base = const_cast<char*>(reinterpret_cast<const char*>(w.view().header()));
      base[d.offset] = static_cast<char>(base[d.offset] ^ d.mask);
    }
    int read_errors = ReadAll(d);
    shm::ShmError e;
    std::string repairs;
    TableWriter reopened = TableWriter::Open(Name(), &e, &repairs);
    if (!reopened.valid()) {
      ++refused_;
      EXPECT_FALSE(e.message.empty());
      return;
    }
    ++repaired_or_harmless_;
    if (read_errors != 0) {
      EXPECT_FALSE(repairs.empty()) << "readers failed but Open saw nothing";
    }
    for (const auto& [key, expected] : model_) {
      std::string value;
      ReadResult r = reopened.view().Get(key, &value, nullptr);
      if (expected == "NOT_FOUND") {
        EXPECT_EQ(r, ReadResult::kNotFound);
      } else {
        EXPECT_EQ(r, ReadResult::kFound);
        EXPECT_EQ(value, expected);
      }
    }
    std::uint64_t v;
    EXPECT_EQ(reopened.Put("after-repair", "ok", &v), shm::WriteResult::kOk);
  }

  std::string ns_;
  std::map<std::string, std::string> model_;
  int refused_ = 0;
  int repaired_or_harmless_ = 0;
};

TEST_F(TableCorruptionTest, FlippedHeaderBytesNeverCrashReadersOrTheWorker) {
  std::vector<Damage> damage;
  for (std::uint64_t off = 0; off < offsetof(shm::TableHeader, writes_applied) + 8; ++off) {
    damage.push_back({"header byte " + std::to_string(off), off, 0xff});
    damage.push_back({"header bit " + std::to_string(off), off, 0x01});
  }
  for (const Damage& d : damage) Check(d);
  EXPECT_GT(refused_, 0);
  EXPECT_GT(repaired_or_harmless_, 0);
}

TEST_F(TableCorruptionTest, FlippedSlotBytesGiveErrorsAndAreRepairedOrRefused) {
  TableWriter w = Fill();
  std::uint64_t slots = w.view().header()->slots_offset;
  std::uint64_t count = w.view().slot_count();
  w = TableWriter();
  for (std::uint64_t i = 0; i < count; ++i) {
    for (std::uint64_t b = 0; b < 8; ++b) {
      for (std::uint8_t mask : {std::uint8_t{0xff}, std::uint8_t{0x10}}) {
        Check(
            {"slot " + std::to_string(i) + " byte " + std::to_string(b), slots + i * 8 + b, mask});
      }
    }
  }
  EXPECT_GT(refused_, 0);
  EXPECT_GT(repaired_or_harmless_, 0);
}

TEST_F(TableCorruptionTest, FlippedRecordBytesGiveErrorsNeverWrongValues) {
  TableWriter w = Fill();
  std::uint64_t heap = w.view().header()->heap_offset;
  std::uint64_t used = w.view().header()->heap_used.load();
  w = TableWriter();
  for (std::uint64_t off = shm::kHeapReserved; off < used; off += 3) {
    Check({"heap byte " + std::to_string(off), heap + off, 0xff});
  }
  EXPECT_GT(refused_, 0);
}

// End to end: a damaged value is reported as CORRUPT by clients; the restarted worker refuses
// the table (the bucket ends up failed, reads of intact keys keep working). A damaged slot tag
// is repaired by the restarted worker.
class TableCorruptionEndToEndTest : public ::testing::Test {
 protected:
  // Finds `key` in the bucket's current generation and XORs `mask` into the byte at `delta`
  // from its record (delta < 0: from its slot word, -1 being the slot's top byte).
  void Damage(Bucket& bucket, std::string_view key, int delta, std::uint8_t mask) {
    auto stats = bucket.Stats();
    ASSERT_TRUE(stats.ok());
    shm::ShmError e;
    shm::Segment seg = shm::Segment::OpenReadWrite(
        shm::GenerationObjectName(kvd_.ns(), bucket.id(), stats.value().generation), &e);
    ASSERT_TRUE(seg.valid()) << e.message;
    TableView view;
    ASSERT_EQ(view.Attach(seg.data(), seg.size()), "");
    const auto* slots =
        reinterpret_cast<const std::uint64_t*>(seg.data() + view.header()->slots_offset);
    for (std::uint64_t i = 0; i < view.slot_count(); ++i) {
      shm::RecordRef r;
      if (view.SlotAt(i, &r) != ReadResult::kFound || r.key != key) continue;
      char* at = delta >= 0
                     ? const_cast<char*>(r.key.data()) - sizeof(shm::RecordHeader) + delta
                     : reinterpret_cast<char*>(const_cast<std::uint64_t*>(&slots[i])) + 8 + delta;
      *at = static_cast<char>(*at ^ mask);
      return;
    }
    FAIL() << "key not found";
  }
  std::string Get(Bucket& b, std::string_view key) {
    std::string value;
    Status s = b.Get(key, &value);
    return s.ok() ? value : std::string(CodeName(s.code()));
  }
  void KillWorker(const std::string& bucket) {
    pid_t pid = kvd_.WorkerPid(bucket);
    ASSERT_GT(pid, 0);
    ::kill(pid, SIGKILL);
    ASSERT_TRUE(kv::testing::WaitFor([&] { return kvd_.WorkerPid(bucket) != pid; },
                                     std::chrono::seconds(10)));
  }
  std::string State(Client& client, const std::string& bucket) {
    auto status = client.GetStatus();
    if (!status.ok()) return "?";
    for (const BucketInfo& b : status.value().buckets) {
      if (b.name == bucket) return b.state;
    }
    return "none";
  }

  // A refusing worker exits at once; two restarts within the window mark the bucket failed
  // (quickly, even on a slow sanitizer build).
  kv::testing::KvdInstance kvd_{{"--max-restarts", "2", "--max-seconds", "60"}};
};

TEST_F(TableCorruptionEndToEndTest, DamagedValueIsCorruptForReadersAndRefusedByWorker) {
  auto client = kvd_.NewClient(std::chrono::seconds(5));
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->CreateBucket("c").ok());
  Bucket bucket = client->OpenBucket("c").value();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(bucket.Put("k" + std::to_string(i), "value").ok());
  Damage(bucket, "k3", sizeof(shm::RecordHeader) + 2 + 1, 0x20);  // 2nd byte of the value
  EXPECT_EQ(Get(bucket, "k3"), "CORRUPT");
  EXPECT_EQ(Get(bucket, "k4"), "value");
  KillWorker("c");
  // The restarted worker refuses the table each time; kvd gives up and marks the bucket failed.
  EXPECT_TRUE(kv::testing::WaitFor([&] { return State(*client, "c") == "failed"; },
                                   std::chrono::seconds(60)))
      << State(*client, "c");
  EXPECT_EQ(Get(bucket, "k3"), "CORRUPT");
  EXPECT_EQ(Get(bucket, "k4"), "value");  // reads of intact keys keep working
  EXPECT_FALSE(bucket.Put("k5", "new").ok());
}

TEST_F(TableCorruptionEndToEndTest, DamagedSlotTagIsRepairedByRestartedWorker) {
  auto client = kvd_.NewClient(std::chrono::milliseconds(2000));
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->CreateBucket("c").ok());
  Bucket bucket = client->OpenBucket("c").value();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(bucket.Put("k" + std::to_string(i), "value").ok());
  Damage(bucket, "k7", -1, 0x04);  // the slot's tag
  EXPECT_EQ(Get(bucket, "k7"), "CORRUPT");
  KillWorker("c");
  EXPECT_TRUE(
      kv::testing::WaitFor([&] { return Get(bucket, "k7") == "value"; }, std::chrono::seconds(10)))
      << Get(bucket, "k7");
  EXPECT_TRUE(bucket.Put("k7", "again").ok());
  EXPECT_EQ(Get(bucket, "k7"), "again");
}

}  // namespace
}  // namespace kv
