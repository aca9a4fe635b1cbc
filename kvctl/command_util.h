// Small helpers for declaring subcommands: the chosen subcommand's CLI11 callback stores its
// action in the Context, which RunKvctl runs after parsing succeeded.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "kv/client.h"
#include "kvctl/context.h"
#include "kvctl/output.h"

namespace kv::ctl {

template <typename Fn>
void OnRun(CLI::App* cmd, Context& ctx, Fn fn) {
  cmd->callback([&ctx, fn = std::move(fn)] { ctx.action = fn; });
}

// Opens `name` through the context's client; prints the error and returns nullopt on failure.
inline std::optional<Bucket> OpenBucketOrFail(Context& ctx, const std::string& name) {
  Client* client = ctx.OpenClient();
  if (client == nullptr) return std::nullopt;
  Result<Bucket> bucket = client->OpenBucket(name);
  if (!bucket.ok()) {
    Fail(ctx, bucket.status());
    return std::nullopt;
  }
  return std::move(bucket).value();
}

// Prints {"ok":true, ...extra} with --json; nothing otherwise. Returns kExitOk.
inline int Done(const Context& ctx, nlohmann::json extra = nlohmann::json::object()) {
  if (ctx.json) {
    nlohmann::json doc = {{"ok", true}};
    doc.update(extra);
    PrintJson(doc);
  }
  return kExitOk;
}

}  // namespace kv::ctl
