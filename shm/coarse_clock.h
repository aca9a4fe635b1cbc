// Cheap clocks: "at most once per tick" decisions in the write path, and key expiry times.
#pragma once

#include <time.h>

#include <cstdint>

namespace kv::shm {

// Milliseconds of CLOCK_MONOTONIC_COARSE: no system call (vDSO), and advancing once per kernel
// tick (1-4 ms).
inline long CoarseMillis() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1'000'000;
}

// Milliseconds since the Unix epoch by CLOCK_REALTIME_COARSE (vDSO, no system call; one kernel
// tick of resolution). The clock of key expiry times (docs/shm_format.md, "Records"): wall-clock
// based, so that an expiry time stored in shared memory or on disk means the same in every
// process and after a reboot.
inline std::uint64_t RealtimeCoarseMillis() {
  timespec ts;
  ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000 +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1'000'000;
}

}  // namespace kv::shm
