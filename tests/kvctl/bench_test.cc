// `kvctl bench`: the histogram, the table and the documented --json document.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "kvctl/bench_histogram.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::testing::KvctlPath;
using kv::testing::KvdInstance;
using kv::testing::RunCommand;
using nlohmann::json;

TEST(LatencyHistogramTest, QuantilesWithinThreePercent) {
  auto h = std::make_unique<ctl::LatencyHistogram>();
  EXPECT_EQ(h->Quantile(0.5), 0u);
  for (std::uint64_t v = 1; v <= 100000; ++v) h->Record(v);
  EXPECT_EQ(h->count(), 100000u);
  EXPECT_EQ(h->max(), 100000u);
  EXPECT_NEAR(static_cast<double>(h->Quantile(0.5)), 50000, 50000 * 0.03);
  EXPECT_NEAR(static_cast<double>(h->Quantile(0.99)), 99000, 99000 * 0.03);
  EXPECT_NEAR(static_cast<double>(h->Quantile(0.999)), 99900, 99900 * 0.03);
  auto small = std::make_unique<ctl::LatencyHistogram>();
  for (int i = 0; i < 10; ++i) small->Record(42);
  EXPECT_EQ(small->Quantile(0.5), 42u);  // exact below 64 ns
  small->Merge(*h);
  EXPECT_EQ(small->count(), 100010u);
  h->Record(std::uint64_t{1} << 50);  // clamps into the last bucket
  EXPECT_EQ(h->max(), std::uint64_t{1} << 50);
}

TEST(BenchTest, JsonHasEveryWorkloadWithBaselineAndRatio) {
  KvdInstance kvd;
  auto r = RunCommand({KvctlPath(), "--namespace", kvd.ns(), "bench", "--keys", "500", "--duration",
                       "0.05", "--clients", "2", "--value-size", "32", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["tool"], "kvctl bench");
  EXPECT_EQ(j["keys"], 500);
  EXPECT_EQ(j["clients"], 2);
  EXPECT_EQ(j["value_size"], 32);
  // Every field docs/kvctl.md documents, with its type.
  EXPECT_TRUE(j["version"].is_string());
  EXPECT_TRUE(j["build_type"].is_string());
  EXPECT_TRUE(j["optimised"].is_boolean());
  EXPECT_TRUE(j["sanitizers"].is_boolean());
  EXPECT_EQ(j["namespace"], kvd.ns());
  EXPECT_EQ(j["key_size"], 16);
  EXPECT_EQ(j["duration_s"], 0.05);
  EXPECT_GE(j["latency_sample_every"].get<int>(), 1);
  ASSERT_EQ(j["results"].size(), 4u);
  std::vector<std::string> names;
  for (const json& w : j["results"]) {
    names.push_back(w["workload"]);
    for (const char* target : {"kv", "baseline"}) {
      const json& m = w[target];
      EXPECT_GT(m["ops"].get<std::uint64_t>(), 0u) << w["workload"] << " " << target;
      EXPECT_EQ(m["errors"], 0) << w["workload"] << " " << target;
      EXPECT_GT(m["ops_per_sec"].get<double>(), 0) << w["workload"] << " " << target;
      EXPECT_GT(m["ns_per_op"].get<double>(), 0) << w["workload"] << " " << target;
      const json& l = m["latency_ns"];
      EXPECT_GT(l["samples"].get<std::uint64_t>(), 0u) << w["workload"] << " " << target;
      EXPECT_LE(l["p50"].get<std::uint64_t>(), l["p99"].get<std::uint64_t>());
      EXPECT_LE(l["p99"].get<std::uint64_t>(), l["p999"].get<std::uint64_t>());
      EXPECT_LE(l["p999"].get<std::uint64_t>(), l["max"].get<std::uint64_t>());
    }
    EXPECT_GT(w["ratio"].get<double>(), 0);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"get", "put", "put-async", "mixed"}));
  // The benchmark's own bucket is gone afterwards.
  EXPECT_EQ(RunCommand({KvctlPath(), "--namespace", kvd.ns(), "buckets"}).out, "");
}

TEST(BenchTest, JsonWithoutBaselineHasNullBaselineAndRatio) {
  KvdInstance kvd;
  auto r = RunCommand({KvctlPath(), "--namespace", kvd.ns(), "bench", "--keys", "100", "--duration",
                       "0.05", "--workloads", "put", "--no-baseline", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  ASSERT_EQ(j["results"].size(), 1u);
  EXPECT_EQ(j["results"][0]["workload"], "put");
  EXPECT_GT(j["results"][0]["kv"]["ops"].get<std::uint64_t>(), 0u);
  EXPECT_TRUE(j["results"][0]["baseline"].is_null());
  EXPECT_TRUE(j["results"][0]["ratio"].is_null());
}

TEST(BenchTest, TableForChosenWorkloadsWithoutBaseline) {
  KvdInstance kvd;
  ASSERT_TRUE(kvd.NewClient()->CreateBucket("mine").ok());
  auto r = RunCommand({KvctlPath(), "--namespace", kvd.ns(), "bench", "--keys", "100", "--duration",
                       "0.05", "--workloads", "get,put", "--no-baseline", "--bucket", "mine"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("kvctl bench"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("p999"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nget "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nput "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("put-async"), std::string::npos) << r.out;
  // A bucket the benchmark did not create is kept.
  EXPECT_EQ(RunCommand({KvctlPath(), "--namespace", kvd.ns(), "buckets"}).out, "mine\n");
}

}  // namespace
}  // namespace kv
