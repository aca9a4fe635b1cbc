// The forked snapshot writer's CPU priority (daemon/persistence/snapshot_priority.h): idle
// class first where it may leave it again, then nice 10 in the normal class, so that it yields
// to the worker and its clients but always finishes.
#include "daemon/persistence/snapshot_priority.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include "tests/testing/kvd_harness.h"

namespace kv::daemon::persistence {
namespace {

// Runs in a forked child (the contract: a process of its own, as the snapshot child): exit code
// 0 if the policy and nice value go as documented, else the number of the check that failed.
int CheckInChild() {
  ::setpriority(PRIO_PROCESS, 0, kSnapshotNice);
  bool may_leave = MayLeaveIdleClass();  // as the writer decides it
  LowerSnapshotWriterPriority();
  if (::getpriority(PRIO_PROCESS, 0) != kSnapshotNice) return 1;
  if (!may_leave) return ::sched_getscheduler(0) == SCHED_OTHER ? 0 : 2;
  if (::sched_getscheduler(0) != SCHED_IDLE) return 3;
  // It leaves the idle class kSnapshotIdleSeconds later (the bound only catches a writer that
  // never does; it is not a timing check).
  bool left = kv::testing::WaitFor([] { return ::sched_getscheduler(0) == SCHED_OTHER; },
                                   std::chrono::seconds(60));
  if (!left) return 4;
  return ::getpriority(PRIO_PROCESS, 0) == kSnapshotNice ? 0 : 5;
}

TEST(SnapshotPriorityTest, TheWriterStartsIdleAndEndsAtNiceTen) {
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) ::_exit(CheckInChild());
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "check " << WEXITSTATUS(status) << " failed";
}

}  // namespace
}  // namespace kv::daemon::persistence
