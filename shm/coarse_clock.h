// A cheap clock for "at most once per tick" decisions in the write path.
#pragma once

#include <time.h>

namespace kv::shm {

// Milliseconds of CLOCK_MONOTONIC_COARSE: no system call (vDSO), and advancing once per kernel
// tick (1-4 ms).
inline long CoarseMillis() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1'000'000;
}

}  // namespace kv::shm
