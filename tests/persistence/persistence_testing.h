// Helpers for the persistence tests: a test-owned data directory, a simulated reboot, and a
// small tmpfs for disk-full tests.
#pragma once

#include <string>
#include <vector>

#include "tests/testing/kvd_harness.h"

namespace kv::testing {

// A fresh directory under /tmp, removed (with everything in it) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A power cut: kvd and every process of its namespace SIGKILLed (and reaped), every /dev/shm
// object of the namespace removed. A test that reads or changes the bucket's files does it after
// this: a worker outliving kvd still writes them (its log's zeros ahead, log_appender.h).
void PowerCut(KvdInstance& kvd);
// A reboot: PowerCut, then kvd started again (same flags, so the same data directory). Returns
// false (with a test failure) if kvd does not come back.
bool Reboot(KvdInstance& kvd);

// Waits (a test failure after 20 s) until every bucket in `names` is running.
void WaitRunning(const KvdInstance& kvd, const std::vector<std::string>& names);

// The directory of bucket `id` in `data_dir` for namespace `ns`.
std::string BucketDirOf(const std::string& data_dir, const std::string& ns, std::uint64_t id);

// The bytes of a file, and writing them back.
std::string FileBytes(const std::string& path);
void WriteBytes(const std::string& path, const std::string& bytes);

// A tmpfs of `size` mounted on a fresh directory, unmounted on destruction. mounted() is false
// (and why() says why) where mounting is not permitted.
class TinyTmpfs {
 public:
  explicit TinyTmpfs(const std::string& size);
  ~TinyTmpfs();
  bool mounted() const { return mounted_; }
  const std::string& why() const { return why_; }
  const std::string& path() const { return dir_.path(); }
  bool Resize(const std::string& size);

 private:
  TempDir dir_;
  bool mounted_ = false;
  std::string why_;
};

}  // namespace kv::testing
