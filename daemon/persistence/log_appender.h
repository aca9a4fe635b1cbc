// Appends to the worker's current log file at its end. With `preallocate` (appendfsync always on
// a disk file system), a background thread keeps the file written with zeros and synced ahead of
// the end, kAhead bytes at most, so that the fdatasync after an append flushes the data blocks
// only: no block is allocated and the file size does not change, so no journal commit is needed.
// On ext4 that is about four times the syncs a second of appending to a growing file (fallocate
// alone does not help: the first write to an unwritten extent changes metadata too). The zeros a
// crash leaves after the last record read as the end of the log (log_format.h).
//
// Threads: Append and Switch are the worker's; the thread writes zeros only at or after both the
// zeroed end and the written end, under mu_, and an append that goes past the synced zeros also
// takes mu_, so zeros never overwrite a record (an append inside the synced zeros needs no lock:
// the thread writes only past them). A failure to preallocate (ENOSPC, EFBIG, ...)
// stops it for this file: appends then extend the file and report their own errors.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>

namespace kv::daemon::persistence {

class LogAppender {
 public:
  static constexpr std::uint64_t kChunk = 1 << 20;
  static constexpr std::uint64_t kAhead = 4 << 20;

  LogAppender() = default;
  ~LogAppender();
  LogAppender(const LogAppender&) = delete;
  LogAppender& operator=(const LogAppender&) = delete;

  // From now on appends go to `fd` (-1: none) at offset `end`; preallocated ahead if
  // `preallocate`. The caller owns fd and may close the previous one once this returns.
  void Switch(int fd, std::uint64_t end, bool preallocate);
  // Writes every byte at the end. Returns 0 or the errno of the failure.
  int Append(const char* data, std::size_t size);

 private:
  void Run();

  int fd_ = -1;                       // set by the worker under mu_
  bool worker_preallocates_ = false;  // the worker's copy of preallocate_
  // Where the next append goes: stored by the worker only (under mu_ past ready_).
  std::atomic<std::uint64_t> end_{0};
  std::atomic<std::uint64_t> ready_{0};  // zeros written and synced below this offset
  std::mutex mu_;
  std::condition_variable cv_;
  bool preallocate_ = false;      // under mu_
  bool failed_ = false;           // under mu_: preallocation of this file stopped
  bool stop_ = false;             // under mu_
  std::uint64_t zero_end_ = 0;    // under mu_: zeros written (maybe not yet synced) below this
  std::uint64_t generation_ = 0;  // under mu_: bumped by Switch
  std::thread thread_;
};

}  // namespace kv::daemon::persistence
