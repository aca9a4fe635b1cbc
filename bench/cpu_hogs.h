// Load for the "busy host" measurements: processes that keep CPUs busy while a workload runs.
#pragma once

#include <sys/types.h>

#include <vector>

namespace kv::bench {

// `count` child processes, each an endless busy loop at the caller's nice level (no affinity, so
// the scheduler spreads them as it would any CPU-bound neighbour). Killed and reaped by the
// destructor; they die with the benchmark (PR_SET_PDEATHSIG) if it is killed. Not for use in a
// forked child.
class CpuHogs {
 public:
  explicit CpuHogs(int count);
  ~CpuHogs();
  CpuHogs(const CpuHogs&) = delete;
  CpuHogs& operator=(const CpuHogs&) = delete;

 private:
  std::vector<pid_t> pids_;
};

// Pins process `pid` (0: the caller) to one CPU. False if the kernel refuses.
bool PinToCpu(pid_t pid, int cpu);
// Lets process `pid` (0: the caller) run on every CPU again.
void UnpinFromCpu(pid_t pid);

}  // namespace kv::bench
