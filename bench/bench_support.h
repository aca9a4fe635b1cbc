// Shared by the benchmark executables: the header every benchmark prints (version, build type,
// WARNING lines for builds whose figures mean little) and a private kvd to measure against.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "kv/client.h"

namespace kv::bench {

// "release", "debug" or "sanitizer".
const char* BuildType();
// Prints "<name> <version>, build <type>" and WARNING lines for debug or sanitizer builds.
void PrintHeader(const std::string& name);

// ../daemon/kvd next to this benchmark's executable (the build tree's layout), or "kvd" if this
// executable's path cannot be read.
std::string DefaultKvdPath();

// For a benchmark's forked child: a bucket of namespace `ns`, through a client of its own (the
// parent's must not be used after fork). Exits the process with 1, saying why on stderr, if the
// client or the bucket cannot be opened.
Bucket OpenBucketOrExit(const std::string& ns, const std::string& bucket);

// The median of `v` (the upper one of an even count); 0 for an empty vector.
double Median(std::vector<double> v);

struct BenchDaemonOptions {
  // The kvd executable; empty: DefaultKvdPath().
  std::string kvd;
  // More kvd flags, one argument an element (e.g. {"--max-buckets", "1016", "--exec-workers"}).
  std::vector<std::string> args;
  // kvd's --log-level (kvd logs to the benchmark's stderr).
  std::string log_level = "error";
  // Appended to the namespace "kvbench<pid>", so that one run can start more than one kvd.
  std::string ns_suffix;
};

// A kvd of our own in namespace "kvbench<pid><ns_suffix>" (--ephemeral, no config file), started
// by the constructor. Stop (or the destructor) stops it and removes every process and /dev/shm
// object of its namespace; kvd dies with the benchmark (PR_SET_PDEATHSIG) if the benchmark is
// killed. Not for use in a forked child.
class BenchDaemon {
 public:
  explicit BenchDaemon(BenchDaemonOptions options = {});
  ~BenchDaemon();
  BenchDaemon(const BenchDaemon&) = delete;
  BenchDaemon& operator=(const BenchDaemon&) = delete;

  const std::string& ns() const { return ns_; }
  // kvd's pid; 0 once it has exited (seen by Connect) or been stopped.
  pid_t pid() const { return pid_; }

  // A client (with `options`, in this namespace) once kvd answers control requests; nullptr if
  // kvd exits first or does not answer within 10 s.
  std::shared_ptr<Client> Connect(ClientOptions options = {});

  // SIGTERM to kvd (a clean shutdown: it stops its workers), up to `grace` for it to exit, then
  // SIGKILL; then SIGKILLs every process left in the namespace (reaping those that are this
  // process's children) and removes the namespace's /dev/shm objects. Idempotent.
  void Stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

 private:
  std::string ns_;
  pid_t pid_ = 0;
};

}  // namespace kv::bench
