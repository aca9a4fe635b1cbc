#include "kvctl/session.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <iostream>
#include <thread>

#include "kvctl/app.h"
#include "kvctl/change_format.h"
#include "kvctl/text_protocol.h"

namespace kv::ctl {
namespace {

constexpr char kHelp[] =
    "Text protocol (replies as in the Elixir guide):\n"
    "  CREATE <bucket>  PUT <bucket> <key> <value>  GET <bucket> <key>  DELETE <bucket> <key>\n"
    "  SUBSCRIBE <bucket>  (prints every change until input ends; ignores further input)\n"
    "  MULTI, then PUT/DELETE lines (QUEUED), then EXEC (applied atomically) or DISCARD\n"
    "  PUT <bucket> <key> <value> EX <s>|PX <ms>  EXPIRE|PEXPIRE <bucket> <key> <s|ms>\n"
    "  TTL|PTTL <bucket> <key>  PERSIST <bucket> <key>\n"
    "kvctl commands (same as on the command line, e.g. 'status', 'keys b --prefix p --json'):\n"
    "  create drop restart kill buckets shutdown status stats put get del cas incr ttl expire\n"
    "  persist keys dump load\n"
    "  bench batch\n"
    "Shell: help, quit (or exit, or Ctrl-D)\n";

// How often a subscribed session looks at its input, the clock and the stop descriptor.
constexpr std::chrono::milliseconds kSubscribeTick(100);

std::string FirstWord(const std::string& line) {
  std::size_t start = line.find_first_not_of(" \t");
  if (start == std::string::npos) return "";
  std::size_t end = line.find_first_of(" \t", start);
  return line.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool Readable(int fd, int timeout_ms) {
  if (fd < 0) return false;
  pollfd p = {fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) > 0;
}

// The input of a subscribed session: read and discarded until it closes (EOF or error, then
// *closed is set) or *quit is set. *last_input_ms is the time of the last bytes read.
void DrainInput(int fd, const std::atomic<bool>* quit, std::atomic<bool>* closed,
                std::atomic<std::int64_t>* last_input_ms) {
  char buf[4096];
  while (!quit->load()) {
    if (!Readable(fd, static_cast<int>(kSubscribeTick.count()))) continue;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      last_input_ms->store(NowMs());
      continue;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    break;
  }
  closed->store(true);
}

std::string Seconds(std::chrono::milliseconds d) {
  return std::to_string(d.count() / 1000) + (d.count() % 1000 != 0 ? " s (rounded down)" : " s");
}

}  // namespace

Session::Session(Context& ctx, int in_fd, int out_fd, SessionOptions options)
    : ctx_(ctx),
      in_fd_(in_fd),
      out_fd_(out_fd),
      options_(options),
      writer_(out_fd, options.stop_fd, options.idle_timeout) {}

bool Session::Stopping() const { return Readable(options_.stop_fd, 0); }

bool Session::Emit(std::string_view text) {
  if (out_fd_ == STDOUT_FILENO) std::cout << std::flush;  // kvctl commands' output comes first
  IoResult r = writer_.Write(text);
  if (r == IoResult::kOk) return true;
  end_ = r == IoResult::kStopped  ? SessionEnd::kStopped
         : r == IoResult::kFailed ? SessionEnd::kFailed
                                  : SessionEnd::kOutputClosed;
  return false;
}

bool Session::EmitLines(const std::vector<std::string>& lines, const char* eol) {
  std::string text;
  for (const std::string& line : lines) text.append(line).append(eol);
  return Emit(text);
}

// SUBSCRIBE: prints the bucket's changes until the input closes. Returns false (the session
// ends) once subscribed; true after answering NOT FOUND or an error.
bool Session::Subscribe(const std::string& bucket_name, const char* eol) {
  Result<Bucket> bucket = ctx_.client->OpenBucket(bucket_name);
  Result<Subscription> sub =
      bucket.ok() ? bucket->Subscribe() : Result<Subscription>(bucket.status());
  if (!sub.ok()) return EmitLines(TextAnswer(sub.status()), eol);
  end_ = SessionEnd::kQuit;
  std::atomic<bool> quit{false};
  std::atomic<bool> input_closed{false};
  std::atomic<std::int64_t> last_input_ms{NowMs()};
  std::int64_t last_output_ms = NowMs();
  // The drain thread starts only once the subscription exists (tests wait for it).
  std::thread drain(DrainInput, in_fd_, &quit, &input_closed, &last_input_ms);
  bool subscribed = true;
  Change change;
  while (!input_closed.load()) {
    if (Stopping()) {
      end_ = SessionEnd::kStopped;
      break;
    }
    std::int64_t idle_ms = NowMs() - std::max(last_input_ms.load(), last_output_ms);
    if (options_.idle_timeout.count() > 0 && idle_ms >= options_.idle_timeout.count()) {
      EmitLines(
          TextAnswer(Status(Code::kTimeout, "subscribed and idle for " +
                                                Seconds(options_.idle_timeout) + "; closing")),
          eol);
      end_ = SessionEnd::kIdle;
      break;
    }
    if (!subscribed) {  // the bucket is gone: wait for the input to close
      Readable(options_.stop_fd, static_cast<int>(kSubscribeTick.count()));
      if (options_.stop_fd < 0) std::this_thread::sleep_for(kSubscribeTick);
      continue;
    }
    Status s = sub->Next(&change, kSubscribeTick);
    if (s.code() == Code::kTimeout) continue;
    if (!s.ok()) {  // dropped (NOT FOUND) or a damaged feed: say so, then wait for the input
      if (!EmitLines(TextAnswer(s), eol)) break;
      subscribed = false;
      last_output_ms = NowMs();
      continue;
    }
    if (!Emit(ChangeLine(change) + eol)) break;
    last_output_ms = NowMs();
  }
  quit.store(true);
  drain.join();
  return false;
}

bool Session::RunLine(std::string line) {
  bool crlf = !line.empty() && line.back() == '\r';
  if (crlf) line.pop_back();
  const char* eol = crlf ? "\r\n" : "\n";
  eol_ = eol;
  std::string word = FirstWord(line);
  if (word == "quit" || word == "exit") {
    end_ = SessionEnd::kQuit;
    return false;
  }
  if (!options_.text_only && word == "help") return Emit(kHelp);
  // Inside a MULTI block every other line is the protocol's: it queues PUT and DELETE and
  // answers anything else (SUBSCRIBE, a kvctl command) ERROR INVALID, the block staying open.
  if (protocol_.in_multi()) return EmitLines(protocol_.Run(*ctx_.client, line), eol);
  if (!options_.text_only) {
    if (word == "shell" || word == "top" || word == "watch" || word == "serve") {
      std::cerr << "kvctl: INVALID: '" << word << "' cannot run inside the shell\n";
      return true;
    }
    if (IsKvctlCommand(word)) {
      RunKvctlLine(line, ctx_);
      std::cout << std::flush;
      return true;
    }
  }
  if (std::optional<std::string> bucket = SubscribeTarget(line)) return Subscribe(*bucket, eol);
  return EmitLines(protocol_.Run(*ctx_.client, line), eol);
}

SessionEnd Session::Run() {
  LineReader reader(in_fd_, options_.stop_fd, options_.max_line);
  IdleDeadline deadline(options_.idle_timeout);
  std::string line;
  for (;;) {
    deadline.Reset();
    switch (reader.Next(&line, deadline)) {
      case IoResult::kOk:
        if (!RunLine(std::move(line))) return end_;
        line.clear();
        continue;
      case IoResult::kEof:
        return SessionEnd::kInputClosed;
      case IoResult::kTooLong:
        EmitLines(TextAnswer(Status(
                      Code::kTooLarge,
                      "line longer than " + std::to_string(options_.max_line) + " bytes; closing")),
                  eol_);
        return SessionEnd::kTooLong;
      case IoResult::kIdle:
        EmitLines(
            TextAnswer(Status(Code::kTimeout,
                              "no command for " + Seconds(options_.idle_timeout) + "; closing")),
            eol_);
        return SessionEnd::kIdle;
      case IoResult::kStopped:
        return SessionEnd::kStopped;
      case IoResult::kFailed:
        return SessionEnd::kFailed;
    }
  }
}

}  // namespace kv::ctl
