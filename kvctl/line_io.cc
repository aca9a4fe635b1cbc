#include "kvctl/line_io.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace kv::ctl {
namespace {

constexpr std::size_t kReadChunk = 64 * 1024;

// Waits until `fd` is ready for `events`, the stop descriptor is readable, or `deadline`
// passes. kOk when `fd` is ready (or in error: the next I/O call reports it).
IoResult Wait(int fd, short events, int stop_fd, const IdleDeadline& deadline) {
  for (;;) {
    pollfd fds[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
    int n = ::poll(fds, stop_fd >= 0 ? 2 : 1, deadline.PollTimeoutMs());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoResult::kFailed;
    if (n == 0 && deadline.PollTimeoutMs() != 0) continue;  // a wait longer than poll() takes
    if (n == 0) return IoResult::kIdle;
    if (stop_fd >= 0 && fds[1].revents != 0) return IoResult::kStopped;
    return IoResult::kOk;
  }
}

bool PeerGone(int err) { return err == EPIPE || err == ECONNRESET || err == ENOTCONN; }

}  // namespace

int IdleDeadline::PollTimeoutMs() const {
  if (unlimited()) return -1;
  auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(at_ - std::chrono::steady_clock::now());
  if (left.count() <= 0) return 0;
  // Round up so that a wait never ends a little before the deadline.
  return static_cast<int>(std::min<long long>(left.count() + 1, 1 << 30));
}

bool IsSocket(int fd) {
  struct stat st;
  return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

void LingerBeforeClose(int fd, int stop_fd) {
  if (!IsSocket(fd) || ::shutdown(fd, SHUT_WR) != 0) return;
  IdleDeadline deadline(std::chrono::seconds(1));
  char buf[4096];
  while (Wait(fd, POLLIN, stop_fd, deadline) == IoResult::kOk) {
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) return;
  }
}

LineReader::LineReader(int fd, int stop_fd, std::size_t max_line)
    : fd_(fd), stop_fd_(stop_fd), max_line_(max_line), is_socket_(IsSocket(fd)) {}

IoResult LineReader::Next(std::string* line, const IdleDeadline& deadline) {
  for (;;) {
    std::size_t pending = buffer_.size() - start_;
    std::size_t nl = buffer_.find('\n', start_ + scanned_);
    if (nl != std::string::npos) {
      std::size_t length = nl - start_;
      std::size_t content = length - (length > 0 && buffer_[nl - 1] == '\r' ? 1 : 0);
      if (content > max_line_) return IoResult::kTooLong;
      line->assign(buffer_, start_, length);
      start_ = nl + 1;
      scanned_ = 0;
      return IoResult::kOk;
    }
    scanned_ = pending;
    // Without its '\n', a line of max_line_ bytes may still be followed by "\r".
    if (pending > max_line_ + 1) return IoResult::kTooLong;
    if (eof_) {
      if (pending == 0) return IoResult::kEof;
      std::size_t content = pending - (buffer_.back() == '\r' ? 1 : 0);
      if (content > max_line_) return IoResult::kTooLong;
      line->assign(buffer_, start_, pending);
      start_ = buffer_.size();
      scanned_ = 0;
      return IoResult::kOk;
    }
    IoResult r = Fill(deadline);
    if (r == IoResult::kEof) {
      eof_ = true;
    } else if (r != IoResult::kOk) {
      return r;
    }
  }
}

IoResult LineReader::Fill(const IdleDeadline& deadline) {
  // Drop what was consumed, so that the buffer never holds more than one (bounded) line plus
  // one read.
  buffer_.erase(0, start_);
  start_ = 0;
  if (buffer_.capacity() > 4 * kReadChunk && buffer_.size() < kReadChunk) buffer_.shrink_to_fit();
  for (;;) {
    IoResult ready = Wait(fd_, POLLIN, stop_fd_, deadline);
    if (ready != IoResult::kOk) return ready;
    std::size_t old = buffer_.size();
    buffer_.resize(old + kReadChunk);
    ssize_t n = is_socket_ ? ::recv(fd_, &buffer_[old], kReadChunk, MSG_DONTWAIT)
                           : ::read(fd_, &buffer_[old], kReadChunk);
    int err = errno;
    buffer_.resize(old + (n > 0 ? static_cast<std::size_t>(n) : 0));
    if (n > 0) return IoResult::kOk;
    if (n == 0) return IoResult::kEof;
    if (err == EINTR || err == EAGAIN || err == EWOULDBLOCK) continue;
    errno = err;
    return PeerGone(err) ? IoResult::kEof : IoResult::kFailed;
  }
}

LineWriter::LineWriter(int fd, int stop_fd, std::chrono::milliseconds timeout)
    : fd_(fd), stop_fd_(stop_fd), timeout_(timeout), is_socket_(IsSocket(fd)) {}

IoResult LineWriter::Write(std::string_view data) {
  IdleDeadline deadline(timeout_);
  while (!data.empty()) {
    ssize_t n = is_socket_ ? ::send(fd_, data.data(), data.size(), MSG_DONTWAIT | MSG_NOSIGNAL)
                           : ::write(fd_, data.data(), data.size());
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      deadline.Reset();
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && is_socket_ && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      IoResult ready = Wait(fd_, POLLOUT, stop_fd_, deadline);
      if (ready != IoResult::kOk) return ready;
      continue;
    }
    return n < 0 && PeerGone(errno) ? IoResult::kEof : IoResult::kFailed;
  }
  return IoResult::kOk;
}

std::string ReadAll(int fd) {
  std::string data;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      data.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      return data;
    }
  }
}

}  // namespace kv::ctl
