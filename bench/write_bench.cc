// kv_write_bench: the write path, end to end, in real processes against a real kvd.
//
// Workloads (16-byte keys, 64-byte values, 100k distinct keys, one bucket):
//   sync put x1     one client process: Put round trips (latency p50/p99 per call)
//   sync put x4     four client processes on the same bucket: total round trips/s
//   async put+flush one client process: PutAsync N times, then Flush; ops/s including the flush
//   mq ping-pong    baseline: two processes bouncing a 100-byte message through a pair of Boost
//                   message_queues (the transport DESIGN.md §7 rejects)
//   idle worker     CPU the bucket's worker uses while nobody writes (must be ~0)
// For the async workload it also prints the CPU time the client and the worker spent per op: on a
// shared machine (other processes competing for the CPUs) these say more than the wall-clock
// rate, which then mostly measures the scheduler.
// Ratios are to the ping-pong measured in the same run and to DESIGN.md §5's Redis reference
// (SET, one client, no pipelining, ~18k/s on this machine kind).
//
// Starts its own kvd (namespace kvbench<pid>, --ephemeral) and removes everything on exit.
// Usage: kv_write_bench [--seconds S] [--kvd PATH] [--only NAME[,NAME...]] [--json]
//   --only runs only the named workloads (pingpong, noop, sync1, sync4, async, idle; for
//   profiling one of them); the others print as zero.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_support.h"
#include "kv/client.h"
#include "shm/registry.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace bip = boost::interprocess;

constexpr double kRedisSetPerS = 18000;  // DESIGN.md §5 reference, same machine kind
constexpr int kKeys = 100000;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string Key(int i) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "key:%012d", i);
  return std::string(buf, 16);
}

// --- processes ---

// Runs body in a child that writes one line of results to a pipe; returns the line.
struct Child {
  pid_t pid;
  int out;
};

Child Spawn(const std::function<std::string()>& body) {
  int p[2];
  if (::pipe(p) != 0) std::exit(1);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::close(p[0]);
    std::string line = body() + "\n";
    if (::write(p[1], line.data(), line.size()) < 0) ::_exit(1);
    ::_exit(0);
  }
  ::close(p[1]);
  return {pid, p[0]};
}

std::string Join(Child c) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(c.out, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  ::close(c.out);
  ::waitpid(c.pid, nullptr, 0);
  return out;
}

// --- workloads (each runs in a child; returns "ops seconds p50_us p99_us") ---

// Calls op(i) for i = 0, 1, ... until `seconds` have passed (the clock is read every 256 calls),
// timing each call; returns "ops seconds p50_us p99_us". `reserve`: latencies to make room for.
template <typename Op>
std::string TimedCalls(double seconds, std::size_t reserve, Op op) {
  std::vector<float> lat;
  lat.reserve(reserve);
  auto start = Clock::now();
  auto end = start + std::chrono::duration<double>(seconds);
  long ops = 0;
  for (;; ++ops) {
    if ((ops & 255) == 0 && Clock::now() >= end) break;
    auto t0 = Clock::now();
    op(ops);
    lat.push_back(
        static_cast<float>(std::chrono::duration<double, std::micro>(Clock::now() - t0).count()));
  }
  double elapsed = Seconds(Clock::now() - start);
  std::sort(lat.begin(), lat.end());
  std::ostringstream out;
  out << ops << " " << elapsed << " " << (lat.empty() ? 0 : lat[lat.size() / 2]) << " "
      << (lat.empty() ? 0 : lat[lat.size() * 99 / 100]);
  return out.str();
}

// The transport alone: Flush() is a sync round trip that applies nothing.
std::string SyncNoops(const std::string& ns, double seconds) {
  kv::Bucket b = kv::bench::OpenBucketOrExit(ns, "bench");
  return TimedCalls(seconds, 1 << 22, [&](long) {
    if (!b.Flush().ok()) ::_exit(2);
  });
}

std::string SyncPuts(const std::string& ns, double seconds, int offset) {
  kv::Bucket b = kv::bench::OpenBucketOrExit(ns, "bench");
  std::string value(64, 'v');
  return TimedCalls(seconds, 1 << 22, [&](long ops) {
    if (!b.Put(Key(static_cast<int>((ops + offset) % kKeys)), value).ok()) ::_exit(2);
  });
}

double ProcessCpuSeconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

std::string AsyncPuts(const std::string& ns, long count) {
  kv::Bucket b = kv::bench::OpenBucketOrExit(ns, "bench");
  std::string value(64, 'a');
  std::vector<std::string> keys;
  for (int i = 0; i < kKeys; ++i) keys.push_back(Key(i));
  if (!b.Flush().ok()) ::_exit(2);  // connect first: the channel set-up is not the workload
  double cpu_start = ProcessCpuSeconds();
  auto start = Clock::now();
  for (long i = 0; i < count; ++i) {
    if (!b.PutAsync(keys[static_cast<std::size_t>(i % kKeys)], value).ok()) ::_exit(3);
  }
  if (!b.Flush().ok()) ::_exit(4);
  double elapsed = Seconds(Clock::now() - start);
  std::ostringstream out;
  out << count << " " << elapsed << " 0 0 " << ProcessCpuSeconds() - cpu_start;
  return out.str();
}

// Boost message_queue ping-pong between two processes, 100-byte messages.
std::string PingPong(double seconds) {
  std::string base = "kvbench" + std::to_string(::getpid());
  std::string ping = base + ".ping", pong = base + ".pong";
  bip::message_queue::remove(ping.c_str());
  bip::message_queue::remove(pong.c_str());
  bip::message_queue q1(bip::create_only, ping.c_str(), 16, 100);
  bip::message_queue q2(bip::create_only, pong.c_str(), 16, 100);
  pid_t echo = ::fork();
  if (echo == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    bip::message_queue in(bip::open_only, ping.c_str());
    bip::message_queue out(bip::open_only, pong.c_str());
    char buf[100];
    for (;;) {
      std::size_t n;
      unsigned prio;
      in.receive(buf, sizeof buf, n, prio);
      if (buf[0] == 'q') ::_exit(0);
      out.send(buf, n, 0);
    }
  }
  char buf[100] = {'p'};
  std::string line = TimedCalls(seconds, 1 << 21, [&](long) {
    std::size_t n;
    unsigned prio;
    q1.send(buf, sizeof buf, 0);
    q2.receive(buf, sizeof buf, n, prio);
  });
  buf[0] = 'q';
  q1.send(buf, sizeof buf, 0);
  ::waitpid(echo, nullptr, 0);
  bip::message_queue::remove(ping.c_str());
  bip::message_queue::remove(pong.c_str());
  return line;
}

struct Result {
  double ops = 0, seconds = 0, p50 = 0, p99 = 0;
  double cpu_seconds = 0;  // the client's CPU time, where measured
  double per_s() const { return seconds > 0 ? ops / seconds : 0; }
};

Result Parse(const std::string& line) {
  Result r;
  std::istringstream in(line);
  in >> r.ops >> r.seconds >> r.p50 >> r.p99;
  if (!(in >> r.cpu_seconds)) r.cpu_seconds = 0;
  return r;
}

// Nanoseconds a process has run (/proc/PID/schedstat), or -1.
double RunNanos(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/schedstat");
  double ns = -1;
  if (!(in >> ns)) return -1;
  return ns;
}

// utime + stime of a process, in clock ticks.
long CpuTicks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream rest(stat.substr(paren + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return utime + stime;
}

pid_t WorkerPid(const std::string& ns) {
  kv::shm::ShmError e;
  auto registry = kv::shm::RegistryReader::Open(ns, &e);
  if (!registry) return 0;
  auto record = registry->Find("bench");
  return record ? record->worker_pid : 0;
}

void Line(const char* name, const Result& r, const std::string& ratio) {
  double ns_per_op = r.per_s() > 0 ? 1e9 / r.per_s() : 0;
  std::printf("%-22s %12.0f ops/s %10.0f ns/op  p50 %7.2f us  p99 %7.2f us  %s\n", name, r.per_s(),
              ns_per_op, r.p50, r.p99, ratio.c_str());
}

std::string Ratio(double a, double b, const char* what) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%6.2fx %s", b > 0 ? a / b : 0.0, what);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  double seconds = 2.0;
  std::string kvd_path = kv::bench::DefaultKvdPath();
  std::string only;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json") {
      json = true;
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::stod(argv[++i]);
    } else if (a == "--kvd" && i + 1 < argc) {
      kvd_path = argv[++i];
    } else if (a == "--only" && i + 1 < argc) {
      only = "," + std::string(argv[++i]) + ",";
    } else {
      std::fprintf(stderr,
                   "usage: kv_write_bench [--seconds S] [--kvd PATH] [--only NAME[,NAME...]] "
                   "[--json]\n");
      return 2;
    }
  }
#ifdef NDEBUG
  const char* build = "release (NDEBUG)";
  bool debug = false;
#else
  const char* build = "debug (assertions on)";
  bool debug = true;
#endif
#if defined(__SANITIZE_ADDRESS__)
  bool sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  bool sanitized = true;
#else
  bool sanitized = false;
#endif
#else
  bool sanitized = false;
#endif
  std::printf("kv_write_bench %s  build: %s%s  cpus: %u\n", "0.1.0", build,
              sanitized ? " +ASan" : "", std::thread::hardware_concurrency());
  std::printf("keys 16 B, values 64 B, %d distinct keys, one bucket, %.1f s per workload\n", kKeys,
              seconds);
  if (debug || sanitized) {
    std::printf("WARNING: debug or sanitizer build: figures are not representative\n");
  }
  std::fflush(stdout);

  kv::bench::BenchDaemonOptions daemon_options;
  daemon_options.kvd = kvd_path;
  daemon_options.args = {"--max-bucket-bytes", "1073741824"};
  daemon_options.log_level = "warn";
  kv::bench::BenchDaemon kvd(daemon_options);
  {
    std::shared_ptr<kv::Client> client = kvd.Connect();
    if (!client) {
      std::fprintf(stderr, "kv_write_bench: cannot start kvd at %s\n", kvd_path.c_str());
      return 1;
    }
    if (!client->CreateBucket("bench").ok()) {
      std::fprintf(stderr, "kv_write_bench: cannot create the bucket\n");
      return 1;
    }
  }
  std::string ns = kvd.ns();

  auto run = [&](const char* name) {
    return only.empty() || only.find(std::string(",") + name + ",") != std::string::npos;
  };
  Result ping, noop, sync1;
  if (run("pingpong")) ping = Parse(Join(Spawn([&] { return PingPong(seconds); })));
  if (run("noop")) noop = Parse(Join(Spawn([&] { return SyncNoops(ns, seconds); })));
  if (run("sync1")) sync1 = Parse(Join(Spawn([&] { return SyncPuts(ns, seconds, 0); })));
  std::vector<Child> four;
  for (int i = 0; i < 4 && run("sync4"); ++i) {
    four.push_back(Spawn([&, i] { return SyncPuts(ns, seconds, i * 25000); }));
  }
  Result sync4;
  for (Child c : four) {
    Result r = Parse(Join(c));
    sync4.ops += r.ops;
    sync4.seconds = std::max(sync4.seconds, r.seconds);
    sync4.p50 = std::max<double>(sync4.p50, r.p50);
    sync4.p99 = std::max<double>(sync4.p99, r.p99);
  }
  long async_count = static_cast<long>(2'000'000 * seconds / 2);
  Result async;
  double async_worker_ns = -1;
  if (run("async")) {
    pid_t worker = WorkerPid(ns);
    double before = worker > 0 ? RunNanos(worker) : -1;
    async = Parse(Join(Spawn([&] { return AsyncPuts(ns, async_count); })));
    double after = worker > 0 ? RunNanos(worker) : -1;
    if (before >= 0 && after >= 0) async_worker_ns = after - before;
  }

  // Idle: nobody writes; the worker spins for a bounded time, then sleeps.
  pid_t worker = run("idle") ? WorkerPid(ns) : 0;
  if (worker > 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  long t0 = CpuTicks(worker);
  auto idle_start = Clock::now();
  if (worker > 0) std::this_thread::sleep_for(std::chrono::seconds(1));
  long t1 = CpuTicks(worker);
  double idle_cpu = worker > 0 && t0 >= 0
                        ? 100.0 * (t1 - t0) / static_cast<double>(::sysconf(_SC_CLK_TCK)) /
                              Seconds(Clock::now() - idle_start)
                        : -1;
  kvd.Stop();

  std::printf("\n%-22s %12s %16s\n", "workload", "throughput", "");
  Line("mq ping-pong (base)", ping, "  1.00x ping-pong");
  Line("sync no-op (flush) x1", noop,
       Ratio(noop.per_s(), ping.per_s(), "ping-pong") + "  (transport only)");
  Line("sync put x1", sync1,
       Ratio(sync1.per_s(), ping.per_s(), "ping-pong") + "  " +
           Ratio(sync1.per_s(), kRedisSetPerS, "Redis SET ref"));
  Line("sync put x4 (total)", sync4,
       Ratio(sync4.per_s(), ping.per_s(), "ping-pong") + "  " +
           Ratio(sync4.per_s(), kRedisSetPerS, "Redis SET ref"));
  Line("async put + flush", async,
       Ratio(async.per_s(), ping.per_s(), "ping-pong") + "  " +
           Ratio(async.per_s(), 1e6, "of 1M/s target"));
  double async_client_cpu_ns = async.ops > 0 ? async.cpu_seconds * 1e9 / async.ops : 0;
  double async_worker_cpu_ns =
      async.ops > 0 && async_worker_ns >= 0 ? async_worker_ns / async.ops : 0;
  std::printf("%-22s %12.0f ns/op client CPU %8.0f ns/op worker CPU (incl. the worker's spin)\n",
              "  async CPU", async_client_cpu_ns, async_worker_cpu_ns);
  std::printf("%-22s %11.2f%% of one CPU (over 1 s, after 0.2 s idle)\n", "idle worker", idle_cpu);
  std::printf("targets: sync put >= %.0f/s (2x Redis SET), aim 300000/s; async >= 1000000/s\n",
              2 * kRedisSetPerS);
  if (json) {
    nlohmann::json j = {{"bench", "kv_write_bench"},
                        {"build", build},
                        {"sanitized", sanitized},
                        {"seconds", seconds},
                        {"sync_put_per_s", sync1.per_s()},
                        {"sync_put_p50_us", sync1.p50},
                        {"sync_put_p99_us", sync1.p99},
                        {"sync_put_x4_per_s", sync4.per_s()},
                        {"sync_noop_per_s", noop.per_s()},
                        {"sync_noop_p50_us", noop.p50},
                        {"async_put_per_s", async.per_s()},
                        {"async_client_cpu_ns_per_op", async_client_cpu_ns},
                        {"async_worker_cpu_ns_per_op", async_worker_cpu_ns},
                        {"pingpong_per_s", ping.per_s()},
                        {"pingpong_p50_us", ping.p50},
                        {"sync_vs_pingpong", ping.per_s() > 0 ? sync1.per_s() / ping.per_s() : 0},
                        {"sync_vs_redis_ref", sync1.per_s() / kRedisSetPerS},
                        {"idle_worker_cpu_percent", idle_cpu}};
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}
