// `kvctl watch <bucket> [--from SEQ] [--json]`: prints every change of the bucket as its worker
// applies it, one line per change (change_format.h; with --json one JSON object per line),
// read from the bucket's change feed in shared memory. Runs until SIGINT or SIGTERM (exit 0).
// Exit 1 if the bucket does not exist, is dropped while watched, or its feed fails validation.
// Not available inside `kvctl shell` (which has SUBSCRIBE instead).
#include <signal.h>

#include <csignal>
#include <iostream>

#include "kvctl/app.h"
#include "kvctl/change_format.h"
#include "kvctl/command_util.h"

namespace kv::ctl {
namespace {

volatile std::sig_atomic_t g_stop = 0;

void OnStopSignal(int) { g_stop = 1; }

// Routes SIGINT and SIGTERM to g_stop (without SA_RESTART: a sleeping Next() wakes early) while
// alive; restores the previous handlers afterwards.
class StopOnSignals {
 public:
  StopOnSignals() {
    g_stop = 0;
    struct sigaction sa {};
    sa.sa_handler = OnStopSignal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &old_int_);
    ::sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopOnSignals() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopOnSignals(const StopOnSignals&) = delete;
  StopOnSignals& operator=(const StopOnSignals&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

int Watch(Context& ctx, const std::string& bucket_name, std::uint64_t from) {
  StopOnSignals signals;  // before subscribing: a signal from then on ends the watch cleanly
  std::optional<Bucket> bucket = OpenBucketOrFail(ctx, bucket_name);
  if (!bucket) return kExitFailed;
  Result<Subscription> sub = bucket->Subscribe(from);
  if (!sub.ok()) return Fail(ctx, sub.status());
  Change change;
  while (g_stop == 0) {
    Status s = sub->Next(&change, std::chrono::milliseconds(200));
    if (s.code() == Code::kTimeout) continue;
    if (!s.ok()) return Fail(ctx, s);
    if (ctx.json) {
      PrintJson(ChangeJson(change));
    } else {
      std::cout << ChangeLine(change) << "\n";
    }
    std::cout << std::flush;
  }
  return kExitOk;
}

}  // namespace

void AddWatchCommand(CLI::App& app, Context& ctx) {
  auto* watch = app.add_subcommand(
      "watch", "print a bucket's changes as they happen, until interrupted (Ctrl-C)");
  auto bucket = std::make_shared<std::string>();
  auto from = std::make_shared<std::uint64_t>(0);
  watch->add_option("bucket", *bucket, "bucket name")->required();
  watch->add_option("--from", *from,
                    "start at this change sequence number (replays what the feed still holds; "
                    "default: the next change)");
  watch->footer(
      "Lines: '<key> SET TO <value>' (put, cas, incr), '<key> DELETED', 'CLEARED',\n"
      "'MISSED <n> CHANGES' (fell behind), 'RESYNC' (worker restarted after a crash).\n"
      "--json: one object per line: seq, op (put delete clear missed resync), key, value.");
  OnRun(watch, ctx, [&ctx, bucket, from] { return Watch(ctx, *bucket, *from); });
}

}  // namespace kv::ctl
