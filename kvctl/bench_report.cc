// The bench report: a header, WARNING lines for builds that are not optimised, and one aligned
// line per workload; or one JSON document (schema in docs/kvctl.md).
#include <cstdio>
#include <iostream>

#include "kv/version.h"
#include "kvctl/bench.h"
#include "kvctl/output.h"

#ifndef KVCTL_BUILD_TYPE
#define KVCTL_BUILD_TYPE "unknown"
#endif

namespace kv::ctl {
namespace {

bool Sanitized() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  return true;
#else
  return false;
#endif
#else
  return false;
#endif
}

bool Optimised() {
#ifdef __OPTIMIZE__
  return true;
#else
  return false;
#endif
}

double NsPerOp(const BenchMeasure& m, int clients) {
  return m.ops_per_sec > 0 ? 1e9 * clients / m.ops_per_sec : 0;
}

nlohmann::json MeasureJson(const BenchMeasure& m, int clients) {
  return {{"ops", m.ops},
          {"errors", m.errors},
          {"ops_per_sec", m.ops_per_sec},
          {"ns_per_op", NsPerOp(m, clients)},
          {"latency_ns",
           {{"samples", m.latency.count()},
            {"p50", m.latency.Quantile(0.50)},
            {"p99", m.latency.Quantile(0.99)},
            {"p999", m.latency.Quantile(0.999)},
            {"max", m.latency.max()}}}};
}

std::string Ns(std::uint64_t ns) {
  char buf[32];
  if (ns >= 10'000'000) {
    std::snprintf(buf, sizeof buf, "%.1f ms", ns / 1e6);
  } else if (ns >= 10'000) {
    std::snprintf(buf, sizeof buf, "%.1f us", ns / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%llu ns", static_cast<unsigned long long>(ns));
  }
  return buf;
}

}  // namespace

void PrintBenchTable(const BenchOptions& o, const std::string& ns,
                     const std::vector<BenchResult>& results) {
  std::printf("kvctl bench  kv %s  build %s  namespace %s\n", KV_VERSION_STRING, KVCTL_BUILD_TYPE,
              ns.c_str());
  std::printf("keys %llu  key %zu B  value %zu B  clients %d  duration %.1f s per workload\n",
              static_cast<unsigned long long>(o.keys), o.key_size, o.value_size, o.clients,
              o.duration_s);
  if (!Optimised()) std::printf("WARNING: kvctl was built without optimisation\n");
  if (Sanitized()) std::printf("WARNING: kvctl was built with sanitizers; numbers are not real\n");
  std::printf("%-10s %13s %9s %10s %10s %10s %8s | %13s %9s %8s\n", "workload", "ops/s", "ns/op",
              "p50", "p99", "p999", "errors", "map ops/s", "map ns/op", "kv/map");
  for (const BenchResult& r : results) {
    const BenchMeasure& m = r.kv;
    std::printf("%-10s %13.0f %9.1f %10s %10s %10s %8llu |", r.workload.c_str(), m.ops_per_sec,
                NsPerOp(m, o.clients), Ns(m.latency.Quantile(0.5)).c_str(),
                Ns(m.latency.Quantile(0.99)).c_str(), Ns(m.latency.Quantile(0.999)).c_str(),
                static_cast<unsigned long long>(m.errors));
    if (r.has_baseline && r.baseline.ops_per_sec > 0) {
      std::printf(" %13.0f %9.1f %7.2fx\n", r.baseline.ops_per_sec, NsPerOp(r.baseline, o.clients),
                  m.ops_per_sec / r.baseline.ops_per_sec);
    } else {
      std::printf(" %13s %9s %8s\n", "-", "-", "-");
    }
  }
  std::printf(
      "kv/map: kv ops/s divided by the in-process std::unordered_map's (higher is "
      "better; 1.00x = as fast)\n");
  std::fflush(stdout);
}

void PrintBenchJson(const BenchOptions& o, const std::string& ns,
                    const std::vector<BenchResult>& results) {
  nlohmann::json list = nlohmann::json::array();
  for (const BenchResult& r : results) {
    nlohmann::json j = {{"workload", r.workload}, {"kv", MeasureJson(r.kv, o.clients)}};
    if (r.has_baseline) {
      j["baseline"] = MeasureJson(r.baseline, o.clients);
      j["ratio"] = r.baseline.ops_per_sec > 0 ? r.kv.ops_per_sec / r.baseline.ops_per_sec : 0.0;
    } else {
      j["baseline"] = nullptr;
      j["ratio"] = nullptr;
    }
    list.push_back(j);
  }
  PrintJson({{"tool", "kvctl bench"},
             {"version", KV_VERSION_STRING},
             {"build_type", KVCTL_BUILD_TYPE},
             {"optimised", Optimised()},
             {"sanitizers", Sanitized()},
             {"namespace", ns},
             {"keys", o.keys},
             {"key_size", o.key_size},
             {"value_size", o.value_size},
             {"clients", o.clients},
             {"duration_s", o.duration_s},
             {"latency_sample_every", kSampleEvery},
             {"results", list}});
}

}  // namespace kv::ctl
