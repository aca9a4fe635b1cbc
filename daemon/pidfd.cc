#include "daemon/pidfd.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace kv::daemon {

int PidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

int SignalProcess(int pidfd, pid_t pid, int sig) {
  if (pidfd >= 0) {
    // glibc 2.36 has no wrapper.
    return ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0 ? 0 : errno;
  }
  if (pid <= 0) return EINVAL;  // kill(0 or -1) would signal a group or everything
  return ::kill(pid, sig) == 0 ? 0 : errno;
}

}  // namespace kv::daemon
