// `kvctl watch`: one line (or JSON object) per change as it happens, until SIGINT/SIGTERM (exit
// 0); missed changes, worker restarts and drops are reported. Watches start with --from 1 on a
// fresh bucket, so no change can fall before the subscription.
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include "shm/change_feed.h"
#include "tests/kvctl/live_process.h"
#include "tests/testing/bucket_fixture.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::testing::KvctlPath;
using kv::testing::LiveProcess;
using kv::testing::RunCommand;
using nlohmann::json;

constexpr int kLineMs = 10000;  // generous: sanitizer builds on a loaded machine

class WatchTest : public kv::testing::BucketFixture {
 protected:
  std::vector<std::string> Watch(std::vector<std::string> extra) {
    std::vector<std::string> argv = {KvctlPath(), "--namespace", kvd_.ns(), "watch", "b"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }
};

TEST_F(WatchTest, PrintsEveryChangeUntilInterrupted) {
  LiveProcess watch(Watch({"--from", "1"}));
  ASSERT_TRUE(bucket_->Put("milk", "3").ok());
  EXPECT_EQ(watch.ReadLine(kLineMs), "milk SET TO 3");
  std::uint64_t version = 0;
  ASSERT_TRUE(bucket_->CompareAndSet("c", 0, "a", &version).ok());
  ASSERT_TRUE(bucket_->Increment("n", 5).ok());
  ASSERT_TRUE(bucket_->Put(std::string("k\n\xff", 3), std::string("v\0w", 3)).ok());
  ASSERT_TRUE(bucket_->Delete("milk").ok());
  ASSERT_TRUE(bucket_->Clear().ok());
  EXPECT_EQ(watch.ReadLine(kLineMs), "c SET TO a");  // cas: the value stored
  EXPECT_EQ(watch.ReadLine(kLineMs), "n SET TO 5");  // incr: the result
  EXPECT_EQ(watch.ReadLine(kLineMs), "k\\x0a\\xff SET TO v\\x00w");
  EXPECT_EQ(watch.ReadLine(kLineMs), "milk DELETED");
  EXPECT_EQ(watch.ReadLine(kLineMs), "CLEARED");
  ASSERT_EQ(::kill(watch.pid(), SIGINT), 0);
  EXPECT_EQ(watch.Wait(), 0) << watch.RestOfStderr();
  EXPECT_EQ(watch.RestOfStdout(), "");
}

TEST_F(WatchTest, JsonIsOneObjectPerLineBinarySafe) {
  LiveProcess watch(Watch({"--from", "1", "--json"}));
  ASSERT_TRUE(bucket_->Put("milk", "3").ok());
  ASSERT_TRUE(bucket_->Put("bin", std::string("\xff\0", 2)).ok());
  ASSERT_TRUE(bucket_->Delete("milk").ok());
  ASSERT_TRUE(bucket_->Clear().ok());
  std::vector<json> lines;
  for (int i = 0; i < 4; ++i) {
    std::string line = watch.ReadLine(kLineMs);
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(j.is_discarded()) << "not JSON: " << line;
    lines.push_back(j);
  }
  EXPECT_EQ(lines[0], json({{"seq", 1}, {"op", "put"}, {"key", "milk"}, {"value", "3"}}));
  EXPECT_EQ(lines[1], json({{"seq", 2},
                            {"op", "put"},
                            {"key", "bin"},
                            {"value", "/wA="},
                            {"value_encoding", "base64"}}));
  EXPECT_EQ(lines[2], json({{"seq", 3}, {"op", "delete"}, {"key", "milk"}}));
  EXPECT_EQ(lines[3], json({{"seq", 4}, {"op", "clear"}}));
  ASSERT_EQ(::kill(watch.pid(), SIGTERM), 0);
  EXPECT_EQ(watch.Wait(), 0) << watch.RestOfStderr();
}

TEST_F(WatchTest, FallingBehindIsReportedAsMissedChanges) {
  constexpr std::uint64_t kChanges = kv::shm::kFeedSlots + 904;
  for (std::uint64_t i = 0; i < kChanges; ++i) {  // more than the feed keeps
    ASSERT_TRUE(bucket_->PutAsync("k" + std::to_string(i), "x").ok());
  }
  ASSERT_TRUE(bucket_->Flush().ok());
  LiveProcess watch(Watch({"--from", "1"}));
  std::uint64_t missed = 0;
  std::string line;
  for (;;) {
    line = watch.ReadLine(kLineMs);
    if (line.rfind("MISSED ", 0) != 0) break;
    ASSERT_EQ(line.substr(line.size() - 8), " CHANGES") << line;
    missed += std::stoull(line.substr(7));
  }
  EXPECT_GE(missed, kChanges - kv::shm::kFeedSlots);
  EXPECT_EQ(line, "k" + std::to_string(missed) + " SET TO x");  // change n + 1 put k<n>
}

TEST_F(WatchTest, WorkerCrashIsAnnouncedAsResync) {
  LiveProcess watch(Watch({"--from", "1"}));
  ASSERT_TRUE(bucket_->Put("a", "1").ok());
  EXPECT_EQ(watch.ReadLine(kLineMs), "a SET TO 1");
  ASSERT_EQ(::kill(kvd_.WorkerPid("b"), SIGKILL), 0);
  ASSERT_TRUE(
      kv::testing::WaitFor([&] { return bucket_->Put("b", "2").ok(); }, std::chrono::seconds(20)));
  EXPECT_EQ(watch.ReadLine(kLineMs), "RESYNC");
  EXPECT_EQ(watch.ReadLine(kLineMs), "b SET TO 2");
}

TEST_F(WatchTest, DroppedBucketEndsTheWatchWithExitOne) {
  LiveProcess watch(Watch({"--from", "1"}));
  ASSERT_TRUE(bucket_->Put("a", "1").ok());
  EXPECT_EQ(watch.ReadLine(kLineMs), "a SET TO 1");  // subscribed
  ASSERT_TRUE(client_->DropBucket("b").ok());
  EXPECT_EQ(watch.Wait(), 1);
  EXPECT_NE(watch.RestOfStderr().find("NO_BUCKET"), std::string::npos);
}

TEST_F(WatchTest, MissingBucketIsExitOne) {
  auto r = RunCommand({KvctlPath(), "--namespace", kvd_.ns(), "watch", "nothere"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("NO_BUCKET"), std::string::npos) << r.err;
  auto j = RunCommand({KvctlPath(), "--namespace", kvd_.ns(), "watch", "nothere", "--json"});
  EXPECT_EQ(j.exit_code, 1);
  EXPECT_NE(j.out.find("\"error\":\"NO_BUCKET\""), std::string::npos) << j.out;
  EXPECT_EQ(RunCommand({KvctlPath(), "--namespace", kvd_.ns(), "watch"}).exit_code, 2);
  EXPECT_EQ(
      RunCommand({KvctlPath(), "--namespace", kvd_.ns(), "watch", "b", "--from", "x"}).exit_code,
      2);
}

TEST_F(WatchTest, NotAvailableInsideTheShell) {
  auto r = RunCommand({KvctlPath(), "--namespace", kvd_.ns(), "shell"}, "watch b\nGET b k\n");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "\nOK\n");
  EXPECT_NE(r.err.find("cannot run inside the shell"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kv
