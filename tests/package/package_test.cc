// The Debian packages (cmake/KvPackaging.cmake), checked by tests/package/package_check.sh in a
// scratch root: files, maintainer scripts, the user kv, the unit, a program built against the
// -dev package running against the packaged kvd, and cmake --install. See the script's header.
#include <gtest/gtest.h>

#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

TEST(PackageTest, PackagesBuildUnpackAndWork) {
  std::string ns = kv::testing::UniqueNamespace();
  kv::testing::CommandResult r = kv::testing::RunCommand(
      {KV_SOURCE_DIR "/tests/package/package_check.sh", KV_BINARY_DIR, KV_SOURCE_DIR, ns});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("ok: kv, libkvclient0, libkvclient-dev, python3-kv"), std::string::npos)
      << r.out;
  EXPECT_TRUE(kv::testing::ShmObjectsOfNamespace(ns).empty());
  kv::testing::SweepNamespace(ns);
}

}  // namespace
}  // namespace kv
