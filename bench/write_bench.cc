// kv_write_bench: the write path, end to end, in real processes against a real kvd.
//
// Workloads (16-byte keys, 64-byte values, 100k distinct keys, one bucket):
//   sync put x1     one client process: Put round trips (latency p50/p99 per call)
//   sync put x4     four client processes on the same bucket: total round trips/s
//   async put+flush one client process: PutAsync N times, then Flush; ops/s including the flush
//   batch x16       one client process: sync Bucket::Write of 16 puts (issue 20); keys/s, ratio
//                   to sync put x1 measured in the same run
//   mq ping-pong    baseline: two processes bouncing a 100-byte message through a pair of Boost
//                   message_queues (the transport DESIGN.md §7 rejects)
//   idle worker     CPU the bucket's worker uses while nobody writes (must be ~0)
//   trickle         CPU the worker uses while one client sends 1,000 sync puts/s (<= 5%)
//   under load      sync put x1 beside Redis SET unpipelined (redis-benchmark, one client, a
//                   private redis-server on a unix socket), both measured under the same load in
//                   the same run: hogs2/hogs4 (2 or 4 busy-loop processes at the same nice level)
//                   and same_cpu (client and worker, and Redis's client and server, on CPU 0)
// For the async workload it also prints the CPU time the client and the worker spent per op: on a
// shared machine (other processes competing for the CPUs) these say more than the wall-clock
// rate, which then mostly measures the scheduler.
// Ratios are to the ping-pong measured in the same run and to DESIGN.md §5's Redis reference
// (SET, one client, no pipelining, ~18k/s on this machine kind).
//
// Starts its own kvd (namespace kvbench<pid>, --ephemeral) and removes everything on exit.
// Usage: kv_write_bench [--seconds S] [--kvd PATH] [--only NAME[,NAME...]] [--json]
//   --only runs only the named workloads (pingpong, noop, sync1, sync4, async, batch16, idle,
//   trickle, load; for profiling one of them); the others print as zero.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_support.h"
#include "bench/cpu_hogs.h"
#include "bench/redis_server.h"
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

double ProcessCpuSeconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Times this process has gone to sleep (voluntary context switches) so far.
long VoluntarySwitches() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_nvcsw;
}

// Calls op(i) for i = 0, 1, ... until `seconds` have passed (the clock is read every 256 calls),
// timing each call; returns "ops seconds p50_us p99_us cpu_seconds sleeps" (this process's CPU
// time and voluntary context switches over the run). `reserve`: latencies to make room for.
template <typename Op>
std::string TimedCalls(double seconds, std::size_t reserve, Op op) {
  std::vector<float> lat;
  lat.reserve(reserve);
  double cpu_start = ProcessCpuSeconds();
  long sleeps_start = VoluntarySwitches();
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
      << (lat.empty() ? 0 : lat[lat.size() * 99 / 100]) << " " << ProcessCpuSeconds() - cpu_start
      << " " << VoluntarySwitches() - sleeps_start;
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

// Sync batches of 16 puts (Bucket::Write); "ops" counts keys (16 per call), latency per batch.
std::string SyncBatches(const std::string& ns, double seconds) {
  kv::Bucket b = kv::bench::OpenBucketOrExit(ns, "bench");
  std::string value(64, 'b');
  std::string line = TimedCalls(seconds, 1 << 20, [&](long ops) {
    kv::WriteBatch batch;
    for (int i = 0; i < 16; ++i) {
      batch.Put(Key(static_cast<int>((ops * 16 + i) % kKeys)), value);
    }
    if (!b.Write(batch).ok()) ::_exit(2);
  });
  std::istringstream in(line);
  double calls = 0;
  in >> calls;
  return std::to_string(calls * 16) + line.substr(line.find(' '));
}

// `rate` sync puts a second for `seconds`, on an absolute schedule (a late put does not delay
// the next one's slot): the shape of a bucket that is written to, but not hard.
std::string TricklePuts(const std::string& ns, double seconds, int rate) {
  kv::Bucket b = kv::bench::OpenBucketOrExit(ns, "bench");
  std::string value(64, 't');
  if (!b.Flush().ok()) ::_exit(2);  // connect first
  timespec next{};
  ::clock_gettime(CLOCK_MONOTONIC, &next);
  long period_ns = 1'000'000'000L / rate;
  long count = static_cast<long>(seconds * rate);
  auto start = Clock::now();
  for (long i = 0; i < count; ++i) {
    if (!b.Put(Key(static_cast<int>(i % kKeys)), value).ok()) ::_exit(3);
    next.tv_nsec += period_ns;
    if (next.tv_nsec >= 1'000'000'000L) {
      next.tv_nsec -= 1'000'000'000L;
      ++next.tv_sec;
    }
    ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr);
  }
  std::ostringstream out;
  out << count << " " << Seconds(Clock::now() - start) << " 0 0";
  return out.str();
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
  double sleeps = 0;       // the client's voluntary context switches, where measured
  double per_s() const { return seconds > 0 ? ops / seconds : 0; }
};

Result Parse(const std::string& line) {
  Result r;
  std::istringstream in(line);
  in >> r.ops >> r.seconds >> r.p50 >> r.p99;
  if (!(in >> r.cpu_seconds)) r.cpu_seconds = 0;
  if (!(in >> r.sleeps)) r.sleeps = 0;
  return r;
}

// Nanoseconds a process has run (/proc/PID/schedstat), or -1.
double RunNanos(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/schedstat");
  double ns = -1;
  if (!(in >> ns)) return -1;
  return ns;
}

// Voluntary context switches of a process so far (/proc/PID/status), or -1.
long SleepsOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const std::string key = "voluntary_ctxt_switches:";
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) == 0) return std::stol(line.substr(key.size()));
  }
  return -1;
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
  std::printf("%-22s %12.0f ops/s %10.0f ns/op  p50 %7.2f us  p99 %7.2f us  sleeps/op %5.3f  %s\n",
              name, r.per_s(), ns_per_op, r.p50, r.p99, r.ops > 0 ? r.sleeps / r.ops : 0.0,
              ratio.c_str());
}

std::string Ratio(double a, double b, const char* what) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%6.2fx %s", b > 0 ? a / b : 0.0, what);
  return buf;
}

// One row of the busy-host table: kv sync put x1 and Redis SET unpipelined under the same load.
struct LoadRow {
  std::string load;
  Result kv;
  double worker_sleeps = 0;  // the worker's voluntary context switches during kv's run
  double worker_cpu_ns = 0;  // the worker's run time during kv's run
  std::optional<kv::bench::RedisFigures> redis;
};

// Runs kv's sync put x1, then Redis's SET, under `load`: "hogs2"/"hogs4" (busy loops beside
// them) or "same_cpu" (each store's client and server pinned to CPU 0).
LoadRow MeasureUnderLoad(const std::string& load, const std::string& ns, double seconds,
                         const kv::bench::RedisServer& redis) {
  LoadRow row{load, {}, 0, 0, std::nullopt};
  bool same_cpu = load == "same_cpu";
  int hogs = load == "hogs2" ? 2 : load == "hogs4" ? 4 : 0;
  kv::bench::CpuHogs busy(hogs);
  pid_t worker = WorkerPid(ns);
  if (same_cpu && worker > 0) kv::bench::PinToCpu(worker, 0);
  long sleeps = worker > 0 ? SleepsOf(worker) : -1;
  double run_ns = worker > 0 ? RunNanos(worker) : -1;
  row.kv = Parse(Join(Spawn([&] {
    if (same_cpu) kv::bench::PinToCpu(0, 0);
    return SyncPuts(ns, seconds, 0);
  })));
  if (sleeps >= 0 && run_ns >= 0) {
    row.worker_sleeps = static_cast<double>(SleepsOf(worker) - sleeps);
    row.worker_cpu_ns = RunNanos(worker) - run_ns;
  }
  if (same_cpu && worker > 0) kv::bench::UnpinFromCpu(worker);
  if (redis.available()) {
    if (same_cpu) kv::bench::PinToCpu(redis.pid(), 0);
    row.redis = redis.SetUnpipelined(static_cast<long>(40000 * seconds), same_cpu ? 0 : -1);
    if (same_cpu) kv::bench::UnpinFromCpu(redis.pid());
  }
  return row;
}

// JSON number or null.
nlohmann::json OrNull(bool known, double v) { return known ? nlohmann::json(v) : nlohmann::json(); }

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  double seconds = 2.0;
  std::string kvd_path = kv::bench::DefaultKvdPath();
  std::string only;
  CLI::App app{"kv_write_bench: the write path, end to end, idle and under load"};
  app.add_option("--seconds", seconds, "seconds per workload")->check(CLI::Range(0.1, 600.0));
  app.add_option("--kvd", kvd_path, "the kvd executable");
  app.add_option("--only", only,
                 "comma-separated workloads: pingpong, noop, sync1, sync4, async, batch16, idle, "
                 "trickle, load");
  std::string wait = "adaptive";
  app.add_option("--wait", wait, "kvd's waiting policy (docs/operations.md)")
      ->check(CLI::IsMember({"adaptive", "dedicated"}));
  app.add_flag("--json", json, "print one JSON object on the last line");
  CLI11_PARSE(app, argc, argv);
  if (!only.empty()) only = "," + only + ",";
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
  std::printf(
      "keys 16 B, values 64 B, %d distinct keys, one bucket, %.1f s per workload, wait %s\n", kKeys,
      seconds, wait.c_str());
  if (debug || sanitized) {
    std::printf("WARNING: debug or sanitizer build: figures are not representative\n");
  }
  std::fflush(stdout);

  kv::bench::BenchDaemonOptions daemon_options;
  daemon_options.kvd = kvd_path;
  daemon_options.args = {"--max-bucket-bytes", "1073741824", "--wait", wait};
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
    sync4.sleeps += r.sleeps;
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

  Result batch16;
  if (run("batch16")) batch16 = Parse(Join(Spawn([&] { return SyncBatches(ns, seconds); })));

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

  // Trickle: 1,000 sync puts a second; the worker's CPU share while it serves them.
  double trickle_cpu = -1;
  if (run("trickle") && worker <= 0) worker = WorkerPid(ns);
  if (run("trickle") && worker > 0) {
    double before = RunNanos(worker);
    auto start = Clock::now();
    Result trickle = Parse(Join(Spawn([&] { return TricklePuts(ns, seconds, 1000); })));
    double after = RunNanos(worker);
    if (trickle.ops > 0 && before >= 0 && after >= 0) {
      trickle_cpu = 100.0 * (after - before) / 1e9 / Seconds(Clock::now() - start);
    }
  }

  // Under load: kv and Redis side by side at each load level.
  std::vector<LoadRow> loaded;
  std::string redis_why;
  if (run("load")) {
    kv::bench::RedisServer redis;
    if (!redis.available()) redis_why = redis.why();
    for (const char* load : {"hogs2", "hogs4", "same_cpu"}) {
      loaded.push_back(MeasureUnderLoad(load, ns, seconds, redis));
    }
  }
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
  Line("batch x16 (keys)", batch16,
       Ratio(batch16.per_s(), sync1.per_s(), "sync put x1") + "  (p50/p99 per batch)");
  double async_client_cpu_ns = async.ops > 0 ? async.cpu_seconds * 1e9 / async.ops : 0;
  double async_worker_cpu_ns =
      async.ops > 0 && async_worker_ns >= 0 ? async_worker_ns / async.ops : 0;
  std::printf("%-22s %12.0f ns/op client CPU %8.0f ns/op worker CPU (incl. the worker's spin)\n",
              "  async CPU", async_client_cpu_ns, async_worker_cpu_ns);
  std::printf("%-22s %11.2f%% of one CPU (over 1 s, after 0.2 s idle)\n", "idle worker", idle_cpu);
  std::printf("%-22s %11.2f%% of one CPU (1,000 sync puts/s; target <= 5%%)\n", "trickle worker",
              trickle_cpu);
  if (!loaded.empty()) {
    std::printf(
        "\nunder load: kv sync put x1 vs Redis SET unpipelined (redis-benchmark -c 1), same "
        "run\n%-10s %12s %9s | %12s %9s | %8s | kv per op: sleeps client/worker, CPU "
        "us client/worker\n",
        "load", "kv ops/s", "p99 us", "redis ops/s", "p99 us", "kv/redis");
    for (const LoadRow& row : loaded) {
      double ops = std::max(row.kv.ops, 1.0);
      std::string per_op = "  " + std::to_string(row.kv.sleeps / ops).substr(0, 5) + "/" +
                           std::to_string(row.worker_sleeps / ops).substr(0, 5) + "  " +
                           std::to_string(row.kv.cpu_seconds * 1e6 / ops).substr(0, 5) + "/" +
                           std::to_string(row.worker_cpu_ns / 1e3 / ops).substr(0, 5);
      if (row.redis) {
        std::printf("%-10s %12.0f %9.1f | %12.0f %9.1f | %7.2fx |%s\n", row.load.c_str(),
                    row.kv.per_s(), row.kv.p99, row.redis->per_s, row.redis->p99_us,
                    row.redis->per_s > 0 ? row.kv.per_s() / row.redis->per_s : 0.0, per_op.c_str());
      } else {
        std::printf("%-10s %12.0f %9.1f | %12s %9s | %8s |%s\n", row.load.c_str(), row.kv.per_s(),
                    row.kv.p99, "-", "-", "-", per_op.c_str());
      }
    }
    if (!redis_why.empty()) std::printf("no Redis anchor: %s\n", redis_why.c_str());
  }
  std::printf("targets: sync put >= %.0f/s (2x Redis SET), aim 300000/s; async >= 1000000/s\n",
              2 * kRedisSetPerS);
  if (json) {
    nlohmann::json j = {
        {"bench", "kv_write_bench"},
        {"build", build},
        {"sanitized", sanitized},
        {"seconds", seconds},
        {"wait", wait},
        {"sync_put_per_s", sync1.per_s()},
        {"sync_put_p50_us", sync1.p50},
        {"sync_put_p99_us", sync1.p99},
        {"sync_put_4_clients_per_s", sync4.per_s()},
        {"sync_noop_per_s", noop.per_s()},
        {"sync_noop_p50_us", noop.p50},
        {"async_put_per_s", async.per_s()},
        {"async_client_cpu_ns_per_op", async_client_cpu_ns},
        {"async_worker_cpu_ns_per_op", async_worker_cpu_ns},
        {"batch16_keys_per_s", batch16.per_s()},
        {"batch16_p50_us", batch16.p50},
        {"batch16_vs_sync_put", sync1.per_s() > 0 ? batch16.per_s() / sync1.per_s() : 0},
        {"pingpong_per_s", ping.per_s()},
        {"pingpong_p50_us", ping.p50},
        {"sync_vs_pingpong", ping.per_s() > 0 ? sync1.per_s() / ping.per_s() : 0},
        {"sync_vs_redis_ref", sync1.per_s() / kRedisSetPerS},
        {"idle_worker_cpu_percent", idle_cpu},
        {"trickle_worker_cpu_percent", OrNull(trickle_cpu >= 0, trickle_cpu)}};
    nlohmann::json rows = nlohmann::json::array();
    for (const LoadRow& row : loaded) {
      bool r = row.redis.has_value() && row.redis->per_s > 0;
      rows.push_back({{"load", row.load},
                      {"kv_sync_put_per_s", row.kv.per_s()},
                      {"kv_p99_us", row.kv.p99},
                      {"redis_set_per_s", OrNull(r, r ? row.redis->per_s : 0)},
                      {"redis_p99_us", OrNull(r, r ? row.redis->p99_us : 0)},
                      {"ratio", OrNull(r, r ? row.kv.per_s() / row.redis->per_s : 0)}});
    }
    j["under_load"] = rows;
    if (!redis_why.empty()) j["under_load_note"] = redis_why;
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}
