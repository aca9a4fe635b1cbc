// kvd's supervisor: the native form of the Elixir application's supervision tree.
//
// One event loop (epoll) over: the control socket (create, drop, restart, shutdown), a signalfd
// (SIGTERM/SIGINT stop, SIGHUP logged), one pidfd per worker (exit notification for children and
// for adopted workers alike: a single reaping mechanism), and one readiness pipe per starting
// worker. Workers are spawned with Boost.Process and detached: their lifetime is managed here.
//
// Restart policy (OTP's one_for_one with max_restarts in max_seconds): a worker that exits
// without being asked to is restarted on its existing segments, at once the first time and with
// exponential backoff after that; more than max_restarts exits within max_seconds marks the
// bucket failed (reads still work from its segment; writes are refused until `kvctl restart`).
//
// Re-adoption: on start, an existing registry is opened; a worker that still runs (same pid and
// start time) is adopted, any other bucket gets a new worker. No bucket and no key is lost.
#pragma once

#include <cstdint>
#include <string>

#include "daemon/bucket_store.h"

namespace kv::daemon {

struct SupervisorOptions {
  std::string ns = "kv";
  std::uint32_t max_buckets = 4096;
  BucketLimits limits;
  std::uint32_t max_restarts = 5;  // per bucket, within max_seconds
  std::uint32_t max_seconds = 10;
  std::uint32_t backoff_ms = 20;  // second restart within the window; doubles after
  std::uint32_t max_backoff_ms = 2000;
  std::uint32_t stop_timeout_ms = 5000;  // SIGTERM to SIGKILL on shutdown
  std::uint32_t worker_spin_us = 50;
  bool ephemeral = false;  // remove every shared object of the namespace on a clean stop
  std::string log_level = "info";
  std::string worker_executable;  // default: this executable
};

// Runs kvd in the foreground until SIGTERM/SIGINT or a shutdown request. Returns the exit code.
int RunSupervisor(const SupervisorOptions& options);

}  // namespace kv::daemon
