// kv_supervisor_bench: what supervision costs (DESIGN.md section 5).
//   - create N buckets through kvd (control round trip + worker spawn + worker ready): p50/p99;
//   - PSS of an idle worker (/proc/<pid>/smaps_rollup), mean over all workers;
//   - kill a worker (SIGKILL) and time until the next write to its bucket succeeds: p50/max;
//   - the machine's floor for starting a process, and whether two process creations overlap.
// Each is measured twice in one run: with workers forked by the spawner (kvd's default) and, as
// the baseline, with every worker exec'd (--exec-workers).
// Starts its own kvd (--ephemeral, in a namespace of its own) and removes everything it made.
//
// Usage: kv_supervisor_bench [--buckets N] [--kills K] [--kvd PATH] [--json]
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_support.h"
#include "kv/client.h"

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

// Pss of a process in KiB (smaps_rollup), 0 if unreadable.
long PssKib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Pss:", 0) == 0) return std::atol(line.c_str() + 4);
  }
  return 0;
}

struct Figures {
  bool ok = false;
  std::vector<double> create_ms;
  std::vector<double> restart_ms;
  std::vector<double> pss_kib;
  long kvd_pss_kib = 0;
};

// Starts a private kvd (with `extra_flag` if not empty), creates `buckets` buckets, measures
// worker PSS, kills `kills` workers, and stops it leaving nothing behind.
Figures RunOnce(const std::string& kvd_path, int buckets, int kills, const char* extra_flag) {
  Figures f;
  kv::bench::BenchDaemonOptions options;
  options.kvd = kvd_path;
  options.args = {"--max-buckets", std::to_string(buckets + 16)};
  if (extra_flag != nullptr) options.args.push_back(extra_flag);
  options.log_level = "warn";
  options.ns_suffix = extra_flag != nullptr ? "x" : "";
  kv::bench::BenchDaemon kvd(options);
  std::shared_ptr<kv::Client> client = kvd.Connect();
  if (!client) {
    std::cerr << (kvd.pid() == 0 ? "kvd exited at start\n" : "kvd did not become ready\n");
  } else {
    f.ok = true;
    for (int b = 0; b < buckets && f.ok; ++b) {
      auto t0 = Clock::now();
      kv::Status s = client->CreateBucket("bucket" + std::to_string(b));
      f.create_ms.push_back(Ms(Clock::now() - t0));
      if (!s.ok()) {
        std::cerr << "create failed: " << s.ToString() << "\n";
        f.ok = false;
      }
    }
    // Idle workers: let them finish their start-up spin and sleep.
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    auto st = client->GetStatus();
    if (st.ok()) {
      for (const kv::BucketInfo& b : st->buckets) {
        if (b.worker_pid > 0) f.pss_kib.push_back(static_cast<double>(PssKib(b.worker_pid)));
      }
    }
    f.kvd_pss_kib = PssKib(kvd.pid());
    for (int k = 0; k < kills && f.ok && st.ok(); ++k) {
      const kv::BucketInfo& info = st->buckets[static_cast<std::size_t>(k)];
      auto bucket = client->OpenBucket(info.name);
      if (!bucket.ok() || !bucket->Put("warm", "up").ok()) {
        f.ok = false;
        break;
      }
      auto t0 = Clock::now();
      ::kill(info.worker_pid, SIGKILL);
      kv::Status s;
      for (int attempt = 0; attempt < 1000; ++attempt) {
        s = bucket->Put("after", "kill");
        if (s.ok()) break;
      }
      f.restart_ms.push_back(Ms(Clock::now() - t0));
      if (!s.ok()) {
        std::cerr << "write after kill failed: " << s.ToString() << "\n";
        f.ok = false;
      }
    }
  }
  client.reset();
  kvd.Stop(std::chrono::seconds(30));  // 1,000 workers take a while to stop
  int status;
  while (::waitpid(-1, &status, WNOHANG) > 0) {  // orphans of killed workers (we are a subreaper)
  }
  return f;
}

// The machine's floor for starting any process: this process forks a child that exits at once,
// and reaps it. A bucket's creation contains one such fork (of the smaller spawner); on VMs where
// page-table work is trapped by the hypervisor it alone can take a millisecond.
std::vector<double> ForkFloorMs(int samples) {
  std::vector<double> ms;
  for (int i = 0; i < samples; ++i) {
    auto t0 = Clock::now();
    pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    if (pid < 0) break;
    ::waitpid(pid, nullptr, 0);
    ms.push_back(Ms(Clock::now() - t0));
  }
  return ms;
}

// Whether process creation overlaps on this machine: `forkers` processes at once each run
// ForkFloorMs(`forks`). Returns the wall time per fork over all of them: half the
// one-forker figure for two forkers on 2 idle cores where forks run in parallel, the same or more
// where the hypervisor serializes page-table work (then no pipelining of spares can hide a fork).
double ForkThroughputMs(int forkers, int forks) {
  auto t0 = Clock::now();
  std::vector<pid_t> pids;
  for (int k = 0; k < forkers; ++k) {
    pid_t pid = ::fork();
    if (pid == 0) {
      ForkFloorMs(forks);
      ::_exit(0);
    }
    if (pid > 0) pids.push_back(pid);
  }
  for (pid_t pid : pids) ::waitpid(pid, nullptr, 0);
  return Ms(Clock::now() - t0) / (static_cast<double>(forks) * static_cast<double>(pids.size()));
}

double Mean(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return v.empty() ? 0 : sum / static_cast<double>(v.size());
}

void PrintRow(const char* name, const std::vector<double>& ms, const char* target) {
  std::printf("%-40s %7.3f ms %7.3f ms %7.3f ms   %s\n", name, Percentile(ms, 0.5),
              Percentile(ms, 0.99), Percentile(ms, 1.0), target);
}

}  // namespace

int main(int argc, char** argv) {
  int buckets = 1000;
  int kills = 20;
  bool json = false;
  std::string kvd_path = kv::bench::DefaultKvdPath();
  CLI::App app{"kv_supervisor_bench: bucket creation, worker restart and kvd restart times"};
  app.add_option("--buckets", buckets, "buckets to create")->check(CLI::Range(1, 1 << 20));
  app.add_option("--kills", kills, "worker kills to time")->check(CLI::Range(1, 1 << 20));
  app.add_option("--kvd", kvd_path, "kvd executable")->check(CLI::ExistingFile);
  app.add_flag("--json", json, "print one JSON object on the last line");
  CLI11_PARSE(app, argc, argv);
  kills = std::min(kills, buckets);

  std::printf("kv_supervisor_bench: %d buckets, %d worker kills, kvd %s\n", buckets, kills,
              kvd_path.c_str());
#ifndef NDEBUG
  std::printf("WARNING: debug build (assertions on): figures are not representative\n");
#endif
#if defined(__SANITIZE_ADDRESS__)
  std::printf("WARNING: sanitizer build: figures are not representative\n");
#endif
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  // Baseline: the same kvd starting every worker by fork+exec (--exec-workers).
  Figures exec = RunOnce(kvd_path, buckets, kills, "--exec-workers");
  Figures f = RunOnce(kvd_path, buckets, kills, nullptr);
  if (!exec.ok || !f.ok) return 1;
  std::vector<double> fork_ms = ForkFloorMs(200);
  double fork_serial_ms = ForkThroughputMs(1, 400);
  double fork_parallel_ms = ForkThroughputMs(2, 400);

  std::printf("%-40s %10s %10s %10s   %s\n", "workload", "p50", "p99", "max", "target (must)");
  PrintRow("create bucket (exec'd worker: baseline)", exec.create_ms, "");
  PrintRow("create bucket", f.create_ms, "<= 1 ms p50 (<= 2 ms)");
  PrintRow("fork + exit + reap, empty child (floor)", fork_ms, "");
  PrintRow("worker SIGKILL -> write (exec'd: baseline)", exec.restart_ms, "");
  PrintRow("worker SIGKILL -> write served", f.restart_ms, "<= 10 ms (<= 50 ms)");
  std::printf("%-40s %7.0f KiB (mean of %zu; p50 %.0f, max %.0f)   <= 512 KiB (<= 1 MiB)\n",
              "idle worker PSS", Mean(f.pss_kib), f.pss_kib.size(), Percentile(f.pss_kib, 0.5),
              Percentile(f.pss_kib, 1.0));
  std::printf("%-40s %7.0f KiB\n", "idle worker PSS (exec'd: baseline)", Mean(exec.pss_kib));
  std::printf("%-40s %7ld KiB\n", "kvd PSS", f.kvd_pss_kib);
  double create_ratio = Percentile(f.create_ms, 0.5) / Percentile(exec.create_ms, 0.5);
  double fork_ratio = Percentile(f.create_ms, 0.5) / Percentile(fork_ms, 0.5);
  std::printf("create p50: %.2fx the exec'd baseline, %.1fx the fork floor\n", create_ratio,
              fork_ratio);
  std::printf("forks, one process forking: %.3f ms each; two at once: %.3f ms each (%.2fx: %s)\n",
              fork_serial_ms, fork_parallel_ms, fork_parallel_ms / fork_serial_ms,
              fork_parallel_ms < 0.75 * fork_serial_ms ? "they overlap" : "they do not overlap");
  if (json) {
    nlohmann::json out = {{"benchmark", "supervisor"},
                          {"buckets", buckets},
                          {"kills", kills},
                          {"create_ms_p50", Percentile(f.create_ms, 0.5)},
                          {"create_ms_p99", Percentile(f.create_ms, 0.99)},
                          {"create_ms_max", Percentile(f.create_ms, 1.0)},
                          {"create_ms_p50_exec", Percentile(exec.create_ms, 0.5)},
                          {"create_ratio_vs_exec", create_ratio},
                          {"fork_ms_p50", Percentile(fork_ms, 0.5)},
                          {"create_ratio_vs_fork", fork_ratio},
                          {"fork_serial_ms", fork_serial_ms},
                          {"fork_parallel_ms", fork_parallel_ms},
                          {"worker_pss_kib", Mean(f.pss_kib)},
                          {"worker_pss_kib_p50", Percentile(f.pss_kib, 0.5)},
                          {"worker_pss_kib_max", Percentile(f.pss_kib, 1.0)},
                          {"worker_pss_kib_exec", Mean(exec.pss_kib)},
                          {"kvd_pss_kib", f.kvd_pss_kib},
                          {"restart_ms_p50", Percentile(f.restart_ms, 0.5)},
                          {"restart_ms_p99", Percentile(f.restart_ms, 0.99)},
                          {"restart_ms_max", Percentile(f.restart_ms, 1.0)},
                          {"restart_ms_p50_exec", Percentile(exec.restart_ms, 0.5)}};
    std::printf("%s\n", out.dump().c_str());
  }
  return 0;
}
