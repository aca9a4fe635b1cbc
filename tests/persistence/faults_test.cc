// Faults in the data directory (docs/persistence.md, "Faults"): a torn log tail is cut; a
// damaged, missing or foreign file fails the bucket with the file named and is left as it was; a
// worker killed at a crash point inside log or snapshot writing loses nothing acknowledged; a
// full disk never lets a write be acknowledged as durable, and kv recovers when space returns.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <ostream>
#include <string>

#include "daemon/persistence/bucket_dir.h"
#include "daemon/persistence/snapshot_format.h"
#include "shm/registry.h"
#include "tests/persistence/persistence_testing.h"
#include "tests/supervisor/supervisor_test_util.h"

namespace kv {
namespace {

using namespace kv::testing;

constexpr int kKeys = 200;

std::string Key(int i) { return "key-" + std::to_string(i); }

// kvd with appendfsync always on `data`, bucket "b" holding kKeys keys, a snapshot after the
// first half. Returns the bucket's id.
std::uint64_t Fill(KvdInstance& kvd) {
  auto client = kvd.NewClient();
  EXPECT_TRUE(client->CreateBucket("b").ok());
  Result<Bucket> b = client->OpenBucket("b");
  EXPECT_TRUE(b.ok());
  for (int i = 0; i < kKeys; ++i) {
    if (i == kKeys / 2) {
      EXPECT_TRUE(client->SaveBucket("b").ok());
    }
    EXPECT_TRUE(b->Put(Key(i), "value-" + std::to_string(i)).ok());
  }
  std::optional<shm::BucketRecord> r = Record(kvd.ns(), "b");
  return r ? r->bucket_id : 0;
}

void ExpectAllKeys(KvdInstance& kvd) {
  ASSERT_TRUE(WaitForState(kvd.ns(), "b", shm::kBucketRunning, std::chrono::seconds(20), 0));
  auto client = kvd.NewClient();
  Result<Bucket> b = client->OpenBucket("b");
  ASSERT_TRUE(b.ok());
  for (int i = 0; i < kKeys; ++i) EXPECT_EQ(Get(*b, Key(i)), "value-" + std::to_string(i)) << i;
}

// A reboot while the test holds `client` and its bucket "b" (*b): both are released first, then
// opened again once "b" runs (*b is an error, with a test failure, if it does not).
void RebootHolding(KvdInstance& kvd, std::shared_ptr<Client>* client, Result<Bucket>* b) {
  *b = Status(Code::kInternal, "released");
  client->reset();
  if (!Reboot(kvd) ||
      !WaitForState(kvd.ns(), "b", shm::kBucketRunning, std::chrono::seconds(20), 0)) {
    ADD_FAILURE() << "bucket b does not run after the reboot";
    return;
  }
  *client = kvd.NewClient();
  *b = (*client)->OpenBucket("b");
}

// After a reboot the bucket is failed and its reason names `needle`.
void ExpectFailedNaming(KvdInstance& kvd, const std::string& needle) {
  ASSERT_TRUE(WaitForState(kvd.ns(), "b", shm::kBucketFailed, std::chrono::seconds(20), -1));
  std::optional<shm::BucketRecord> r = Record(kvd.ns(), "b");
  ASSERT_TRUE(r);
  EXPECT_NE(r->reason.find(needle), std::string::npos) << r->reason;
}

std::string LastLog(const std::string& dir) {
  std::vector<std::uint64_t> seqs = daemon::persistence::ListLogs(dir);
  return seqs.empty() ? std::string() : dir + "/" + daemon::persistence::LogFileName(seqs.back());
}

std::vector<std::string> AlwaysFlags(const TempDir& data) {
  return {"--data-dir", data.path(), "--appendfsync", "always", "--save", ""};
}

TEST(PersistenceFaultTest, TornLogTailIsCutAndEveryCompleteRecordKept) {
  TempDir data;
  KvdInstance kvd(AlwaysFlags(data));
  std::uint64_t id = Fill(kvd);
  PowerCut(kvd);  // no clean stop: the log holds the second half
  std::string dir = BucketDirOf(data.path(), kvd.ns(), id);
  std::string log = LastLog(dir);
  ASSERT_FALSE(log.empty());
  std::string file = FileBytes(log);
  // With appendfsync always the log is preallocated: zeros follow the last record (on a disk file
  // system; none on tmpfs). The last record (key-199 = value-199) ends with a nonzero byte.
  std::size_t records_end = file.find_last_not_of('\0') + 1;
  std::string good = file.substr(0, records_end);
  std::string zeros(file.size() - records_end, '\0');
  // A power cut in the middle of an append: the first 30 bytes of a record (its 16-byte head and
  // part of its body) reached the disk, written over the zeros. The last record is 16 + 24 + 16
  // bytes long: a copy of its beginning is such a record.
  std::string torn = good.substr(good.size() - 56, 30);
  WriteBytes(log, good + torn + zeros);
  ASSERT_TRUE(Reboot(kvd));
  ExpectAllKeys(kvd);
  EXPECT_EQ(FileBytes(log).size(), good.size()) << "the torn tail is cut off the file";
}

TEST(PersistenceFaultTest, FlippedByteInTheSnapshotFailsTheBucketAndLeavesTheFile) {
  TempDir data;
  KvdInstance kvd(AlwaysFlags(data));
  std::uint64_t id = Fill(kvd);
  PowerCut(kvd);
  std::string snapshot = BucketDirOf(data.path(), kvd.ns(), id) + "/snapshot";
  std::string bytes = FileBytes(snapshot);
  ASSERT_GT(bytes.size(), 200u);
  bytes[bytes.size() / 2] ^= 0x20;
  WriteBytes(snapshot, bytes);
  ASSERT_TRUE(Reboot(kvd));
  ExpectFailedNaming(kvd, "snapshot");
  EXPECT_EQ(FileBytes(snapshot), bytes) << "a refused file is never changed";
  auto client = kvd.NewClient();
  Result<Bucket> b = client->OpenBucket("b");
  EXPECT_FALSE(b.ok() && b->Put("k", "v").ok()) << "a failed bucket takes no write";
  // Repaired by the operator (here: the byte flipped back), a restart brings everything back.
  bytes[bytes.size() / 2] ^= 0x20;
  WriteBytes(snapshot, bytes);
  ASSERT_TRUE(client->RestartBucket("b").ok());
  ExpectAllKeys(kvd);
}

TEST(PersistenceFaultTest, FlippedByteInALogRecordBodyFailsTheBucket) {
  TempDir data;
  KvdInstance kvd(AlwaysFlags(data));
  std::uint64_t id = Fill(kvd);
  PowerCut(kvd);
  std::string log = LastLog(BucketDirOf(data.path(), kvd.ns(), id));
  std::string bytes = FileBytes(log);
  ASSERT_GT(bytes.size(), 400u);
  bytes[200] ^= 0x01;  // inside an early record, with many records after it
  WriteBytes(log, bytes);
  ASSERT_TRUE(Reboot(kvd));
  ExpectFailedNaming(kvd, "log");
  EXPECT_EQ(FileBytes(log), bytes);
}

TEST(PersistenceFaultTest, MissingSnapshotBeforeItsLogsFailsTheBucket) {
  TempDir data;
  KvdInstance kvd(AlwaysFlags(data));
  std::uint64_t id = Fill(kvd);
  PowerCut(kvd);
  std::string dir = BucketDirOf(data.path(), kvd.ns(), id);
  ASSERT_EQ(::unlink((dir + "/snapshot").c_str()), 0);
  ASSERT_TRUE(Reboot(kvd));
  ExpectFailedNaming(kvd, "missing");
}

TEST(PersistenceFaultTest, SnapshotOfAnotherFormatVersionFailsTheBucket) {
  TempDir data;
  KvdInstance kvd(AlwaysFlags(data));
  std::uint64_t id = Fill(kvd);
  PowerCut(kvd);
  std::string snapshot = BucketDirOf(data.path(), kvd.ns(), id) + "/snapshot";
  std::string bytes = FileBytes(snapshot);
  bytes[8] = 9;  // the version word
  WriteBytes(snapshot, bytes);
  ASSERT_TRUE(Reboot(kvd));
  // The registry's reason keeps 96 bytes: with a long temporary path the version number itself
  // can be cut off (the worker's log line has it whole).
  ExpectFailedNaming(kvd, "has format version");
}

// Writes keys one by one while the worker is killed at `point` (KV_CRASH_POINT, every 25th
// time while the gate file exists); returns the keys whose write was acknowledged.
std::vector<int> WriteThroughCrashes(KvdInstance& kvd, const ScopedPath& gate, int count) {
  auto client = kvd.NewClient(std::chrono::seconds(10));
  std::vector<int> acked;
  for (int i = 0; i < count; ++i) {
    if (i == count - 20) ::unlink(gate.path().c_str());  // the last writes go through
    Result<Bucket> b = client->OpenBucket("b");
    if (b.ok() && b->Put(Key(i), "value-" + std::to_string(i)).ok()) acked.push_back(i);
  }
  return acked;
}

class CrashPointTest : public ::testing::TestWithParam<const char*> {};

TEST_P(CrashPointTest, WorkerKilledInsideLogWritingLosesNoAcknowledgedWrite) {
  TempDir data;
  ScopedPath gate("kv-crash-gate");
  gate.Write("on");
  ScopedEnv point("KV_CRASH_POINT", std::string(GetParam()) + ":r25");
  ScopedEnv gate_env("KV_CRASH_POINT_GATE", gate.path());
  KvdInstance kvd({"--data-dir", data.path(), "--appendfsync", "always", "--save", "",
                   "--max-restarts", "1000"});
  auto client = kvd.NewClient();
  ASSERT_TRUE(client->CreateBucket("b").ok());
  std::vector<int> acked = WriteThroughCrashes(kvd, gate, 300);
  ASSERT_GE(acked.size(), 20u);
  ASSERT_TRUE(Reboot(kvd));
  ASSERT_TRUE(WaitForState(kvd.ns(), "b", shm::kBucketRunning, std::chrono::seconds(20), 0));
  client = kvd.NewClient();
  Result<Bucket> b = client->OpenBucket("b");
  ASSERT_TRUE(b.ok());
  for (int i : acked) EXPECT_EQ(Get(*b, Key(i)), "value-" + std::to_string(i)) << i;
}

INSTANTIATE_TEST_SUITE_P(LogPoints, CrashPointTest,
                         ::testing::Values("log-appended", "log-synced", "after-apply"));

// The write whose worker is killed in AnsweredFromTheExactlyOnceLogTest.
enum class CrashedWrite { kPut, kDelete, kIncrement };

const char* Name(CrashedWrite w) {
  switch (w) {
    case CrashedWrite::kPut:
      return "Put";
    case CrashedWrite::kDelete:
      return "Delete";
    case CrashedWrite::kIncrement:
      return "Increment";
  }
  return "Unknown";
}

void PrintTo(CrashedWrite w, std::ostream* os) { *os << Name(w); }

class AnsweredFromTheExactlyOnceLogTest : public ::testing::TestWithParam<CrashedWrite> {};

// The worker is killed after it applied a write to shared memory and recorded it in the
// exactly-once log, before the write's log record reached the file (crash point after-apply).
// The request stays in the client's ring; the worker kvd restarts finds it applied and answers
// it from the exactly-once log. With appendfsync always that answer is an acknowledgement like
// any other: a reboot at once after it must find the write.
TEST_P(AnsweredFromTheExactlyOnceLogTest, RestartedWorkerAcknowledgesOnlyWhatIsOnDisk) {
  TempDir data;
  ScopedPath gate("kv-crash-gate");  // absent until the write that is to crash
  ScopedEnv point("KV_CRASH_POINT", "after-apply");
  ScopedEnv gate_env("KV_CRASH_POINT_GATE", gate.path());
  std::vector<std::string> flags = AlwaysFlags(data);
  flags.insert(flags.end(), {"--max-restarts", "1000"});
  KvdInstance kvd(flags);
  auto client = kvd.NewClient(std::chrono::seconds(20));
  ASSERT_TRUE(client->CreateBucket("b").ok());
  Result<Bucket> b = client->OpenBucket("b");
  ASSERT_TRUE(b.ok());
  std::map<std::string, std::string> expected;
  for (int i = 0; i < kKeys; ++i) {
    expected[Key(i)] = "value-" + std::to_string(i);
    ASSERT_TRUE(b->Put(Key(i), expected[Key(i)]).ok());
  }
  expected["counter"] = "41";
  ASSERT_TRUE(b->Put("counter", "41").ok());
  pid_t first = kvd.WorkerPid("b");
  ASSERT_NE(first, 0);

  gate.Write("on");  // the next apply kills the worker (and would kill its successor's first)
  Status s;
  switch (GetParam()) {
    case CrashedWrite::kPut:
      expected["crashed"] = "x";
      s = b->Put("crashed", "x");
      break;
    case CrashedWrite::kDelete: {
      expected.erase(Key(7));
      std::string old;
      s = b->Delete(Key(7), &old);
      if (s.ok()) {
        EXPECT_EQ(old, "value-7");
      }
      break;
    }
    case CrashedWrite::kIncrement: {
      expected["counter"] = "42";
      Result<std::int64_t> r = b->Increment("counter", 1);
      s = r.status();
      if (r.ok()) {
        EXPECT_EQ(*r, 42);
      }
      break;
    }
  }
  ::unlink(gate.path().c_str());
  ASSERT_TRUE(s.ok()) << "the write is acknowledged across the worker's restart: " << s.ToString();
  pid_t second = kvd.WorkerPid("b");
  ASSERT_NE(second, 0);
  ASSERT_NE(second, first) << "the first worker was killed at after-apply, so the acknowledgement "
                              "came from its successor's exactly-once log";

  RebootHolding(kvd, &client, &b);  // at once: nothing else runs between the answer and the reboot
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  for (const auto& [key, value] : expected) EXPECT_EQ(Get(*b, key), value) << key;
  if (GetParam() == CrashedWrite::kDelete) {
    EXPECT_EQ(Get(*b, Key(7)), "NOT_FOUND");
  }
}

INSTANTIATE_TEST_SUITE_P(Writes, AnsweredFromTheExactlyOnceLogTest,
                         ::testing::Values(CrashedWrite::kPut, CrashedWrite::kDelete,
                                           CrashedWrite::kIncrement),
                         [](const ::testing::TestParamInfo<CrashedWrite>& info) {
                           return std::string(Name(info.param));
                         });

// The same crash, but the restarted worker cannot write its catch-up snapshot (the disk is
// full): it answers the request PERSISTENCE, not OK, and refuses writes until a snapshot succeeds
// once space returns; that snapshot holds the write (in shared memory all along).
TEST(PersistenceFaultTest, FailedCatchUpAnswersTheRetryPersistenceAndRecovers) {
  TinyTmpfs disk("1m");
  if (!disk.mounted()) GTEST_SKIP() << disk.why();
  ScopedPath gate("kv-crash-gate");
  ScopedEnv point("KV_CRASH_POINT", "after-apply");
  ScopedEnv gate_env("KV_CRASH_POINT_GATE", gate.path());
  KvdInstance kvd({"--data-dir", disk.path(), "--appendfsync", "always", "--save", "",
                   "--max-restarts", "1000"});
  auto client = kvd.NewClient(std::chrono::seconds(20));
  ASSERT_TRUE(client->CreateBucket("b").ok());
  Result<Bucket> b = client->OpenBucket("b");
  ASSERT_TRUE(b.ok());
  // About 600 KB of log on a 1 MB disk: a snapshot of the same keys does not fit beside it.
  std::string value(4000, 'v');
  constexpr int kFilled = 150;
  for (int i = 0; i < kFilled; ++i) ASSERT_TRUE(b->Put(Key(i), value).ok()) << i;
  pid_t first = kvd.WorkerPid("b");
  gate.Write("on");
  Status s = b->Put("crashed", "x");
  ::unlink(gate.path().c_str());
  EXPECT_EQ(s.code(), Code::kPersistence)
      << "answered from the exactly-once log while not on disk: " << s.ToString();
  EXPECT_NE(kvd.WorkerPid("b"), first);
  EXPECT_EQ(b->Put("more", "x").code(), Code::kPersistence) << "writes stay refused";
  ASSERT_TRUE(disk.Resize("64m"));
  ASSERT_TRUE(WaitFor([&] { return b->Put("more", "x").ok(); }, std::chrono::seconds(20)));
  RebootHolding(kvd, &client, &b);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  for (int i = 0; i < kFilled; ++i) EXPECT_EQ(Get(*b, Key(i)), value) << i;
  EXPECT_EQ(Get(*b, "crashed"), "x");
  EXPECT_EQ(Get(*b, "more"), "x");
}

// The catch-up's two cases, seen in the files. After a clean stop the disk holds the table (the
// snapshot written at stop, no log): the next worker on the same shared memory writes no
// snapshot. After a crash it writes one before it reports READY, covering every older log.
TEST(PersistenceFaultTest, RestartedWorkerCatchesUpBeforeReadyOnlyWhenTheDiskIsBehind) {
  TempDir data;
  KvdInstance kvd(AlwaysFlags(data));
  std::uint64_t id = Fill(kvd);
  std::string dir = BucketDirOf(data.path(), kvd.ns(), id);
  std::string snapshot = dir + "/snapshot";
  ASSERT_EQ(kvd.Stop(), 0);
  EXPECT_TRUE(daemon::persistence::ListLogs(dir).empty());
  struct stat stopped {};
  ASSERT_EQ(::stat(snapshot.c_str(), &stopped), 0);
  ASSERT_TRUE(kvd.Start());
  ExpectAllKeys(kvd);
  struct stat now {};
  ASSERT_EQ(::stat(snapshot.c_str(), &now), 0);
  EXPECT_EQ(now.st_ino, stopped.st_ino) << "in step: no catch-up snapshot";

  auto client = kvd.NewClient();
  Result<Bucket> b = client->OpenBucket("b");
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(b->Put("after-start", "1").ok());
  pid_t worker = kvd.WorkerPid("b");
  ASSERT_NE(worker, 0);
  ::kill(worker, SIGKILL);
  ASSERT_TRUE(WaitForState(kvd.ns(), "b", shm::kBucketRunning, std::chrono::seconds(20), worker));
  ASSERT_EQ(::stat(snapshot.c_str(), &now), 0);
  EXPECT_NE(now.st_ino, stopped.st_ino) << "behind (a log after the snapshot): caught up";
  EXPECT_EQ(daemon::persistence::ListLogs(dir).size(), 1u) << "only the new worker's log is left";
}

class SnapshotCrashTest : public ::testing::TestWithParam<const char*> {};

TEST_P(SnapshotCrashTest, KilledInsideASnapshotThePreviousOneStaysAndNothingIsLost) {
  TempDir data;
  ScopedPath gate("kv-crash-gate");
  ScopedEnv point("KV_CRASH_POINT", GetParam());
  ScopedEnv gate_env("KV_CRASH_POINT_GATE", gate.path());
  std::vector<std::string> flags = AlwaysFlags(data);
  flags.insert(flags.end(), {"--max-restarts", "1000"});
  KvdInstance kvd(flags);
  std::uint64_t id = Fill(kvd);
  std::string snapshot = BucketDirOf(data.path(), kvd.ns(), id) + "/snapshot";
  std::string previous = FileBytes(snapshot);
  auto client = kvd.NewClient();
  gate.Write("on");
  Status s = client->SaveBucket("b");
  EXPECT_FALSE(s.ok()) << "the snapshot was killed at " << GetParam();
  ::unlink(gate.path().c_str());
  std::string now = FileBytes(snapshot);
  // Where the worker itself was killed, kvd restarts it at once, and with appendfsync always the
  // new worker writes a complete snapshot of its own before READY (the catch-up): the file is
  // then the previous snapshot or that one, never a part of one.
  std::string killed_at = GetParam();
  bool worker_killed = killed_at == "snapshot-log-rotated" || killed_at == "snapshot-installed";
  daemon::persistence::SnapshotHeader header;
  bool complete =
      daemon::persistence::ReadSnapshot(snapshot, now.data(), now.size(), &header, [](auto&&...) {
        return true;
      }).empty();
  EXPECT_TRUE(now == previous || (worker_killed && complete))
      << "the previous snapshot stays until a new one is complete";
  ASSERT_TRUE(Reboot(kvd));
  ExpectAllKeys(kvd);
}

INSTANTIATE_TEST_SUITE_P(SnapshotPoints, SnapshotCrashTest,
                         ::testing::Values("snapshot-half-written", "snapshot-before-rename",
                                           "snapshot-log-rotated", "snapshot-installed"));

TEST(PersistenceFaultTest, FullDiskNeverAcknowledgesAWriteAsDurableAndRecovers) {
  TinyTmpfs disk("1m");
  if (!disk.mounted()) GTEST_SKIP() << disk.why();
  KvdInstance kvd({"--data-dir", disk.path(), "--appendfsync", "always", "--save", ""});
  auto client = kvd.NewClient();
  ASSERT_TRUE(client->CreateBucket("b").ok());
  Result<Bucket> b = client->OpenBucket("b");
  ASSERT_TRUE(b.ok());
  std::string value(4000, 'v');
  std::vector<int> acked;
  Status refused;
  for (int i = 0; i < 2000 && refused.ok(); ++i) {
    Status s = b->Put(Key(i), value);
    if (s.ok()) {
      acked.push_back(i);
    } else {
      refused = s;
    }
  }
  ASSERT_EQ(refused.code(), Code::kPersistence) << refused.ToString();
  EXPECT_EQ(b->Put("more", "x").code(), Code::kPersistence) << "writes stay refused while full";
  CommandResult st = RunCommand({KvctlPath(), "--namespace", kvd.ns(), "status"});
  EXPECT_NE(st.out.find("No space left on device"), std::string::npos) << st.out;
  // Space returns: the worker's retried snapshot succeeds and writes are taken again.
  ASSERT_TRUE(disk.Resize("64m"));
  ASSERT_TRUE(WaitFor([&] { return b->Put("more", "x").ok(); }, std::chrono::seconds(20)));
  RebootHolding(kvd, &client, &b);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  for (int i : acked) EXPECT_EQ(Get(*b, Key(i)), value) << i;
  EXPECT_EQ(Get(*b, "more"), "x");
}

}  // namespace
}  // namespace kv
