// Bucket lifecycle and fault injection: create, drop, restart, kill, save, buckets, shutdown.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <thread>

#include "daemon/pidfd.h"
#include "kvctl/app.h"
#include "kvctl/command_util.h"

namespace kv::ctl {
namespace {

std::optional<BucketInfo> FindBucket(Context& ctx, const std::string& name) {
  Client* client = ctx.OpenClient();
  if (client == nullptr) return std::nullopt;
  Result<InstanceStatus> st = client->GetStatus();
  if (!st.ok()) {
    Fail(ctx, st.status());
    return std::nullopt;
  }
  for (const BucketInfo& b : st->buckets) {
    if (b.name == name) return b;
  }
  Fail(ctx, Status(Code::kBucketNotFound, "bucket '" + name + "' does not exist"));
  return std::nullopt;
}

int Kill(Context& ctx, const std::string& name, bool wait) {
  std::optional<BucketInfo> b = FindBucket(ctx, name);
  if (!b) return kExitFailed;
  if (b->worker_pid <= 0) {
    return Fail(ctx,
                Status(Code::kUnavailable,
                       "bucket '" + name + "' has no running worker (state " + b->state + ")"));
  }
  // Signal through a pidfd opened while the registry still names this pid as the worker: a pid
  // alone may have been reused by another process once the worker exited and kvd reaped it.
  int pidfd = daemon::PidfdOpen(b->worker_pid);
  std::optional<BucketInfo> still = pidfd >= 0 ? FindBucket(ctx, name) : std::nullopt;
  if (pidfd >= 0 && !still) {
    ::close(pidfd);
    return kExitFailed;
  }
  if (pidfd < 0 || still->worker_pid != b->worker_pid) {
    if (pidfd >= 0) ::close(pidfd);
    return Fail(ctx, Status(Code::kUnavailable, "the worker " + std::to_string(b->worker_pid) +
                                                    " of bucket '" + name +
                                                    "' exited meanwhile; nothing was killed"));
  }
  int err = daemon::SignalProcess(pidfd, 0, SIGKILL);
  ::close(pidfd);
  if (err != 0) {
    return Fail(ctx, Status(err == EPERM ? Code::kPermissionDenied : Code::kFailed,
                            "kill " + std::to_string(b->worker_pid) + ": " + std::strerror(err)));
  }
  nlohmann::json doc = {{"bucket", name}, {"killed_pid", b->worker_pid}};
  if (!ctx.json) std::cout << "killed worker " << b->worker_pid << " of bucket " << name << "\n";
  if (wait) {
    // Watch supervision: wait until kvd reports a new worker running (bounded by the timeout).
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ctx.timeout_ms);
    std::optional<BucketInfo> now;
    while (std::chrono::steady_clock::now() < deadline) {
      now = FindBucket(ctx, name);
      if (!now) return kExitFailed;
      if (now->state == "running" && now->worker_pid > 0 && now->worker_pid != b->worker_pid) break;
      now.reset();
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (!now) {
      return Fail(ctx, Status(Code::kTimeout, "bucket '" + name + "' has no new worker after " +
                                                  std::to_string(ctx.timeout_ms) + " ms"));
    }
    doc["new_pid"] = now->worker_pid;
    doc["restarts"] = now->restarts;
    if (!ctx.json) {
      std::cout << "restarted as worker " << now->worker_pid << " (restarts " << now->restarts
                << ")\n";
    }
  }
  return Done(ctx, doc);
}

int Buckets(Context& ctx) {
  Client* client = ctx.OpenClient();
  if (client == nullptr) return kExitFailed;
  Result<InstanceStatus> st = client->GetStatus();
  if (!st.ok()) return Fail(ctx, st.status());
  if (ctx.json) {
    nlohmann::json list = nlohmann::json::array();
    for (const BucketInfo& b : st->buckets) {
      list.push_back({{"name", b.name}, {"id", b.id}, {"state", b.state}});
    }
    PrintJson({{"namespace", st->ns}, {"buckets", list}});
  } else {
    for (const BucketInfo& b : st->buckets) std::cout << b.name << "\n";
  }
  return kExitOk;
}

// `save [BUCKET]`: a snapshot of one bucket, or of every running bucket, now; waits for each.
int Save(Context& ctx, const std::string& only) {
  Client* client = ctx.OpenClient();
  if (client == nullptr) return kExitFailed;
  std::vector<std::string> names;
  if (!only.empty()) {
    names.push_back(only);
  } else {
    Result<InstanceStatus> st = client->GetStatus();
    if (!st.ok()) return Fail(ctx, st.status());
    for (const BucketInfo& b : st->buckets) {
      if (b.state == "running") names.push_back(b.name);
    }
  }
  nlohmann::json saved = nlohmann::json::array();
  for (const std::string& name : names) {
    Status s = client->SaveBucket(name);
    if (!s.ok()) return Fail(ctx, s);
    saved.push_back(name);
    if (!ctx.json) std::cout << "saved " << name << "\n";
  }
  return Done(ctx, {{"saved", saved}});
}

// create/drop/restart/shutdown: one control request, quiet on success.
template <typename Op>
void AddControl(CLI::App& app, Context& ctx, const char* name, const char* help, Op op) {
  auto* cmd = app.add_subcommand(name, help);
  auto bucket = std::make_shared<std::string>();
  cmd->add_option("bucket", *bucket, "bucket name")->required();
  OnRun(cmd, ctx, [&ctx, bucket, op] {
    Client* client = ctx.OpenClient();
    if (client == nullptr) return kExitFailed;
    Status s = op(*client, *bucket);
    return s.ok() ? Done(ctx, {{"bucket", *bucket}}) : Fail(ctx, s);
  });
}

}  // namespace

void AddAdminCommands(CLI::App& app, Context& ctx) {
  auto* create =
      app.add_subcommand("create", "create a bucket and start its worker (OK if it exists)");
  auto create_bucket = std::make_shared<std::string>();
  auto upstream = std::make_shared<Upstream>();
  auto prefix = std::make_shared<std::string>();
  create->add_option("bucket", *create_bucket, "bucket name")->required();
  auto* url_opt =
      create->add_option("--upstream", upstream->url,
                         "mirror this Redis/Valkey: redis://HOST:PORT[/DB], unix:///path[?db=N] or "
                         "redis-cluster://HOST:PORT[,HOST:PORT...] (docs/mirror.md)");
  create->add_option("--prefix", *prefix, "upstream key prefix (default: BUCKET:)")->needs(url_opt);
  create
      ->add_option("--password-file", upstream->password_file,
                   "file holding the upstream's password (never the password itself)")
      ->needs(url_opt);
  OnRun(create, ctx, [&ctx, create_bucket, upstream, prefix, create] {
    Client* client = ctx.OpenClient();
    if (client == nullptr) return kExitFailed;
    Status s;
    if (upstream->url.empty()) {
      s = client->CreateBucket(*create_bucket);
    } else {
      Upstream u = *upstream;
      if (create->count("--prefix") != 0) u.prefix = *prefix;
      s = client->CreateBucket(*create_bucket, u);
    }
    return s.ok() ? Done(ctx, {{"bucket", *create_bucket}}) : Fail(ctx, s);
  });
  AddControl(app, ctx, "drop", "stop a bucket's worker and delete its data",
             [](Client& c, const std::string& b) { return c.DropBucket(b); });
  AddControl(app, ctx, "restart", "restart a bucket's worker (also clears a failed state)",
             [](Client& c, const std::string& b) { return c.RestartBucket(b); });

  auto* kill = app.add_subcommand("kill", "SIGKILL a bucket's worker, to watch supervision work");
  auto bucket = std::make_shared<std::string>();
  auto wait = std::make_shared<bool>(false);
  kill->add_option("bucket", *bucket, "bucket name")->required();
  kill->add_flag("-w,--wait", *wait,
                 "wait until kvd has restarted the worker (up to --timeout-ms)");
  OnRun(kill, ctx, [&ctx, bucket, wait] { return Kill(ctx, *bucket, *wait); });

  auto* save = app.add_subcommand(
      "save", "snapshot a bucket (default: every running bucket) to kvd's data directory, now");
  auto save_bucket = std::make_shared<std::string>();
  save->add_option("bucket", *save_bucket, "bucket name (default: every running bucket)");
  OnRun(save, ctx, [&ctx, save_bucket] { return Save(ctx, *save_bucket); });

  auto* buckets = app.add_subcommand("buckets", "list the buckets, one name a line");
  OnRun(buckets, ctx, [&ctx] { return Buckets(ctx); });

  auto* shutdown = app.add_subcommand("shutdown", "stop kvd (workers stopped, data kept)");
  OnRun(shutdown, ctx, [&ctx] {
    Client* client = ctx.OpenClient();
    if (client == nullptr) return kExitFailed;
    Status s = client->Shutdown();
    return s.ok() ? Done(ctx) : Fail(ctx, s);
  });
}

}  // namespace kv::ctl
