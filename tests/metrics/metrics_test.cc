// Metrics (metrics/openmetrics.h): `kvctl metrics` and kvd's metrics-file, parsed by a real
// Prometheus text parser (python3-prometheus-client), with values checked against what the test
// did: keys, writes, restarts, states, feed position, and label escaping of odd bucket names.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::testing::CommandResult;
using kv::testing::KvctlPath;
using kv::testing::KvdInstance;
using kv::testing::RunCommand;
using kv::testing::WaitFor;
using nlohmann::json;
namespace fs = std::filesystem;

// The families of `text` as parse_prometheus.py prints them; null if the parser refused it.
json Parse(const std::string& text) {
  CommandResult r = RunCommand({KV_PYTHON3, KV_PARSER}, text);
  EXPECT_EQ(r.exit_code, 0) << r.err << "\n" << text;
  if (r.exit_code != 0) return nullptr;
  return json::parse(r.out);
}

// The value of the sample `name` whose labels include `labels`; -1 if there is none.
double Value(const json& families, const std::string& family, const std::string& name,
             const json& labels) {
  if (!families.contains(family)) return -1;
  for (const json& s : families[family]["samples"]) {
    if (s[0] != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels.items()) match = match && s[1].value(k, "") == v;
    if (match) return s[2].get<double>();
  }
  return -1;
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/kv_metrics_test_XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  fs::path dir_;
};

TEST_F(MetricsTest, KvctlMetricsAndTheMetricsFileParseAndSayWhatHappened) {
  const std::string file = (dir_ / "kv.prom").string();
  KvdInstance kvd({"--metrics-file", file, "--metrics-interval-ms", "100"});
  ASSERT_NE(kvd.pid(), 0);
  auto client = kvd.NewClient();
  const std::string odd = "we\"ird\\name";
  ASSERT_TRUE(client->CreateBucket("a").ok());
  ASSERT_TRUE(client->CreateBucket(odd).ok());
  auto a = client->OpenBucket("a");
  ASSERT_TRUE(a.ok());
  for (const char* k : {"x", "y", "z"}) ASSERT_TRUE(a->Put(k, "1").ok());
  ASSERT_TRUE(a->Delete("z").ok());
  const std::string ns = kvd.ns();
  const json bucket_a = {{"namespace", ns}, {"bucket", "a"}};

  CommandResult r = RunCommand({KvctlPath(), "-n", ns, "metrics"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json m = Parse(r.out);
  ASSERT_FALSE(m.is_null());
  EXPECT_EQ(m["kv_up"]["type"], "gauge");
  EXPECT_EQ(Value(m, "kv_up", "kv_up", {{"namespace", ns}}), 1);
  EXPECT_GT(Value(m, "kv_kvd_uptime_seconds", "kv_kvd_uptime_seconds", {}), 0);
  EXPECT_EQ(Value(m, "kv_buckets", "kv_buckets", {}), 2);
  EXPECT_EQ(m["kv_restarts"]["type"], "counter");
  EXPECT_EQ(Value(m, "kv_restarts", "kv_restarts_total", {}), 0);
  EXPECT_EQ(Value(m, "kv_bucket_keys", "kv_bucket_keys", bucket_a), 2);
  EXPECT_EQ(Value(m, "kv_bucket_writes", "kv_bucket_writes_total", bucket_a), 4);
  EXPECT_EQ(Value(m, "kv_bucket_feed_position", "kv_bucket_feed_position", bucket_a),
            static_cast<double>(a->Subscribe()->position()));
  EXPECT_GT(Value(m, "kv_bucket_memory_bytes", "kv_bucket_memory_bytes", bucket_a), 0);
  EXPECT_EQ(Value(m, "kv_bucket_queue_depth", "kv_bucket_queue_depth", bucket_a) >= 0, true);
  EXPECT_EQ(Value(m, "kv_bucket_state", "kv_bucket_state", {{"bucket", "a"}, {"state", "running"}}),
            1);
  EXPECT_EQ(Value(m, "kv_bucket_state", "kv_bucket_state", {{"bucket", "a"}, {"state", "failed"}}),
            0);
  // The odd name survives escaping: the parser gives it back as it is.
  EXPECT_EQ(Value(m, "kv_bucket_keys", "kv_bucket_keys", {{"bucket", odd}}), 0);

  // kvd's file: the same families, rewritten as things change.
  ASSERT_TRUE(WaitFor(
      [&] {
        json f = Parse(kv::testing::ReadFile(file));
        return !f.is_null() && Value(f, "kv_bucket_keys", "kv_bucket_keys", bucket_a) == 2;
      },
      std::chrono::seconds(10)));
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  r = RunCommand({KvctlPath(), "-n", ns, "kill", "a", "--wait"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json f;
  ASSERT_TRUE(WaitFor(
      [&] {
        f = Parse(kv::testing::ReadFile(file));
        return !f.is_null() &&
               Value(f, "kv_bucket_restarts", "kv_bucket_restarts_total", bucket_a) == 1 &&
               Value(f, "kv_bucket_state", "kv_bucket_state",
                     {{"bucket", "a"}, {"state", "running"}}) == 1;
      },
      std::chrono::seconds(10)))
      << f.dump();
  EXPECT_EQ(Value(f, "kv_restarts", "kv_restarts_total", {}), 1);
  // Only the file itself is in the directory: temporary files were renamed over it.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(MetricsTest, AnUnwritableMetricsFileIsRefusedAtStart) {
  const std::string ns = kv::testing::UniqueNamespace();
  for (const std::string& bad :
       {std::string("relative.prom"), (dir_ / "missing/kv.prom").string(), dir_.string() + "/"}) {
    CommandResult r =
        RunCommand({kv::testing::KvdPath(), "--namespace", ns, "--metrics-file", bad});
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_NE(r.err.find("metrics-file"), std::string::npos) << r.err;
  }
  kv::testing::SweepNamespace(ns);
}

}  // namespace
}  // namespace kv
