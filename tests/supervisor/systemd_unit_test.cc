// The shipped systemd files pass systemd's own checks. The unit names /usr/bin/kvd, which a
// build tree does not have: the test verifies a copy whose kvd paths point at the built binary.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using namespace kv::testing;

bool Executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

TEST(SystemdUnitTest, KvdServicePassesSystemdAnalyzeVerify) {
  const std::string tool = "/usr/bin/systemd-analyze";
  if (!Executable(tool)) GTEST_SKIP() << "systemd-analyze is not installed";
  std::string unit = ReadFile(std::string(KV_SOURCE_DIR) + "/systemd/kvd.service");
  ASSERT_FALSE(unit.empty());
  for (std::size_t at; (at = unit.find("/usr/bin/kvd")) != std::string::npos;) {
    unit.replace(at, 12, KvdPath());
  }
  std::string dir = "/tmp/kvt-unit." + std::to_string(::getpid());
  ::mkdir(dir.c_str(), 0700);
  std::string path = dir + "/kvd.service";
  std::ofstream(path) << unit;
  CommandResult r = RunCommand({tool, "verify", path});
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // Unknown keys and bad values are only warnings (exit 0): there must be none.
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out, "");
}

TEST(SystemdUnitTest, SysusersFileParses) {
  const std::string tool = "/usr/bin/systemd-sysusers";
  if (!Executable(tool)) GTEST_SKIP() << "systemd-sysusers is not installed";
  CommandResult r =
      RunCommand({tool, "--dry-run", std::string(KV_SOURCE_DIR) + "/systemd/kv.sysusers"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("rror"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kv
