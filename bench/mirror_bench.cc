// kv_mirror_bench: a bucket mirroring Redis (docs/mirror.md) against Redis itself, in one run.
//
// Starts a redis-server (unix socket, and TCP on 127.0.0.1 for its replica), a second
// redis-server as its replica (`replicaof`), and two kvd namespaces standing for two hosts, each
// with bucket "m" mirroring the first server (prefix "m:"), over 100k keys (16 B + 64 B). Then:
//   get_ns            direct Get on host A's mirror, one thread, random keys
//   redis_get_us      GET on the upstream, one client, no pipelining (hiredis)
//   propagation       a put through host A until visible in host B's table (p50, p99; the
//                     reader yields its CPU between looks), against a SET on the upstream until
//                     a GET on its replica returns it (p50, p99)
//   put_per_s         sync Put through host A's mirror, one client, against redis_set_per_s
//                     (SET, one client, no pipelining), in alternating chunks of 1,000
//   async_put_per_s   PutAsync + Flush through host A, against Redis SET with pipeline 16, in
//                     alternating chunks of 10,000
//   resync_ms         host B's full resync of the 100k keys after its connections are killed
// Each row idle, then with two busy-loop processes beside it (bench/cpu_hogs.h), kv and Redis
// measured under the same load in the same run. Prints a table; --json adds one JSON object on
// the last line. Usage: kv_mirror_bench [--keys N] [--kvd PATH] [--json]
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_support.h"
#include "bench/cpu_hogs.h"
#include "bench/redis_server.h"
#include "kv/client.h"

namespace {

using Clock = std::chrono::steady_clock;

double Us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

std::string Key(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "key:%012d", i);  // 16 bytes
  return buf;
}

std::string Value(int i, int round) {
  char buf[80];
  std::snprintf(buf, sizeof buf, "%016d-%016d-", i, round);
  std::string v(buf);
  v.resize(64, 'v');
  return v;
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

class Redis {
 public:
  explicit Redis(const std::string& socket) { c_ = redisConnectUnix(socket.c_str()); }
  ~Redis() {
    if (c_ != nullptr) redisFree(c_);
  }
  bool ok() const { return c_ != nullptr && c_->err == 0; }
  redisReply* Command(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (const std::string& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    return static_cast<redisReply*>(
        redisCommandArgv(c_, static_cast<int>(args.size()), argv.data(), lens.data()));
  }
  bool Run(const std::vector<std::string>& args) {
    redisReply* r = Command(args);
    bool ok = r != nullptr && r->type != REDIS_REPLY_ERROR;
    if (r != nullptr) freeReplyObject(r);
    return ok;
  }
  std::string Get(const std::string& key) {
    redisReply* r = Command({"GET", key});
    std::string out =
        r != nullptr && r->type == REDIS_REPLY_STRING ? std::string(r->str, r->len) : std::string();
    if (r != nullptr) freeReplyObject(r);
    return out;
  }
  // `n` SETs (of keys `first`... modulo `keys`) pipelined `depth` at a time; seconds.
  double Sets(int first, int n, int depth, int round, int keys) {
    auto start = Clock::now();
    for (int i = first; i < first + n; i += depth) {
      int batch = std::min(depth, first + n - i);
      for (int j = 0; j < batch; ++j) {
        std::string k = "m:" + Key((i + j) % keys), v = Value(i + j, round);
        redisAppendCommand(c_, "SET %b %b", k.data(), k.size(), v.data(), v.size());
      }
      for (int j = 0; j < batch; ++j) {
        void* r = nullptr;
        if (redisGetReply(c_, &r) != REDIS_OK) return -1;
        freeReplyObject(r);
      }
    }
    return std::chrono::duration<double>(Clock::now() - start).count();
  }

 private:
  redisContext* c_ = nullptr;
};

std::optional<kv::BucketInfo> Info(kv::Client& client) {
  kv::Result<kv::InstanceStatus> st = client.GetStatus();
  if (!st.ok()) return std::nullopt;
  for (const kv::BucketInfo& b : st->buckets) {
    if (b.name == "m") return b;
  }
  return std::nullopt;
}

bool WaitLive(kv::Client& client, std::uint64_t min_resyncs, std::chrono::seconds patience) {
  auto until = Clock::now() + patience;
  while (Clock::now() < until) {
    std::optional<kv::BucketInfo> b = Info(client);
    if (b && b->upstream_state == "live" && b->upstream_resyncs >= min_resyncs) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

struct Figures {
  double get_ns = 0, redis_get_us = 0;
  double prop_p50 = 0, prop_p99 = 0, replica_p50 = 0, replica_p99 = 0;
  double put_per_s = 0, redis_set_per_s = 0;
  double async_per_s = 0, redis_p16_per_s = 0;
  double resync_ms = 0;
};

struct World {
  kv::Bucket a, b;
  std::shared_ptr<kv::Client> cb;
  Redis* master;
  Redis* replica;
  Redis* admin;
  int keys;
};

Figures Measure(World& w, int round) {
  Figures f;
  std::mt19937 rng(42 + round);
  // get_ns: direct reads on host A.
  {
    std::vector<std::string> keys;
    for (int i = 0; i < 4096; ++i) keys.push_back(Key(static_cast<int>(rng() % w.keys)));
    std::string value;
    const int n = 2'000'000;
    auto start = Clock::now();
    for (int i = 0; i < n; ++i) (void)w.a.Get(keys[i & 4095], &value);
    f.get_ns = Us(Clock::now() - start) * 1000 / n;
  }
  // redis_get_us: GET, one client, no pipelining.
  {
    const int n = 20000;
    auto start = Clock::now();
    for (int i = 0; i < n; ++i) w.master->Get("m:" + Key(static_cast<int>(rng() % w.keys)));
    f.redis_get_us = Us(Clock::now() - start) / n;
  }
  // Propagation: A -> B's table, against master -> replica.
  {
    std::vector<double> kv_us, replica_us;
    std::string value;
    for (int i = 0; i < 500; ++i) {
      std::string key = Key(i), v = Value(i, 1000 + round * 1000 + i);
      auto start = Clock::now();
      if (!w.a.Put(key, v).ok()) break;
      // The reader gives up its CPU between looks (sched_yield), as the replica's reader below
      // does while it waits for each GET's reply: a reader spinning without a break held one of
      // the two CPUs for itself, and host B's worker and Redis, woken on the other one, waited
      // for a busy process's time slice there (p99 3-4 ms under other load; 160 us yielding).
      while (!(w.b.Get(key, &value).ok() && value == v)) {
        if (Clock::now() - start > std::chrono::seconds(5)) break;
        std::this_thread::yield();
      }
      kv_us.push_back(Us(Clock::now() - start));
      std::string rkey = "r:" + key;
      start = Clock::now();
      w.master->Run({"SET", rkey, v});
      while (w.replica->Get(rkey) != v) {
        if (Clock::now() - start > std::chrono::seconds(5)) break;
      }
      replica_us.push_back(Us(Clock::now() - start));
    }
    f.prop_p50 = Percentile(kv_us, 0.5);
    f.prop_p99 = Percentile(kv_us, 0.99);
    f.replica_p50 = Percentile(replica_us, 0.5);
    f.replica_p99 = Percentile(replica_us, 0.99);
  }
  // Sync puts through the mirror vs SET unpipelined, then async puts + Flush vs SET pipelined
  // 16: each in ten alternating chunks, so that a change in the machine's load (other processes
  // come and go) weighs on kv and Redis alike.
  auto alternate = [&](int n, int depth, int kv_round, int redis_round, double* kv_per_s,
                       double* redis_per_s) {
    const int chunk = n / 10;
    double kv_s = 0, redis_s = 0;
    for (int first = 0; first < n; first += chunk) {
      auto start = Clock::now();
      for (int i = first; i < first + chunk; ++i) {
        std::string k = Key(i % w.keys), v = Value(i, kv_round);
        (void)(depth == 1 ? w.a.Put(k, v) : w.a.PutAsync(k, v));
      }
      if (depth != 1) (void)w.a.Flush();
      kv_s += std::chrono::duration<double>(Clock::now() - start).count();
      double s = w.master->Sets(first, chunk, depth, redis_round, w.keys);
      if (s < 0) return;
      redis_s += s;
    }
    *kv_per_s = n / kv_s;
    *redis_per_s = n / redis_s;
  };
  alternate(10000, 1, round, round + 1, &f.put_per_s, &f.redis_set_per_s);
  alternate(100000, 16, round + 2, round + 3, &f.async_per_s, &f.redis_p16_per_s);
  // resync: kill B's connections (both are tracked clients of the upstream), wait for a resync.
  {
    std::optional<kv::BucketInfo> before = Info(*w.cb);
    std::uint64_t resyncs = before ? before->upstream_resyncs : 0;
    // Only B's: its connections are the ones whose name we set? They have none; kill every
    // pubsub client and every client with tracking except ours (A reconnects too: harmless).
    w.admin->Run({"CLIENT", "KILL", "TYPE", "pubsub"});
    if (WaitLive(*w.cb, resyncs + 1, std::chrono::seconds(60))) {
      std::optional<kv::BucketInfo> after = Info(*w.cb);
      f.resync_ms = after ? static_cast<double>(after->upstream_resync_ms) : 0;
    }
  }
  return f;
}

nlohmann::json Json(const Figures& f) {
  return {{"get_ns", f.get_ns},
          {"redis_get_us", f.redis_get_us},
          {"get_ratio", f.get_ns > 0 ? f.redis_get_us * 1000 / f.get_ns : 0},
          {"propagation_us_p50", f.prop_p50},
          {"propagation_us_p99", f.prop_p99},
          {"replica_lag_us_p50", f.replica_p50},
          {"replica_lag_us_p99", f.replica_p99},
          {"put_per_s", f.put_per_s},
          {"redis_set_per_s", f.redis_set_per_s},
          {"put_ratio", f.redis_set_per_s > 0 ? f.put_per_s / f.redis_set_per_s : 0},
          {"async_put_per_s", f.async_per_s},
          {"redis_set_p16_per_s", f.redis_p16_per_s},
          {"async_ratio", f.redis_p16_per_s > 0 ? f.async_per_s / f.redis_p16_per_s : 0},
          {"resync_ms", f.resync_ms}};
}

void PrintRow(const char* load, const Figures& f) {
  std::printf(
      "%-6s get %6.0f ns vs redis GET %6.1f us (x%.0f) | propagation p50 %7.1f p99 %7.1f us"
      " vs replica p50 %7.1f p99 %7.1f us\n",
      load, f.get_ns, f.redis_get_us, f.get_ns > 0 ? f.redis_get_us * 1000 / f.get_ns : 0,
      f.prop_p50, f.prop_p99, f.replica_p50, f.replica_p99);
  std::printf(
      "%-6s put %8.0f/s vs SET %8.0f/s (x%.2f) | async %8.0f/s vs SET P16 %8.0f/s (x%.2f)"
      " | resync %6.0f ms\n",
      load, f.put_per_s, f.redis_set_per_s,
      f.redis_set_per_s > 0 ? f.put_per_s / f.redis_set_per_s : 0, f.async_per_s, f.redis_p16_per_s,
      f.redis_p16_per_s > 0 ? f.async_per_s / f.redis_p16_per_s : 0, f.resync_ms);
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  int keys = 100000;
  std::string kvd;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json") {
      json = true;
    } else if (a == "--keys" && i + 1 < argc) {
      keys = std::max(1000, std::atoi(argv[++i]));
    } else if (a == "--kvd" && i + 1 < argc) {
      kvd = argv[++i];
    } else {
      std::fprintf(stderr, "usage: kv_mirror_bench [--keys N] [--kvd PATH] [--json]\n");
      return 2;
    }
  }
  kv::bench::PrintHeader("kv_mirror_bench");
  int port = FreePort();
  kv::bench::RedisOptions master_options;
  master_options.tcp_port = port;
  master_options.populate = false;
  kv::bench::RedisServer master(master_options);
  if (!master.available()) {
    std::fprintf(stderr, "%s\n", master.why().c_str());
    return 1;
  }
  kv::bench::RedisOptions replica_options;
  replica_options.replicaof = "127.0.0.1 " + std::to_string(port);
  replica_options.populate = false;
  kv::bench::RedisServer replica(replica_options);
  if (!replica.available()) {
    std::fprintf(stderr, "replica: %s\n", replica.why().c_str());
    return 1;
  }
  Redis m(master.socket()), r(replica.socket()), admin(master.socket());
  if (!m.ok() || !r.ok() || !admin.ok()) {
    std::fprintf(stderr, "cannot connect to redis-server\n");
    return 1;
  }
  m.Sets(0, keys, 64, 0, keys);
  // The replica is in sync once it returns the last key.
  auto until = Clock::now() + std::chrono::seconds(30);
  while (r.Get("m:" + Key(keys - 1)) != Value(keys - 1, 0) && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  kv::bench::BenchDaemonOptions da, db;
  da.kvd = db.kvd = kvd;
  da.ns_suffix = "a";
  db.ns_suffix = "b";
  kv::bench::BenchDaemon host_a(da), host_b(db);
  std::shared_ptr<kv::Client> ca = host_a.Connect(), cb = host_b.Connect();
  if (!ca || !cb) {
    std::fprintf(stderr, "kvd did not start\n");
    return 1;
  }
  kv::Upstream upstream;
  upstream.url = "unix://" + master.socket();
  upstream.prefix = "m:";
  auto start = Clock::now();
  kv::Status s = ca->CreateBucket("m", upstream);
  if (s.ok()) s = cb->CreateBucket("m", upstream);
  if (!s.ok() || !WaitLive(*ca, 1, std::chrono::seconds(60)) ||
      !WaitLive(*cb, 1, std::chrono::seconds(60))) {
    std::fprintf(stderr, "mirrors did not become live: %s\n", s.ToString().c_str());
    return 1;
  }
  double initial_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  kv::Result<kv::Bucket> a = ca->OpenBucket("m"), b = cb->OpenBucket("m");
  if (!a.ok() || !b.ok()) return 1;
  World w{*a, *b, cb, &m, &r, &admin, keys};
  std::printf("%d keys of 16 B + 64 B; both mirrors loaded in %.0f ms\n", keys, initial_ms);

  Figures idle = Measure(w, 0);
  PrintRow("idle", idle);
  Figures loaded;
  {
    kv::bench::CpuHogs hogs(2);
    loaded = Measure(w, 10);
  }
  PrintRow("hogs2", loaded);
  if (json) {
    nlohmann::json out = {{"keys", keys},
                          {"initial_load_ms", initial_ms},
                          {"idle", Json(idle)},
                          {"hogs2", Json(loaded)}};
    std::printf("%s\n", out.dump().c_str());
  }
  return 0;
}
