// kvd's way of starting a worker process: through the spawner (daemon/spawner.h) when it runs,
// else by fork+exec with Boost.Process. Either way the worker is a child of kvd (kvd is a child
// subreaper, see spawner.h), runs `kvd --worker ...`, has the readiness pipe as fd 1 and starts
// with no signal blocked.
//
// Owned and called by the supervisor's single thread only.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

namespace kv::daemon {

class WorkerLauncher {
 public:
  // `spawner_args`: the spawner's command line (argv without argv[0]); empty: never use one.
  WorkerLauncher(std::string executable, std::vector<std::string> spawner_args);
  ~WorkerLauncher();  // stops the spawner
  WorkerLauncher(const WorkerLauncher&) = delete;
  WorkerLauncher& operator=(const WorkerLauncher&) = delete;

  // Starts `executable worker_args...` with `ready_fd` as its fd 1 (the caller keeps and closes
  // its own descriptor). A spawner that died or fails is restarted once; if it fails again the
  // worker is exec'd. Returns the worker's pid, or 0 with *error.
  pid_t Launch(const std::vector<std::string>& worker_args, int ready_fd, std::string* error);

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
  pid_t LaunchThroughSpawner(const std::vector<std::string>& worker_args, int ready_fd,
                             std::string* error);
  pid_t LaunchByExec(const std::vector<std::string>& worker_args, int ready_fd, std::string* error);

  std::string executable_;
  std::vector<std::string> spawner_args_;
  pid_t spawner_pid_ = 0;  // a detached child: reaped here
  int spawner_fd_ = -1;    // kvd's end of the spawner's socket
  bool spare_requested_ = false;
  pid_t spare_pid_ = 0;  // the spare in hand (our child), if spare_fd_ >= 0
  int spare_fd_ = -1;    // kvd's end of its socket
};

}  // namespace kv::daemon
