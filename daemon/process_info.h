// Process identity for supervision: a pid alone can be reused, (pid, start time) cannot.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace kv::daemon {

// Start time of `pid` in clock ticks since boot (/proc/<pid>/stat field 22); 0 if it is gone.
std::uint64_t ProcessStartTicks(pid_t pid);
// True if `pid` runs and started at `start_ticks`.
bool ProcessMatches(pid_t pid, std::uint64_t start_ticks);
std::uint64_t UnixMillisNow();
std::uint64_t MonotonicNanosNow();
// True if `pid` runs `kvd --worker` for bucket `bucket_id` of namespace `ns` (its command line).
// Used to find a worker that kvd started but died before recording.
bool IsWorkerOf(pid_t pid, const std::string& ns, std::uint64_t bucket_id);
// Contents of a /proc file, empty if it cannot be read. Never throws: a process may exit between
// open and read, and then read fails with ESRCH (std::ifstream iterators throw on that).
std::string ReadProcFile(const std::string& path);
// Absolute path of the running executable (/proc/self/exe).
std::string SelfExecutable();

}  // namespace kv::daemon
