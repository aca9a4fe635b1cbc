// kvd's configuration: bad values refused at start (nothing created), flags over the file, SIGHUP
// reloads what can be reloaded (and refuses a broken file), segments persist after a clean stop
// unless --ephemeral.
#include <gtest/gtest.h>
#include <signal.h>

#include "shm/registry.h"
#include "tests/supervisor/supervisor_test_util.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using namespace kv::testing;
using std::chrono::seconds;

struct BadConfig {
  std::vector<std::string> args;
  std::string file;     // config file content ("" = none)
  std::string message;  // expected in stderr
};

TEST(SupervisorConfigTest, InvalidValuesAreRefusedAtStartWithAClearMessage) {
  std::vector<BadConfig> cases = {
      {{"--max-buckets", "0"}, "", "--max-buckets"},
      {{"--log-level", "loud"}, "", "--log-level"},
      {{"--liveness-timeout-ms", "100"}, "", "liveness-timeout-ms"},
      {{"--backoff-ms", "5000", "--max-backoff-ms", "100"}, "", "backoff-ms"},
      {{"--group", "kvt-no-such-group"}, "", "kvt-no-such-group"},
      {{"--namespace", "bad.name"}, "", "namespace"},
      {{"--feed-changes", "3000"}, "", "power of two"},
      {{"--feed-changes", "512"}, "", "--feed-changes"},
      {{"--config", "/nonexistent/kvd.conf"}, "", "/nonexistent/kvd.conf"},
      {{}, "max-restarts = lots\n", "max-restarts"},
      {{}, "colour = blue\n", "colour"},
      {{}, "max-buckets = 0\n", "max-buckets"},
  };
  ScopedPath file("kvt-bad.conf");
  for (const BadConfig& c : cases) {
    std::string ns = UniqueNamespace();
    std::vector<std::string> argv = {KvdPath(), "--namespace", ns};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    if (!c.file.empty()) {
      file.Write(c.file);
      argv.insert(argv.end(), {"--config", file.path()});
    }
    CommandResult r = RunCommand(argv);
    SCOPED_TRACE(argv.back() + " / " + c.file);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("invalid configuration"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
    EXPECT_TRUE(ShmObjectsOfNamespace(ns).empty());
    SweepNamespace(ns);
  }
}

TEST(SupervisorConfigTest, FileIsReadAndFlagsOverrideIt) {
  ScopedPath file("kvt-kvd.conf");
  file.Write("# kvd test configuration\nmax-buckets = 7\nlog-level = warn\n");
  shm::ShmError error;
  {
    KvdInstance kvd({"--config", file.path()});
    std::optional<shm::RegistryReader> registry = shm::RegistryReader::Open(kvd.ns(), &error);
    ASSERT_TRUE(registry) << error.message;
    EXPECT_EQ(registry->capacity(), 7u);
  }
  {
    KvdInstance kvd({"--config", file.path(), "--max-buckets", "9"});
    std::optional<shm::RegistryReader> registry = shm::RegistryReader::Open(kvd.ns(), &error);
    ASSERT_TRUE(registry) << error.message;
    EXPECT_EQ(registry->capacity(), 9u);
  }
}

TEST(SupervisorConfigTest, SighupReloadsTheRestartPolicyAndRefusesABrokenFile) {
  ScopedPath file("kvt-reload.conf");
  file.Write("max-restarts = 100\n");
  KvdInstance kvd({"--config", file.path()});
  auto client = kvd.NewClient();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->CreateBucket("b").ok());

  // `kvd --reload` (the unit's ExecReload=) returns once kvd applied the file.
  file.Write("max-restarts = 0\nlog-level = debug\n");
  CommandResult r =
      RunCommand({KvdPath(), "--namespace", kvd.ns(), "--config", file.path(), "--reload"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("reloaded"), std::string::npos) << r.out;
  // max-restarts 0: the first crash fails the bucket.
  pid_t worker = kvd.WorkerPid("b");
  ::kill(worker, SIGKILL);
  EXPECT_TRUE(WaitForState(kvd.ns(), "b", shm::kBucketFailed, seconds(10)));

  // A broken file is refused and the running configuration stays.
  file.Write("max-restarts = -3\n");
  shm::ShmError error;
  std::optional<shm::RegistryReader> registry = shm::RegistryReader::Open(kvd.ns(), &error);
  ASSERT_TRUE(registry);
  std::uint64_t reloads = registry->Kvd().reloads;
  EXPECT_EQ(reloads, 1u);
  kvd.Signal(SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return registry->Kvd().reloads == reloads + 1; }, seconds(10)));
  EXPECT_FALSE(registry->Kvd().last_reload_ok);
  EXPECT_TRUE(client->RestartBucket("b").ok());
}

TEST(SupervisorConfigTest, SegmentsPersistAfterACleanStopUnlessEphemeral) {
  {
    KvdInstance kvd;
    auto client = kvd.NewClient();
    ASSERT_TRUE(client->CreateBucket("b").ok());
    EXPECT_EQ(kvd.Stop(), 0);
    EXPECT_GE(ShmObjectsOfNamespace(kvd.ns()).size(), 3u);  // registry, anchor, table
    ASSERT_TRUE(kvd.Start());                               // and the next start finds the bucket
    EXPECT_TRUE(WaitForState(kvd.ns(), "b", shm::kBucketRunning, seconds(5), 0));
  }
  KvdInstance kvd({"--ephemeral"});
  auto client = kvd.NewClient();
  ASSERT_TRUE(client->CreateBucket("b").ok());
  EXPECT_EQ(kvd.Stop(), 0);
  EXPECT_TRUE(ShmObjectsOfNamespace(kvd.ns()).empty());
}

TEST(SupervisorConfigTest, CheckConfigValidatesAFileAndExitsZeroOrOneWithTheReason) {
  ScopedPath good("kvt-good.conf");
  good.Write("# checked, not run\nmax-buckets = 7\nlog-level = warn\n");
  ScopedPath bad("kvt-bad.conf");
  bad.Write("max-buckets = 7\nmax-backoff-ms = 10\nbackoff-ms = 20\n");
  std::string ns = UniqueNamespace();

  CommandResult r = RunCommand({KvdPath(), "--namespace", ns, "--check-config", good.path()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "kvd: configuration OK (" + good.path() + ")\n");
  r = RunCommand({KvdPath(), "--namespace", ns, "--check-config=" + good.path()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // --config names the file when --check-config has none; flags are checked with it.
  r = RunCommand({KvdPath(), "--namespace", ns, "--config", good.path(), "--check-config"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = RunCommand(
      {KvdPath(), "--namespace", ns, "--check-config", good.path(), "--max-buckets", "0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--max-buckets"), std::string::npos) << r.err;

  r = RunCommand({KvdPath(), "--namespace", ns, "--check-config", bad.path()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("backoff-ms (20) exceeds max-backoff-ms (10)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(bad.path()), std::string::npos) << r.err;
  r = RunCommand({KvdPath(), "--namespace", ns, "--check-config", "/nonexistent/kvd.conf"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent/kvd.conf"), std::string::npos) << r.err;
  // Checking creates nothing and starts nothing.
  EXPECT_TRUE(ShmObjectsOfNamespace(ns).empty());
  EXPECT_TRUE(ProcessesOfNamespace(ns).empty());
  SweepNamespace(ns);
}

}  // namespace
}  // namespace kv
