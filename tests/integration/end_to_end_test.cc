// End to end through real processes: kvd, its workers, clients in other processes.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::testing::KvctlPath;
using kv::testing::KvdInstance;
using kv::testing::RunCommand;

std::string Get(Bucket& b, std::string_view key) {
  std::string value;
  Status s = b.Get(key, &value);
  if (s.IsNotFound()) return "NOT_FOUND";
  return s.ok() ? value : s.ToString();
}

class EndToEndTest : public ::testing::Test {
 protected:
  KvdInstance kvd_;
};

TEST_F(EndToEndTest, WriteHereReadInAnotherProcess) {
  auto client = kvd_.NewClient();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->CreateBucket("shopping").ok());
  ASSERT_TRUE(client->CreateBucket("tools").ok());
  Result<Bucket> shopping = client->OpenBucket("shopping");
  ASSERT_TRUE(shopping.ok()) << shopping.status().ToString();
  ASSERT_TRUE(shopping->Put("milk", "1").ok());
  std::string binary("\0\xff\n v", 5);
  ASSERT_TRUE(shopping->Put("bin", binary).ok());

  auto r = RunCommand({KvctlPath(), "--namespace", kvd_.ns(), "get", "shopping", "milk"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1");  // kvctl get writes the raw bytes when stdout is not a terminal

  // A forked child opens its own client and reads the binary value.
  pid_t child = ::fork();
  if (child == 0) {
    ClientOptions options;
    options.ns = kvd_.ns();
    auto c = Client::Open(options);
    if (!c.ok()) ::_exit(10);
    auto b = c.value()->OpenBucket("shopping");
    if (!b.ok()) ::_exit(11);
    std::string v;
    if (!b->Get("bin", &v).ok()) ::_exit(12);
    ::_exit(v == binary ? 0 : 13);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);

  // And writes from another process are visible here.
  r = RunCommand({KvctlPath(), "--namespace", kvd_.ns(), "put", "tools", "hammer", "2"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  Result<Bucket> tools = client->OpenBucket("tools");
  ASSERT_TRUE(tools.ok());
  EXPECT_EQ(Get(*tools, "hammer"), "2");
}

TEST_F(EndToEndTest, CreatingAnExistingBucketChangesNothing) {
  auto client = kvd_.NewClient();
  ASSERT_TRUE(client->CreateBucket("b").ok());
  Result<Bucket> b = client->OpenBucket("b");
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(b->Put("k", "v").ok());
  pid_t worker = kvd_.WorkerPid("b");
  ASSERT_TRUE(client->CreateBucket("b").ok());
  EXPECT_EQ(kvd_.WorkerPid("b"), worker);
  EXPECT_EQ(Get(*b, "k"), "v");
  auto status = client->GetStatus();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->buckets.size(), 1u);
}

TEST_F(EndToEndTest, DeleteReturnsOldValueAndMissingThingsAreClearErrors) {
  auto client = kvd_.NewClient();
  ASSERT_TRUE(client->CreateBucket("b").ok());
  Result<Bucket> b = client->OpenBucket("b");
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(b->Put("k", "old").ok());
  std::string old;
  ASSERT_TRUE(b->Delete("k", &old).ok());
  EXPECT_EQ(old, "old");
  EXPECT_EQ(b->Delete("k").code(), Code::kNotFound);
  EXPECT_EQ(Get(*b, "k"), "NOT_FOUND");
  EXPECT_EQ(client->OpenBucket("nope").status().code(), Code::kBucketNotFound);
  EXPECT_EQ(client->CreateBucket("bad name").code(), Code::kInvalidArgument);
  EXPECT_EQ(b->Put("", "v").code(), Code::kInvalidArgument);
  EXPECT_EQ(b->Put(std::string(kMaxKeySize + 1, 'k'), "v").code(), Code::kTooLarge);
  EXPECT_EQ(b->Put("k", std::string(kMaxValueSize + 1, 'v')).code(), Code::kTooLarge);
  EXPECT_TRUE(b->Put("k", std::string(kMaxValueSize, 'v')).ok());
  EXPECT_EQ(Get(*b, "k"), std::string(kMaxValueSize, 'v'));
}

TEST_F(EndToEndTest, ManyWritesGrowTheTableAcrossGenerations) {
  auto client = kvd_.NewClient();
  ASSERT_TRUE(client->CreateBucket("big").ok());
  Result<Bucket> b = client->OpenBucket("big");
  ASSERT_TRUE(b.ok());
  for (int i = 0; i < 20000; ++i) {
    ASSERT_TRUE(
        b->Put("key" + std::to_string(i), std::string(64, static_cast<char>('a' + i % 26))).ok())
        << i;
  }
  for (int i = 0; i < 20000; i += 97) {
    EXPECT_EQ(Get(*b, "key" + std::to_string(i)), std::string(64, static_cast<char>('a' + i % 26)));
  }
  auto status = client->GetStatus();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->buckets[0].keys, 20000u);
  EXPECT_GT(status->buckets[0].generation, 5u);
}

TEST_F(EndToEndTest, DropRemovesBucketAndStaleHandleSeesIt) {
  auto client = kvd_.NewClient();
  ASSERT_TRUE(client->CreateBucket("gone").ok());
  Result<Bucket> b = client->OpenBucket("gone");
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(b->Put("k", "v").ok());
  ASSERT_TRUE(client->DropBucket("gone").ok());
  EXPECT_EQ(client->OpenBucket("gone").status().code(), Code::kBucketNotFound);
  std::string v;
  EXPECT_EQ(b->Get("k", &v).code(), Code::kBucketNotFound);
  EXPECT_NE(b->Put("k", "v").code(), Code::kOk);
  EXPECT_EQ(client->DropBucket("gone").code(), Code::kBucketNotFound);
  EXPECT_TRUE(kv::testing::ShmObjectsOfNamespace(kvd_.ns()).size() == 1u);  // the registry only
}

TEST(KvdLifecycleTest, SigtermStopsWorkersAndHarnessLeavesNothingBehind) {
  std::string ns;
  {
    KvdInstance kvd;
    ns = kvd.ns();
    auto client = kvd.NewClient();
    for (const char* name : {"a", "b", "c"}) ASSERT_TRUE(client->CreateBucket(name).ok());
    EXPECT_EQ(kv::testing::KvdAndWorkersOfNamespace(ns).size(), 4u);  // kvd + 3 workers
    EXPECT_EQ(kvd.Stop(), 0);
    EXPECT_TRUE(kv::testing::ProcessesOfNamespace(ns).empty());
    // Data persists across a clean stop by default.
    EXPECT_FALSE(kv::testing::ShmObjectsOfNamespace(ns).empty());
  }
  EXPECT_TRUE(kv::testing::ProcessesOfNamespace(ns).empty());
  EXPECT_TRUE(kv::testing::ShmObjectsOfNamespace(ns).empty());
}

// Set by FailWithKvdAndAWorkerRunning: EXPECT_FATAL_FAILURE's statement may only use globals.
std::string failing_test_ns;

// A test body that fails (fatally) while its kvd and a worker run.
void FailWithKvdAndAWorkerRunning() {
  KvdInstance kvd;
  failing_test_ns = kvd.ns();
  ASSERT_TRUE(kvd.NewClient()->CreateBucket("b").ok());
  ASSERT_EQ(kv::testing::KvdAndWorkersOfNamespace(kvd.ns()).size(), 2u);  // kvd + the worker
  FAIL() << "deliberate failure with kvd and a worker running";
}

TEST(KvdLifecycleTest, AFailingTestLeavesNothingBehindEither) {
  EXPECT_FATAL_FAILURE(FailWithKvdAndAWorkerRunning(), "deliberate failure");
  ASSERT_FALSE(failing_test_ns.empty());
  EXPECT_TRUE(kv::testing::ProcessesOfNamespace(failing_test_ns).empty());
  EXPECT_TRUE(kv::testing::ShmObjectsOfNamespace(failing_test_ns).empty());
}

TEST(KvdLifecycleTest, SecondKvdInSameNamespaceIsRefused) {
  KvdInstance kvd;
  auto r = RunCommand({kv::testing::KvdPath(), "--namespace", kvd.ns()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("already running"), std::string::npos) << r.err;
}

TEST(KvdLifecycleTest, ClientOfAStoppedInstanceGetsUnavailable) {
  ClientOptions options;
  options.ns = kv::testing::UniqueNamespace();
  EXPECT_EQ(Client::Open(options).status().code(), Code::kUnavailable);
  options.ns = "bad/namespace";
  EXPECT_EQ(Client::Open(options).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace kv
