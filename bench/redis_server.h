// The anchor of the kv-vs-Redis figures: a private redis-server (unix socket in a temporary
// directory, no TCP, persistence off unless asked for) and redis-benchmark runs against it,
// measured in the same run as kv (DESIGN.md §8: an anchor measured at another time means little on
// a shared host).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace kv::bench {

struct RedisFigures {
  double per_s = 0;
  double p50_us = 0;
  double p99_us = 0;
};

struct RedisOptions {
  // Where redis-server keeps its RDB and AOF files (--dir); "": its temporary directory.
  std::string data_dir;
  // More settings, appended to the defaults (--save "" --appendonly no), which they override:
  // e.g. {"--appendonly", "yes", "--appendfsync", "always"}.
  std::vector<std::string> args;
  // Fill the key space SetUnpipelined/Set use, so that SETs overwrite as kv's puts do.
  bool populate = true;
  int tcp_port = 0;       // also listen on 127.0.0.1:tcp_port (a replica's master needs TCP)
  std::string replicaof;  // "HOST PORT": start as a replica of that server
};

class RedisServer {
 public:
  // Starts redis-server if it is on PATH and accepts connections within 10 s (it may still be
  // loading its data: PING answers -LOADING until then); otherwise available() is false and why()
  // says what is missing. Stopped (and its temporary directory removed; data_dir is left) by the
  // destructor or Stop; it dies with the benchmark (PR_SET_PDEATHSIG) if the benchmark is killed.
  RedisServer() : RedisServer(RedisOptions{}) {}
  explicit RedisServer(const RedisOptions& options);
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  bool available() const { return pid_ > 0; }
  const std::string& why() const { return why_; }
  pid_t pid() const { return pid_; }
  // The unix socket it listens on.
  const std::string& socket() const { return socket_; }
  // SIGKILL, as a crash or power cut would stop it.
  void Stop();

  // redis-benchmark with one client and no pipelining, `requests` SETs of 64-byte values over
  // 100k random 16-byte keys ("key:<12 digits>", as kv's benchmarks use). With `cpu` >= 0 the
  // benchmark client runs pinned to that CPU (pin the server yourself, PinToCpu(pid(), cpu)).
  // nullopt if redis-benchmark is missing or fails.
  std::optional<RedisFigures> SetUnpipelined(long requests, int cpu = -1) const {
    return Set(requests, 1, cpu);
  }
  // The same with `clients` connections at once (redis-benchmark -c), each unpipelined.
  std::optional<RedisFigures> Set(long requests, int clients, int cpu = -1) const;

 private:
  std::string dir_;
  std::string socket_;
  std::string why_;
  pid_t pid_ = 0;
};

}  // namespace kv::bench
