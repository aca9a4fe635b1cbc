// `cmake --install` of libkvclient into a temporary prefix, then examples/ built against the
// installed package twice -- as a CMake project with find_package(kvclient CONFIG) and by hand
// with pkg-config -- and run against a real kvd. Also checks what the library exports: the
// SONAME, the public API, and none of kv_shm's symbols.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "tests/client/client_testing.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::client_testing::kGuideSession;
namespace fs = std::filesystem;
using kv::testing::CommandResult;
using kv::testing::RunCommand;

CommandResult Shell(const std::string& script) { return RunCommand({"/bin/sh", "-c", script}); }

std::string Quote(const std::string& s) { return "'" + s + "'"; }

class InstallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/kv_install_test_XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    tmp_ = dir;
    prefix_ = tmp_ / "prefix";
    libdir_ = prefix_ / KV_INSTALL_LIBDIR;
  }
  void TearDown() override {
    std::error_code ignored;
    if (!tmp_.empty()) fs::remove_all(tmp_, ignored);
  }

  // Runs the installed example `exe` against a fresh kvd and checks its output and libraries.
  void RunExample(const fs::path& exe) {
    ASSERT_TRUE(fs::exists(exe)) << exe;
    kv::testing::KvdInstance kvd;
    CommandResult r = RunCommand({exe.string(), kvd.ns()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, kGuideSession) << exe;
    CommandResult ldd = Shell("ldd " + Quote(exe.string()));
    ASSERT_EQ(ldd.exit_code, 0) << ldd.err;
    std::string want = "libkvclient.so.0 => " + (libdir_ / "libkvclient.so.0").string();
    EXPECT_NE(ldd.out.find(want), std::string::npos) << ldd.out;
  }

  fs::path tmp_, prefix_, libdir_;
};

TEST_F(InstallTest, InstalledPackageBuildsAndRunsTheExamples) {
  // 1. Install.
  CommandResult r;
  for (const char* component : {"libkvclient0", "libkvclient-dev"}) {
    r = RunCommand({KV_CMAKE_COMMAND, "--install", KV_BINARY_DIR, "--prefix", prefix_.string(),
                    "--component", component});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  for (const char* header : {"client.h", "status.h", "kv.h", "version.h"}) {
    EXPECT_TRUE(fs::exists(prefix_ / "include" / "kv" / header)) << header;
  }
  EXPECT_TRUE(fs::is_regular_file(libdir_ / "libkvclient.so.0.1.0"));
  EXPECT_TRUE(fs::is_symlink(libdir_ / "libkvclient.so.0"));
  EXPECT_TRUE(fs::is_symlink(libdir_ / "libkvclient.so"));
  EXPECT_TRUE(fs::exists(libdir_ / "cmake" / "kvclient" / "kvclientConfig.cmake"));
  EXPECT_TRUE(fs::exists(libdir_ / "cmake" / "kvclient" / "kvclientConfigVersion.cmake"));
  EXPECT_TRUE(fs::exists(libdir_ / "pkgconfig" / "kvclient.pc"));
  // Nothing but the client was installed (no kvd, no internal headers).
  EXPECT_FALSE(fs::exists(prefix_ / "include" / "shm"));

  // 2. The library: SONAME, exported API, nothing of kv_shm.
  const std::string lib = Quote((libdir_ / "libkvclient.so").string());
  r = Shell("readelf -d " + lib);
  EXPECT_NE(r.out.find("Library soname: [libkvclient.so.0]"), std::string::npos) << r.out;
  r = Shell("nm -DC --defined-only " + lib);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* symbol :
       {"kv::Client::Open(", "kv::Bucket::Get(", "kv::Status::ToString", "kv::CodeName(",
        "kv_client_open", "kv_get", "kv_strerror", "kv::Bucket::Subscribe(",
        "kv::Subscription::Next(", "kv::Subscription::position(", "kv_subscribe",
        "kv_subscription_next", "kv_change_free"}) {
    EXPECT_NE(r.out.find(symbol), std::string::npos) << symbol;
  }
  EXPECT_EQ(r.out.find("kv::shm::"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("boost::"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("kv::WriteChannel"), std::string::npos) << r.out;

  const std::string sanitize = KV_SANITIZER_FLAGS;
  const fs::path examples = fs::path(KV_SOURCE_DIR) / "examples";

  // 3. find_package(kvclient CONFIG), as a project of its own.
  const fs::path build = tmp_ / "find_package";
  r = RunCommand({KV_CMAKE_COMMAND, "-S", examples.string(), "-B", build.string(), "-G",
                  KV_CMAKE_GENERATOR, "-DCMAKE_PREFIX_PATH=" + prefix_.string(),
                  "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF", "-DCMAKE_C_COMPILER=" KV_C_COMPILER,
                  "-DCMAKE_CXX_COMPILER=" KV_CXX_COMPILER, "-DCMAKE_C_FLAGS=" + sanitize,
                  "-DCMAKE_CXX_FLAGS=" + sanitize, "-DCMAKE_EXE_LINKER_FLAGS=" + sanitize});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = RunCommand({KV_CMAKE_COMMAND, "--build", build.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  RunExample(build / "kv_guide");
  RunExample(build / "kv_guide_c");

  // 4. pkg-config, by hand.
  const fs::path pc = tmp_ / "pkg_config";
  fs::create_directories(pc);
  std::string env = "PKG_CONFIG_PATH=" + Quote((libdir_ / "pkgconfig").string()) + " ";
  std::string flags = "$(" + env + KV_PKG_CONFIG + " --cflags --libs kvclient)";
  std::string rpath = " -Wl,-rpath," + Quote(libdir_.string());
  r = Shell(env + KV_PKG_CONFIG + " --modversion kvclient");
  EXPECT_EQ(r.out, "0.1.0\n") << r.err;
  r = Shell(std::string(KV_CXX_COMPILER) + " -std=c++17 -Wall -Wextra -Werror " + sanitize + " " +
            Quote((examples / "guide.cc").string()) + " -o " + Quote((pc / "kv_guide").string()) +
            " " + flags + rpath);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = Shell(std::string(KV_C_COMPILER) + " -std=c99 -pedantic -Wall -Wextra -Werror " + sanitize +
            " " + Quote((examples / "guide.c").string()) + " -o " +
            Quote((pc / "kv_guide_c").string()) + " " + flags + rpath);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  RunExample(pc / "kv_guide");
  RunExample(pc / "kv_guide_c");
}

}  // namespace
}  // namespace kv
