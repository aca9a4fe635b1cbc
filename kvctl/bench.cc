// `kvctl bench` runner: populates the bucket, then for each workload forks the client
// processes (kv, then the std::unordered_map baseline), releases them together, shows a
// progress line while they run and merges what they leave in a shared anonymous mapping.
#include "kvctl/bench.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <new>
#include <thread>
#include <unordered_map>

#include "kvctl/app.h"
#include "kvctl/command_util.h"

namespace kv::ctl {
namespace {

using Clock = std::chrono::steady_clock;

std::atomic<int> g_interrupted{0};
void OnInterrupt(int) { g_interrupted.store(1); }

// One per client process, in memory shared with the parent.
struct Slot {
  std::atomic<std::uint64_t> ops{0};  // progress, published every 256 ops
  std::atomic<int> ready{0};          // 1: set up, -1: setup failed
  std::uint64_t errors = 0;
  double elapsed_s = 0;
  LatencyHistogram latency;
};
struct Board {
  std::atomic<int> go{0};
  std::atomic<int> stop{0};
  Slot slots[1];  // really `clients` of them
};

// What a client process runs the workload against.
class Target {
 public:
  virtual ~Target() = default;
  virtual bool Get(const std::string& key, std::string* value) = 0;
  virtual bool Put(const std::string& key, const std::string& value) = 0;
  virtual bool PutAsync(const std::string& key, const std::string& value) = 0;
  virtual bool Finish() = 0;  // makes async writes visible
};

class KvTarget : public Target {
 public:
  explicit KvTarget(Bucket bucket) : bucket_(std::move(bucket)) {}
  bool Get(const std::string& k, std::string* v) override { return bucket_.Get(k, v).ok(); }
  bool Put(const std::string& k, const std::string& v) override { return bucket_.Put(k, v).ok(); }
  bool PutAsync(const std::string& k, const std::string& v) override {
    return bucket_.PutAsync(k, v).ok();
  }
  bool Finish() override { return bucket_.Flush().ok(); }

 private:
  Bucket bucket_;
};

class MapTarget : public Target {
 public:
  MapTarget(const std::vector<std::string>& keys, const std::string& value) {
    map_.reserve(keys.size());
    for (const std::string& k : keys) map_.emplace(k, value);
  }
  bool Get(const std::string& k, std::string* v) override {
    auto it = map_.find(k);
    if (it == map_.end()) return false;
    v->assign(it->second);
    return true;
  }
  bool Put(const std::string& k, const std::string& v) override {
    auto it = map_.find(k);
    if (it == map_.end()) {
      map_.emplace(k, v);
    } else {
      it->second.assign(v);
    }
    return true;
  }
  bool PutAsync(const std::string& k, const std::string& v) override { return Put(k, v); }
  bool Finish() override { return true; }

 private:
  std::unordered_map<std::string, std::string> map_;
};

struct Plan {
  const BenchOptions& o;
  const std::vector<std::string>& keys;
  const std::string& value;
  ClientOptions client_options;
  std::string bucket;
};

void RunClient(Target& t, const Plan& p, const std::string& workload, Board& board, Slot& slot,
               std::uint64_t seed) {
  bool async = workload == "put-async";
  int put_percent = workload == "get" ? 0 : workload == "mixed" ? 10 : 100;
  std::uint64_t x = seed | 1;
  std::string value;
  std::uint64_t ops = 0, errors = 0, n = p.keys.size();
  auto start = Clock::now();
  auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(p.o.duration_s));
  for (;; ++ops) {
    if ((ops & 255) == 0) {
      slot.ops.store(ops, std::memory_order_relaxed);
      if (Clock::now() >= deadline || board.stop.load(std::memory_order_relaxed) != 0) break;
    }
    x ^= x << 13;  // xorshift64
    x ^= x >> 7;
    x ^= x << 17;
    const std::string& key = p.keys[x % n];
    bool put = put_percent == 100 || (put_percent > 0 && (x >> 40) % 100 < 10);
    bool timed = ops % kSampleEvery == 0;
    Clock::time_point t0;
    if (timed) t0 = Clock::now();
    bool ok = !put ? t.Get(key, &value) : async ? t.PutAsync(key, p.value) : t.Put(key, p.value);
    if (timed) {
      slot.latency.Record(static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count()));
    }
    if (!ok) ++errors;
  }
  if (!t.Finish()) ++errors;
  slot.elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
  slot.errors = errors;
  slot.ops.store(ops);
}

// The body of one forked client process; never returns.
[[noreturn]] void ClientProcess(const Plan& p, const std::string& workload, bool baseline,
                                Board& board, int index) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  ::signal(SIGINT, SIG_IGN);  // the parent stops us through board.stop
  Slot& slot = board.slots[index];
  int code = 0;
  {
    std::unique_ptr<Target> target;
    std::shared_ptr<Client> client;  // a fresh client: never use the parent's after fork
    if (baseline) {
      target = std::make_unique<MapTarget>(p.keys, p.value);
    } else if (Result<std::shared_ptr<Client>> c = Client::Open(p.client_options); c.ok()) {
      client = *c;
      if (Result<Bucket> b = client->OpenBucket(p.bucket); b.ok()) {
        target = std::make_unique<KvTarget>(std::move(b).value());
      }
    }
    if (target == nullptr) {
      slot.ready.store(-1);
      code = 1;
    } else {
      slot.ready.store(1);
      while (board.go.load() == 0 && board.stop.load() == 0) {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
      RunClient(*target, p, workload, board, slot, 0x9E3779B97F4A7C15ull * (index + 1));
    }
  }
  ::_exit(code);
}

void Progress(bool show, const std::string& label, std::uint64_t ops, double elapsed,
              double duration) {
  if (!show) return;
  std::fprintf(stderr, "\r%-24s %12llu ops %12.0f ops/s %5.1f/%.1f s   ", label.c_str(),
               static_cast<unsigned long long>(ops), elapsed > 0 ? ops / elapsed : 0.0,
               std::min(elapsed, duration), duration);
}

Status RunWorkload(const Plan& p, const std::string& workload, bool baseline, bool show_progress,
                   BenchMeasure* out) {
  int clients = p.o.clients;
  std::size_t size = sizeof(Board) + sizeof(Slot) * static_cast<std::size_t>(clients);
  void* mem = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return Status(Code::kInternal, "mmap of the bench board failed");
  auto* board = new (mem) Board();
  for (int i = 1; i < clients; ++i) new (&board->slots[i]) Slot();
  std::cout << std::flush;
  std::fflush(stderr);
  std::vector<pid_t> pids;
  for (int i = 0; i < clients; ++i) {
    pid_t pid = ::fork();
    if (pid == 0) ClientProcess(p, workload, baseline, *board, i);
    if (pid > 0) pids.push_back(pid);
  }
  Status status;
  if (static_cast<int>(pids.size()) != clients) status = Status(Code::kInternal, "fork failed");
  // Release the clients together once every one is set up.
  for (bool waiting = status.ok(); waiting;) {
    waiting = false;
    for (int i = 0; i < clients; ++i) {
      int r = board->slots[i].ready.load();
      if (r < 0) status = Status(Code::kFailed, "a bench client could not open the bucket");
      if (r == 0) waiting = true;
    }
    for (pid_t& pid : pids) {  // a client that died while setting up never becomes ready
      int ws = 0;
      if (waiting && pid > 0 && ::waitpid(pid, &ws, WNOHANG) == pid) {
        pid = 0;
        if (status.ok()) status = Status(Code::kFailed, "a bench client exited while starting");
      }
    }
    if (!status.ok() || g_interrupted.load() != 0) break;
    if (waiting) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (status.ok() && g_interrupted.load() == 0) {
    board->go.store(1);
  } else {
    board->stop.store(1);
  }
  std::string label = workload + (baseline ? " (map)" : " (kv)");
  auto start = Clock::now();
  std::size_t running = std::count_if(pids.begin(), pids.end(), [](pid_t p) { return p > 0; });
  while (running > 0) {
    for (pid_t& pid : pids) {
      int ws = 0;
      if (pid > 0 && ::waitpid(pid, &ws, WNOHANG) == pid) {
        pid = 0;
        --running;
        if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
          if (status.ok()) status = Status(Code::kFailed, "a bench client failed");
        }
      }
    }
    if (g_interrupted.load() != 0) board->stop.store(1);
    std::uint64_t ops = 0;
    for (int i = 0; i < clients; ++i) ops += board->slots[i].ops.load(std::memory_order_relaxed);
    Progress(show_progress, label, ops, std::chrono::duration<double>(Clock::now() - start).count(),
             p.o.duration_s);
    if (running > 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (show_progress) std::fprintf(stderr, "\r%80s\r", "");
  *out = BenchMeasure();
  for (int i = 0; i < clients; ++i) {
    const Slot& s = board->slots[i];
    out->ops += s.ops.load();
    out->errors += s.errors;
    if (s.elapsed_s > 0) out->ops_per_sec += static_cast<double>(s.ops.load()) / s.elapsed_s;
    out->latency.Merge(s.latency);
  }
  ::munmap(mem, size);
  if (g_interrupted.load() != 0) return Status(Code::kFailed, "interrupted");
  return status;
}

std::string MakeKey(std::uint64_t i, std::size_t size) {
  std::string digits = std::to_string(i);
  return "k" + std::string(size - 1 - digits.size(), '0') + digits;
}

int Bench(Context& ctx, BenchOptions o) {
  for (const std::string& w : o.workloads) {
    if (w != "get" && w != "put" && w != "put-async" && w != "mixed") {
      std::cerr << "kvctl: INVALID: unknown workload '" << w << "' (get, put, put-async, mixed)\n";
      return kExitUsage;
    }
  }
  if (o.key_size < std::to_string(o.keys - 1).size() + 1) {
    std::cerr << "kvctl: INVALID: --key-size " << o.key_size << " is too small for " << o.keys
              << " distinct keys\n";
    return kExitUsage;
  }
  Client* client = ctx.OpenClient();
  if (client == nullptr) return kExitFailed;
  bool created = false;
  if (o.bucket.empty()) o.bucket = "bench-" + std::to_string(::getpid());
  if (client->OpenBucket(o.bucket).status().code() == Code::kBucketNotFound) {
    if (Status s = client->CreateBucket(o.bucket); !s.ok()) return Fail(ctx, s);
    created = true;
  }
  std::vector<std::string> keys;
  keys.reserve(o.keys);
  for (std::uint64_t i = 0; i < o.keys; ++i) keys.push_back(MakeKey(i, o.key_size));
  std::string value(o.value_size, 'v');
  for (std::size_t i = 0; i < value.size(); ++i) value[i] = static_cast<char>('a' + i % 26);

  struct sigaction sa {};
  sa.sa_handler = OnInterrupt;
  struct sigaction old_int {
  }, old_term{};
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);
  bool show = o.progress || ::isatty(STDERR_FILENO) != 0;
  Status status;
  std::vector<BenchResult> results;
  {
    std::optional<Bucket> b = OpenBucketOrFail(ctx, o.bucket);
    if (!b) return kExitFailed;
    for (std::uint64_t i = 0; i < o.keys && status.ok(); ++i) {
      status = b->PutAsync(keys[i], value);
      if (status.ok() && (i % 4096 == 4095 || i + 1 == o.keys)) {
        status = b->Flush();
        if (show)
          std::fprintf(stderr, "\rpopulating %llu/%llu keys   ", (unsigned long long)i + 1,
                       (unsigned long long)o.keys);
      }
      if (g_interrupted.load() != 0) status = Status(Code::kFailed, "interrupted");
    }
    if (show) std::fprintf(stderr, "\r%80s\r", "");
  }
  Plan plan{o, keys, value, ctx.options, o.bucket};
  plan.client_options.timeout = std::chrono::milliseconds(ctx.timeout_ms);
  for (const std::string& w : o.workloads) {
    if (!status.ok()) break;
    BenchResult r;
    r.workload = w;
    status = RunWorkload(plan, w, false, show, &r.kv);
    if (status.ok() && o.baseline) {
      r.has_baseline = true;
      status = RunWorkload(plan, w, true, show, &r.baseline);
    }
    results.push_back(r);
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  if (created && !o.keep) {
    if (Status s = client->DropBucket(o.bucket); !s.ok() && status.ok()) status = s;
  }
  if (!status.ok()) return Fail(ctx, status);
  if (ctx.json) {
    PrintBenchJson(o, client->ns(), results);
  } else {
    PrintBenchTable(o, client->ns(), results);
  }
  return kExitOk;
}

}  // namespace

void AddBenchCommand(CLI::App& app, Context& ctx) {
  auto* bench = app.add_subcommand(
      "bench", "benchmark kv (get, put, put-async, mixed) against an in-process unordered_map");
  auto o = std::make_shared<BenchOptions>();
  bench->add_option("-w,--workloads", o->workloads, "comma-separated: get,put,put-async,mixed")
      ->delimiter(',')
      ->capture_default_str();
  bench->add_option("-k,--keys", o->keys, "distinct keys (populated first)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{100'000'000}))
      ->capture_default_str();
  bench->add_option("--key-size", o->key_size, "key size in bytes")
      ->check(CLI::Range(std::size_t{2}, kMaxKeySize))
      ->capture_default_str();
  bench->add_option("-d,--value-size", o->value_size, "value size in bytes")
      ->check(CLI::Range(std::size_t{0}, kMaxValueSize))
      ->capture_default_str();
  bench->add_option("-c,--clients", o->clients, "client processes")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  bench->add_option("-t,--duration", o->duration_s, "seconds per workload and target")
      ->check(CLI::Range(0.01, 3600.0))
      ->capture_default_str();
  bench->add_option("-b,--bucket", o->bucket,
                    "bucket to use (default bench-<pid>, created and dropped afterwards)");
  bench->add_flag("--keep", o->keep, "keep a bucket the benchmark created");
  bench->add_flag("!--no-baseline", o->baseline, "skip the std::unordered_map baseline");
  bench->add_flag("--progress", o->progress,
                  "show the progress line even when stderr is not a terminal");
  OnRun(bench, ctx, [&ctx, o] { return Bench(ctx, *o); });
}

}  // namespace kv::ctl
