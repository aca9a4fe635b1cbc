// Unmaps a replaced table generation on a thread of its own. Unmapping a 1M-key generation
// (~200 MB mapped) took ~10 ms on the worker's thread (traced 2026-12-06), with every write
// waiting; readers never need the worker's mapping, and the segment is already unlinked, so
// nothing waits for this one.
//
// One release at a time: a new one first waits for the last (generations are replaced far less
// often than a release takes). Destruction waits too. Owned by the worker's BucketStore; not
// thread-safe.
#pragma once

#include <thread>
#include <utility>

#include "shm/bucket_table.h"

namespace kv::daemon {

class TableRelease {
 public:
  TableRelease() = default;
  TableRelease(TableRelease&&) noexcept = default;
  TableRelease& operator=(TableRelease&& other) noexcept {
    Wait();
    thread_ = std::move(other.thread_);
    return *this;
  }
  ~TableRelease() { Wait(); }

  void Release(shm::TableWriter table) {
    Wait();
    thread_ = std::thread([table = std::move(table)]() mutable { table = shm::TableWriter(); });
  }
  void Wait() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::thread thread_;
};

}  // namespace kv::daemon
