// Expiry times survive a reboot: the snapshot and the log carry them (format version 2), a key
// restored with its expiry keeps it, and a key whose expiry passed before the restore is gone.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>

#include "tests/persistence/persistence_testing.h"

namespace kv {
namespace {

using namespace std::chrono_literals;
using namespace kv::testing;

std::optional<std::chrono::milliseconds> TtlOf(Bucket& b, const std::string& key) {
  auto ttl = b.Ttl(key);
  EXPECT_TRUE(ttl.ok()) << key << ": " << ttl.status().ToString();
  return ttl.ok() ? *ttl : std::nullopt;
}

std::string Get(Bucket& b, const std::string& key) {
  std::string value;
  Status s = b.Get(key, &value);
  return s.IsNotFound() ? "NOT_FOUND" : s.ok() ? value : s.ToString();
}

// Waits until the bucket holds `keys` keys (the worker's active expiry removed the rest).
bool WaitForKeyCount(Bucket& b, std::uint64_t keys) {
  return WaitFor(
      [&] {
        auto st = b.Stats();
        return st.ok() && st->keys == keys;
      },
      20s);
}

TEST(PersistenceExpiryTest, SnapshotAndLogKeepExpiryTimesAcrossAReboot) {
  TempDir data;
  KvdInstance kvd({"--data-dir", data.path(), "--appendfsync", "always", "--save", ""});
  auto client = kvd.NewClient();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->CreateBucket("cache").ok());
  {
    Result<Bucket> b = client->OpenBucket("cache");
    ASSERT_TRUE(b.ok());
    ASSERT_TRUE(b->Put("in-snapshot", "1", 1h).ok());
    ASSERT_TRUE(b->Put("persisted", "2", 1h).ok());
    ASSERT_TRUE(b->Put("plain", "3").ok());
    std::uint64_t batched_version = 0;
    ASSERT_TRUE(b->Put("batched", "6", 5h, &batched_version).ok());
    ASSERT_TRUE(client->SaveBucket("cache").ok());
    // A cas in a batch keeps the key's expiry: the log's batch record carries it.
    WriteBatch batch;
    batch.Cas("batched", batched_version, "7");
    batch.Put("batch-plain", "8");
    ASSERT_TRUE(b->Write(batch).ok());
    // After the snapshot: from the log.
    ASSERT_TRUE(b->Put("in-log", "4", 2h).ok());
    ASSERT_TRUE(b->Expire("plain", 3h).ok());
    ASSERT_TRUE(b->Persist("persisted").ok());
    ASSERT_TRUE(b->Increment("counter", 5).ok());
    ASSERT_TRUE(b->Expire("counter", 4h).ok());
    ASSERT_TRUE(b->Increment("counter", 1).ok());  // keeps the expiry
    ASSERT_TRUE(b->Put("expired", "5", 300ms).ok());
    // Expired and removed by the worker before the reboot: the log holds its delete.
    ASSERT_TRUE(WaitForKeyCount(*b, 7));
  }
  client.reset();
  ASSERT_TRUE(Reboot(kvd));
  client = kvd.NewClient();
  ASSERT_TRUE(client);
  WaitRunning(kvd, {"cache"});
  Result<Bucket> b = client->OpenBucket("cache");
  ASSERT_TRUE(b.ok());
  auto within = [](std::optional<std::chrono::milliseconds> ttl, std::chrono::milliseconds most) {
    return ttl.has_value() && *ttl > most - 10min && *ttl <= most;
  };
  EXPECT_TRUE(within(TtlOf(*b, "in-snapshot"), 1h));
  EXPECT_TRUE(within(TtlOf(*b, "in-log"), 2h));
  EXPECT_TRUE(within(TtlOf(*b, "plain"), 3h));
  EXPECT_TRUE(within(TtlOf(*b, "counter"), 4h));
  EXPECT_EQ(Get(*b, "counter"), "6");
  EXPECT_TRUE(within(TtlOf(*b, "batched"), 5h));
  EXPECT_EQ(Get(*b, "batched"), "7");
  EXPECT_FALSE(TtlOf(*b, "batch-plain").has_value());
  EXPECT_FALSE(TtlOf(*b, "persisted").has_value());
  EXPECT_EQ(Get(*b, "persisted"), "2");
  EXPECT_EQ(Get(*b, "expired"), "NOT_FOUND");
  // Its removal may not have reached the log before the reboot (appendfsync always syncs a
  // removal with the next write's batch): then it was restored already expired and the new
  // worker removes it again.
  EXPECT_TRUE(WaitForKeyCount(*b, 7));
}

TEST(PersistenceExpiryTest, AKeyThatExpiredBeforeTheRestoreIsGone) {
  TempDir data;
  // Snapshots only: the key's removal by the worker is in no file, the snapshot still holds it.
  KvdInstance kvd({"--data-dir", data.path(), "--appendonly", "no", "--save", ""});
  auto client = kvd.NewClient();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->CreateBucket("cache").ok());
  {
    Result<Bucket> b = client->OpenBucket("cache");
    ASSERT_TRUE(b.ok());
    ASSERT_TRUE(b->Put("stays", "1").ok());
    ASSERT_TRUE(b->Put("old", "before").ok());
    ASSERT_TRUE(b->Put("old", "expiring", 1500ms).ok());  // replaces "before" in the snapshot
    ASSERT_TRUE(client->SaveBucket("cache").ok());
    ASSERT_TRUE(WaitFor([&] { return Get(*b, "old") == "NOT_FOUND"; }, 20s));
  }
  client.reset();
  ASSERT_TRUE(Reboot(kvd));
  client = kvd.NewClient();
  ASSERT_TRUE(client);
  WaitRunning(kvd, {"cache"});
  Result<Bucket> b = client->OpenBucket("cache");
  ASSERT_TRUE(b.ok());
  // Never visible (neither the expired value nor the older one it replaced), and removed.
  EXPECT_EQ(Get(*b, "old"), "NOT_FOUND");
  EXPECT_EQ(Get(*b, "stays"), "1");
  EXPECT_TRUE(WaitForKeyCount(*b, 1));
}

}  // namespace
}  // namespace kv
