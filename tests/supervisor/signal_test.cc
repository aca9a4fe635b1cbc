// kvd signals workers only through their pidfds (daemon/pidfd.h): a process that has exited is
// never signalled, even when its pid now belongs to another process; and adopted workers (kvd
// killed and started again) are still dropped, restarted, replaced and stopped through them.
#include <gtest/gtest.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "daemon/pidfd.h"
#include "daemon/process_info.h"
#include "tests/supervisor/supervisor_test_util.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using namespace kv::testing;
using std::chrono::seconds;

[[noreturn]] void PauseForever() {
  for (;;) ::pause();
}

// A child that waits for a signal; with `pid` > 0 it gets exactly that pid (clone3 set_tid, which
// needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE). Returns the child's pid, or -1 with errno.
pid_t StartPauser(pid_t pid = 0) {
  if (pid == 0) {
    pid_t child = ::fork();
    if (child == 0) PauseForever();
    return child;
  }
  pid_t tids[1] = {pid};
  clone_args args{};
  args.exit_signal = SIGCHLD;
  args.set_tid = reinterpret_cast<std::uintptr_t>(tids);
  args.set_tid_size = 1;
  long child = ::syscall(SYS_clone3, &args, sizeof args);
  if (child == 0) PauseForever();  // only async-signal-safe calls in this raw clone
  return static_cast<pid_t>(child);
}

// The signal that ended child `pid` (reaping it), 0 if it did not end by a signal.
int TerminatingSignal(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return 0;
  return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

TEST(PidfdTest, ReapedProcessIsNeverSignalledThroughItsPidfdEvenWhenItsPidIsReused) {
  pid_t old_pid = StartPauser();
  ASSERT_GT(old_pid, 0);
  int pidfd = daemon::PidfdOpen(old_pid);
  ASSERT_GE(pidfd, 0) << std::strerror(errno);
  EXPECT_EQ(daemon::SignalProcess(pidfd, old_pid, 0), 0) << "the process runs";
  ASSERT_EQ(daemon::SignalProcess(pidfd, old_pid, SIGKILL), 0);
  ASSERT_EQ(TerminatingSignal(old_pid), SIGKILL);

  EXPECT_EQ(daemon::SignalProcess(pidfd, old_pid, SIGKILL), ESRCH);

  // A new process with the reaped one's pid, if this test may choose pids; else any new process.
  pid_t reuser = StartPauser(old_pid);
  bool reused = reuser == old_pid;
  if (reuser < 0) {
    std::cerr << "pid reuse not possible here (" << std::strerror(errno)
              << "): checking against a new process with another pid\n";
    reuser = StartPauser();
  }
  ASSERT_GT(reuser, 0);
  EXPECT_EQ(daemon::SignalProcess(pidfd, old_pid, SIGKILL), ESRCH);
  // The pid fallback reaches whatever process has the pid now: that one dies of SIGTERM, not of
  // the SIGKILL sent through the old pidfd before (which would have been delivered first).
  EXPECT_EQ(daemon::SignalProcess(-1, reuser, SIGTERM), 0);
  EXPECT_EQ(TerminatingSignal(reuser), SIGTERM) << (reused ? "pid reused" : "pid not reused");
  ::close(pidfd);

  EXPECT_EQ(daemon::SignalProcess(-1, 0, SIGKILL), EINVAL) << "kill(0) would signal the group";
}

// True once `pid` has exited (reaped, or a zombie of this process, the harness's subreaper).
bool Exited(pid_t pid) {
  ReapExited({pid});
  std::string stat = daemon::ReadProcFile("/proc/" + std::to_string(pid) + "/stat");
  std::size_t close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] == 'Z';
}

TEST(SupervisorSignalTest, AdoptedWorkersAreDroppedRestartedReplacedAndStopped) {
  KvdInstance kvd;
  const std::vector<std::string> names = {"dropped", "restarted", "killed", "stopped"};
  std::vector<pid_t> before;
  {
    auto client = kvd.NewClient();
    ASSERT_TRUE(client);
    for (const std::string& name : names) {
      ASSERT_TRUE(client->CreateBucket(name).ok());
      before.push_back(kvd.WorkerPid(name));
      ASSERT_GT(before.back(), 0);
    }
  }
  kvd.Signal(SIGKILL);  // the workers run on, re-parented to this process
  ASSERT_TRUE(kvd.Start());
  auto client = kvd.NewClient();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->CreateBucket(names[0]).ok());  // answered once every worker is adopted
  for (std::size_t i = 0; i < names.size(); ++i) {
    ASSERT_EQ(kvd.WorkerPid(names[i]), before[i]) << names[i] << " must be adopted";
  }

  // Drop: SIGUSR1 + SIGCONT to the adopted worker.
  ASSERT_TRUE(client->DropBucket("dropped").ok());
  EXPECT_TRUE(WaitFor([&] { return Exited(before[0]); }, seconds(10)));
  EXPECT_FALSE(Record(kvd.ns(), "dropped").has_value());

  // Restart: SIGTERM + SIGCONT, then a new worker.
  ASSERT_TRUE(client->RestartBucket("restarted").ok());
  EXPECT_TRUE(WaitFor([&] { return Exited(before[1]); }, seconds(10)));
  EXPECT_TRUE(WaitForState(kvd.ns(), "restarted", shm::kBucketRunning, seconds(10), before[1]));

  // An adopted worker killed from outside: kvd learns it through the pidfd and replaces it.
  CommandResult killed =
      RunCommand({KvctlPath(), "--namespace", kvd.ns(), "kill", "killed", "--wait"});
  EXPECT_EQ(killed.exit_code, 0) << killed.out << killed.err;
  EXPECT_TRUE(WaitFor([&] { return Exited(before[2]); }, seconds(10)));
  EXPECT_TRUE(WaitForState(kvd.ns(), "killed", shm::kBucketRunning, seconds(10), before[2]));

  // SIGTERM to kvd stops every worker: the adopted one and the two started since.
  std::vector<pid_t> workers = {before[3], kvd.WorkerPid("restarted"), kvd.WorkerPid("killed")};
  EXPECT_EQ(kvd.Stop(), 0);
  for (pid_t pid : workers) EXPECT_TRUE(WaitFor([&] { return Exited(pid); }, seconds(10))) << pid;
  EXPECT_TRUE(ProcessesOfNamespace(kvd.ns()).empty());
}

}  // namespace
}  // namespace kv
