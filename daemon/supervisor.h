// kvd's supervisor: the native form of the Elixir application's supervision tree.
//
// One event loop (epoll) over: the control socket (create, drop, restart, shutdown), a signalfd
// (SIGTERM/SIGINT stop, SIGHUP reload), one pidfd per worker (exit notification for children and
// for adopted workers alike: a single reaping mechanism; and the only handle kvd signals a worker
// through, so that a signal never reaches a process that reuses an exited worker's pid), one
// readiness pipe per starting worker, and one stand-in listener per failed bucket. Workers are
// spawned with Boost.Process and detached: their lifetime is managed here.
//
// Restart policy (OTP's one_for_one with max_restarts in max_seconds): a worker that exits
// without being asked to is restarted on its existing segments, at once the first time and with
// exponential backoff after that; more than max_restarts exits within max_seconds marks the
// bucket failed. A failed bucket's segments stay: reads work; kvd listens on the bucket's socket
// in the worker's place and answers every write registration with FAILED and the reason, until
// `kvctl restart` clears the history and starts a worker again.
//
// Liveness: every worker stores a heartbeat (CLOCK_MONOTONIC ns) in its anchor once a second.
// A heartbeat older than kHeartbeatFreshMs makes the worker "stale": kvd withholds its systemd
// watchdog ping (WATCHDOG=1) and says so in STATUS=. Older than liveness_timeout_ms: the worker is
// wedged, kvd SIGKILLs it and the restart policy takes over.
//
// Re-adoption: on start, an existing registry is opened; a worker that still runs (same pid and
// start time) is adopted, any other bucket gets a new worker. No bucket and no key is lost.
// Workers outlive a kvd that dies (by design: they keep serving writes until it is back).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "daemon/bucket_store.h"
#include "daemon/persistence/options.h"

namespace kv::daemon {

// A heartbeat younger than this is fresh (workers beat every second).
inline constexpr std::uint32_t kHeartbeatFreshMs = 3000;

struct SupervisorOptions {
  std::string ns = "kv";
  std::string group;  // informational here: main() applies it (AdoptGroup) before Run
  std::uint32_t max_buckets = 4096;
  BucketLimits limits;
  // Restart policy (reloadable).
  std::uint32_t max_restarts = 5;  // crashes per bucket allowed within max_seconds
  std::uint32_t max_seconds = 10;
  std::uint32_t backoff_ms = 20;  // delay of the second restart within the window; doubles
  std::uint32_t max_backoff_ms = 2000;
  std::uint32_t liveness_timeout_ms = 10000;  // 0: never kill a worker for a stale heartbeat
  std::uint32_t stop_timeout_ms = 5000;       // SIGTERM to SIGKILL on shutdown
  std::uint32_t worker_spin_us = 50;
  // The nice value workers run at (daemon/worker_priority.h). Below the clients' 0 (e.g. -10),
  // clients waking on a worker's CPU no longer take it from the worker, but other processes on
  // the host get less CPU: a choice for the operator, not the default (docs/operations.md).
  int worker_nice = 0;
  // The nice value of a worker while two or more clients write to its bucket at once
  // (BusyPriority): each preemption of the worker then stalls all of them. Equal to worker_nice:
  // off.
  int worker_busy_nice = -10;
  // "adaptive" (the default: safe on a shared machine) or "dedicated" (kv's processes have CPUs of
  // their own): how workers and their clients wait for each other (shm::WaitPolicy).
  std::string wait_policy = "adaptive";
  bool ephemeral = false;  // remove every shared object of the namespace on a clean stop
  // Start every worker by fork+exec instead of forking it from the spawner (daemon/spawner.h).
  bool exec_workers = false;
  std::string log_level = "info";
  // Metrics (metrics/openmetrics.h) written to this file every metrics_interval_ms, atomically
  // (node_exporter's textfile collector reads it). Empty: none. Both reloadable.
  std::string metrics_file;
  std::uint32_t metrics_interval_ms = 15000;
  // The data directory and when buckets are saved to it (daemon/persistence/options.h); empty
  // data_dir: memory only. Fixed for kvd's lifetime (a reload reports changes as needing a
  // restart).
  persistence::PersistenceOptions persistence;
  std::string worker_executable;  // default: this executable
  // Re-reads the configuration on SIGHUP. Returns false with *error to refuse it. Unset: SIGHUP
  // only logs.
  std::function<bool(SupervisorOptions* fresh, std::string* error)> reload;
};

// Runs kvd in the foreground until SIGTERM/SIGINT or a shutdown request. Returns the exit code.
// REQUIRES: called once per process, from its only thread.
int RunSupervisor(const SupervisorOptions& options);

}  // namespace kv::daemon
