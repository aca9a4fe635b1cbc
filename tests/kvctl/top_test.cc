// `kvctl top`: the model's rates and sorting, the batch output, and the live ncurses view
// driven in a detached tmux session (capture-pane, send-keys).
#include <gtest/gtest.h>
#include <sstream>

#include "kvctl/top_model.h"
#include "tests/kvctl/tmux_session.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::testing::KvctlPath;
using kv::testing::KvdInstance;
using kv::testing::RunCommand;
using kv::testing::WaitFor;

BucketInfo Info(const std::string& name, std::uint64_t id, std::uint64_t writes,
                std::uint64_t keys) {
  BucketInfo b;
  b.name = name;
  b.id = id;
  b.state = "running";
  b.worker_pid = 100 + static_cast<int>(id);
  b.writes = writes;
  b.keys = keys;
  return b;
}

TEST(TopModelTest, WritesPerSecondIsTheDeltaOverTime) {
  ctl::TopModel model;
  auto t0 = std::chrono::steady_clock::time_point() + std::chrono::hours(1);
  InstanceStatus st;
  st.ns = "x";
  st.buckets = {Info("a", 1, 100, 5), Info("b", 2, 0, 50)};
  model.Update(st, t0);
  auto rows = model.Rows(ctl::TopSort::kName);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_FALSE(rows[0].rate_known);
  st.buckets = {Info("a", 1, 300, 5), Info("b", 2, 1000, 50), Info("c", 3, 7, 1)};
  model.Update(st, t0 + std::chrono::seconds(2));
  rows = model.Rows(ctl::TopSort::kWritesPerSec);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].info.name, "b");
  EXPECT_DOUBLE_EQ(rows[0].writes_per_sec, 500);
  EXPECT_EQ(rows[1].info.name, "a");
  EXPECT_DOUBLE_EQ(rows[1].writes_per_sec, 100);
  EXPECT_FALSE(rows[2].rate_known);  // c is new
  EXPECT_EQ(model.Rows(ctl::TopSort::kKeys)[0].info.name, "b");
  EXPECT_EQ(model.Rows(ctl::TopSort::kName)[0].info.name, "a");
  std::vector<std::string> lines = model.Render(ctl::TopSort::kWritesPerSec, 200, "12:00:00");
  std::string all;
  for (const auto& l : lines) all += l + "\n";
  EXPECT_NE(all.find("WRITES/S"), std::string::npos) << all;
  EXPECT_NE(all.find("reads/s: not measurable"), std::string::npos) << all;
  EXPECT_NE(all.find("sort: writes/s"), std::string::npos) << all;
  for (const auto& l : model.Render(ctl::TopSort::kName, 40, "")) EXPECT_LE(l.size(), 40u);
}

TEST(TopModelTest, RecreatedBucketHasNoRateUntilTwoSamples) {
  ctl::TopModel model;
  auto t0 = std::chrono::steady_clock::time_point() + std::chrono::hours(1);
  InstanceStatus st;
  st.buckets = {Info("a", 1, 100, 5)};
  model.Update(st, t0);
  st.buckets = {Info("a", 2, 3, 5)};  // dropped and created again: a new id
  model.Update(st, t0 + std::chrono::seconds(1));
  EXPECT_FALSE(model.Rows(ctl::TopSort::kName)[0].rate_known);
}

TEST(TopBatchTest, PrintsPlainFramesWhenNotATerminal) {
  KvdInstance kvd;
  ASSERT_TRUE(kvd.NewClient()->CreateBucket("shown").ok());
  auto r = RunCommand({KvctlPath(), "--namespace", kvd.ns(), "top", "--interval-ms", "100",
                       "--iterations", "2", "--sort", "name"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("shown"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("sort: name"), std::string::npos) << r.out;
}

// The live view in a detached tmux session on a private server socket.
class TopTmuxTest : public ::testing::Test {
 protected:
  std::string Screen() { return tmux_.Screen(); }
  // The WRITES/S column of `bucket`'s row, or -1 when not shown (yet).
  double WritesPerSec(const std::string& bucket) {
    std::istringstream lines(Screen());
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind(bucket + " ", 0) != 0) continue;
      std::istringstream words(line);
      std::vector<std::string> w;
      for (std::string s; words >> s;) w.push_back(s);
      // name state pid restarts uptime keys memory unit writes/s writes queue
      if (w.size() < 11 || w[8] == "-") return -1;
      return std::stod(w[8]);
    }
    return -1;
  }
  KvdInstance kvd_;
  testing::TmuxSession tmux_;  // destroyed first: no top left running against a stopped kvd
};

TEST_F(TopTmuxTest, ShowsANewBucketAndItsWritesAndQuitsOnQ) {
  std::string command = KvctlPath() + " --namespace " + kvd_.ns() + " top --interval-ms 250";
  auto started = tmux_.Start(command, 160, 40);
  ASSERT_EQ(started.exit_code, 0) << started.err;
  ASSERT_TRUE(WaitFor([&] { return Screen().find("(no buckets)") != std::string::npos; },
                      std::chrono::seconds(20)))
      << Screen();
  EXPECT_NE(Screen().find("kvctl top - namespace " + kvd_.ns()), std::string::npos) << Screen();

  std::shared_ptr<Client> client = kvd_.NewClient();
  ASSERT_TRUE(client->CreateBucket("watched").ok());
  ASSERT_TRUE(WaitFor([&] { return Screen().find("watched") != std::string::npos; },
                      std::chrono::seconds(20)))
      << Screen();

  Result<Bucket> bucket = client->OpenBucket("watched");
  ASSERT_TRUE(bucket.ok());
  int i = 0;
  bool moved = WaitFor(
      [&] {
        for (int k = 0; k < 50; ++k, ++i) {
          EXPECT_TRUE(bucket->Put("key" + std::to_string(i % 100), "value").ok());
        }
        return WritesPerSec("watched") > 0;
      },
      std::chrono::seconds(30));
  EXPECT_TRUE(moved) << Screen();

  ASSERT_TRUE(tmux_.SendKeys({"q"}));
  EXPECT_TRUE(WaitFor([&] { return !tmux_.Alive(); }, std::chrono::seconds(20)))
      << "top did not quit on q: " << Screen();
}

}  // namespace
}  // namespace kv
