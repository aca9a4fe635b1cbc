// kv_persist_bench: persistence (docs/persistence.md) against Redis, side by side in one run,
// both on the same disk (a temporary directory under /var/tmp).
//
// 1M keys (16-byte keys, 64-byte values) in one bucket / one Redis database:
//   snapshot_ms          `kvctl save` of the bucket (fork, write, fsync, rename)
//   redis_bgsave_ms      BGSAVE until INFO reports it done
//   restore_ms           kvd started on the data directory (shared memory gone) until the bucket
//                        is running
//   redis_load_ms        redis-server started on its RDB until PING answers PONG
//   put_everysec_ratio   sync put/s with appendfsync everysec / without a data directory
//   put_always_per_s     sync put/s with appendfsync always, one client process
//   redis_set_always_per_s  SET/s, one client unpipelined (redis-benchmark -c 1), appendfsync
//                        always
//   put_always_<N>_clients_per_s, redis_set_always_<N>_clients_per_s
//                        the same with N client processes / connections at once (--clients,
//                        default 8): both group-commit what arrives together
//   put_during_snapshot_ratio  sync put/s while a snapshot of the 1M keys runs / without one
//                        (the same puts just before and just after, for as long), on the idle
//                        machine; put_during_snapshot_hogs2_ratio the same with two
//                        busy processes beside (bench/cpu_hogs.h)
//   put_during_snapshot_ratio_without_rebuilds (and _hogs2_)  the same with the pauses of
//                        table rebuilds (generation changes, docs/design.md "Growth") left out
//                        of both sides: where they fall depends on the heap's fill, not on the
//                        snapshot
//   put_max_ms_during_snapshot, put_max_ms_without_snapshot (and _hogs2)
//                        the slowest single put in those windows; rebuilds_during_snapshot,
//                        rebuilds_without_snapshot (and _hogs2) how many rebuilds fell in them
// Targets (issue 16): snapshot_ms <= redis_bgsave_ms, restore_ms <= redis_load_ms,
// put_everysec_ratio >= 0.8, put_always >= 2x Redis, put_during_snapshot_ratio >= 0.8.
//
// Starts its own kvd instances and redis-server (bench/redis_server.h; unix socket, no TCP) and
// removes everything on exit. Usage:
//   kv_persist_bench [--keys N] [--seconds S] [--clients N] [--only always|snapshot] [--kvd PATH]
//                    [--json]
// --only runs one part (a quick look; the figures of the other part print as 0).
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/filesystem.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_support.h"
#include "bench/cpu_hogs.h"
#include "bench/redis_server.h"
#include "kv/client.h"

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

std::string Key(int i) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "key:%012d", i);
  return std::string(buf, 16);
}
const std::string kValue(64, 'v');

// --- a minimal RESP client over a unix socket ---
class Redis {
 public:
  explicit Redis(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~Redis() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  static void Append(std::string* out, const std::vector<std::string>& args) {
    *out += "*" + std::to_string(args.size()) + "\r\n";
    for (const std::string& a : args) *out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  }
  bool Send(const std::string& bytes) {
    std::size_t at = 0;
    while (at < bytes.size()) {
      ssize_t n = ::write(fd_, bytes.data() + at, bytes.size() - at);
      if (n <= 0) return false;
      at += static_cast<std::size_t>(n);
    }
    return true;
  }
  // One reply: its first line (with the type byte), or the bulk string's contents.
  std::string Reply() {
    std::string line = Line();
    if (!line.empty() && line[0] == '$') {
      long len = std::stol(line.substr(1));
      if (len < 0) return {};
      std::string body = Take(static_cast<std::size_t>(len) + 2);
      return body.substr(0, static_cast<std::size_t>(len));
    }
    return line;
  }
  std::string Command(const std::vector<std::string>& args) {
    std::string out;
    Append(&out, args);
    if (!Send(out)) return "-send failed";
    return Reply();
  }

 private:
  bool Fill() {
    char buf[65536];
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n <= 0) return false;
    in_.append(buf, static_cast<std::size_t>(n));
    return true;
  }
  std::string Line() {
    std::size_t eol;
    while ((eol = in_.find("\r\n", pos_)) == std::string::npos) {
      if (!Fill()) return "-connection closed";
    }
    std::string line = in_.substr(pos_, eol - pos_);
    pos_ = eol + 2;
    Compact();
    return line;
  }
  std::string Take(std::size_t n) {
    while (in_.size() - pos_ < n) {
      if (!Fill()) return {};
    }
    std::string out = in_.substr(pos_, n);
    pos_ += n;
    Compact();
    return out;
  }
  void Compact() {
    if (pos_ > (1 << 20)) {
      in_.erase(0, pos_);
      pos_ = 0;
    }
  }
  int fd_ = -1;
  std::string in_;
  std::size_t pos_ = 0;
};

// PING until PONG (redis-server answers -LOADING while it loads its RDB). False after 120 s.
bool WaitPong(const std::string& sock) {
  auto t0 = Clock::now();
  while (Ms(Clock::now() - t0) < 120000) {
    Redis r(sock);
    if (r.ok() && r.Command({"PING"}) == "+PONG") return true;
    ::usleep(200);
  }
  return false;
}

bool RedisFill(const std::string& sock, int keys) {
  Redis r(sock);
  if (!r.ok()) return false;
  constexpr int kBatch = 10000;
  for (int i = 0; i < keys; i += kBatch) {
    std::string out;
    int n = std::min(kBatch, keys - i);
    for (int j = 0; j < n; ++j) Redis::Append(&out, {"SET", Key(i + j), kValue});
    if (!r.Send(out)) return false;
    for (int j = 0; j < n; ++j) {
      if (r.Reply() != "+OK") return false;
    }
  }
  return true;
}

double RedisBgsaveMs(const std::string& sock) {
  Redis r(sock);
  auto t0 = Clock::now();
  std::string reply = r.Command({"BGSAVE"});
  if (reply.empty() || reply[0] != '+') return -1;
  for (;;) {
    std::string info = r.Command({"INFO", "persistence"});
    if (info.find("rdb_bgsave_in_progress:0") != std::string::npos) {
      return info.find("rdb_last_bgsave_status:ok") != std::string::npos ? Ms(Clock::now() - t0)
                                                                         : -1;
    }
    ::usleep(500);
  }
}

// SET/s of `clients` unpipelined connections at once for about `seconds` (redis-benchmark takes
// a request count: a short run first sizes it). -1 if redis-benchmark fails.
double RedisSetPerS(const kv::bench::RedisServer& redis, int clients, double seconds) {
  std::optional<kv::bench::RedisFigures> probe = redis.Set(200L * clients, clients);
  if (!probe || probe->per_s <= 0) return -1;
  long requests = std::max(200L * clients, static_cast<long>(probe->per_s * seconds));
  std::optional<kv::bench::RedisFigures> run = redis.Set(requests, clients);
  return run ? run->per_s : -1;
}

// --- kv ---

double PutPerS(kv::Bucket& b, double seconds, int offset = 0) {
  int n = 0;
  auto t0 = Clock::now();
  while (Ms(Clock::now() - t0) < seconds * 1000) {
    if (!b.Put(Key(offset + n % 1000), kValue).ok()) return -1;
    ++n;
  }
  return n / (Ms(Clock::now() - t0) / 1000);
}

// Sync put/s of `clients` processes at once, each with a client of its own on bucket "b" of
// `ns`, for `seconds` after a common start. -1 if one fails.
double PutPerSProcesses(const std::string& ns, int clients, double seconds) {
  int go[2], results[2];
  if (::pipe(go) != 0 || ::pipe(results) != 0) return -1;
  std::vector<pid_t> pids;
  for (int i = 0; i < clients; ++i) {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::close(go[1]);
      kv::Bucket b = kv::bench::OpenBucketOrExit(ns, "b");
      char byte;
      if (::read(go[0], &byte, 1) != 0) ::_exit(1);  // EOF: every client starts now
      double rate = PutPerS(b, seconds, i * 1000);
      ::write(results[1], &rate, sizeof rate);
      ::_exit(rate < 0 ? 1 : 0);
    }
    pids.push_back(pid);
  }
  ::close(go[0]);
  ::close(results[1]);
  ::usleep(200000);  // the clients open their bucket
  ::close(go[1]);
  double total = 0;
  bool failed = false;
  for (int i = 0; i < clients; ++i) {
    double rate = -1;
    if (::read(results[0], &rate, sizeof rate) != sizeof rate || rate < 0) failed = true;
    total += std::max(rate, 0.0);
  }
  ::close(results[0]);
  for (pid_t pid : pids) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    failed = failed || !WIFEXITED(status) || WEXITSTATUS(status) != 0;
  }
  return failed ? -1 : total;
}

// Sync puts in a loop, timed one by one. A put that took over 20 ms and during which the table
// moved to a new generation waited for the rebuild (docs/design.md "Growth"): its time is also
// counted apart, as a pause every writer of the bucket meets every so often, snapshot or not.
struct PutWindow {
  double puts = 0, seconds = 0, worst_ms = 0;
  double rebuild_seconds = 0;
  int rebuilds = 0;
  bool ok = true;
  void Add(const PutWindow& w) {
    puts += w.puts;
    seconds += w.seconds;
    worst_ms = std::max(worst_ms, w.worst_ms);
    rebuild_seconds += w.rebuild_seconds;
    rebuilds += w.rebuilds;
    ok = ok && w.ok;
  }
  double PerS() const { return seconds > 0 ? puts / seconds : 0; }
  double PerSWithoutRebuilds() const {
    return seconds > rebuild_seconds ? puts / (seconds - rebuild_seconds) : 0;
  }
};

std::uint64_t Generation(kv::Bucket& b) {
  kv::Result<kv::BucketStats> st = b.Stats();
  return st.ok() ? st->generation : 0;
}

// Puts until `stop` says so (it is asked before each put, with the seconds since the start).
PutWindow TimedPuts(kv::Bucket& b, int offset, const std::function<bool(double)>& stop) {
  PutWindow w;
  std::uint64_t generation = Generation(b);
  auto t0 = Clock::now();
  for (auto t = t0; !stop(Ms(t - t0) / 1000);) {
    if (!b.Put(Key(offset + static_cast<int>(w.puts) % 1000), kValue).ok()) {
      w.ok = false;
      break;
    }
    auto done = Clock::now();
    double ms = Ms(done - t);
    w.worst_ms = std::max(w.worst_ms, ms);
    if (std::uint64_t now_at = ms > 20 ? Generation(b) : generation; now_at != generation) {
      generation = now_at;
      w.rebuild_seconds += ms / 1000;
      ++w.rebuilds;
      done = Clock::now();
    }
    t = done;
    ++w.puts;
  }
  w.seconds = Ms(Clock::now() - t0) / 1000;
  return w;
}

struct SnapshotPuts {
  double ratio = 0;                   // put/s during the snapshot / without one
  double ratio_without_rebuilds = 0;  // the same, the rebuilds' pauses left out of both
  double save_ms = 0;                 // how long the snapshot took under puts
  double worst_ms = 0;                // the slowest single put during the snapshot
  double quiet_worst_ms = 0;          // and without one
  int rebuilds = 0, quiet_rebuilds = 0;
};

// Sync puts while `save` runs (until it returns), and without one for `seconds` just before and
// for as long as the snapshot took (at least `seconds`) just after. The baseline is both quiet
// windows together: on a shared host one window alone drifts with the scheduler's luck. Where a
// rebuild falls depends on how full the heap was when the windows began (the same in every run
// of the bench): the ratio without the rebuilds' pauses is the snapshot's own effect.
bool PutsDuringSnapshot(kv::Bucket& b, int offset, double seconds,
                        const std::function<bool()>& save, SnapshotPuts* out) {
  PutWindow quiet = TimedPuts(b, offset, [&](double t) { return t >= seconds; });
  std::atomic<bool> done{false};
  bool saved = false;
  auto s0 = Clock::now();
  std::thread saver([&] {
    saved = save();
    out->save_ms = Ms(Clock::now() - s0);
    done = true;
  });
  PutWindow during = TimedPuts(b, offset, [&](double) { return done.load(); });
  saver.join();
  quiet.Add(TimedPuts(b, offset, [&](double t) { return t >= std::max(seconds, during.seconds); }));
  out->ratio = quiet.PerS() > 0 ? during.PerS() / quiet.PerS() : 0;
  out->ratio_without_rebuilds = quiet.PerSWithoutRebuilds() > 0
                                    ? during.PerSWithoutRebuilds() / quiet.PerSWithoutRebuilds()
                                    : 0;
  out->worst_ms = during.worst_ms;
  out->quiet_worst_ms = quiet.worst_ms;
  out->rebuilds = during.rebuilds;
  out->quiet_rebuilds = quiet.rebuilds;
  return quiet.ok && during.ok && saved && quiet.puts > 0;
}

// The JSON fields of one PutsDuringSnapshot run; `load` is "" (idle) or "_hogs2".
void AddSnapshotPuts(nlohmann::json& out, const SnapshotPuts& p, const std::string& load) {
  out["put_during_snapshot" + load + "_ratio"] = p.ratio;
  out["snapshot_under_puts" + load + "_ms"] = p.save_ms;
  out["put_during_snapshot" + load + "_ratio_without_rebuilds"] = p.ratio_without_rebuilds;
  out["put_max_ms_during_snapshot" + load] = p.worst_ms;
  out["put_max_ms_without_snapshot" + load] = p.quiet_worst_ms;
  out["rebuilds_during_snapshot" + load] = p.rebuilds;
  out["rebuilds_without_snapshot" + load] = p.quiet_rebuilds;
}

bool KvFill(kv::Bucket& b, int keys) {
  for (int i = 0; i < keys; ++i) {
    if (!b.PutAsync(Key(i), kValue).ok()) return false;
  }
  return b.Flush().ok();
}

kv::bench::BenchDaemonOptions Daemon(const std::string& kvd, const std::string& suffix,
                                     std::vector<std::string> args) {
  kv::bench::BenchDaemonOptions o;
  o.kvd = kvd;
  o.ns_suffix = suffix;
  o.args = std::move(args);
  return o;
}

bool WaitRunning(kv::Client& c, const std::string& bucket) {
  auto t0 = Clock::now();
  while (Ms(Clock::now() - t0) < 300000) {
    kv::Result<kv::InstanceStatus> st = c.GetStatus();
    if (st.ok()) {
      for (const kv::BucketInfo& b : st->buckets) {
        if (b.name == bucket && b.state == "running") return true;
      }
    }
    ::usleep(200);
  }
  return false;
}

int Fail(const char* what) {
  std::fprintf(stderr, "kv_persist_bench: %s\n", what);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  int keys = 1000000;
  int clients = 8;
  double seconds = 1.0;
  std::string only;  // "": everything
  std::string kvd = kv::bench::DefaultKvdPath();
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json") {
      json = true;
    } else if (a == "--keys" && i + 1 < argc) {
      keys = std::stoi(argv[++i]);
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::stod(argv[++i]);
    } else if (a == "--clients" && i + 1 < argc) {
      clients = std::stoi(argv[++i]);
    } else if (a == "--only" && i + 1 < argc &&
               (std::string(argv[i + 1]) == "always" || std::string(argv[i + 1]) == "snapshot")) {
      only = argv[++i];
    } else if (a == "--kvd" && i + 1 < argc) {
      kvd = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: kv_persist_bench [--keys N] [--seconds S] [--clients N] "
                   "[--only always|snapshot] [--kvd PATH] [--json]\n");
      return 2;
    }
  }
  kv::bench::PrintHeader("kv_persist_bench");
  char tmpl[] = "/var/tmp/kv-persist-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return Fail("cannot create a temporary directory");
  std::string dir = tmpl;
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      boost::system::error_code ec;
      boost::filesystem::remove_all(dir, ec);
    }
  } cleanup{dir};
  std::string kv_dir = dir + "/kv", redis_dir = dir + "/redis", redis_aof = dir + "/redis-aof";
  for (const std::string& d : {kv_dir, redis_dir, redis_aof}) ::mkdir(d.c_str(), 0700);
  nlohmann::json out = {
      {"keys", keys}, {"key_bytes", 16}, {"value_bytes", 64}, {"clients", clients}};
  std::string many = "_" + std::to_string(clients) + "_clients_per_s";
  for (const char* k : {"redis_bgsave_ms", "redis_load_ms", "redis_set_always_per_s",
                        "put_always_per_s", "put_none_per_s", "put_everysec_per_s",
                        "put_everysec_ratio", "snapshot_ms", "restore_ms", "restored_keys"}) {
    out[k] = 0;
  }
  AddSnapshotPuts(out, SnapshotPuts(), "");  // zeros until measured (--only)
  AddSnapshotPuts(out, SnapshotPuts(), "_hogs2");
  out["redis_set_always" + many] = 0;
  out["put_always" + many] = 0;
  bool run_always = only != "snapshot", run_snapshot = only != "always";

  // Redis: fill, BGSAVE, restart on the RDB.
  if (run_snapshot) {
    kv::bench::RedisOptions o;
    o.data_dir = redis_dir;
    o.populate = false;
    auto redis = std::make_unique<kv::bench::RedisServer>(o);
    if (!redis->available()) return Fail(redis->why().c_str());
    if (!RedisFill(redis->socket(), keys)) return Fail("cannot fill redis");
    out["redis_bgsave_ms"] = RedisBgsaveMs(redis->socket());
    redis.reset();
    auto t0 = Clock::now();
    o.args = {"--dbfilename", "dump.rdb"};
    redis = std::make_unique<kv::bench::RedisServer>(o);
    if (!redis->available() || !WaitPong(redis->socket())) return Fail("redis-server on its RDB");
    out["redis_load_ms"] = Ms(Clock::now() - t0);
  }
  if (run_always) {
    kv::bench::RedisOptions o;
    o.data_dir = redis_aof;
    o.args = {"--appendonly", "yes", "--appendfsync", "always"};
    kv::bench::RedisServer redis(o);
    if (!redis.available()) return Fail(redis.why().c_str());
    out["redis_set_always_per_s"] = RedisSetPerS(redis, 1, seconds);
    out["redis_set_always" + many] = RedisSetPerS(redis, clients, seconds);
  }

  // kv without persistence, then with everysec: sync put, alternating rounds.
  double none_rate = 0, everysec_rate = 0;
  if (run_snapshot) {
    kv::bench::BenchDaemon plain(Daemon(kvd, "m", {}));
    kv::bench::BenchDaemon disk(Daemon(kvd, "e", {"--data-dir", kv_dir, "--save", ""}));
    auto c1 = plain.Connect();
    auto c2 = disk.Connect();
    if (!c1 || !c2 || !c1->CreateBucket("b").ok() || !c2->CreateBucket("b").ok()) {
      return Fail("kvd did not start");
    }
    kv::Result<kv::Bucket> b1 = c1->OpenBucket("b");
    kv::Result<kv::Bucket> b2 = c2->OpenBucket("b");
    if (!b1.ok() || !b2.ok()) return Fail("cannot open the buckets");
    std::vector<double> r1, r2;
    for (int round = 0; round < 3; ++round) {
      r1.push_back(PutPerS(*b1, seconds / 2));
      r2.push_back(PutPerS(*b2, seconds / 2));
    }
    none_rate = kv::bench::Median(r1);
    everysec_rate = kv::bench::Median(r2);
  }
  out["put_none_per_s"] = none_rate;
  out["put_everysec_per_s"] = everysec_rate;
  out["put_everysec_ratio"] = none_rate > 0 ? everysec_rate / none_rate : 0;
  if (run_always) {
    kv::bench::BenchDaemon disk(
        Daemon(kvd, "a", {"--data-dir", kv_dir, "--save", "", "--appendfsync", "always"}));
    auto c = disk.Connect();
    if (!c || !c->CreateBucket("b").ok()) return Fail("kvd (always) did not start");
    out["put_always_per_s"] = PutPerSProcesses(disk.ns(), 1, seconds);
    out["put_always" + many] = PutPerSProcesses(disk.ns(), clients, seconds);
  }

  // kv: 1M keys, a snapshot, puts during a snapshot (idle, then beside two busy processes), a
  // restore.
  if (run_snapshot) {
    std::vector<std::string> flags = {
        "--data-dir", kv_dir, "--save", "", "--max-bucket-bytes", std::to_string(1ull << 32)};
    auto daemon = std::make_unique<kv::bench::BenchDaemon>(Daemon(kvd, "s", flags));
    auto c = daemon->Connect();
    if (!c || !c->CreateBucket("big").ok()) return Fail("kvd (snapshot) did not start");
    kv::Result<kv::Bucket> b = c->OpenBucket("big");
    if (!b.ok() || !KvFill(*b, keys)) return Fail("cannot fill the bucket");
    auto t0 = Clock::now();
    kv::Status saved = c->SaveBucket("big");
    if (!saved.ok()) return Fail(saved.ToString().c_str());
    out["snapshot_ms"] = Ms(Clock::now() - t0);
    auto save = [&] { return c->SaveBucket("big").ok(); };
    SnapshotPuts idle;
    if (!PutsDuringSnapshot(*b, keys, seconds, save, &idle)) {
      return Fail("puts during a snapshot failed");
    }
    AddSnapshotPuts(out, idle, "");
    SnapshotPuts loaded;
    {
      kv::bench::CpuHogs hogs(2);
      if (!PutsDuringSnapshot(*b, keys, seconds, save, &loaded)) {
        return Fail("puts during a snapshot (two busy processes) failed");
      }
    }
    AddSnapshotPuts(out, loaded, "_hogs2");
    b = kv::Status(kv::Code::kInternal, "released");
    c.reset();
    // A reboot: kvd stops (a clean stop also saves), every object of the namespace goes.
    daemon->Stop();
    daemon.reset();
    auto r0 = Clock::now();
    daemon = std::make_unique<kv::bench::BenchDaemon>(Daemon(kvd, "s", flags));
    c = daemon->Connect();
    if (!c || !WaitRunning(*c, "big")) return Fail("the bucket was not restored");
    out["restore_ms"] = Ms(Clock::now() - r0);
    kv::Result<kv::Bucket> again = c->OpenBucket("big");
    kv::Result<kv::BucketStats> st = again.ok() ? again->Stats() : again.status();
    out["restored_keys"] = st.ok() ? st->keys : 0;
  }

  auto num = [&](const std::string& k) { return out[k].get<double>(); };
  auto ratio = [&](const std::string& a, const std::string& b) {
    return num(b) > 0 ? num(a) / num(b) : 0.0;
  };
  std::printf("%-34s %12s %12s\n", "", "kv", "redis");
  std::printf("%-34s %12.1f %12.1f\n", "snapshot / BGSAVE ms", num("snapshot_ms"),
              num("redis_bgsave_ms"));
  std::printf("%-34s %12.1f %12.1f\n", "restore / RDB load ms", num("restore_ms"),
              num("redis_load_ms"));
  std::printf("%-34s %12.0f %12.0f  %.2fx (>= 2x)\n", "put always / SET always /s, 1 client",
              num("put_always_per_s"), num("redis_set_always_per_s"),
              ratio("put_always_per_s", "redis_set_always_per_s"));
  std::printf("%-34s %12.0f %12.0f  %.2fx (>= 2x)\n",
              ("put always / SET always /s, " + std::to_string(clients) + " cl.").c_str(),
              num("put_always" + many), num("redis_set_always" + many),
              ratio("put_always" + many, "redis_set_always" + many));
  std::printf("%-34s %12.0f\n", "put, memory only /s", num("put_none_per_s"));
  std::printf("%-34s %12.0f %12s  ratio %.2f (>= 0.8)\n", "put, everysec /s",
              num("put_everysec_per_s"), "", num("put_everysec_ratio"));
  std::printf("%-34s %12.2f %12s  (>= 0.8; snapshot took %.0f ms)\n",
              "put during a snapshot, ratio", num("put_during_snapshot_ratio"), "",
              num("snapshot_under_puts_ms"));
  std::printf("%-34s %12.2f %12s  (snapshot took %.0f ms)\n", "  the same, two busy processes",
              num("put_during_snapshot_hogs2_ratio"), "", num("snapshot_under_puts_hogs2_ms"));
  std::printf("%-34s %12.2f %12.2f  (idle / two busy processes)\n",
              "  without the rebuilds' pauses", num("put_during_snapshot_ratio_without_rebuilds"),
              num("put_during_snapshot_hogs2_ratio_without_rebuilds"));
  std::printf("%-34s %12.0f %12.0f  (rebuilds %.0f / %.0f)\n", "  slowest put during / without, ms",
              num("put_max_ms_during_snapshot"), num("put_max_ms_without_snapshot"),
              num("rebuilds_during_snapshot"), num("rebuilds_without_snapshot"));
  std::printf("%-34s %12.0f %12.0f  (rebuilds %.0f / %.0f)\n", "  the same, two busy processes",
              num("put_max_ms_during_snapshot_hogs2"), num("put_max_ms_without_snapshot_hogs2"),
              num("rebuilds_during_snapshot_hogs2"), num("rebuilds_without_snapshot_hogs2"));
  std::printf("restored keys: %.0f of %d\n", num("restored_keys"), keys);
  if (json) std::printf("%s\n", out.dump().c_str());
  return 0;
}
