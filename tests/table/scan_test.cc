// Bucket::Scan under concurrent writes and growth: weakly consistent iteration. Each scan sees
// every key that is present for the whole scan exactly once, and no key twice, while another
// process inserts, deletes and rewrites keys and the table moves through new generations.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <thread>

#include "tests/table/table_testing.h"
#include "tests/testing/bucket_fixture.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::testing::ForkChild;
using kv::testing::KvdInstance;
using kv::testing::WaitChild;

constexpr int kStable = 300;

std::string StableKey(int i) { return "s" + std::to_string(i) + std::string("\0\xff", 2); }

struct Shared {
  std::atomic<int> stop{0};
  std::atomic<std::uint64_t> generation{0};
  kv::testing::ErrorSlot error;
};

int Churn(const std::string& ns, Shared* shared) {
  auto bucket = kv::testing::OpenInChild(ns, "scan");
  if (!bucket.ok()) return 11;
  std::mt19937_64 rng(5);
  for (std::uint64_t n = 0; shared->stop.load() == 0; ++n) {
    Status s = bucket.value().Put("c" + std::to_string(n), std::string(rng() % 100, 'x'));
    if (s.ok() && n >= 50) {
      Status d = bucket.value().Delete("c" + std::to_string(n - 50));
      if (!d.ok() && !d.IsNotFound()) s = d;
    }
    if (s.ok() && n % 3 == 0) {
      s = bucket.value().Put(StableKey(static_cast<int>(rng() % kStable)), std::to_string(n));
    }
    if (!s.ok()) {
      shared->error.Set("churn: " + s.ToString());
      return 12;
    }
    if (n % 64 == 0) {
      auto stats = bucket.value().Stats();
      if (stats.ok()) shared->generation.store(stats.value().generation);
    }
  }
  return 0;
}

TEST(TableScanTest, ScanSeesStableKeysExactlyOnceWhileTableGrows) {
  KvdInstance kvd;
  auto client = kvd.NewClient();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->CreateBucket("scan").ok());
  auto opened = client->OpenBucket("scan");
  ASSERT_TRUE(opened.ok());
  Bucket bucket = opened.value();
  for (int i = 0; i < kStable; ++i) ASSERT_TRUE(bucket.Put(StableKey(i), "v").ok());
  kv::testing::SharedMemory<Shared> shared;
  pid_t churn = ForkChild([&] { return Churn(kvd.ns(), &*shared); });

  const int scans = kv::testing::FullCounts() ? 2000 : 40;
  std::uint64_t first_generation = 0;
  int with_churn_keys = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  // Scan while the churn runs: from its first report on, until the table has moved a few
  // generations under the scans and some scan met churn keys (on a loaded machine the churn
  // process can start late, or report a grown table before any scan sees its keys).
  while (shared->generation.load() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (int scan = 0; scan < scans ||
                     ((shared->generation.load() < first_generation + 3 || with_churn_keys == 0) &&
                      std::chrono::steady_clock::now() < deadline);
       ++scan) {
    std::map<std::string, int> seen;
    Status s = bucket.Scan({}, [&](std::string_view key, std::string_view) {
      ++seen[std::string(key)];
      return true;
    });
    ASSERT_TRUE(s.ok()) << s.ToString();
    for (const auto& [key, count] : seen) ASSERT_EQ(count, 1) << "key seen twice in one scan";
    for (int i = 0; i < kStable; ++i) ASSERT_EQ(seen.count(StableKey(i)), 1u) << "stable " << i;
    with_churn_keys += seen.size() > static_cast<std::size_t>(kStable);
    std::set<std::string> prefixed;
    ASSERT_TRUE(bucket
                    .Scan("s",
                          [&](std::string_view key, std::string_view) {
                            EXPECT_EQ(key.substr(0, 1), "s");
                            EXPECT_TRUE(prefixed.insert(std::string(key)).second);
                            return true;
                          })
                    .ok());
    EXPECT_EQ(prefixed.size(), static_cast<std::size_t>(kStable));
    if (scan == 0) first_generation = shared->generation.load();
  }
  shared->stop.store(1);
  EXPECT_EQ(WaitChild(churn, std::chrono::seconds(30)), 0) << shared->error.text;
  EXPECT_GE(shared->generation.load(), first_generation + 3);
  EXPECT_GT(with_churn_keys, 0);
}

TEST(TableScanTest, ScanStopsWhenCallbackReturnsFalse) {
  KvdInstance kvd;
  auto client = kvd.NewClient();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->CreateBucket("scan").ok());
  auto bucket = client->OpenBucket("scan");
  ASSERT_TRUE(bucket.ok());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(bucket.value().Put(StableKey(i), "v").ok());
  int calls = 0;
  ASSERT_TRUE(bucket.value()
                  .Scan({}, [&](std::string_view, std::string_view) { return ++calls < 3; })
                  .ok());
  EXPECT_EQ(calls, 3);
}

}  // namespace
}  // namespace kv
