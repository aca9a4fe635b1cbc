// The anchor of the kv-vs-Redis figures: a private redis-server (unix socket in a temporary
// directory, no TCP, persistence off) and redis-benchmark runs against it, measured in the same
// run as kv (DESIGN.md §8: an anchor measured at another time means little on a shared host).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace kv::bench {

struct RedisFigures {
  double per_s = 0;
  double p50_us = 0;
  double p99_us = 0;
};

struct RedisServerOptions {
  int tcp_port = 0;       // also listen on 127.0.0.1:tcp_port (a replica's master needs TCP)
  std::string replicaof;  // "HOST PORT": start as a replica of that server
  bool populate = true;   // fill 100k keys (redis-benchmark's key space) once started
};

class RedisServer {
 public:
  // Starts redis-server if it is on PATH and answers within 10 s; otherwise available() is false
  // and why() says what is missing. Stopped (and its directory removed) by the destructor; it
  // dies with the benchmark (PR_SET_PDEATHSIG) if the benchmark is killed.
  RedisServer() : RedisServer(RedisServerOptions{}) {}
  explicit RedisServer(const RedisServerOptions& options);
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  bool available() const { return pid_ > 0; }
  const std::string& why() const { return why_; }
  pid_t pid() const { return pid_; }
  const std::string& socket() const { return socket_; }

  // redis-benchmark with one client and no pipelining, `requests` SETs of 64-byte values over
  // 100k random 16-byte keys ("key:<12 digits>", as kv's benchmarks use). With `cpu` >= 0 the
  // benchmark client runs pinned to that CPU (pin the server yourself, PinToCpu(pid(), cpu)).
  // nullopt if redis-benchmark is missing or fails.
  std::optional<RedisFigures> SetUnpipelined(long requests, int cpu = -1) const;

 private:
  std::string dir_;
  std::string socket_;
  std::string why_;
  pid_t pid_ = 0;
};

}  // namespace kv::bench
