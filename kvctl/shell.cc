// `kvctl shell`: the KV text protocol of the Elixir guide (text_protocol.h) plus every kvctl
// command, one per line.
//
// A line whose first word is a kvctl subcommand (lowercase: status, keys, put, ...) runs that
// command in-process against the shell's client (same flags and output as on the command line,
// "shell", "top" and "watch" excepted); "help" and "quit"/"exit" are the shell's own; every other
// line is a text-protocol command answered with the guide's exact replies. On a terminal the shell
// uses libedit (line editing, history in $KVCTL_HISTORY or ~/.kvctl_history) and prompts "kv> ".
// When stdin is not a terminal it reads plain lines, prints no prompt and no banner, and answers
// CRLF-terminated lines with CRLF, so scripts and `nc`-style clients can drive it.
//
// SUBSCRIBE <bucket> (the guide's PubSub): no acknowledgement; from then on the shell prints one
// line per change of the bucket (change_format.h) and ignores further input until stdin closes,
// then exits 0. The thread that drains the ignored input starts only once the subscription
// exists. A missing bucket answers NOT FOUND and the session goes on.
#include <editline/readline.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "kvctl/app.h"
#include "kvctl/change_format.h"
#include "kvctl/command_util.h"
#include "kvctl/text_protocol.h"

namespace kv::ctl {
namespace {

constexpr char kHelp[] =
    "Text protocol (replies as in the Elixir guide):\n"
    "  CREATE <bucket>  PUT <bucket> <key> <value>  GET <bucket> <key>  DELETE <bucket> <key>\n"
    "  SUBSCRIBE <bucket>  (prints every change until input ends; ignores further input)\n"
    "kvctl commands (same as on the command line, e.g. 'status', 'keys b --prefix p --json'):\n"
    "  create drop restart kill buckets shutdown status stats put get del cas incr keys dump load\n"
    "  bench\n"
    "Shell: help, quit (or exit, or Ctrl-D)\n";

std::string FirstWord(const std::string& line) {
  std::size_t start = line.find_first_not_of(" \t");
  if (start == std::string::npos) return "";
  std::size_t end = line.find_first_of(" \t", start);
  return line.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// Reads and discards stdin until it closes (EOF or error), then sets *closed.
void DrainInput(std::atomic<bool>* closed) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n > 0 || (n < 0 && errno == EINTR)) continue;
    break;
  }
  closed->store(true);
}

// SUBSCRIBE: prints the bucket's changes until stdin closes. Returns false (the shell ends) once
// subscribed; true after answering NOT FOUND or an error.
bool Subscribe(Context& ctx, const std::string& bucket_name, const char* eol) {
  Result<Bucket> bucket = ctx.client->OpenBucket(bucket_name);
  Result<Subscription> sub =
      bucket.ok() ? bucket->Subscribe() : Result<Subscription>(bucket.status());
  if (!sub.ok()) {
    for (const std::string& reply : TextAnswer(sub.status())) std::cout << reply << eol;
    std::cout << std::flush;
    return true;
  }
  std::atomic<bool> input_closed{false};
  std::thread drain(DrainInput, &input_closed);
  Change change;
  while (!input_closed.load()) {
    Status s = sub->Next(&change, std::chrono::milliseconds(100));
    if (s.code() == Code::kTimeout) continue;
    if (!s.ok()) {  // dropped (NOT FOUND) or a damaged feed: say so, then wait for the input
      for (const std::string& reply : TextAnswer(s)) std::cout << reply << eol;
      std::cout << std::flush;
      break;
    }
    std::cout << ChangeLine(change) << eol << std::flush;
  }
  drain.join();
  return false;
}

// Runs one line; returns false when the shell should end.
bool RunLine(Context& ctx, std::string line) {
  bool crlf = !line.empty() && line.back() == '\r';
  if (crlf) line.pop_back();
  const char* eol = crlf ? "\r\n" : "\n";
  std::string word = FirstWord(line);
  if (word == "quit" || word == "exit") return false;
  if (word == "help") {
    std::cout << kHelp << std::flush;
    return true;
  }
  if (word == "shell" || word == "top" || word == "watch") {
    std::cerr << "kvctl: INVALID: '" << word << "' cannot run inside the shell\n";
    return true;
  }
  if (IsKvctlCommand(word)) {
    RunKvctlLine(line, ctx);
    std::cout << std::flush;
    return true;
  }
  if (std::optional<std::string> bucket = SubscribeTarget(line)) {
    return Subscribe(ctx, *bucket, eol);
  }
  for (const std::string& reply : RunTextCommand(*ctx.client, line)) std::cout << reply << eol;
  std::cout << std::flush;
  return true;
}

std::string HistoryPath() {
  if (const char* p = std::getenv("KVCTL_HISTORY"); p != nullptr) return p;
  if (const char* home = std::getenv("HOME"); home != nullptr) {
    return std::string(home) + "/.kvctl_history";
  }
  return "";
}

int Interactive(Context& ctx) {
  std::string history = HistoryPath();
  using_history();
  stifle_history(1000);
  if (!history.empty()) read_history(history.c_str());
  std::cout << "kv shell, namespace " << ctx.client->ns() << ". Type help for commands.\n";
  for (;;) {
    char* raw = readline("kv> ");
    if (raw == nullptr) break;  // Ctrl-D
    std::string line(raw);
    std::free(raw);
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    add_history(line.c_str());
    if (!RunLine(ctx, line)) break;
  }
  if (!history.empty()) write_history(history.c_str());
  std::cout << "\n";
  return kExitOk;
}

int Shell(Context& ctx) {
  if (ctx.OpenClient() == nullptr) return kExitFailed;
  ctx.in_shell = true;
  if (::isatty(STDIN_FILENO) != 0) return Interactive(ctx);
  std::string line;
  while (std::getline(std::cin, line)) {
    if (!RunLine(ctx, line)) break;
  }
  return kExitOk;
}

}  // namespace

void AddShellCommand(CLI::App& app, Context& ctx) {
  auto* shell = app.add_subcommand(
      "shell",
      "interactive shell: the KV text protocol (CREATE/PUT/GET/DELETE) and kvctl commands");
  OnRun(shell, ctx, [&ctx] { return Shell(ctx); });
}

}  // namespace kv::ctl
