// Whether the calling thread competes for its CPU (docs/design.md, "Waiting").
//
// A thread that spins while other work wants its CPU is preempted at the end of its time slice
// (an involuntary context switch) and then waits a whole slice (milliseconds) for the CPU back;
// under EEVDF the CPU time it burned spinning also makes it wait longer after every wake-up. So
// the group commit's gather (daemon/persistence/commit_gather.h) stops spinning while the worker
// sees itself preempted: two or more involuntary context switches within kWindowMs mark the CPU
// contended for the next kQuietMs, during which it only sleep-waits (as Redis always does); after
// it, it tries spinning again. The idle spin does not use it (daemon/idle_spin.h says why).
//
// Cost: one getrusage(RUSAGE_THREAD) a millisecond at most, read off the coarse clock (no system
// call). Private to one thread: the worker is single-threaded.
//
// Clients do not use it: a client spins only while its worker is awake on another CPU or is
// being woken there (libkvclient/write_channel.cc), and under load the preemptions it would
// count are mostly its own spin's, so the check made it sleep exactly when a reply was near.
#pragma once

#include <sys/resource.h>

#include "shm/coarse_clock.h"

namespace kv::shm {

class CpuContention {
 public:
  bool Contended() {
    long now_ms = CoarseMillis();
    if (now_ms != checked_ms_) {
      checked_ms_ = now_ms;
      rusage u{};
      ::getrusage(RUSAGE_THREAD, &u);
      if (now_ms - window_start_ms_ >= kWindowMs) {
        window_start_ms_ = now_ms;
        window_start_switches_ = u.ru_nivcsw;
      }
      if (u.ru_nivcsw - window_start_switches_ >= kSwitches) {
        contended_until_ms_ = now_ms + kQuietMs;
        window_start_switches_ = u.ru_nivcsw;
      }
    }
    return now_ms < contended_until_ms_;
  }

 private:
  static constexpr long kWindowMs = 20;
  static constexpr long kSwitches = 2;
  static constexpr long kQuietMs = 200;
  long checked_ms_ = -1;
  long window_start_ms_ = -1'000'000;
  long window_start_switches_ = 0;
  long contended_until_ms_ = -1;
};

}  // namespace kv::shm
