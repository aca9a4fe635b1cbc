#include "daemon/worker_priority.h"

#include <sys/resource.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace kv::daemon {

bool SetWorkerNice(int nice) {
  errno = 0;
  int current = ::getpriority(PRIO_PROCESS, 0);
  if (errno == 0 && current == nice) return true;
  if (::setpriority(PRIO_PROCESS, 0, nice) == 0) return true;
  int e = errno;
  spdlog::warn(
      "worker runs at nice {}, not the configured worker-nice {}: {} (allow it with "
      "LimitNICE={} in the unit, or CAP_SYS_NICE)",
      errno == 0 ? current : 0, nice, std::strerror(e), nice);
  return false;
}

}  // namespace kv::daemon
