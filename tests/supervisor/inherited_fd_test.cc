// kvd passes on no descriptor it inherited: the spawner, its spares and every worker (forked by
// the spawner or exec'd by kvd) have only their standard streams and the descriptors kvd gives
// them on purpose, whatever kvd itself was started with.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "tests/supervisor/supervisor_test_util.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using namespace kv::testing;
using std::chrono::seconds;

std::string FdTarget(const std::string& link) {
  char buf[256];
  ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// The descriptors of `pid` that refer to `target` (as /proc/<pid>/fd shows it).
std::vector<int> DescriptorsOf(pid_t pid, const std::string& target) {
  std::vector<int> out;
  std::string dir_path = "/proc/" + std::to_string(pid) + "/fd";
  DIR* dir = ::opendir(dir_path.c_str());
  if (dir == nullptr) return out;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    if (FdTarget(dir_path + "/" + e->d_name) == target) out.push_back(std::atoi(e->d_name));
  }
  ::closedir(dir);
  return out;
}

// A pipe without close-on-exec, open in this process and in the kvd it starts (the harness
// forks and execs kvd).
class InheritedPipe {
 public:
  InheritedPipe() {
    EXPECT_EQ(::pipe(fds_), 0) << std::strerror(errno);
    target_ = FdTarget("/proc/self/fd/" + std::to_string(fds_[0]));
  }
  ~InheritedPipe() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  const std::string& target() const { return target_; }

 private:
  int fds_[2] = {-1, -1};
  std::string target_;
};

class SupervisorInheritedFdTest : public ::testing::TestWithParam<bool> {};

TEST_P(SupervisorInheritedFdTest, NoChildOfKvdHasKvdsInheritedDescriptors) {
  const bool exec_workers = GetParam();
  InheritedPipe pipe;
  ASSERT_EQ(pipe.target().rfind("pipe:", 0), 0u) << pipe.target();
  std::vector<std::string> args;
  if (exec_workers) args.push_back("--exec-workers");
  KvdInstance kvd(args);
  ASSERT_FALSE(DescriptorsOf(kvd.pid(), pipe.target()).empty()) << "kvd must inherit the pipe";
  {
    auto client = kvd.NewClient();
    ASSERT_TRUE(client);
    ASSERT_TRUE(client->CreateBucket("a").ok());
    ASSERT_TRUE(client->CreateBucket("b").ok());
  }
  // kvd, two workers, and without --exec-workers the spawner and its next spare.
  const std::size_t expected = exec_workers ? 3 : 5;
  ASSERT_TRUE(
      WaitFor([&] { return ProcessesOfNamespace(kvd.ns()).size() >= expected; }, seconds(10)))
      << ProcessesOfNamespace(kvd.ns()).size() << " processes";
  std::vector<pid_t> children;
  for (pid_t pid : ProcessesOfNamespace(kvd.ns())) {
    if (pid != kvd.pid()) children.push_back(pid);
  }
  ASSERT_EQ(children.size(), expected - 1);
  for (pid_t pid : children) {
    std::vector<int> fds = DescriptorsOf(pid, pipe.target());
    EXPECT_TRUE(fds.empty()) << "process " << pid << " has kvd's inherited pipe as fd "
                             << fds.front();
  }
  // The workers still got what kvd gives them on purpose: they started and said READY.
  EXPECT_TRUE(WaitForState(kvd.ns(), "a", shm::kBucketRunning, seconds(10), 0));
  EXPECT_TRUE(WaitForState(kvd.ns(), "b", shm::kBucketRunning, seconds(10), 0));
}

INSTANTIATE_TEST_SUITE_P(LaunchModes, SupervisorInheritedFdTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "ExecWorkers" : "Spawner";
                         });

}  // namespace
}  // namespace kv
