// kv_watch_bench: subscriptions (issue 9). Change-to-subscriber latency (a subscriber in another
// process receives each change; the writer stamps the value with CLOCK_MONOTONIC just before the
// put), and async write throughput with 0 and with 8 subscriber processes reading every change.
// Throughput runs alternate (0 subscribers, 8 subscribers, 0, 8, ...) for --rounds rounds and
// report each side's median, so load from elsewhere on the machine hits both sides alike.
//
//   kv_watch_bench [--samples N] [--writes N] [--rounds N] [--json] [--kvd PATH]
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_support.h"

namespace {

using Clock = std::chrono::steady_clock;

std::int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

struct Latency {
  double p50_us = 0, p99_us = 0;
};

// Forks a subscriber process: it opens a client of `ns`, subscribes to `bucket` from `from` (0:
// the next change), writes one byte to `ready_fd`, and exits with body(subscription) -- or 1 if it
// cannot subscribe or say so.
template <typename Body>
pid_t ForkSubscriber(const std::string& ns, const char* bucket, std::uint64_t from, int ready_fd,
                     Body body) {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  auto sub = kv::bench::OpenBucketOrExit(ns, bucket).Subscribe(from);
  if (!sub.ok() || ::write(ready_fd, "r", 1) != 1) ::_exit(1);
  ::_exit(body(*sub));
}

// A subscriber process: reports the latency of `samples` changes through a pipe (ns each).
pid_t StartLatencySubscriber(const std::string& ns, int samples, int out_fd, int ready_fd) {
  return ForkSubscriber(ns, "watched", 0, ready_fd, [&](kv::Subscription& sub) {
    std::vector<std::int64_t> lat;
    kv::Change change;
    while (static_cast<int>(lat.size()) < samples) {
      if (!sub.Next(&change, std::chrono::seconds(10)).ok()) return 2;
      if (change.kind == kv::Change::Kind::kPut) lat.push_back(NowNs() - std::stoll(change.value));
    }
    ssize_t n = ::write(out_fd, lat.data(), lat.size() * sizeof(std::int64_t));
    return n > 0 ? 0 : 3;
  });
}

// Subscriber processes that read `writes` changes (or are told they missed them), report how
// many they missed on `out_fd` (a std::uint64_t) and exit.
pid_t StartDrainingSubscriber(const std::string& ns, std::uint64_t from, int writes, int ready_fd,
                              int out_fd) {
  return ForkSubscriber(ns, "throughput", from, ready_fd, [&](kv::Subscription& sub) {
    std::uint64_t done = 0, missed = 0;
    kv::Change change;
    while (done < static_cast<std::uint64_t>(writes)) {
      if (!sub.Next(&change, std::chrono::seconds(30)).ok()) return 2;
      done += change.kind == kv::Change::Kind::kMissed ? change.missed : 1;
      missed += change.kind == kv::Change::Kind::kMissed ? change.missed : 0;
    }
    return ::write(out_fd, &missed, sizeof missed) == sizeof missed ? 0 : 3;
  });
}

// CPU time of this process's reaped children, in seconds.
double ChildrenCpuSeconds() {
  rusage ru{};
  ::getrusage(RUSAGE_CHILDREN, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double AsyncWriteRate(kv::Bucket& bucket, int writes) {
  std::string value(64, 'v');
  auto start = Clock::now();
  for (int i = 0; i < writes; ++i) {
    if (!bucket.PutAsync("key" + std::to_string(i % 100000), value).ok()) return 0;
  }
  if (!bucket.Flush().ok()) return 0;
  return writes / std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  int samples = 20000, writes = 1000000, subscribers = 8, rounds = 5;
  bool json = false;
  std::string kvd;
  CLI::App app{"kv_watch_bench: change-feed latency and the cost of subscribers to writers"};
  app.add_option("--samples", samples, "latency samples")->check(CLI::Range(1, 1 << 30));
  app.add_option("--writes", writes, "async writes per run")->check(CLI::Range(1, 1 << 30));
  app.add_option("--rounds", rounds, "runs with and without subscribers")
      ->check(CLI::Range(1, 1000));
  app.add_option("--kvd", kvd, "kvd executable (default: the built one)")->check(CLI::ExistingFile);
  app.add_flag("--json", json, "print one JSON object on the last line");
  CLI11_PARSE(app, argc, argv);
  kv::bench::PrintHeader("kv_watch_bench");
  std::printf("latency samples %d, async writes %d per run, subscribers %d, rounds %d\n", samples,
              writes, subscribers, rounds);
  kv::bench::BenchDaemonOptions daemon_options;
  daemon_options.kvd = kvd;
  kv::bench::BenchDaemon daemon(daemon_options);
  auto client = daemon.Connect();
  if (!client || !client->CreateBucket("watched").ok() ||
      !client->CreateBucket("throughput").ok()) {
    std::fprintf(stderr, "kv_watch_bench: kvd did not start\n");
    return 1;
  }

  // 1. Latency: one change at a time, each received before the next is written.
  int out[2], ready[2];
  if (::pipe(out) != 0 || ::pipe(ready) != 0) return 1;
  pid_t sub = StartLatencySubscriber(daemon.ns(), samples, out[1], ready[1]);
  char c;
  if (::read(ready[0], &c, 1) != 1) return 1;
  auto watched = client->OpenBucket("watched");
  for (int i = 0; i < samples; ++i) {
    if (!watched->Put("k", std::to_string(NowNs())).ok()) return 1;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  std::vector<std::int64_t> lat(static_cast<std::size_t>(samples));
  std::size_t got = 0;
  while (got < lat.size() * sizeof(std::int64_t)) {
    ssize_t n = ::read(out[0], reinterpret_cast<char*>(lat.data()) + got, lat.size() * 8 - got);
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  ::waitpid(sub, nullptr, 0);
  std::sort(lat.begin(), lat.end());
  Latency latency{lat[lat.size() / 2] / 1000.0, lat[lat.size() * 99 / 100] / 1000.0};

  // 2. Write throughput without, then with, subscribers reading every change.
  auto bucket = client->OpenBucket("throughput");
  std::vector<double> rates0, rates8;
  std::uint64_t missed_total = 0;         // changes the draining subscribers were told they missed
  std::vector<double> sub_ns_per_change;  // subscriber CPU per change read
  for (int round = 0; round < rounds; ++round) {
    rates0.push_back(AsyncWriteRate(*bucket, writes));
    std::uint64_t from = bucket->Subscribe()->position();
    std::vector<pid_t> subs;
    for (int s = 0; s < subscribers; ++s)
      subs.push_back(StartDrainingSubscriber(daemon.ns(), from, writes, ready[1], out[1]));
    for (int s = 0; s < subscribers; ++s) {
      if (::read(ready[0], &c, 1) != 1) return 1;
    }
    rates8.push_back(AsyncWriteRate(*bucket, writes));
    double cpu_before = ChildrenCpuSeconds();
    std::uint64_t missed_before = missed_total;
    for (pid_t p : subs) {
      std::uint64_t missed = 0;
      if (::read(out[0], &missed, sizeof missed) == sizeof missed) missed_total += missed;
      ::waitpid(p, nullptr, 0);
    }
    double read = static_cast<double>(writes) * subscribers -
                  static_cast<double>(missed_total - missed_before);
    if (read > 0) sub_ns_per_change.push_back((ChildrenCpuSeconds() - cpu_before) * 1e9 / read);
    std::printf("round %d: %.0f ops/s with 0 subscribers, %.0f with %d\n", round + 1, rates0.back(),
                rates8.back(), subscribers);
  }
  double rate0 = kv::bench::Median(rates0), rate8 = kv::bench::Median(rates8);
  double ratio = rate0 > 0 ? rate8 / rate0 : 0;
  // What the subscribers kept up with: the share of changes they read rather than skipped.
  double delivered = 1.0 - static_cast<double>(missed_total) /
                               (static_cast<double>(writes) * subscribers * rounds);

  std::printf("%-40s %12s %12s\n", "workload", "p50 us", "p99 us");
  std::printf("%-40s %12.1f %12.1f\n", "change -> subscriber (1 sub)", latency.p50_us,
              latency.p99_us);
  std::printf("%-40s %12s %12s\n", "workload (median of rounds)", "ops/s", "ratio");
  std::printf("%-40s %12.0f %12s\n", "async put + flush, 0 subscribers", rate0, "1.00");
  std::printf("%-40s %12.0f %12.2f   (target >= 0.90)\n", "async put + flush, 8 subscribers", rate8,
              ratio);
  std::printf(
      "subscribers read %.2f%% of the changes (%llu skipped as missed: fell behind), "
      "%.0f ns of CPU per change read\n",
      100 * delivered, static_cast<unsigned long long>(missed_total),
      kv::bench::Median(sub_ns_per_change));
  if (json) {
    nlohmann::json j = {{"notify_p50_us", latency.p50_us},
                        {"notify_p99_us", latency.p99_us},
                        {"write_per_s_0_subs", rate0},
                        {"write_per_s_8_subs", rate8},
                        {"write_ratio_8_subs", ratio},
                        {"changes_read_share", delivered},
                        {"subscriber_ns_per_change", kv::bench::Median(sub_ns_per_change)},
                        {"build", kv::bench::BuildType()}};
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}
