#include "daemon/sibling_fork.h"

#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>

namespace kv::daemon {

pid_t ForkSibling() {
  int* tid_address = nullptr;  // &THREAD_SELF->tid: glibc passed it to set_tid_address at start
  if (::prctl(PR_GET_TID_ADDRESS, &tid_address) != 0 || tid_address == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  void* robust_head = nullptr;
  std::size_t robust_length = 0;
  bool robust = ::syscall(SYS_get_robust_list, 0, &robust_head, &robust_length) == 0;
  // The flags of glibc's own fork (arch_fork), plus CLONE_PARENT.
  long pid =
      ::syscall(SYS_clone, CLONE_PARENT | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD,
                nullptr, nullptr, tid_address, 0);
  if (pid == 0 && robust) ::syscall(SYS_set_robust_list, robust_head, robust_length);
  return static_cast<pid_t>(pid);
}

}  // namespace kv::daemon
