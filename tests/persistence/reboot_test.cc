// A reboot (every process SIGKILLed, /dev/shm emptied, kvd started again on the same data
// directory) loses no acknowledged write with appendfsync always, and restores exactly the last
// snapshot without a log; names and ids come back equal and no id is reused.
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <string>

#include "shm/registry.h"
#include "tests/persistence/persistence_testing.h"
#include "tests/supervisor/supervisor_test_util.h"

namespace kv {
namespace {

using namespace kv::testing;

using Image = std::map<std::string, std::pair<std::string, std::uint64_t>>;

// Every key of the bucket with its value and version.
Image Contents(Bucket& bucket) {
  std::vector<std::string> keys;
  Status s = bucket.Scan("", [&](std::string_view k, std::string_view) {
    keys.emplace_back(k);
    return true;
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  Image out;
  for (const std::string& k : keys) {
    std::string value;
    std::uint64_t version = 0;
    Status g = bucket.Get(k, &value, &version);
    EXPECT_TRUE(g.ok()) << g.ToString();
    out[k] = {value, version};
  }
  return out;
}

struct Info {
  std::uint64_t id;
  std::string state;
};

std::map<std::string, Info> Buckets(Client& client) {
  std::map<std::string, Info> out;
  Result<InstanceStatus> st = client.GetStatus();
  EXPECT_TRUE(st.ok());
  if (st.ok()) {
    for (const BucketInfo& b : st->buckets) out[b.name] = {b.id, b.state};
  }
  return out;
}

TEST(PersistenceRebootTest, AlwaysKeepsEveryAcknowledgedWriteNamesAndIds) {
  TempDir data;
  KvdInstance kvd({"--data-dir", data.path(), "--appendfsync", "always", "--save", ""});
  auto client = kvd.NewClient();
  ASSERT_TRUE(client);
  for (const char* name : {"apples", "pears", "gone"}) ASSERT_TRUE(client->CreateBucket(name).ok());
  ASSERT_TRUE(client->DropBucket("gone").ok());
  std::map<std::string, Image> before;
  for (const char* name : {"apples", "pears"}) {
    Result<Bucket> b = client->OpenBucket(name);
    ASSERT_TRUE(b.ok());
    for (int i = 0; i < 500; ++i) {
      ASSERT_TRUE(b->Put("k" + std::to_string(i), std::string(i % 40, 'v') + name).ok());
    }
    for (int i = 0; i < 500; i += 7) ASSERT_TRUE(b->Delete("k" + std::to_string(i)).ok());
    ASSERT_TRUE(b->Increment("counter", 41).ok());
    ASSERT_TRUE(b->Increment("counter", 1).ok());
    std::string value;
    std::uint64_t version = 0;
    ASSERT_TRUE(b->Get("k1", &value, &version).ok());
    ASSERT_TRUE(b->CompareAndSet("k1", version, "swapped").ok());
    before[name] = Contents(*b);
  }
  // A snapshot in the middle: what follows it comes from the log.
  ASSERT_TRUE(client->SaveBucket("apples").ok());
  {
    Result<Bucket> b = client->OpenBucket("apples");
    ASSERT_TRUE(b.ok());
    ASSERT_TRUE(b->Put("after-snapshot", "1").ok());
    ASSERT_TRUE(b->Delete("k2").ok());
    before["apples"] = Contents(*b);
  }
  std::map<std::string, Info> ids = Buckets(*client);
  client.reset();

  ASSERT_TRUE(Reboot(kvd));
  client = kvd.NewClient();
  ASSERT_TRUE(client);
  WaitRunning(kvd, {"apples", "pears"});
  std::map<std::string, Info> after_ids = Buckets(*client);
  ASSERT_EQ(after_ids.size(), 2u);
  for (const char* name : {"apples", "pears"}) {
    EXPECT_EQ(after_ids[name].id, ids[name].id) << name;
    Result<Bucket> b = client->OpenBucket(name);
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(Contents(*b), before[name]) << name;
    // The version counter continues: a new write gets a version above every restored one.
    std::uint64_t put = 0;
    ASSERT_TRUE(b->Put("fresh", "x", &put).ok());
    for (const auto& [k, vv] : before[name]) EXPECT_GT(put, vv.second) << k;
  }
  // Ids are never reused, not even the dropped bucket's.
  ASSERT_TRUE(client->CreateBucket("new").ok());
  std::map<std::string, Info> now = Buckets(*client);
  EXPECT_GT(now["new"].id, ids["pears"].id);
  EXPECT_GT(now["new"].id, ids["apples"].id + 2);  // "gone" had the id after "pears"
}

TEST(PersistenceRebootTest, SnapshotsOnlyRestoreExactlyTheLastSnapshot) {
  TempDir data;
  KvdInstance kvd({"--data-dir", data.path(), "--appendonly", "no", "--save", ""});
  auto client = kvd.NewClient();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->CreateBucket("cache").ok());
  Result<Bucket> b = client->OpenBucket("cache");
  ASSERT_TRUE(b.ok());
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(b->Put("k" + std::to_string(i), "old").ok());
  ASSERT_TRUE(client->SaveBucket("cache").ok());
  auto snapshot = Contents(*b);
  for (int i = 0; i < 300; i += 2) ASSERT_TRUE(b->Put("k" + std::to_string(i), "new").ok());
  ASSERT_TRUE(b->Put("later", "x").ok());
  ASSERT_TRUE(b->Delete("k1").ok());
  std::uint64_t id = Buckets(*client)["cache"].id;
  b = Status(Code::kInternal, "released");
  client.reset();

  ASSERT_TRUE(Reboot(kvd));
  client = kvd.NewClient();
  ASSERT_TRUE(client);
  WaitRunning(kvd, {"cache"});
  EXPECT_EQ(Buckets(*client)["cache"].id, id);
  b = client->OpenBucket("cache");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(Contents(*b), snapshot);
}

TEST(PersistenceRebootTest, SharedMemoryStaysTheTruthWhileItExists) {
  TempDir data;
  KvdInstance kvd({"--data-dir", data.path(), "--appendonly", "no", "--save", ""});
  auto client = kvd.NewClient();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->CreateBucket("b").ok());
  Result<Bucket> b = client->OpenBucket("b");
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(b->Put("k", "saved").ok());
  ASSERT_TRUE(client->SaveBucket("b").ok());
  ASSERT_TRUE(b->Put("k", "newer").ok());
  // kvd and the worker die, /dev/shm stays: the newer value (not on disk) is what comes back.
  pid_t worker = kvd.WorkerPid("b");
  kvd.Signal(SIGKILL);
  ::kill(worker, SIGKILL);
  ASSERT_TRUE(WaitFor(
      [&] {
        ReapExited({worker});
        return ::kill(worker, 0) != 0;
      },
      std::chrono::seconds(10)));
  ASSERT_TRUE(kvd.Start());
  client = kvd.NewClient();
  ASSERT_TRUE(client->CreateBucket("b").ok());  // answered once kvd went through the registry
  WaitRunning(kvd, {"b"});
  b = client->OpenBucket("b");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(Get(*b, "k"), "newer");
}

TEST(PersistenceRebootTest, StatusShowsMemoryOnlyWithoutADataDirectory) {
  KvdInstance kvd;
  CommandResult r = RunCommand({KvctlPath(), "--namespace", kvd.ns(), "status"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("memory only"), std::string::npos) << r.out;
  auto client = kvd.NewClient();
  ASSERT_TRUE(client->CreateBucket("b").ok());
  Status s = client->SaveBucket("b");
  EXPECT_EQ(s.code(), Code::kFailed) << s.ToString();
  EXPECT_NE(s.message().find("memory only"), std::string::npos) << s.ToString();
}

TEST(PersistenceRebootTest, StatusJsonShowsLastSaveLogSizeAndChanges) {
  TempDir data;
  KvdInstance kvd({"--data-dir", data.path(), "--save", ""});
  auto client = kvd.NewClient();
  ASSERT_TRUE(client->CreateBucket("b").ok());
  Result<Bucket> b = client->OpenBucket("b");
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(client->SaveBucket("b").ok());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(b->Put("k" + std::to_string(i), "v").ok());
  BucketInfo info;
  ASSERT_TRUE(WaitFor(
      [&] {
        Result<InstanceStatus> st = client->GetStatus();
        if (!st.ok() || st->buckets.empty()) return false;
        info = st->buckets[0];
        return info.changes_since_save == 10 && info.log_bytes > 40;
      },
      std::chrono::seconds(5)))
      << info.changes_since_save << " " << info.log_bytes;
  EXPECT_EQ(info.persistence, "snapshots+log (everysec)");
  EXPECT_NE(info.last_save_unix_ms, 0u);
  CommandResult r = RunCommand({KvctlPath(), "--namespace", kvd.ns(), "status", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"changes_since_save\":10"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"log_bytes\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"last_save_unix_ms\""), std::string::npos) << r.out;
}

}  // namespace
}  // namespace kv
