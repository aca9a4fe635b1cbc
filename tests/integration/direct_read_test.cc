// Reads are served from shared memory without the worker, through read-only mappings.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::testing::KvctlPath;
using kv::testing::KvdInstance;
using kv::testing::RunCommand;

struct MappingLine {
  std::uintptr_t start = 0;
  std::string perms;
};

// The mappings of this process whose path ends with `/dev/shm/<object>`.
std::vector<MappingLine> MappingsOf(const std::string& object) {
  std::vector<MappingLine> out;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    std::string suffix = "/dev/shm/" + object;
    if (line.size() < suffix.size() ||
        line.compare(line.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    std::istringstream in(line);
    std::string range;
    MappingLine m;
    in >> range >> m.perms;
    m.start = std::stoull(range.substr(0, range.find('-')), nullptr, 16);
    out.push_back(m);
  }
  return out;
}

class DirectReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Creating the bucket starts a worker: slow on a loaded or sanitizer build, so it gets the
    // default timeout; the handle's writes get 300 ms, so that a stopped worker times out fast.
    ASSERT_TRUE(kvd_.NewClient()->CreateBucket("b").ok());
    client_ = kvd_.NewClient(std::chrono::milliseconds(300));
    ASSERT_TRUE(client_);
    Result<Bucket> b = client_->OpenBucket("b");
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    bucket_.emplace(std::move(b).value());
  }
  KvdInstance kvd_;
  std::shared_ptr<Client> client_;
  std::optional<Bucket> bucket_;
};

TEST_F(DirectReadTest, ReadsWorkWhileWorkerIsStoppedAndWritesTimeOut) {
  ASSERT_TRUE(bucket_->Put("k", "v1").ok());
  pid_t worker = kvd_.WorkerPid("b");
  ASSERT_GT(worker, 0);
  ASSERT_EQ(::kill(worker, SIGSTOP), 0);

  std::string value;
  ASSERT_TRUE(bucket_->Get("k", &value).ok());
  EXPECT_EQ(value, "v1");
  auto r = RunCommand({KvctlPath(), "--namespace", kvd_.ns(), "get", "b", "k"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "v1");  // kvctl get writes the raw bytes when stdout is not a terminal

  auto start = std::chrono::steady_clock::now();
  Status put = bucket_->Put("k", "v2");
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(put.code(), Code::kTimeout) << put.ToString();
  EXPECT_LT(took, std::chrono::seconds(5));
  // A new client (new channel) times out too, instead of hanging in registration.
  auto other = kvd_.NewClient(std::chrono::milliseconds(300));
  Result<Bucket> b2 = other->OpenBucket("b");
  ASSERT_TRUE(b2.ok());
  EXPECT_EQ(b2->Put("k", "v2b").code(), Code::kTimeout);
  ASSERT_TRUE(bucket_->Get("k", &value).ok());
  EXPECT_EQ(value, "v1");  // timed-out writes are not visible while the worker is stopped

  ASSERT_EQ(::kill(worker, SIGCONT), 0);
  EXPECT_TRUE(
      kv::testing::WaitFor([&] { return bucket_->Put("k", "v3").ok(); }, std::chrono::seconds(5)));
  ASSERT_TRUE(bucket_->Get("k", &value).ok());
  EXPECT_EQ(value, "v3");
  EXPECT_TRUE(b2->Put("k2", "x").ok());
}

TEST_F(DirectReadTest, ClientMapsRegistryAndBucketReadOnly) {
  ASSERT_TRUE(bucket_->Put("k", "v").ok());
  std::string value;
  ASSERT_TRUE(bucket_->Get("k", &value).ok());
  std::string ns = kvd_.ns();
  auto id = std::to_string(bucket_->id());
  for (const std::string& object : {ns + ".registry", ns + ".b" + id, ns + ".b" + id + ".g1"}) {
    auto maps = MappingsOf(object);
    ASSERT_FALSE(maps.empty()) << object << " is not mapped";
    for (const MappingLine& m : maps) EXPECT_EQ(m.perms, "r--s") << object;
  }
}

TEST_F(DirectReadTest, WritingThroughTheClientMappingFaults) {
  ::testing::FLAGS_gtest_death_test_style = "fast";
  ASSERT_TRUE(bucket_->Put("k", "v").ok());
  auto maps = MappingsOf(kvd_.ns() + ".b" + std::to_string(bucket_->id()) + ".g1");
  ASSERT_FALSE(maps.empty());
  auto* target = reinterpret_cast<volatile char*>(maps[0].start + 128);
  EXPECT_EXIT(
      {
        struct sigaction sa {};
        sa.sa_handler = [](int) { ::_exit(77); };
        ::sigaction(SIGSEGV, &sa, nullptr);
        *target = 1;
        ::_exit(0);
      },
      ::testing::ExitedWithCode(77), "");
}

}  // namespace
}  // namespace kv
