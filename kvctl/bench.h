// `kvctl bench`: a redis-benchmark for kv. Each workload runs in --clients forked processes
// for --duration seconds against a bucket populated with --keys keys, then the same workload
// runs against a private std::unordered_map in each client process (the in-process baseline),
// and the report gives both and their ratio. docs/kvctl.md documents the --json output.
//
// Workloads: get (direct reads), put (sync), put-async (PutAsync; the final Flush is inside
// the measured time), mixed (90% get, 10% sync put). Keys are chosen uniformly at random.
// Latency is sampled on one operation in kSampleEvery (timing every ~100 ns read would
// measure the clock); ops/s counts every operation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kvctl/bench_histogram.h"

namespace kv::ctl {

inline constexpr int kSampleEvery = 8;

struct BenchOptions {
  std::vector<std::string> workloads = {"get", "put", "put-async", "mixed"};
  std::uint64_t keys = 100000;
  std::size_t key_size = 16;
  std::size_t value_size = 64;
  int clients = 1;
  double duration_s = 2.0;
  std::string bucket;  // default: "bench-<pid>", created and dropped
  bool keep = false;   // keep the bucket afterwards
  bool baseline = true;
  bool progress = false;  // force the progress line (default: only when stderr is a terminal)
};

struct BenchMeasure {
  std::uint64_t ops = 0;
  std::uint64_t errors = 0;
  double ops_per_sec = 0;  // sum over clients of ops / that client's elapsed time
  LatencyHistogram latency;
};

struct BenchResult {
  std::string workload;
  BenchMeasure kv;
  bool has_baseline = false;
  BenchMeasure baseline;
};

// Report: the aligned table (with header and WARNING lines), or the JSON document.
void PrintBenchTable(const BenchOptions& o, const std::string& ns,
                     const std::vector<BenchResult>& results);
void PrintBenchJson(const BenchOptions& o, const std::string& ns,
                    const std::vector<BenchResult>& results);

}  // namespace kv::ctl
