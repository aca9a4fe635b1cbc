#include "daemon/persistence/log_appender.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <string>

#include "daemon/persistence/file_util.h"

namespace kv::daemon::persistence {

LogAppender::~LogAppender() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void LogAppender::Switch(int fd, std::uint64_t end, bool preallocate) {
  preallocate = preallocate && fd >= 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    fd_ = fd;
    end_.store(end, std::memory_order_relaxed);
    zero_end_ = end;
    ready_.store(end, std::memory_order_release);
    preallocate_ = preallocate;
    failed_ = false;
    ++generation_;
  }
  worker_preallocates_ = preallocate;
  if (preallocate && !thread_.joinable()) thread_ = std::thread([this] { Run(); });
  cv_.notify_all();
}

int LogAppender::Append(const char* data, std::size_t size) {
  if (fd_ < 0) return EBADF;
  std::uint64_t at = end_.load(std::memory_order_relaxed);
  int e = 0;
  if (at + size <= ready_.load(std::memory_order_acquire)) {
    e = WriteAllAt(fd_, data, size, static_cast<std::int64_t>(at));
    if (e == 0) end_.store(at + size, std::memory_order_relaxed);
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    e = WriteAllAt(fd_, data, size, static_cast<std::int64_t>(at));
    if (e == 0) end_.store(at + size, std::memory_order_relaxed);
  }
  if (e == 0 && worker_preallocates_ &&
      at + size + kAhead / 2 > ready_.load(std::memory_order_relaxed)) {
    cv_.notify_one();
  }
  return e;
}

void LogAppender::Run() {
  const std::string zeros(kChunk, '\0');
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait_for(lock, std::chrono::milliseconds(100), [this] {
      return stop_ || (preallocate_ && !failed_ &&
                       zero_end_ < end_.load(std::memory_order_relaxed) + kAhead);
    });
    if (stop_) return;
    if (!preallocate_ || failed_ || zero_end_ >= end_.load() + kAhead) continue;
    // Past every append: one in flight without mu_ lies below ready_ <= zero_end_, and one past
    // ready_ holds mu_.
    std::uint64_t start = std::max(zero_end_, end_.load(std::memory_order_relaxed));
    std::uint64_t generation = generation_;
    int e = WriteAllAt(fd_, zeros.data(), zeros.size(), static_cast<std::int64_t>(start));
    int fd = e == 0 ? ::dup(fd_) : -1;  // fd_ may be closed after a Switch while we sync
    if (fd < 0) {
      failed_ = true;
      continue;
    }
    zero_end_ = start + kChunk;
    lock.unlock();
    e = ::fdatasync(fd) == 0 ? 0 : errno;
    ::close(fd);
    lock.lock();
    if (generation != generation_) continue;
    if (e != 0) {
      failed_ = true;
    } else if (ready_.load(std::memory_order_relaxed) < start + kChunk) {
      ready_.store(start + kChunk, std::memory_order_release);
    }
  }
}

}  // namespace kv::daemon::persistence
