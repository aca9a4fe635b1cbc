// Line-oriented I/O on a file descriptor for the text protocol's sessions (kvctl/session.h): the
// shell's stdin/stdout (a pipe, a file, or the TCP connection systemd's Accept=yes hands over) and
// each connection of `kvctl serve`.
//
// LineReader reads lines of at most a given length with bounded memory: a longer line is reported
// as kTooLong as soon as it is known to be too long, never buffered whole. Every wait is a poll()
// that also watches a stop descriptor (kvctl serve's shutdown) and an idle deadline, so a session
// never blocks on a silent peer for longer than it was told to.
//
// WriteAll writes everything or reports failure; on a socket it never blocks without the same
// bounds (send with MSG_DONTWAIT | MSG_NOSIGNAL after poll, so a vanished peer is an error, not
// SIGPIPE, and a peer that reads nothing cannot hold the writer past its deadline). Descriptors'
// file status flags are never changed: the shell's stdout may be shared with other processes.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace kv::ctl {

// How long a wait may last: no limit when `timeout` is zero.
class IdleDeadline {
 public:
  explicit IdleDeadline(std::chrono::milliseconds timeout) : timeout_(timeout) { Reset(); }
  void Reset() { at_ = std::chrono::steady_clock::now() + timeout_; }
  bool unlimited() const { return timeout_.count() <= 0; }
  // Milliseconds left for poll(): -1 when unlimited, 0 when passed.
  int PollTimeoutMs() const;
  std::chrono::milliseconds timeout() const { return timeout_; }

 private:
  std::chrono::milliseconds timeout_;
  std::chrono::steady_clock::time_point at_;
};

enum class IoResult {
  kOk,       // a line was read / everything was written
  kEof,      // the peer closed its side (or the connection was reset): no more input
  kTooLong,  // the line exceeds the limit (the rest of the input is not read)
  kIdle,     // the deadline passed with no progress
  kStopped,  // the stop descriptor became readable
  kFailed,   // any other I/O error (errno is kept)
};

class LineReader {
 public:
  // `fd` is read, never closed. `stop_fd` (-1: none) ends any wait once readable.
  // `max_line`: the longest line accepted, in bytes, not counting its "\n" or "\r\n".
  LineReader(int fd, int stop_fd, std::size_t max_line);

  // The next line, without its "\n" (a "\r" before it is kept: the caller answers CRLF lines
  // with CRLF). A last line without "\n" before end of input is returned as a line. The
  // deadline bounds the wait for input; it is not reset here. Memory stays under
  // max_line + 64 KiB whatever the input.
  IoResult Next(std::string* line, const IdleDeadline& deadline);

  std::size_t max_line() const { return max_line_; }

 private:
  // Appends what one read returns to buffer_; kOk if something came.
  IoResult Fill(const IdleDeadline& deadline);

  int fd_;
  int stop_fd_;
  std::size_t max_line_;
  bool is_socket_;
  bool eof_ = false;
  std::string buffer_;  // unread bytes start at start_
  std::size_t start_ = 0;
  std::size_t scanned_ = 0;  // bytes after start_ known to hold no '\n'
};

class LineWriter {
 public:
  // `fd` is written, never closed. On a socket, `stop_fd` (-1: none) and `timeout` (zero: none)
  // bound each wait for a peer that does not read.
  LineWriter(int fd, int stop_fd, std::chrono::milliseconds timeout);

  // Writes all of `data` before returning (nothing is buffered: an answer is on its way when
  // this returns). kEof when the peer is gone (EPIPE, ECONNRESET); kIdle once `timeout` passed
  // without a byte written; kStopped; kFailed. A pipe or file is written with blocking write(2):
  // the caller ignores SIGPIPE.
  IoResult Write(std::string_view data);

 private:
  int fd_;
  int stop_fd_;
  std::chrono::milliseconds timeout_;
  bool is_socket_;
};

// True if `fd` is a socket.
bool IsSocket(int fd);

// Ends a connection politely after the session answered an error (overlong line, idle): sends
// FIN (shutdown SHUT_WR), then reads and discards what the peer still sends, until it closes,
// `stop_fd` is readable, or about a second passes. Closing a socket with unread input would send
// RST, and the peer's stack may then discard the error line before its reader sees it.
// Does nothing if `fd` is not a socket. Does not close `fd`.
void LingerBeforeClose(int fd, int stop_fd);

// Everything `fd` gives until end of file (or an error other than EINTR), for commands that
// take their input whole from stdin (`kvctl put B K -`, `kvctl batch B`). Blocking reads.
std::string ReadAll(int fd);

}  // namespace kv::ctl
