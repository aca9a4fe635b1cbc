// kv_read_bench: the direct-read path (libkvclient Bucket::Get on a real kvd + worker) against an
// in-process std::unordered_map<std::string, std::string> find+copy over the same keys, reads
// under a concurrent writer process, and shared memory per key (DESIGN.md §5, issue 3).
//
// It starts its own kvd in a private namespace (kvbench<pid>, --ephemeral), loads 16-byte keys
// with 64-byte values, and reads them in one uniform random order shared by both contenders.
// Every timed loop copies the value out (into a reused std::string), as a caller would.
//
//   kv_read_bench [--keys N] [--reads N] [--json] [--kvd PATH]
//
// Without --keys it measures 100,000 and 1,000,000 keys; the JSON object (last line, --json)
// describes the 100,000-key case (or N) and adds the memory figure at the largest size.
// At the first size it also times Bucket::Snapshot() (taking a snapshot: snapshot_create_ns)
// and Snapshot::Get against Bucket::Get over the same keys (snapshot_get_ratio), issue 20.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bench/bench_support.h"
#include "kv/client.h"
#include "shm/names.h"

#if __has_include("kv/kv.h")
#include "kv/kv.h"
#endif

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kKeySize = 16;
constexpr std::size_t kValueSize = 64;
constexpr int kRepetitions = 5;
constexpr std::size_t kBatch = 1000;  // reads per timed batch (for p50/p99 per batch)

volatile std::size_t g_sink;

std::string Version() {
#ifdef KV_VERSION_MAJOR
  return std::to_string(KV_VERSION_MAJOR) + "." + std::to_string(KV_VERSION_MINOR) + "." +
         std::to_string(KV_VERSION_PATCH);
#else
  return "0.1.0";
#endif
}

const char* BuildType() {
#if defined(__SANITIZE_ADDRESS__)
  return "sanitizer";
#elif !defined(__OPTIMIZE__)
  return "debug";
#elif defined(NDEBUG)
  return "release";
#else
  return "optimized-with-asserts";
#endif
}

struct Options {
  std::vector<std::size_t> sizes = {100000, 1000000};
  std::size_t reads = 2000000;
  bool json = false;
  std::string kvd;
};

std::string RandomBytes(std::mt19937_64& rng, std::size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

struct Timing {
  double ns_per_op = 0;  // median over repetitions
  double p50 = 0, p99 = 0;
};

struct Samples {
  std::vector<double> runs, batches;
  Timing Summary() {
    std::sort(runs.begin(), runs.end());
    std::sort(batches.begin(), batches.end());
    Timing t;
    t.ns_per_op = runs[runs.size() / 2];
    t.p50 = batches[batches.size() / 2];
    t.p99 = batches[batches.size() * 99 / 100];
    return t;
  }
};

// One run of `read(key)` over the keys keys[order[0..]]: appends the run's ns/op and each
// batch's ns/op to *samples. The keys of each batch are first copied into a small reused array
// (untimed), so that neither contender pays for fetching the caller's key and neither benefits
// from its key having been allocated next to its own data.
template <typename Read>
void MeasureRun(const std::vector<std::string>& keys, const std::vector<std::uint32_t>& order,
                Read read, Samples* samples) {
  static std::vector<std::string> batch(kBatch, std::string(kKeySize, '\0'));
  double total = 0;
  for (std::size_t at = 0; at + kBatch <= order.size(); at += kBatch) {
    for (std::size_t i = 0; i < kBatch; ++i) batch[i].assign(keys[order[at + i]]);
    auto start = Clock::now();
    for (const std::string& key : batch) read(key);
    double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
    samples->batches.push_back(ns / kBatch);
    total += ns;
  }
  samples->runs.push_back(total / static_cast<double>(order.size() / kBatch * kBatch));
}

// Reads per second over `seconds`, in the order given (wrapping).
double ReadRate(kv::Bucket& bucket, const std::vector<std::string>& keys,
                const std::vector<std::uint32_t>& order, double seconds) {
  std::string value;
  std::size_t done = 0;
  auto start = Clock::now();
  auto end = start + std::chrono::duration<double>(seconds);
  for (;;) {
    for (std::size_t i = 0; i < 4096; ++i) {
      (void)bucket.Get(keys[order[(done + i) % order.size()]], &value);
      g_sink = g_sink + value.size();
    }
    done += 4096;
    if (Clock::now() >= end) break;
  }
  return static_cast<double>(done) / std::chrono::duration<double>(Clock::now() - start).count();
}

// Bytes of /dev/shm the object occupies (allocated blocks, not its virtual size).
std::uint64_t AllocatedBytes(const std::string& object) {
  struct stat st;
  if (::stat(("/dev/shm/" + object).c_str(), &st) != 0) return 0;
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

struct SizeResult {
  std::size_t keys = 0;
  Timing get, baseline;
  Timing get_ttl;  // the same keys, each with an expiry (first size only; 0 otherwise)
  double bytes_per_key = 0;
  std::uint64_t generation = 0;
};

// `ttl` non-zero: every key gets that expiry (the TTL workload).
bool Load(kv::Bucket& bucket, const std::vector<std::string>& keys,
          const std::vector<std::string>& values,
          std::chrono::milliseconds ttl = std::chrono::milliseconds(0)) {
  for (std::size_t i = 0; i < keys.size(); ++i) {
    kv::Status s = ttl.count() != 0 ? bucket.PutAsync(keys[i], values[i], ttl)
                                    : bucket.PutAsync(keys[i], values[i]);
    if (!s.ok()) {
      std::fprintf(stderr, "kv_read_bench: put: %s\n", s.ToString().c_str());
      return false;
    }
  }
  kv::Status s = bucket.Flush();
  if (!s.ok()) std::fprintf(stderr, "kv_read_bench: flush: %s\n", s.ToString().c_str());
  return s.ok();
}

// A child process that rewrites keys [0, keys.size()/10) with sync puts until killed.
pid_t StartWriter(const std::string& ns, const std::string& bucket_name,
                  const std::vector<std::string>& keys) {
  int ready[2];
  if (::pipe(ready) != 0) return -1;
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid != 0) {
    ::close(ready[1]);
    char c;
    if (::read(ready[0], &c, 1) != 1) pid = -1;
    ::close(ready[0]);
    return pid;
  }
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(1);
  ::close(ready[0]);
  kv::Bucket bucket = kv::bench::OpenBucketOrExit(ns, bucket_name);
  std::mt19937_64 rng(99);
  std::size_t hot = std::max<std::size_t>(1, keys.size() / 10);
  for (std::uint64_t n = 0;; ++n) {
    if (!bucket.Put(keys[rng() % hot], RandomBytes(rng, kValueSize)).ok()) ::_exit(2);
    if (n == 100 && ::write(ready[1], "r", 1) != 1) ::_exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  options.kvd = kv::bench::DefaultKvdPath();
  std::size_t keys = 0;
  CLI::App app{"kv_read_bench: direct reads vs an in-process map, and reads under a writer"};
  app.add_option("--keys", keys, "one table size instead of 100k and 1M keys")
      ->check(CLI::PositiveNumber);
  app.add_option("--reads", options.reads, "reads per run")
      ->check(CLI::Range(kBatch, std::size_t{1} << 40));
  app.add_option("--kvd", options.kvd, "the kvd executable");
  app.add_flag("--json", options.json, "print one JSON object on the last line");
  CLI11_PARSE(app, argc, argv);
  if (keys != 0) options.sizes = {keys};

  std::printf("kv_read_bench %s  build %s  key %zu B  value %zu B  reads/run %zu  runs %d\n",
              Version().c_str(), BuildType(), kKeySize, kValueSize, options.reads, kRepetitions);
  if (std::string(BuildType()) != "release") {
    std::printf("WARNING: %s build: figures are not representative\n", BuildType());
  }
  kv::bench::BenchDaemonOptions daemon_options;
  daemon_options.kvd = options.kvd;
  daemon_options.args = {"--max-bucket-bytes", std::to_string(std::uint64_t{8} << 30)};
  kv::bench::BenchDaemon daemon(daemon_options);
  kv::ClientOptions client_options;
  client_options.timeout = std::chrono::seconds(120);  // a 1M-key generation change under load
  std::shared_ptr<kv::Client> client = daemon.Connect(client_options);
  const std::string& ns = daemon.ns();
  if (!client) {
    std::fprintf(stderr, "kv_read_bench: kvd (%s) did not start\n", options.kvd.c_str());
    return 1;
  }

  std::mt19937_64 rng(42);
  std::vector<SizeResult> results;
  double reads_alone = 0, reads_under_write = 0;
  double snapshot_create_ns = 0, snapshot_get_ns = 0, snapshot_get_ratio = 0;
  std::printf("%-10s %-22s %10s %10s %10s %8s\n", "keys", "workload", "ns/op", "p50", "p99",
              "ratio");
  for (std::size_t size : options.sizes) {
    std::vector<std::string> keys(size), values(size);
    std::unordered_map<std::string, std::string> baseline;
    baseline.reserve(size);
    for (std::size_t i = 0; i < size; ++i) {
      do {
        keys[i] = RandomBytes(rng, kKeySize);
      } while (!baseline.emplace(keys[i], std::string()).second);
      values[i] = RandomBytes(rng, kValueSize);
      baseline[keys[i]] = values[i];
    }
    std::string name = "r" + std::to_string(size);
    if (kv::Status s = client->CreateBucket(name); !s.ok()) {
      std::fprintf(stderr, "kv_read_bench: create: %s\n", s.ToString().c_str());
      return 1;
    }
    auto opened = client->OpenBucket(name);
    if (!opened.ok()) return 1;
    kv::Bucket bucket = opened.value();
    if (!Load(bucket, keys, values)) return 1;
    // The first size also measures gets of keys that all have an expiry (an hour away: none
    // expires during the run), in a second bucket holding the same keys and values.
    std::optional<kv::Bucket> ttl_bucket;
    if (results.empty()) {
      std::string ttl_name = "t" + std::to_string(size);
      if (!client->CreateBucket(ttl_name).ok()) return 1;
      auto t = client->OpenBucket(ttl_name);
      if (!t.ok()) return 1;
      ttl_bucket.emplace(t.value());
      if (!Load(*ttl_bucket, keys, values, std::chrono::hours(1))) return 1;
    }

    std::vector<std::uint32_t> order(options.reads);
    for (auto& i : order) i = static_cast<std::uint32_t>(rng() % size);
    std::string out;
    std::size_t misses = 0;
    SizeResult r;
    r.keys = size;
    // Warm both (and let the bucket handle follow the generations the load created).
    for (std::size_t i = 0; i < std::min<std::size_t>(size, 100000); ++i) {
      misses += !bucket.Get(keys[order[i]], &out).ok();
      if (ttl_bucket) misses += !ttl_bucket->Get(keys[order[i]], &out).ok();
      out = baseline.find(keys[order[i]])->second;
    }
    // Alternate the contenders run by run, so that load from other processes hits both alike.
    Samples baseline_samples, get_samples, ttl_samples;
    for (int run = 0; run < kRepetitions; ++run) {
      MeasureRun(
          keys, order,
          [&](const std::string& key) {
            auto it = baseline.find(key);
            if (it != baseline.end()) out = it->second;
            g_sink = g_sink + out.size();
          },
          &baseline_samples);
      MeasureRun(
          keys, order,
          [&](const std::string& key) {
            misses += !bucket.Get(key, &out).ok();
            g_sink = g_sink + out.size();
          },
          &get_samples);
      if (ttl_bucket) {
        MeasureRun(
            keys, order,
            [&](const std::string& key) {
              misses += !ttl_bucket->Get(key, &out).ok();
              g_sink = g_sink + out.size();
            },
            &ttl_samples);
      }
    }
    r.baseline = baseline_samples.Summary();
    r.get = get_samples.Summary();
    if (ttl_bucket) r.get_ttl = ttl_samples.Summary();
    if (misses != 0 || out.size() != kValueSize) {
      std::fprintf(stderr, "kv_read_bench: %zu reads failed\n", misses);
      return 1;
    }
    auto stats = bucket.Stats();
    r.generation = stats.ok() ? stats.value().generation : 0;
    std::uint64_t bytes =
        AllocatedBytes(kv::shm::GenerationObjectName(ns, bucket.id(), r.generation)) +
        AllocatedBytes(kv::shm::AnchorObjectName(ns, bucket.id()));
    r.bytes_per_key = static_cast<double>(bytes) / static_cast<double>(size);
    std::printf("%-10zu %-22s %10.1f %10.1f %10.1f %8s\n", size, "unordered_map find+copy",
                r.baseline.ns_per_op, r.baseline.p50, r.baseline.p99, "1.00");
    std::printf("%-10zu %-22s %10.1f %10.1f %10.1f %8.2f\n", size, "kv Bucket::Get",
                r.get.ns_per_op, r.get.p50, r.get.p99, r.get.ns_per_op / r.baseline.ns_per_op);
    if (ttl_bucket) {
      std::printf("%-10zu %-22s %10.1f %10.1f %10.1f %8.2f  (%.2fx Get without TTL)\n", size,
                  "kv Get, TTL on each key", r.get_ttl.ns_per_op, r.get_ttl.p50, r.get_ttl.p99,
                  r.get_ttl.ns_per_op / r.baseline.ns_per_op,
                  r.get_ttl.ns_per_op / r.get.ns_per_op);
    }
    std::printf("%-10zu %-22s %10.1f B/key (%.2fx raw %zu B; generation %llu)\n", size,
                "shared memory", r.bytes_per_key, r.bytes_per_key / (kKeySize + kValueSize),
                kKeySize + kValueSize, static_cast<unsigned long long>(r.generation));

    if (results.empty()) {
      // Reads under a writer rewriting 10% of the keys (separate process, sync puts): rounds
      // alternate without and with it, and each side's median counts, so that load from other
      // processes hits both alike.
      std::vector<double> alone, under_write;
      for (int round = 0; round < kRepetitions; ++round) {
        alone.push_back(ReadRate(bucket, keys, order, 0.5));
        pid_t writer = StartWriter(ns, name, keys);
        if (writer <= 0) break;
        under_write.push_back(ReadRate(bucket, keys, order, 0.5));
        ::kill(writer, SIGKILL);
        ::waitpid(writer, nullptr, 0);
      }
      // Snapshots: creation (no message, no copy: a few loads), then reads through one.
      {
        constexpr int kSnapshots = 100000;
        std::vector<double> create;
        for (int run = 0; run < kRepetitions; ++run) {
          auto start = Clock::now();
          for (int i = 0; i < kSnapshots; ++i) {
            kv::Result<kv::Snapshot> snap = bucket.Snapshot();
            if (!snap.ok()) return 1;
            g_sink = g_sink + snap->sequence();
          }
          create.push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count() /
                           kSnapshots);
        }
        snapshot_create_ns = kv::bench::Median(create);
        kv::Result<kv::Snapshot> snap = bucket.Snapshot();
        if (!snap.ok()) return 1;
        Samples snap_samples;
        for (int run = 0; run < kRepetitions; ++run) {
          MeasureRun(
              keys, order,
              [&](const std::string& key) {
                misses += !snap->Get(key, &out).ok();
                g_sink = g_sink + out.size();
              },
              &snap_samples);
        }
        snapshot_get_ns = snap_samples.Summary().ns_per_op;
        snapshot_get_ratio = snapshot_get_ns / r.get.ns_per_op;
        std::printf("%-10zu %-22s %10.1f ns (median of %d x %d)\n", size, "Bucket::Snapshot()",
                    snapshot_create_ns, kRepetitions, kSnapshots);
        std::printf("%-10zu %-22s %10.1f %10s %10s %8.2f (vs Bucket::Get)\n", size,
                    "kv Snapshot::Get", snapshot_get_ns, "", "", snapshot_get_ratio);
      }
      reads_alone = kv::bench::Median(alone);
      reads_under_write = kv::bench::Median(under_write);
      std::printf("%-10zu %-22s %10.0f reads/s alone, %.0f with a writer: %.2f (medians of %d)\n",
                  size, "reads under write", reads_alone, reads_under_write,
                  reads_alone > 0 ? reads_under_write / reads_alone : 0.0, kRepetitions);
    }
    results.push_back(r);
  }

  if (options.json) {
    const SizeResult& r = results.front();
    nlohmann::json j;
    j["version"] = Version();
    j["build_type"] = BuildType();
    j["keys"] = r.keys;
    j["get_ns"] = r.get.ns_per_op;
    j["get_p50_ns"] = r.get.p50;
    j["get_p99_ns"] = r.get.p99;
    j["baseline_ns"] = r.baseline.ns_per_op;
    j["ratio"] = r.get.ns_per_op / r.baseline.ns_per_op;
    // Get of keys that each have an expiry, against Get of the same keys without (target 1.1).
    j["get_ttl_ns"] = r.get_ttl.ns_per_op;
    j["get_ttl_ratio"] = r.get_ttl.ns_per_op / r.get.ns_per_op;
    j["reads_per_s"] = reads_alone;
    j["reads_per_s_under_write"] = reads_under_write;
    j["read_under_write_ratio"] = reads_alone > 0 ? reads_under_write / reads_alone : 0.0;
    j["bytes_per_key"] = r.bytes_per_key;
    j["snapshot_create_ns"] = snapshot_create_ns;
    j["snapshot_get_ns"] = snapshot_get_ns;
    j["snapshot_get_ratio"] = snapshot_get_ratio;
    j["bytes_per_key_largest"] = results.back().bytes_per_key;
    j["largest_keys"] = results.back().keys;
    nlohmann::json sizes = nlohmann::json::array();
    for (const SizeResult& s : results) {
      sizes.push_back({{"keys", s.keys},
                       {"get_ns", s.get.ns_per_op},
                       {"baseline_ns", s.baseline.ns_per_op},
                       {"ratio", s.get.ns_per_op / s.baseline.ns_per_op},
                       {"bytes_per_key", s.bytes_per_key}});
    }
    j["sizes"] = sizes;
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}
