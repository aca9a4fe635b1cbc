// The scheduling priority of a bucket worker (docs/design.md, "Waiting"; kvd's `worker-nice`).
//
// A worker serves every client of its bucket, and each of them waits for it: when the CPUs are
// shared, a client that the worker has just woken on the worker's own CPU preempts it (the woken
// task runs first), and every other client then waits for the worker to get its CPU back. A
// worker niced below its clients keeps its CPU through those wake-ups. It never takes CPU time
// nobody asked for: it runs only for requests, and spins only where spins pay (idle_spin.h). But
// load balancing weighs it heavier, and other processes get less CPU: 0 is the default, a lower
// value the operator's choice (docs/operations.md, "Busy hosts and dedicated cores"), and
// BusyPriority ranks it above its clients only while several of them write at once.
#pragma once

#include <chrono>
#include <cstdint>

namespace kv::daemon {

// Sets the calling thread's nice value (Linux: per thread, inherited by threads and processes it
// creates later), so it must be called before the worker starts any. Lowering it below the
// current value needs CAP_SYS_NICE or an RLIMIT_NICE that allows it (systemd: LimitNICE=); where
// it is not allowed, logs a warning that says so and keeps the current value. Returns whether
// the value was applied.
bool SetWorkerNice(int nice);

// The worker's nice value follows how many clients write at once (kvd's worker-busy-nice): while
// two or more channels delivered requests within a window, it runs at `busy_nice`, otherwise at
// `nice`. With one client there is no other client to keep waiting when that client's wake-up
// takes the worker's CPU, and a reader beside a writer keeps its share (the worker is weighed
// as any process); with several, each preemption of the worker stalls them all, and
// ranked above them the worker serves them as fast as it serves one.
//
// Contract: used by the worker's loop thread only (a nice value is per thread on Linux, and the
// loop is the thread that serves requests). Delivered for each channel that delivered requests
// in a pass; Tick from the loop at least once a window while requests come, with the clock read
// the loop has anyway. Where lowering the value is not allowed it logs once and stays at `nice`.
class BusyPriority {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kWindow = std::chrono::milliseconds(10);

  BusyPriority(int nice, int busy_nice) : nice_(nice), busy_nice_(busy_nice) {}

  // `seen` is the channel's own word (0 at first): a channel counts once per window.
  void Delivered(std::uint64_t* seen) {
    if (*seen != window_) {
      *seen = window_;
      ++channels_;
    }
  }
  void Tick(Clock::time_point now);

 private:
  int nice_;
  int busy_nice_;
  std::uint64_t window_ = 1;
  int channels_ = 0;  // channels that delivered in this window
  Clock::time_point window_start_{};
  bool busy_ = false;
  bool refused_ = false;  // setpriority refused busy_nice_: stay at nice_
};

}  // namespace kv::daemon
