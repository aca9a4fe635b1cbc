// The run-time version (kv_version(), kv::Version()) against the compile-time one (kv/version.h,
// generated from project(VERSION)); kvd --version and kvctl --version print the same.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "kv/client.h"
#include "kv/kv.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::testing::CommandResult;
using kv::testing::RunCommand;

TEST(VersionTest, RunTimeVersionIsTheHeadersVersion) {
  EXPECT_STREQ(kv_version(), KV_VERSION_STRING);
  EXPECT_STREQ(kv::Version(), kv_version());
  std::string want = std::to_string(KV_VERSION_MAJOR) + "." + std::to_string(KV_VERSION_MINOR) +
                     "." + std::to_string(KV_VERSION_PATCH);
  EXPECT_EQ(want, kv_version());
  EXPECT_TRUE(std::regex_match(kv_version(), std::regex(R"(\d+\.\d+\.\d+)"))) << kv_version();
}

TEST(VersionTest, KvdAndKvctlPrintTheirVersionAndExitZero) {
  CommandResult kvd = RunCommand({kv::testing::KvdPath(), "--version"});
  EXPECT_EQ(kvd.exit_code, 0) << kvd.err;
  EXPECT_EQ(kvd.out, "kvd " KV_VERSION_STRING "\n");
  CommandResult kvctl = RunCommand({kv::testing::KvctlPath(), "--version"});
  EXPECT_EQ(kvctl.exit_code, 0) << kvctl.err;
  EXPECT_EQ(kvctl.out, "kvctl " KV_VERSION_STRING " (libkvclient " KV_VERSION_STRING ")\n");
}

}  // namespace
}  // namespace kv
