// Shared by the benchmark executables: the header every benchmark prints (version, build type,
// WARNING lines for builds whose figures mean little) and a private kvd to measure against.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "kv/client.h"

namespace kv::bench {

// "release", "debug" or "sanitizer".
const char* BuildType();
// Prints "<name> <version>, build <type>" and WARNING lines for debug or sanitizer builds.
void PrintHeader(const std::string& name);

// A kvd of our own in namespace "kvbench<pid>" (--ephemeral), started from `kvd` or, when empty,
// from ../daemon/kvd next to this executable. Stopped, and its shared memory removed, on
// destruction; dies with the benchmark (PR_SET_PDEATHSIG) if the benchmark is killed.
class BenchDaemon {
 public:
  explicit BenchDaemon(std::string kvd = {}, const std::string& extra_args = {});
  ~BenchDaemon();
  BenchDaemon(const BenchDaemon&) = delete;
  BenchDaemon& operator=(const BenchDaemon&) = delete;

  const std::string& ns() const { return ns_; }
  // A client (with `options`, in this namespace) once kvd answers; nullptr if it never does
  // within 10 s.
  std::shared_ptr<Client> Connect(ClientOptions options = {});

 private:
  std::string ns_;
  pid_t pid_ = 0;
};

}  // namespace kv::bench
