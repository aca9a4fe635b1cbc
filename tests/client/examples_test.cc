// examples/guide.c and examples/guide.cc (built in this tree) against a real kvd: both print the
// Elixir guide's bucket session, taking the namespace from argv or from $KV_NAMESPACE. And
// examples/epoll_watch.c: one epoll loop over several buckets' subscription fds.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "tests/client/client_testing.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::client_testing::kGuideSession;
using kv::testing::KvdInstance;
using kv::testing::RunCommand;

class ExamplesTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ExamplesTest, GuidePrintsTheSessionWithNamespaceFromArgv) {
  KvdInstance kvd;
  auto r = RunCommand({GetParam(), kvd.ns()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, kGuideSession);
  r = RunCommand({GetParam(), kvd.ns()});  // the session leaves the bucket as it found it
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, kGuideSession);
}

TEST_P(ExamplesTest, GuidePrintsTheSessionWithNamespaceFromEnvironment) {
  KvdInstance kvd;
  auto r = RunCommand({GetParam()}, {}, {"KV_NAMESPACE=" + kvd.ns()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, kGuideSession);
}

TEST_P(ExamplesTest, GuideWithoutKvdFailsWithTheError) {
  auto r = RunCommand({GetParam(), kv::testing::UniqueNamespace()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("UNAVAILABLE"), std::string::npos) << r.err;
}

// The lines `fd` gives within `timeout_ms` until `want` of them arrived.
std::string ReadLines(int fd, int want, int timeout_ms) {
  std::string out;
  char c;
  while (want > 0) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0 || ::read(fd, &c, 1) != 1) break;
    out.push_back(c);
    if (c == '\n') --want;
  }
  return out;
}

TEST(EpollWatchExampleTest, PrintsEachChangeOfEveryWatchedBucket) {
  using namespace std::chrono_literals;
  KvdInstance kvd;
  auto client = kvd.NewClient();
  ASSERT_TRUE(client);
  for (const char* name : {"red", "blue"}) ASSERT_TRUE(client->CreateBucket(name).ok());
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::close(out[0]);
    ::close(out[1]);
    std::string ns = kvd.ns();
    ::execl(KV_EPOLL_WATCH_PATH, KV_EPOLL_WATCH_PATH, "-n", ns.c_str(), "-c", "3", "red", "blue",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ASSERT_GT(pid, 0);
  ::close(out[1]);
  EXPECT_EQ(ReadLines(out[0], 1, 10'000), "watching 2 buckets\n");
  Result<Bucket> red = client->OpenBucket("red");
  Result<Bucket> blue = client->OpenBucket("blue");
  ASSERT_TRUE(red.ok() && blue.ok());
  ASSERT_TRUE(blue->Put("milk", "1").ok());
  EXPECT_EQ(ReadLines(out[0], 1, 10'000), "blue milk SET\n");
  ASSERT_TRUE(red->Put("eggs", "2", 50ms).ok());
  EXPECT_EQ(ReadLines(out[0], 2, 20'000), "red eggs SET\nred eggs EXPIRED\n");
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) ::kill(pid, SIGKILL);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ::close(out[0]);
}

INSTANTIATE_TEST_SUITE_P(CAndCpp, ExamplesTest, ::testing::Values(KV_GUIDE_C_PATH, KV_GUIDE_PATH),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return info.index == 0 ? std::string("C") : std::string("Cpp");
                         });

}  // namespace
}  // namespace kv
