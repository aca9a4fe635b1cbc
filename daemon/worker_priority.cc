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

}  // namespace kv::daemon
