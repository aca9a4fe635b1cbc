// Whether an idle bucket worker spins before it sleeps (docs/design.md, "Waiting").
//
// A spin pays only if a request arrives within it. On an idle machine a client in a write loop
// sends its next request a microsecond after its reply, and a spin saves both sides a futex
// round trip; on a busy machine (the client preempted by other work, or sharing the worker's
// CPU) or with a client that writes now and then, the spin only burns the CPU (or the CPU quota)
// the clients need. So the worker decides from what recent spins earned, per channel:
//   - an idle period (every ring found empty) that a channel's request ends is "earned" for that
//     channel if it lasted no longer than the spin bound (a spin would have caught it, whether
//     the worker spun or slept), else "wasted";
//   - each channel keeps a score of its recent idle periods (an exponential average);
//   - the worker spins through an idle period only if some channel's score says spins have paid
//     for it lately, else it sleeps at once; one idle period in kProbeEvery spins anyway, so a
//     channel whose requests become quick again is noticed even where waking from a sleep takes
//     longer than the spin bound (then every slept period looks wasted);
//   - only channels whose client last sent from another CPU count, and the probe spins only if
//     there is one: a client on the worker's own CPU cannot send while the worker spins.
// The worker's own preemptions are not a reason to stop: a spin that a channel's score justifies
// takes the worker's fair share of a shared CPU and nothing more, and stopping at every pair of
// involuntary context switches (shm/cpu_contention.h, as the group commit's gather still does)
// halved the sync put rate, idle (kernel threads preempt a spinner too) and beside two busy
// loops alike (2026-12-06: 104k/s against 173-229k/s beside two).
// With shm::kWaitDedicated (kv's processes have CPUs of their own) every idle period spins the
// whole bound.
//
// Single-threaded: owned by the worker's loop.
#pragma once

#include <chrono>
#include <cstdint>

#include "shm/anchor.h"
#include "shm/spin_score.h"

namespace kv::daemon {

using shm::SpinScore;

class IdleSpin {
 public:
  IdleSpin(shm::WaitPolicy policy, std::chrono::microseconds bound)
      : policy_(policy), bound_(bound) {}

  // The channels a spin could serve: those whose client is on another CPU than the worker.
  struct Channels {
    bool elsewhere = false;  // there is one
    bool earning = false;    // and one of them has SpinScore::Earns()
  };
  // How long to spin in the idle period that begins now: the bound or zero.
  std::chrono::nanoseconds Budget(Channels channels) {
    if (policy_ == shm::kWaitDedicated) return bound_;
    if (channels.earning) return bound_;
    if (!channels.elsewhere) return std::chrono::nanoseconds(0);
    return ++periods_ % kProbeEvery == 0 ? bound_ : std::chrono::nanoseconds(0);
  }
  // Whether an idle period of `length` counts as earned.
  bool Earned(std::chrono::nanoseconds length) const { return length <= bound_; }

 private:
  static constexpr unsigned kProbeEvery = 16;
  shm::WaitPolicy policy_;
  std::chrono::nanoseconds bound_;
  unsigned periods_ = 0;
};

}  // namespace kv::daemon
