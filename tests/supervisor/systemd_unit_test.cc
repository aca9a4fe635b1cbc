// The shipped systemd files pass systemd's own checks. The units name /usr/bin/kvd and
// /usr/bin/kvctl, which a build tree does not have: the tests verify copies whose paths point at
// the built binaries.
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

// A copy of systemd/<name> in `dir` with `from` replaced by `to` everywhere.
void CopyUnit(const std::string& name, const std::string& dir, const std::string& from,
              const std::string& to) {
  std::string unit = ReadFile(std::string(KV_SOURCE_DIR) + "/systemd/" + name);
  ASSERT_FALSE(unit.empty()) << name;
  for (std::size_t at; (at = unit.find(from)) != std::string::npos;)
    unit.replace(at, from.size(), to);
  std::ofstream(dir + "/" + name) << unit;
}

// Verifies systemd/kv-shell.socket and its kv-shell@.service template (as systemd loads them,
// with a drop-in when `port_dropin` is set) and returns systemd-analyze's result.
CommandResult VerifyKvShellUnits(bool port_dropin) {
  std::string dir = "/tmp/kvt-unit." + std::to_string(::getpid()) + (port_dropin ? ".d" : "");
  ::mkdir(dir.c_str(), 0700);
  CopyUnit("kv-shell.socket", dir, "/usr/bin/kvctl", KvctlPath());
  CopyUnit("kv-shell@.service", dir, "/usr/bin/kvctl", KvctlPath());
  std::string dropin_dir = dir + "/kv-shell.socket.d";
  if (port_dropin) {
    ::mkdir(dropin_dir.c_str(), 0700);
    std::ofstream(dropin_dir + "/port.conf")
        << "[Socket]\nListenStream=\nListenStream=127.0.0.1:4041\n";
  }
  CommandResult r = RunCommand(
      {"/usr/bin/systemd-analyze", "verify", dir + "/kv-shell.socket", dir + "/kv-shell@.service"});
  ::unlink((dropin_dir + "/port.conf").c_str());
  ::rmdir(dropin_dir.c_str());
  ::unlink((dir + "/kv-shell.socket").c_str());
  ::unlink((dir + "/kv-shell@.service").c_str());
  ::rmdir(dir.c_str());
  return r;
}

TEST(SystemdUnitTest, KvShellSocketAndServicePassSystemdAnalyzeVerify) {
  if (!Executable("/usr/bin/systemd-analyze")) GTEST_SKIP() << "systemd-analyze is not installed";
  CommandResult r = VerifyKvShellUnits(false);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");  // unknown keys and bad values are warnings only: there must be none
  EXPECT_EQ(r.out, "");
}

TEST(SystemdUnitTest, KvShellPortDropInPassesSystemdAnalyzeVerify) {
  if (!Executable("/usr/bin/systemd-analyze")) GTEST_SKIP() << "systemd-analyze is not installed";
  CommandResult r = VerifyKvShellUnits(true);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out, "");
}

// The template must stay verifiable: a broken ExecStart is reported (the check can fail).
TEST(SystemdUnitTest, KvShellServiceVerifyCatchesAMissingBinary) {
  if (!Executable("/usr/bin/systemd-analyze")) GTEST_SKIP() << "systemd-analyze is not installed";
  std::string dir = "/tmp/kvt-unit." + std::to_string(::getpid()) + ".bad";
  ::mkdir(dir.c_str(), 0700);
  CopyUnit("kv-shell@.service", dir, "/usr/bin/kvctl", dir + "/no-such-kvctl");
  CommandResult r = RunCommand({"/usr/bin/systemd-analyze", "verify", dir + "/kv-shell@.service"});
  ::unlink((dir + "/kv-shell@.service").c_str());
  ::rmdir(dir.c_str());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("no-such-kvctl"), std::string::npos) << r.err;
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
