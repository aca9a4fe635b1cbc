// The process-test harness (redis's start_server): a real kvd in a namespace of its own.
//
// Contract: the constructor starts kvd (paths baked in at build time), waits until it accepts
// control requests, and returns; the destructor stops it with SIGTERM, then SIGKILL, kills every
// process started for the namespace (workers, orphans of a killed kvd), and removes every
// /dev/shm object of the namespace -- also when the test failed. Namespaces are
// kTestNamespacePrefix followed by the pid of the test process that made them, so that a CTest
// cleanup fixture can sweep what a crashed test process left -- and only that: test runs on the
// same host (other ctest invocations, other checkouts) must not kill each other's instances.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "kv/client.h"

namespace kv::testing {

inline constexpr char kTestNamespacePrefix[] = "kvt";

// A namespace no other test (in this or another process) uses.
std::string UniqueNamespace();

// The pid of the process that made test namespace `ns` (UniqueNamespace), 0 if `ns` is not one.
pid_t NamespaceOwner(const std::string& ns);
// True if `ns` is a test namespace whose owner has exited (or is a zombie): what the cleanup
// fixture may sweep. A namespace whose owner's pid was reused stays until a later sweep.
bool IsLeftoverNamespace(const std::string& ns);

// Paths of the built executables.
std::string KvdPath();
std::string KvctlPath();

class KvdInstance {
 public:
  // `kvd_path`: the kvd executable to run (it starts its workers from the same file).
  explicit KvdInstance(std::vector<std::string> extra_args = {}, std::string kvd_path = KvdPath());
  ~KvdInstance();
  KvdInstance(const KvdInstance&) = delete;
  KvdInstance& operator=(const KvdInstance&) = delete;

  const std::string& ns() const { return ns_; }
  pid_t pid() const { return pid_; }

  // Starts kvd (again, e.g. after Kill). Returns false if it did not become ready in time.
  bool Start();
  // Sends `sig` to kvd; with SIGKILL also reaps it (its workers keep running, orphaned).
  void Signal(int sig);
  // SIGTERM and wait for a clean exit; returns kvd's exit status (or -1).
  int Stop();

  // A fresh client for this namespace (fails the test if it cannot open).
  std::shared_ptr<Client> NewClient(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Pid of the worker serving `bucket` now (0 if none), from `kvctl`-independent registry reads.
  pid_t WorkerPid(const std::string& bucket);

 private:
  std::string ns_;
  std::vector<std::string> extra_args_;
  std::string kvd_path_;
  pid_t pid_ = 0;
};

// Every pid whose command line contains "--namespace <ns>" (kvd, its spawner and the spawner's
// unassigned spare, workers).
std::vector<pid_t> ProcessesOfNamespace(const std::string& ns);
// The same without the spawner and its spare: kvd and the workers.
std::vector<pid_t> KvdAndWorkersOfNamespace(const std::string& ns);
// /dev/shm entries named "<ns>.*".
std::vector<std::string> ShmObjectsOfNamespace(const std::string& ns);
// SIGKILLs `pids` and returns once each has exited: reaped if it is a child of this process (an
// orphaned worker is: the test process is a subreaper), else a zombie or gone. Only then has the
// kernel closed its files, and with them a worker's bucket socket (its writer lock): a process's
// command line reads empty from early in its exit, so its absence from ProcessesOfNamespace does
// not say that the bucket can be served again.
void KillAndAwaitExit(const std::vector<pid_t>& pids);
// Kills every process of `ns` (KillAndAwaitExit) and removes its /dev/shm objects.
void SweepNamespace(const std::string& ns);

// Runs a command, feeding `input` to its stdin; returns its exit code and captures stdout/stderr.
struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& input = {},
                         const std::vector<std::string>& extra_env = {});

// The whole contents of the file at `path`; empty if it cannot be read.
std::string ReadFile(const std::string& path);

// Waits until `predicate` holds or `timeout` passes.
template <typename Predicate>
bool WaitFor(Predicate predicate, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!predicate()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    struct timespec ts = {0, 1'000'000};
    nanosleep(&ts, nullptr);
  }
  return true;
}

}  // namespace kv::testing
