// Process identity for supervision: a pid alone can be reused, (pid, start time) cannot.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace kv::daemon {

// Start time of `pid` in clock ticks since boot (/proc/<pid>/stat field 22); 0 if it is gone.
std::uint64_t ProcessStartTicks(pid_t pid);
// True if `pid` runs and started at `start_ticks`.
bool ProcessMatches(pid_t pid, std::uint64_t start_ticks);
std::uint64_t UnixMillisNow();
std::uint64_t MonotonicNanosNow();
// Contents of a /proc file, empty if it cannot be read. Never throws: a process may exit between
// open and read, and then read fails with ESRCH (std::ifstream iterators throw on that).
std::string ReadProcFile(const std::string& path);
// Rewrites this process's command line (/proc/self/cmdline, as ps shows it) in place to
// argv[0] followed by `args`, as many whole arguments as fit in the space of the original
// arguments; the rest of that space is zeroed. Used by a worker forked from the spawner, whose
// inherited command line would otherwise be the spawner's. REQUIRES: argv as main() received it.
void RetitleCommandLine(int argc, char** argv, const std::vector<std::string>& args);
// Absolute path of the running executable (/proc/self/exe).
std::string SelfExecutable();

}  // namespace kv::daemon
