// The CTest cleanup fixture (kv_test_sweep) next to a chaos run: it must sweep what a dead test
// process left, and never touch an instance whose test process still runs. Every ctest invocation
// on the host ends with that sweep, so a sweep that took every kvt* namespace SIGKILLed the kvd of
// a concurrent long chaos run and removed its registry ("bucket b0 not restarted" with kvd's log
// ending in "restarting in 40 ms"). Runs the real sweep executable.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/testing/kvd_harness.h"

namespace kv::testing {
namespace {

bool Alive(pid_t pid) { return pid > 0 && ::kill(pid, 0) == 0; }

TEST(SweepTest, LeavesTheInstanceOfALiveTestProcessAlone) {
  KvdInstance kvd;
  auto client = kvd.NewClient();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->CreateBucket("b0").ok());
  pid_t worker = kvd.WorkerPid("b0");
  ASSERT_GT(worker, 0);
  EXPECT_EQ(NamespaceOwner(kvd.ns()), ::getpid());
  EXPECT_FALSE(IsLeftoverNamespace(kvd.ns()));

  CommandResult sweep = RunCommand({KV_TEST_SWEEP_PATH});
  ASSERT_EQ(sweep.exit_code, 0) << sweep.out << sweep.err;

  EXPECT_TRUE(Alive(kvd.pid())) << "the sweep killed a live test's kvd";
  EXPECT_TRUE(Alive(worker)) << "the sweep killed a live test's worker";
  EXPECT_FALSE(ShmObjectsOfNamespace(kvd.ns()).empty()) << "the sweep removed a live registry";
  Result<Bucket> bucket = client->OpenBucket("b0");
  ASSERT_TRUE(bucket.ok()) << bucket.status().ToString();
  EXPECT_TRUE(bucket->Put("k", "v").ok());
}

TEST(SweepTest, RemovesWhatADeadTestProcessLeft) {
  // A "test process" that starts kvd in a namespace of its own, creates a bucket and dies
  // without cleaning up: its shared memory objects stay, and so may its processes (re-parented
  // here: the harness is a subreaper).
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  pid_t test = ::fork();
  ASSERT_GE(test, 0);
  if (test == 0) {
    ::close(report[0]);
    auto* kvd = new KvdInstance();  // never destroyed: this process dies uncleanly
    auto client = kvd->NewClient();
    bool ok = client && client->CreateBucket("b0").ok();
    std::string ns = ok ? kvd->ns() : std::string();
    if (::write(report[1], ns.data(), ns.size()) < 0) ::_exit(2);
    ::_exit(ok ? 0 : 1);
  }
  ::close(report[1]);
  char buf[128];
  ssize_t n = ::read(report[0], buf, sizeof buf);
  ::close(report[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(test, &status, 0), test);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_GT(n, 0);
  std::string ns(buf, static_cast<std::size_t>(n));
  EXPECT_EQ(NamespaceOwner(ns), test);
  EXPECT_TRUE(IsLeftoverNamespace(ns));
  ASSERT_FALSE(ShmObjectsOfNamespace(ns).empty());

  CommandResult sweep = RunCommand({KV_TEST_SWEEP_PATH});
  ASSERT_EQ(sweep.exit_code, 0) << sweep.out << sweep.err;

  EXPECT_TRUE(WaitFor(
      [&] {
        while (::waitpid(-1, nullptr, WNOHANG) > 0) {  // its orphans are ours now
        }
        return ProcessesOfNamespace(ns).empty();
      },
      std::chrono::seconds(10)));
  EXPECT_TRUE(ShmObjectsOfNamespace(ns).empty());
  SweepNamespace(ns);  // in case the sweep failed: leave nothing behind
}

}  // namespace
}  // namespace kv::testing
