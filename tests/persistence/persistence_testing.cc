#include "tests/persistence/persistence_testing.h"

#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <boost/filesystem.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "shm/registry.h"
#include "tests/supervisor/supervisor_test_util.h"

namespace kv::testing {

TempDir::TempDir() {
  char tmpl[] = "/tmp/kv-persist-XXXXXX";
  char* p = ::mkdtemp(tmpl);
  EXPECT_NE(p, nullptr) << std::strerror(errno);
  if (p != nullptr) path_ = p;
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  boost::system::error_code ec;
  boost::filesystem::remove_all(path_, ec);
}

void PowerCut(KvdInstance& kvd) {
  kvd.Signal(SIGKILL);
  SweepNamespace(kvd.ns());
  EXPECT_TRUE(ProcessesOfNamespace(kvd.ns()).empty());
  EXPECT_TRUE(ShmObjectsOfNamespace(kvd.ns()).empty());
}

bool Reboot(KvdInstance& kvd) {
  PowerCut(kvd);
  bool started = kvd.Start();
  EXPECT_TRUE(started) << "kvd did not come back after the reboot";
  return started;
}

void WaitRunning(const KvdInstance& kvd, const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    ASSERT_TRUE(WaitForState(kvd.ns(), name, shm::kBucketRunning, std::chrono::seconds(20), 0))
        << name;
  }
}

std::string BucketDirOf(const std::string& data_dir, const std::string& ns, std::uint64_t id) {
  return data_dir + "/" + ns + "/b" + std::to_string(id);
}

std::string FileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

TinyTmpfs::TinyTmpfs(const std::string& size) {
  std::string options = "size=" + size + ",mode=0750";
  if (::mount("tmpfs", dir_.path().c_str(), "tmpfs", 0, options.c_str()) != 0) {
    why_ = std::string("cannot mount a tmpfs: ") + std::strerror(errno);
    return;
  }
  mounted_ = true;
}

TinyTmpfs::~TinyTmpfs() {
  if (mounted_) ::umount2(dir_.path().c_str(), MNT_DETACH);
}

bool TinyTmpfs::Resize(const std::string& size) {
  std::string options = "size=" + size;
  return ::mount("tmpfs", dir_.path().c_str(), "tmpfs", MS_REMOUNT, options.c_str()) == 0;
}

}  // namespace kv::testing
