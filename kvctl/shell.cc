// `kvctl shell`: the KV text protocol of the Elixir guide (text_protocol.h) plus every kvctl
// command, one per line.
//
// A line whose first word is a kvctl subcommand (lowercase: status, keys, put, ...) runs that
// command in-process against the shell's client (same flags and output as on the command line,
// "shell", "top" and "watch" excepted); "help" and "quit"/"exit" are the shell's own; every other
// line is a text-protocol command answered with the guide's exact replies. On a terminal the shell
// uses libedit (line editing, history in $KVCTL_HISTORY or ~/.kvctl_history) and prompts "kv> ".
// When stdin is not a terminal it runs one Session (kvctl/session.h) on stdin/stdout: no prompt,
// no banner, CRLF lines answered with CRLF, each answer written before the next line is read,
// bounded lines (--max-line), an idle limit (--idle-timeout), exit 0 when the input closes. That
// is also how systemd's kv-shell.socket (Accept=yes) runs it, with the TCP connection as stdin
// and stdout; --text-only then keeps the kvctl commands off the network.
//
// SUBSCRIBE <bucket> (the guide's PubSub): no acknowledgement; from then on the shell prints one
// line per change of the bucket (change_format.h) and ignores further input until stdin closes,
// then exits 0. The thread that drains the ignored input starts only once the subscription
// exists. A missing bucket answers NOT FOUND and the session goes on.
#include <editline/readline.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <memory>

#include "kvctl/app.h"
#include "kvctl/command_util.h"
#include "kvctl/line_io.h"
#include "kvctl/session.h"

namespace kv::ctl {
namespace {

struct ShellArgs {
  bool text_only = false;
  int idle_timeout_s = 0;
  std::size_t max_line = kMaxProtocolLine;
};

std::string HistoryPath() {
  if (const char* p = std::getenv("KVCTL_HISTORY"); p != nullptr) return p;
  if (const char* home = std::getenv("HOME"); home != nullptr) {
    return std::string(home) + "/.kvctl_history";
  }
  return "";
}

int Interactive(Context& ctx, Session& session) {
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
    if (!session.RunLine(line)) break;
  }
  if (!history.empty()) write_history(history.c_str());
  std::cout << "\n";
  return kExitOk;
}

int Shell(Context& ctx, const ShellArgs& args) {
  // A peer that closed the connection (or a pipe's reader that went away) is an I/O error the
  // session handles, not a signal that kills the shell.
  ::signal(SIGPIPE, SIG_IGN);
  if (ctx.OpenClient() == nullptr) {
    if (IsSocket(STDOUT_FILENO)) {  // the error went to stderr (the journal): tell the peer too
      LineWriter(STDOUT_FILENO, -1, std::chrono::seconds(5))
          .Write("ERROR UNAVAILABLE: the kv instance cannot be opened; closing\r\n");
    }
    return kExitFailed;
  }
  ctx.in_shell = true;
  SessionOptions options;
  options.text_only = args.text_only;
  options.idle_timeout = std::chrono::seconds(args.idle_timeout_s);
  options.max_line = args.max_line;
  Session session(ctx, STDIN_FILENO, STDOUT_FILENO, options);
  if (::isatty(STDIN_FILENO) != 0) return Interactive(ctx, session);
  SessionEnd end = session.Run();
  if (EndsWithUnreadInput(end)) LingerBeforeClose(STDOUT_FILENO, -1);
  return end == SessionEnd::kTooLong || end == SessionEnd::kFailed ? kExitFailed : kExitOk;
}

}  // namespace

void AddShellCommand(CLI::App& app, Context& ctx) {
  auto* shell = app.add_subcommand(
      "shell",
      "interactive shell: the KV text protocol (CREATE/PUT/GET/DELETE) and kvctl commands");
  auto args = std::make_shared<ShellArgs>();
  shell->add_flag("--text-only", args->text_only,
                  "serve only the text protocol (CREATE/PUT/GET/DELETE/SUBSCRIBE, quit): no kvctl "
                  "command, as on a network socket");
  shell
      ->add_option("--idle-timeout", args->idle_timeout_s,
                   "end the session after SECONDS without a command (0: never; not on a "
                   "terminal)")
      ->check(CLI::Range(0, 86400 * 365));
  shell
      ->add_option("--max-line", args->max_line,
                   "longest accepted line in bytes; a longer one is an error that ends the "
                   "session (default: the longest valid PUT)")
      ->check(CLI::Range(std::size_t{64}, kMaxProtocolLine));
  OnRun(shell, ctx, [&ctx, args] { return Shell(ctx, *args); });
}

}  // namespace kv::ctl
