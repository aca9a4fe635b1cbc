// kvctl subcommands: output and exit codes (0 ok, 1 not found / failed, 2 usage).
#include <gtest/gtest.h>

#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::testing::KvctlPath;
using kv::testing::KvdInstance;
using kv::testing::RunCommand;

class KvctlCliTest : public ::testing::Test {
 protected:
  kv::testing::CommandResult Kvctl(std::vector<std::string> args) {
    args.insert(args.begin(), {KvctlPath(), "--namespace", kvd_.ns()});
    return RunCommand(args);
  }
  KvdInstance kvd_;
};

TEST_F(KvctlCliTest, CreatePutGetDelRoundTrip) {
  EXPECT_EQ(Kvctl({"create", "shopping"}).exit_code, 0);
  EXPECT_EQ(Kvctl({"put", "shopping", "milk", "1"}).exit_code, 0);
  auto get = Kvctl({"get", "shopping", "milk"});
  EXPECT_EQ(get.exit_code, 0);
  EXPECT_EQ(get.out, "1\n");
  EXPECT_EQ(Kvctl({"del", "shopping", "milk"}).exit_code, 0);
  auto missing = Kvctl({"get", "shopping", "milk"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("NOT_FOUND"), std::string::npos) << missing.err;
  EXPECT_EQ(Kvctl({"del", "shopping", "milk"}).exit_code, 1);
}

TEST_F(KvctlCliTest, MissingBucketIsExitOneWithMessage) {
  auto r = Kvctl({"get", "nothere", "k"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("NO_BUCKET"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nothere"), std::string::npos) << r.err;
  EXPECT_EQ(Kvctl({"put", "nothere", "k", "v"}).exit_code, 1);
}

TEST_F(KvctlCliTest, MisuseIsExitTwoWithUsage) {
  auto r = Kvctl({"put", "onlybucket"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("key"), std::string::npos) << r.err;
  EXPECT_EQ(Kvctl({"frobnicate"}).exit_code, 2);
  EXPECT_EQ(RunCommand({KvctlPath()}).exit_code, 2);
}

TEST_F(KvctlCliTest, StatusShowsKvdAndEachWorker) {
  auto empty = Kvctl({"status"});
  EXPECT_EQ(empty.exit_code, 0);
  EXPECT_NE(empty.out.find("no buckets"), std::string::npos) << empty.out;
  EXPECT_EQ(Kvctl({"create", "shopping"}).exit_code, 0);
  EXPECT_EQ(Kvctl({"put", "shopping", "milk", "1"}).exit_code, 0);
  EXPECT_EQ(Kvctl({"put", "shopping", "eggs", "2"}).exit_code, 0);
  auto r = Kvctl({"status"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("pid " + std::to_string(kvd_.pid())), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("shopping"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("running"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(std::to_string(kvd_.WorkerPid("shopping"))), std::string::npos) << r.out;
  auto buckets = Kvctl({"buckets"});
  EXPECT_EQ(buckets.out, "shopping\n");
}

TEST(KvctlNoKvdTest, StoppedInstanceIsExitOne) {
  auto r = RunCommand({KvctlPath(), "--namespace", kv::testing::UniqueNamespace(), "status"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("UNAVAILABLE"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kv
