// Acceptance 1 of issue 3: one writer process rewrites self-checking values while N reader
// processes read them directly from shared memory, across many table generations. Every read
// must be a well-formed value of the key asked for, never older than what the writer had
// acknowledged before the read started (read-your-writes across processes).
#include <gtest/gtest.h>

#include <vector>

#include "tests/table/table_testing.h"
#include "tests/testing/bucket_fixture.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::testing::CheckValue;
using kv::testing::ForkChild;
using kv::testing::KvdInstance;
using kv::testing::MakeValue;
using kv::testing::WaitChild;

constexpr int kKeys = 2000;
constexpr int kMaxReaders = 8;

struct Shared {
  std::atomic<std::uint64_t> acked[kKeys];  // last counter the writer saw acknowledged, per key
  std::atomic<int> writer_done{0};          // writer reached its generation target
  std::atomic<int> readers_done{0};
  std::atomic<std::uint64_t> reads[kMaxReaders];
  std::atomic<std::uint64_t> bad[kMaxReaders];
  std::atomic<std::uint64_t> generation{0};
  kv::testing::ErrorSlot error;
};

std::string KeyOf(int i) {
  std::string key = "k" + std::to_string(i);
  key.push_back('\0');
  key.push_back('\xff');
  return key;
}

int Writer(const std::string& ns, Shared* shared, std::uint64_t min_generation) {
  auto bucket = kv::testing::OpenInChild(ns, "stress");
  if (!bucket.ok()) return 10;
  std::mt19937_64 rng(1);
  std::vector<std::uint64_t> counter(kKeys, 0);
  for (std::uint64_t n = 0; shared->readers_done.load() == 0 || shared->writer_done.load() == 0;
       ++n) {
    int k = static_cast<int>(rng() % kKeys);
    std::string key = KeyOf(k);
    Status s = bucket.value().Put(key, MakeValue(key, ++counter[k], rng() % 300));
    if (!s.ok()) {
      shared->error.Set("writer: " + s.ToString());
      shared->writer_done.store(1);  // let the readers finish
      return 11;
    }
    shared->acked[k].store(counter[k], std::memory_order_release);
    if (n % 256 == 0) {
      auto stats = bucket.value().Stats();
      if (stats.ok()) shared->generation.store(stats.value().generation);
      if (stats.ok() && stats.value().generation >= min_generation) shared->writer_done.store(1);
    }
  }
  return 0;
}

int Reader(const std::string& ns, Shared* shared, int id, std::uint64_t reads) {
  auto bucket = kv::testing::OpenInChild(ns, "stress");
  if (!bucket.ok()) return 20;
  std::mt19937_64 rng(100 + id);
  std::string value;
  std::uint64_t done = 0, bad = 0;
  while (done < reads || shared->writer_done.load() == 0) {
    int k = static_cast<int>(rng() % kKeys);
    std::string key = KeyOf(k);
    std::uint64_t acked = shared->acked[k].load(std::memory_order_acquire);
    Status s = bucket.value().Get(key, &value);
    std::uint64_t counter = 0;
    if (s.ok()) {
      if (!CheckValue(key, value, &counter)) {
        ++bad;
        shared->error.Set("reader: malformed value for key " + std::to_string(k));
      } else if (counter < acked) {
        ++bad;
        shared->error.Set("reader: key " + std::to_string(k) + " read counter " +
                          std::to_string(counter) + " after " + std::to_string(acked) +
                          " was acknowledged");
      }
    } else if (!(s.IsNotFound() && acked == 0)) {
      ++bad;
      shared->error.Set("reader: " + s.ToString());
    }
    if ((++done & 1023) == 0) {
      shared->reads[id].store(done, std::memory_order_relaxed);
      shared->bad[id].store(bad, std::memory_order_relaxed);
    }
  }
  shared->reads[id].store(done);
  shared->bad[id].store(bad);
  return bad == 0 ? 0 : 21;
}

TEST(TableStressTest, ReadersSeeOnlyWholeCurrentValuesAcrossEightGenerations) {
  bool full = kv::testing::FullCounts();
  const int readers = full ? 4 : 3;
  const std::uint64_t reads_each = full ? 2'500'000 : 20'000;
  const std::uint64_t min_generation = full ? 30 : 8;
  KvdInstance kvd;
  auto client = kvd.NewClient();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->CreateBucket("stress").ok());
  kv::testing::SharedMemory<Shared> shared;

  std::vector<pid_t> reader_pids;
  for (int i = 0; i < readers; ++i) {
    reader_pids.push_back(ForkChild([&, i] { return Reader(kvd.ns(), &*shared, i, reads_each); }));
  }
  pid_t writer = ForkChild([&] { return Writer(kvd.ns(), &*shared, min_generation); });

  auto timeout = std::chrono::seconds(full ? 1800 : 240);
  std::uint64_t total_reads = 0, total_bad = 0;
  for (int i = 0; i < readers; ++i) {
    EXPECT_EQ(WaitChild(reader_pids[i], timeout), 0)
        << "reader " << i << ": " << shared->error.text;
    total_reads += shared->reads[i].load();
    total_bad += shared->bad[i].load();
  }
  shared->readers_done.store(1);
  EXPECT_EQ(WaitChild(writer, std::chrono::seconds(60)), 0) << shared->error.text;
  EXPECT_EQ(total_bad, 0u) << shared->error.text;
  EXPECT_GE(total_reads, readers * reads_each);
  EXPECT_GE(shared->generation.load(), min_generation);
  std::printf("stress: %llu reads by %d readers, 0 bad expected, %llu bad; generation %llu\n",
              static_cast<unsigned long long>(total_reads), readers,
              static_cast<unsigned long long>(total_bad),
              static_cast<unsigned long long>(shared->generation.load()));
}

}  // namespace
}  // namespace kv
