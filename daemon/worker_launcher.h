// kvd's way of starting a worker process: through the spawner (daemon/spawner.h) when it runs,
// else by fork+exec with Boost.Process. Either way the worker is a child of kvd (kvd is a child
// subreaper, see spawner.h), runs as `kvd --worker --bucket-id N <worker flags>`, has the
// readiness pipe as fd 1 and starts with no signal blocked. Descriptors kvd inherited are passed
// to no child: the spawner gets 0, 1, 2 and its socket (kSpawnerFd), an exec'd worker 0, 2 and
// the readiness pipe, and a worker forked by the spawner only what the spawner gives it.
//
// Owned and called by the supervisor's single thread only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace kv::daemon {

class WorkerLauncher {
 public:
  // `worker_flags`: the flags every worker gets (namespace, limits, log level...), without
  // --worker and --bucket-id. `use_spawner`: false to exec every worker.
  WorkerLauncher(std::string executable, std::vector<std::string> worker_flags, bool use_spawner);
  ~WorkerLauncher();  // stops the spawner
  WorkerLauncher(const WorkerLauncher&) = delete;
  WorkerLauncher& operator=(const WorkerLauncher&) = delete;

  // Workers started from now on get `worker_flags`; the spawner, started with the old ones, is
  // replaced if they differ.
  void SetWorkerFlags(std::vector<std::string> worker_flags);

  // Starts the worker of `bucket_id` with `ready_fd` as its fd 1 (the caller keeps and closes
  // its own descriptor). A spawner that died or fails is restarted once; if it fails again the
  // worker is exec'd. Returns the worker's pid, or 0 with *error.
  pid_t Launch(std::uint64_t bucket_id, int ready_fd, std::string* error);

  // Asks the spawner for the next spare if none is in hand or coming. Called once a started worker
  // is ready, so that forking the spare does not compete with the worker's start for the CPU.
  void Replenish();

  // On kvd's clean stop, once every worker has exited: stops the spawner and waits (bounded) until
  // every remaining child -- the spawner and spares, which exit on EOF -- has exited and is reaped,
  // so that nothing of the instance outlives kvd.
  void Shutdown();

  // Reaps exited children that are none of kvd's workers (spares left by a spawner that died).
  // `is_worker(pid)` says whether a pid is a supervised worker (those are reaped by their owner).
  void ReapStrays(const std::function<bool(pid_t)>& is_worker);

  // The spawner's pid, 0 if none runs (for tests and status).
  pid_t spawner_pid() const { return spawner_pid_; }

 private:
  bool StartSpawner();
  void StopSpawner();  // and drops the spare in hand
  bool RequestSpare();
  bool TakeSpare(std::string* error);
  pid_t LaunchThroughSpawner(std::uint64_t bucket_id, int ready_fd, std::string* error);
  pid_t LaunchByExec(std::uint64_t bucket_id, int ready_fd, std::string* error);

  std::string executable_;
  std::vector<std::string> worker_flags_;
  bool use_spawner_;
  pid_t spawner_pid_ = 0;  // a detached child: reaped here
  int spawner_fd_ = -1;    // kvd's end of the spawner's socket
  bool spare_requested_ = false;
  pid_t spare_pid_ = 0;  // the spare in hand (our child), if spare_fd_ >= 0
  int spare_fd_ = -1;    // kvd's end of its socket
};

}  // namespace kv::daemon
