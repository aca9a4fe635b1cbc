#include "daemon/persistence/snapshot_priority.h"

#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <thread>

namespace kv::daemon::persistence {
namespace {

// SIGALRM, kSnapshotIdleSeconds after the start: the writer leaves the idle class (its nice
// value stays kSnapshotNice). One system call: async-signal-safe.
void LeaveIdleClass(int) {
  struct sched_param none {};
  ::sched_setscheduler(0, SCHED_OTHER, &none);
}

}  // namespace

// The thread inherits the caller's nice value; scheduling policies are per thread.
bool MayLeaveIdleClass() {
  bool may = false;
  std::thread([&may] {
    struct sched_param none {};
    may = ::sched_setscheduler(0, SCHED_IDLE, &none) == 0 &&
          ::sched_setscheduler(0, SCHED_OTHER, &none) == 0;
  }).join();
  return may;
}

void LowerSnapshotWriterPriority() {
  ::setpriority(PRIO_PROCESS, 0, kSnapshotNice);
  if (!MayLeaveIdleClass()) return;
  struct sigaction action {};
  action.sa_handler = LeaveIdleClass;
  action.sa_flags = SA_RESTART;
  if (::sigaction(SIGALRM, &action, nullptr) != 0) return;
  struct sched_param none {};
  if (::sched_setscheduler(0, SCHED_IDLE, &none) == 0) ::alarm(kSnapshotIdleSeconds);
}

}  // namespace kv::daemon::persistence
