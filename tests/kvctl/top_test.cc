// `kvctl top`: the model's rates and sorting, the batch output (plain and --json), and the live
// ncurses view driven in a detached tmux session (capture-pane, send-keys).
#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "kvctl/output.h"
#include "kvctl/top_model.h"
#include "tests/kvctl/tmux_session.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::testing::KvctlPath;
using kv::testing::KvdInstance;
using kv::testing::ReadFile;
using kv::testing::RunCommand;
using kv::testing::WaitFor;
using nlohmann::json;

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

TEST(TopModelTest, JsonFrameHasTheRowsOfTheScreenInSortOrder) {
  ctl::TopModel model;
  auto t0 = std::chrono::steady_clock::time_point() + std::chrono::hours(1);
  InstanceStatus st;
  st.ns = "x";
  st.kvd_pid = 42;
  st.buckets = {Info("a", 1, 100, 5), Info("b", 2, 0, 50)};
  model.Update(st, t0);
  st.buckets = {Info("a", 1, 300, 5), Info("b", 2, 1000, 50), Info("c", 3, 7, 1)};
  st.buckets[0].memory_bytes = 4096;
  st.buckets[0].restarts = 2;
  st.buckets[0].queue_depth = 17;
  model.Update(st, t0 + std::chrono::seconds(2));
  json doc = model.Json(ctl::TopSort::kWritesPerSec, 1234);
  EXPECT_EQ(doc["timestamp_unix_ms"], 1234);
  EXPECT_EQ(doc["namespace"], "x");
  EXPECT_EQ(doc["kvd"]["pid"], 42);
  EXPECT_EQ(doc["sort"], "writes");  // the word --sort takes
  EXPECT_EQ(doc["total"]["buckets"], 3);
  EXPECT_EQ(doc["total"]["keys"], 56);
  EXPECT_DOUBLE_EQ(doc["total"]["writes_per_sec"].get<double>(), 600);
  const json& b = doc["buckets"];
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0]["name"], "b");
  EXPECT_DOUBLE_EQ(b[0]["writes_per_sec"].get<double>(), 500);
  EXPECT_EQ(b[1]["name"], "a");
  EXPECT_DOUBLE_EQ(b[1]["writes_per_sec"].get<double>(), 100);
  EXPECT_EQ(b[1]["memory_bytes"], 4096);
  EXPECT_EQ(b[1]["restarts"], 2);
  EXPECT_EQ(b[1]["pid"], 101);
  EXPECT_EQ(b[1]["state"], "running");
  EXPECT_EQ(b[1]["keys"], 5);
  EXPECT_TRUE(b[1]["reads_per_sec"].is_null());
  EXPECT_EQ(b[1]["queue_depth"], 17);
  EXPECT_EQ(b[2]["name"], "c");
  EXPECT_TRUE(b[2]["writes_per_sec"].is_null());  // new: "-" on the screen
  EXPECT_EQ(model.Json(ctl::TopSort::kName, 0)["buckets"][0]["name"], "a");
}

// `kvctl top --json` frames: one JSON object per line, parsed; ADD_FAILUREs for a line that is not.
std::vector<json> JsonFrames(const std::string& out) {
  std::vector<json> frames;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    json frame = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (frame.is_discarded() || !frame.is_object()) {
      ADD_FAILURE() << "not a JSON object: " << line;
      continue;
    }
    frames.push_back(std::move(frame));
  }
  return frames;
}

// Puts into one bucket from a thread until destroyed.
class BackgroundWriter {
 public:
  explicit BackgroundWriter(Bucket bucket) : bucket_(std::move(bucket)) {
    thread_ = std::thread([this] {
      for (std::uint64_t i = 0; !stop_.load(); ++i) {
        if (bucket_.Put("key" + std::to_string(i % 100), "value").ok()) puts_.fetch_add(1);
      }
    });
  }
  ~BackgroundWriter() {
    stop_.store(true);
    thread_.join();
  }
  BackgroundWriter(const BackgroundWriter&) = delete;
  BackgroundWriter& operator=(const BackgroundWriter&) = delete;
  std::uint64_t puts() const { return puts_.load(); }

 private:
  Bucket bucket_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> puts_{0};
  std::thread thread_;
};

TEST(TopBatchTest, JsonFramesShowABusyBucketsWritesPerSecond) {
  KvdInstance kvd;
  std::shared_ptr<Client> client = kvd.NewClient();
  ASSERT_TRUE(client->CreateBucket("busy").ok());
  Result<Bucket> bucket = client->OpenBucket("busy");
  ASSERT_TRUE(bucket.ok());
  BackgroundWriter writer(*bucket);
  ASSERT_TRUE(WaitFor([&] { return writer.puts() >= 100; }, std::chrono::seconds(20)));

  std::uint64_t before = ctl::NowUnixMs();
  auto r = RunCommand({KvctlPath(), "--namespace", kvd.ns(), "top", "--batch", "--json",
                       "--interval-ms", "200", "--iterations", "4"});
  std::uint64_t after = ctl::NowUnixMs();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<json> frames = JsonFrames(r.out);
  ASSERT_EQ(frames.size(), 4u) << r.out;

  // Field names shared with `kvctl status --json`, for the same bucket.
  auto status = RunCommand({KvctlPath(), "--namespace", kvd.ns(), "status", "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  json status_bucket = json::parse(status.out)["buckets"].at(0);
  Result<InstanceStatus> st = client->GetStatus();
  ASSERT_TRUE(st.ok());
  ASSERT_EQ(st->buckets.size(), 1u);

  std::uint64_t previous = before;
  bool moved = false;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const json& f = frames[i];
    std::uint64_t at = f["timestamp_unix_ms"].get<std::uint64_t>();
    EXPECT_GE(at, previous) << f;
    EXPECT_LE(at, after) << f;
    previous = at;
    EXPECT_EQ(f["namespace"], kvd.ns());
    EXPECT_EQ(f["sort"], "writes");
    EXPECT_TRUE(f["kvd"]["running"].get<bool>()) << f;
    ASSERT_EQ(f["buckets"].size(), 1u) << f;
    const json& b = f["buckets"][0];
    for (const auto& [field, value] : status_bucket.items()) {
      EXPECT_TRUE(b.contains(field)) << field << " missing in " << b;
    }
    EXPECT_EQ(b["name"], "busy");
    EXPECT_EQ(b["state"], "running");
    EXPECT_EQ(b["pid"], st->buckets[0].worker_pid);
    EXPECT_EQ(b["restarts"], 0);
    EXPECT_GT(b["keys"].get<std::uint64_t>(), 0u);
    EXPECT_GT(b["memory_bytes"].get<std::uint64_t>(), 0u);
    EXPECT_GT(b["writes"].get<std::uint64_t>(), 0u);
    EXPECT_TRUE(b["reads_per_sec"].is_null());
    EXPECT_TRUE(b["queue_depth"].is_number_unsigned());
    if (i > 0 && b["writes_per_sec"].is_number() && b["writes_per_sec"].get<double>() > 0) {
      moved = true;
    }
  }
  EXPECT_TRUE(moved) << r.out;
}

TEST(TopBatchTest, JsonFrameOfAnEmptyInstanceHasNoBuckets) {
  KvdInstance kvd;
  // With --batch, and without it when stdout is not a terminal (batch mode is then automatic).
  for (bool batch : {true, false}) {
    std::vector<std::string> args = {KvctlPath(), "--namespace",  kvd.ns(),
                                     "top",       "--json",       "--interval-ms",
                                     "100",       "--iterations", "2"};
    if (batch) args.push_back("--batch");
    auto r = RunCommand(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::vector<json> frames = JsonFrames(r.out);
    ASSERT_EQ(frames.size(), 2u) << r.out;
    for (const json& f : frames) {
      ASSERT_TRUE(f["buckets"].is_array()) << f;
      EXPECT_TRUE(f["buckets"].empty()) << f;
      EXPECT_EQ(f["total"]["buckets"], 0);
    }
  }
}

TEST(TopBatchTest, JsonOnTheFullScreenViewIsAUsageError) {
  KvdInstance kvd;
  testing::TmuxSession tmux;
  std::string code = tmux.File("code"), err = tmux.File("err");
  ASSERT_EQ(tmux.Start(KvctlPath() + " --namespace " + kvd.ns() + " top --json 2>" + err +
                       "; echo $? >" + code)
                .exit_code,
            0);
  ASSERT_TRUE(WaitFor([&] { return !tmux.Alive(); }, std::chrono::seconds(20)))
      << "top --json did not exit: " << tmux.Screen();
  EXPECT_EQ(ReadFile(code), "2\n");
  EXPECT_NE(ReadFile(err).find("--batch"), std::string::npos) << ReadFile(err);
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
