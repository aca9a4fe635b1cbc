// One text-protocol session: the Elixir guide's KVServer conversation (kvctl/text_protocol.h),
// read line by line from one descriptor and answered on another. `kvctl shell` runs one on
// stdin/stdout (a pipe, a file, or the TCP connection systemd's kv-shell.socket hands over);
// `kvctl serve` runs one per accepted connection, on its thread. Both speak exactly the same
// protocol because they run this code.
//
// Contract, whatever the input is:
//  - No prompt, no banner. A line ending in "\r\n" is answered with "\r\n", any other with "\n".
//    Each answer is written in full before the next line is read (nothing waits in a buffer).
//  - A line longer than `max_line` bytes is answered "ERROR TOO_LARGE: ..." and the session
//    ends (the input is no longer in step with the answers); memory stays bounded by max_line.
//  - No input for `idle_timeout` (and, while subscribed, no change to print either): the session
//    answers "ERROR TIMEOUT: ..." and ends. A peer that reads nothing for as long ends it too.
//  - End of input (the peer closed or half-closed, or reset the connection) ends the session
//    once every line read so far is answered; so do "quit"/"exit" and the stop descriptor.
//  - With text_only (kvctl serve, the socket unit) only the guide's commands are served and every
//    other line is UNKNOWN COMMAND: no kvctl command (drop, shutdown, `put - ` reading the
//    connection...) is reachable from the network. Otherwise lowercase kvctl commands and "help"
//    run as in the interactive shell (their output goes to std::cout/std::cerr, so only a session
//    on the process's own stdout should enable them).
// Thread safety: one Session per thread; sessions on different threads may share the Context's
// Client (thread-safe) as long as they are text_only.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "kv/client.h"
#include "kvctl/context.h"
#include "kvctl/line_io.h"
#include "kvctl/text_protocol.h"

namespace kv::ctl {

// The longest line a well-formed command can be: "PUT <bucket> <key> <value>" with every field
// at its limit, single spaces and "\r" (kv::kMaxBucketNameSize, kMaxKeySize, kMaxValueSize).
inline constexpr std::size_t kMaxProtocolLine =
    4 + kMaxBucketNameSize + 1 + kMaxKeySize + 1 + kMaxValueSize;

struct SessionOptions {
  bool text_only = false;                     // only the guide's commands (see above)
  std::chrono::milliseconds idle_timeout{0};  // zero: no limit
  std::size_t max_line = kMaxProtocolLine;    // longest accepted line, without "\r\n"
  int stop_fd = -1;  // readable: the session ends after the line it is running (-1: never)
};

enum class SessionEnd {
  kInputClosed,   // end of input, or the connection was reset
  kQuit,          // "quit"/"exit", or a SUBSCRIBE session whose input closed
  kIdle,          // idle timeout (answered ERROR TIMEOUT)
  kTooLong,       // overlong line (answered ERROR TOO_LARGE)
  kStopped,       // the stop descriptor became readable
  kOutputClosed,  // the peer stopped reading (gone, or silent for idle_timeout)
  kFailed,        // any other I/O error
};

// True if the session may have ended with input left unread (quit, overlong line, idle): the
// connection should then be closed with LingerBeforeClose, so that its last answers arrive.
inline bool EndsWithUnreadInput(SessionEnd end) {
  return end == SessionEnd::kQuit || end == SessionEnd::kTooLong || end == SessionEnd::kIdle;
}

class Session {
 public:
  // REQUIRES: ctx.client is open. `in_fd` and `out_fd` stay open for the Session's life; the
  // Session never closes them.
  Session(Context& ctx, int in_fd, int out_fd, SessionOptions options);

  // Answers one line (with its "\r", if any). Returns false when the session is over: "quit",
  // or a SUBSCRIBE that ran until the input closed; end() then says why.
  bool RunLine(std::string line);
  // Reads and answers lines until the session ends; returns why.
  SessionEnd Run();
  SessionEnd end() const { return end_; }

 private:
  bool Emit(std::string_view text);  // false (and end_ set) if the peer cannot be written to
  bool EmitLines(const std::vector<std::string>& lines, const char* eol);
  bool Subscribe(const std::string& bucket_name, const char* eol);
  bool Stopping() const;

  Context& ctx_;
  int in_fd_;
  int out_fd_;
  SessionOptions options_;
  LineWriter writer_;
  SessionEnd end_ = SessionEnd::kInputClosed;
  const char* eol_ = "\n";  // the last line's terminator, for the session's own errors
  TextProtocol protocol_;   // MULTI state
};

}  // namespace kv::ctl
