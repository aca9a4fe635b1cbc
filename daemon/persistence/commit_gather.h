// When the worker's group commit (appendfsync always, docs/persistence.md "Group commit") makes
// its pending writes durable: at once, or after a short wait for the clients its last commit
// answered. Those clients are sending their next writes while the worker decides; a commit that
// starts before they arrive leaves them to the next one, so each sync carries about half of the
// clients (one sync takes those present, the rest arrive during it) and every client pays two
// syncs a write. Waiting for them, up to about one sync's time, lets one sync carry them all.
// Redis's event loop does not wait: this is where kv's `always` gains on it with several clients.
// With one client the wait ends as soon as it arrives, so it costs nothing there. For the same
// reason the worker does not go to sleep right after a commit that answered clients (Expecting):
// their next requests are on their way, and a sleeping worker would need each of them to ring
// its doorbell (a system call and a wake-up on both sides, per write).
//
// Both waits spin (with sched_yield), so neither happens while the worker's CPU is contended
// (shm/cpu_contention.h, as the idle spin): there a spinning worker takes the CPU its clients
// need to arrive, and the commit goes at once as before.
//
// The worker tags each channel its commit answered with the commit's round (last() after
// Committed) and reports a channel joining the pending commit (Joined) or one closed (Left).
// Not thread-safe: the worker's thread only.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "shm/cpu_contention.h"

namespace kv::daemon::persistence {

class CommitGather {
 public:
  using Clock = std::chrono::steady_clock;
  // The longest wait, whatever syncs cost.
  static constexpr Clock::duration kMaxWait = std::chrono::microseconds(1000);

  // `watch_contention` false: wait whatever the CPU (a test of the rule itself).
  explicit CommitGather(bool watch_contention = true) : watch_contention_(watch_contention) {}

  // The round of the last commit (0: none yet): a channel that commit answered carries it.
  std::uint64_t last() const { return last_; }
  // A channel joined the pending commit; `answered_round` is the round that last answered it.
  void Joined(std::uint64_t answered_round) {
    if (answered_round == last_ && last_ != 0) ++arrived_;
  }
  // A channel the last commit answered is closed before it joined the pending one.
  void Left() {
    if (awaited_ > 0) --awaited_;
  }
  // True while the pending commit should wait for more of the clients the last commit answered:
  // not all of them are here and the wait (started by the first call of the round) is shorter
  // than the last syncs took (an average), at most kMaxWait.
  bool Wait(Clock::time_point now) {
    if (arrived_ >= awaited_ || Contended()) return false;
    if (!waiting_) {
      waiting_ = true;
      deadline_ = now + std::min(sync_time_, kMaxWait);
    }
    return now < deadline_;
  }
  // True while no channel the last commit answered has joined a new commit yet, for about one
  // sync's time after that commit: a pass that took nothing looks again instead of sleeping.
  bool Expecting(Clock::time_point now) {
    return arrived_ == 0 && awaited_ > 0 && now - committed_at_ < std::min(sync_time_, kMaxWait) &&
           !Contended();
  }
  // The pending commit is done at `now`: it answered `answered` channels (tagged last() + 1 by
  // the caller) and its sync took `sync_time` (zero: it needed none).
  void Committed(std::size_t answered, Clock::duration sync_time, Clock::time_point now) {
    ++last_;
    committed_at_ = now;
    awaited_ = answered;
    arrived_ = 0;
    waiting_ = false;
    if (sync_time > Clock::duration::zero()) sync_time_ = (3 * sync_time_ + sync_time) / 4;
  }

 private:
  bool Contended() { return watch_contention_ && contention_.Contended(); }

  bool watch_contention_;
  std::uint64_t last_ = 0;
  std::size_t awaited_ = 0;  // channels the last commit answered
  std::size_t arrived_ = 0;  // of them, those that joined the pending commit
  bool waiting_ = false;
  Clock::time_point deadline_;
  Clock::time_point committed_at_;
  Clock::duration sync_time_ = std::chrono::microseconds(200);
  shm::CpuContention contention_;
};

}  // namespace kv::daemon::persistence
