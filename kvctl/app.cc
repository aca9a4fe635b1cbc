#include "kvctl/app.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>

#include "kvctl/output.h"

namespace kv::ctl {
namespace {

constexpr const char* kCommands[] = {
    "create",  "drop",  "restart", "kill",   "buckets", "shutdown", "status",
    "stats",   "put",   "get",     "del",    "cas",     "incr",     "keys",
    "dump",    "load",  "shell",   "top",    "bench",   "watch",    "completion",
    "metrics", "serve", "ttl",     "expire", "persist", "batch"};

}  // namespace

Client* Context::OpenClient() {
  if (client) return client.get();
  options.timeout = std::chrono::milliseconds(timeout_ms);
  Result<std::shared_ptr<Client>> opened = Client::Open(options);
  if (!opened.ok()) {
    Fail(*this, opened.status());
    return nullptr;
  }
  client = std::move(opened).value();
  return client.get();
}

bool IsKvctlCommand(const std::string& word) {
  return std::find(std::begin(kCommands), std::end(kCommands), word) != std::end(kCommands);
}

int RunKvctl(const std::vector<std::string>& args, Context& ctx) {
  CLI::App app{"kvctl: administer and use a kv instance", "kvctl"};
  app.require_subcommand(1);
  app.set_version_flag(
      "--version", std::string("kvctl " KV_VERSION_STRING " (libkvclient ") + kv::Version() + ")");
  app.fallthrough();  // global flags are accepted after the subcommand too
  app.footer(
      "Exit codes: 0 ok, 1 not found or failed, 2 usage.\n"
      "Run 'kvctl <command> --help' for a command's options; docs/kvctl.md for formats.");
  std::string ns_before = ctx.options.ns;
  app.add_option("-n,--namespace", ctx.options.ns,
                 "instance namespace (env KV_NAMESPACE, default kv)");
  app.add_option("--timeout-ms", ctx.timeout_ms, "how long a write waits for its reply")
      ->check(CLI::Range(1, 3600000));
  ctx.json = false;
  app.add_flag("--json", ctx.json, "print data as one JSON document on stdout");
  ctx.action = nullptr;

  AddAdminCommands(app, ctx);
  AddStatusCommands(app, ctx);
  AddDataCommands(app, ctx);
  AddDumpCommands(app, ctx);
  AddBatchCommand(app, ctx);
  AddShellCommand(app, ctx);
  AddTopCommand(app, ctx);
  AddBenchCommand(app, ctx);
  AddWatchCommand(app, ctx);
  AddServeCommand(app, ctx);
  AddMetricsCommand(app, ctx);
  AddCompletionCommand(app, ctx);

  try {
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    // A first word that is no command: name it, rather than CLI11's "A subcommand is required".
    if (app.get_subcommands().empty()) {
      std::vector<std::string> rest = app.remaining();
      if (!rest.empty() && !rest.front().empty() && rest.front()[0] != '-') {
        std::cerr << "kvctl: unknown command '" << rest.front()
                  << "'; run 'kvctl --help' for the list\n";
        return kExitUsage;
      }
    }
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  if (ctx.in_shell && ctx.options.ns != ns_before) {
    ctx.options.ns = ns_before;
    std::cerr << "kvctl: INVALID: the namespace cannot change inside the shell\n";
    return kExitUsage;
  }
  if (!ctx.action) return kExitUsage;
  int code = ctx.action();
  std::cout << std::flush;
  return code;
}

int RunKvctlLine(const std::string& line, Context& ctx) {
  std::vector<std::string> args;
  try {
    args = CLI::detail::split_up(line);
  } catch (const std::exception& e) {
    std::cerr << "kvctl: INVALID: " << e.what() << "\n";
    return kExitUsage;
  }
  return RunKvctl(args, ctx);
}

}  // namespace kv::ctl
