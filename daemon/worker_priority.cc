#include "daemon/worker_priority.h"

#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <spdlog/spdlog.h>

namespace kv::daemon {

bool SetWorkerNice(int nice) {
  errno = 0;
  int current = ::getpriority(PRIO_PROCESS, 0);  // -1 is a valid value: errno tells
  bool known = errno == 0;
  if (known && current == nice) return true;
  if (::setpriority(PRIO_PROCESS, 0, nice) == 0) return true;
  int e = errno;
  spdlog::warn(
      "worker runs at nice {}, not the configured worker-nice {}: {} (allow it with "
      "LimitNICE={} in the unit, or CAP_SYS_NICE)",
      known ? std::to_string(current) : "unknown", nice, std::strerror(e), nice);
  return false;
}

void BusyPriority::Tick(Clock::time_point now) {
  if (now - window_start_ < kWindow) return;
  bool busy = channels_ >= 2 && !refused_ && busy_nice_ != nice_;
  if (busy != busy_) {
    // Raising the value again may fail only where worker-nice itself was refused (below the
    // busy value): then the worker keeps the busy value, and does not try each window.
    if (::setpriority(PRIO_PROCESS, 0, busy ? busy_nice_ : nice_) == 0 || !busy) {
      busy_ = busy;
    } else {
      refused_ = true;
      spdlog::warn(
          "worker stays at nice {} while several clients write, not worker-busy-nice {}: {} "
          "(allow it with LimitNICE={} in the unit, or CAP_SYS_NICE)",
          nice_, busy_nice_, std::strerror(errno), busy_nice_);
    }
  }
  ++window_;
  channels_ = 0;
  window_start_ = now;
}

}  // namespace kv::daemon
