// The state one kvctl command runs with: global flags, the lazily opened client, and the action
// the chosen subcommand registered. One Context serves one process invocation, or the whole of
// a `kvctl shell` session (which then runs many commands against the same client).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "kv/client.h"

namespace kv::ctl {

// Exit codes of every command (and of `kvctl` itself).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  // not found, or the operation failed
inline constexpr int kExitUsage = 2;   // bad arguments

struct Context {
  ClientOptions options;  // options.ns from --namespace; timeout from --timeout-ms
  int timeout_ms = 5000;
  bool json = false;      // --json: print data as one JSON document on stdout
  bool in_shell = false;  // running inside `kvctl shell` (no nested shell or top)

  // The client, opened on first use (commands that do not talk to kv never open it).
  // Returns nullptr after printing the error (the command should return kExitFailed).
  Client* OpenClient();
  std::shared_ptr<Client> client;

  // Set by the chosen subcommand while parsing; run once parsing succeeded.
  std::function<int()> action;
};

}  // namespace kv::ctl
