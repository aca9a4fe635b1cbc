// The operator's view: `status` (the supervision tree: kvd and each worker) and `stats [B]`
// (the counters of each bucket's segment header).
//
// QUEUE is the worker's queue_depth gauge (kv::BucketStats): "-" (JSON null) without a worker.
#include <iomanip>
#include <iostream>

#include "kvctl/app.h"
#include "kvctl/command_util.h"
#include "kvctl/status_json.h"

namespace kv::ctl {
namespace {

int StatusCmd(Context& ctx) {
  Client* client = ctx.OpenClient();
  if (client == nullptr) return kExitFailed;
  Result<InstanceStatus> st = client->GetStatus();
  if (!st.ok()) return Fail(ctx, st.status());
  int code = st->kvd_pid != 0 ? kExitOk : kExitFailed;
  if (ctx.json) {
    nlohmann::json buckets = nlohmann::json::array();
    for (const BucketInfo& b : st->buckets) buckets.push_back(BucketInfoJson(b));
    PrintJson({{"namespace", st->ns}, {"kvd", KvdJson(*st)}, {"buckets", buckets}});
    return code;
  }
  if (st->kvd_pid != 0) {
    std::cout << "kvd  namespace " << st->ns << "  pid " << st->kvd_pid << "  running  uptime "
              << HumanUptime(st->kvd_started_unix_ms) << "  buckets " << st->buckets.size() << "  "
              << st->persistence << "\n";
  } else {
    std::cout << "kvd  namespace " << st->ns << "  not running  buckets " << st->buckets.size()
              << "\n";
  }
  if (st->buckets.empty()) {
    std::cout << "no buckets\n";
    return code;
  }
  std::cout << std::left << std::setw(20) << "BUCKET" << std::setw(11) << "STATE" << std::setw(9)
            << "PID" << std::setw(9) << "RESTARTS" << std::setw(10) << "UPTIME" << std::setw(10)
            << "KEYS" << std::setw(11) << "MEMORY" << std::setw(6) << "QUEUE"
            << "\n";
  for (const BucketInfo& b : st->buckets) {
    bool alive = b.worker_pid != 0;
    std::cout << std::left << std::setw(20) << b.name << std::setw(11) << b.state << std::setw(9)
              << (alive ? std::to_string(b.worker_pid) : "-") << std::setw(9) << b.restarts
              << std::setw(10) << (alive ? HumanUptime(b.started_unix_ms) : "-") << std::setw(10)
              << b.keys << std::setw(11) << HumanBytes(b.memory_bytes) << std::setw(6)
              << (alive ? std::to_string(b.queue_depth) : "-");
    if (!b.reason.empty()) std::cout << "  (" << b.reason << ")";
    std::cout << "\n";
  }
  bool any_mirror = false;
  for (const BucketInfo& b : st->buckets) any_mirror |= !b.upstream.empty();
  if (any_mirror) {
    // A mirror's upstream and how far behind it is (docs/mirror.md).
    std::cout << "\n"
              << std::left << std::setw(20) << "BUCKET" << std::setw(36) << "UPSTREAM"
              << std::setw(24) << "STATE" << std::setw(10) << "LAG"
              << "RESYNCS\n";
    for (const BucketInfo& b : st->buckets) {
      if (b.upstream.empty()) continue;
      std::string state = b.upstream_state;
      if (state == "stale") {
        state += b.upstream_since_unix_ms != 0
                     ? " since " + HumanUptime(b.upstream_since_unix_ms) + " ago"
                     : " (never synced)";
      }
      std::cout << std::left << std::setw(20) << b.name << std::setw(36)
                << (b.upstream + " " + b.upstream_prefix + "*") << std::setw(24) << state
                << std::setw(10) << (std::to_string(b.upstream_lag_us) + "us") << b.upstream_resyncs
                << " (last " << b.upstream_resync_ms << " ms)";
      if (b.upstream_skipped != 0) std::cout << "  " << b.upstream_skipped << " keys not mirrored";
      std::cout << "\n";
    }
  }
  bool any_disk = false;
  for (const BucketInfo& b : st->buckets) any_disk |= b.persistence != "memory only";
  if (!any_disk) return code;
  std::cout << "\n"
            << std::left << std::setw(20) << "BUCKET" << std::setw(26) << "PERSISTENCE"
            << std::setw(12) << "LAST SAVE" << std::setw(11) << "LOG" << std::setw(10) << "CHANGES"
            << "\n";
  for (const BucketInfo& b : st->buckets) {
    std::string saved =
        b.last_save_unix_ms != 0 ? HumanUptime(b.last_save_unix_ms) + " ago" : std::string("never");
    std::cout << std::left << std::setw(20) << b.name << std::setw(26) << b.persistence
              << std::setw(12) << saved << std::setw(11) << HumanBytes(b.log_bytes) << std::setw(10)
              << b.changes_since_save;
    if (!b.persistence_error.empty()) std::cout << "  (" << b.persistence_error << ")";
    if (b.writes_refused) std::cout << "  WRITES REFUSED";
    std::cout << "\n";
  }
  return code;
}

nlohmann::json StatsJson(const std::string& name, const BucketStats& s) {
  return {{"bucket", name},
          {"keys", s.keys},
          {"generation", s.generation},
          {"memory_bytes", s.memory_bytes},
          {"used_bytes", s.used_bytes},
          {"live_bytes", s.live_bytes},
          {"writes", s.writes},
          {"queue_depth", s.queue_depth}};
}

void PrintStatsRow(const std::string& name, const BucketStats& s) {
  std::cout << std::left << std::setw(20) << name << std::right << std::setw(10) << s.keys
            << std::setw(6) << s.generation << std::setw(12) << HumanBytes(s.memory_bytes)
            << std::setw(12) << HumanBytes(s.used_bytes) << std::setw(12)
            << HumanBytes(s.live_bytes) << std::setw(12) << s.writes << "\n";
}

int Stats(Context& ctx, const std::string& only) {
  Client* client = ctx.OpenClient();
  if (client == nullptr) return kExitFailed;
  std::vector<std::string> names;
  if (!only.empty()) {
    names.push_back(only);
  } else {
    Result<InstanceStatus> st = client->GetStatus();
    if (!st.ok()) return Fail(ctx, st.status());
    for (const BucketInfo& b : st->buckets) names.push_back(b.name);
  }
  std::vector<std::pair<std::string, BucketStats>> rows;
  for (const std::string& name : names) {
    Result<Bucket> bucket = client->OpenBucket(name);
    Result<BucketStats> s = bucket.ok() ? bucket->Stats() : Result<BucketStats>(bucket.status());
    if (!s.ok()) {
      if (only.empty() && s.status().code() == Code::kBucketNotFound)
        continue;  // dropped meanwhile
      return Fail(ctx, s.status());
    }
    rows.emplace_back(name, *s);
  }
  BucketStats total;
  for (const auto& [name, s] : rows) {
    total.keys += s.keys;
    total.memory_bytes += s.memory_bytes;
    total.used_bytes += s.used_bytes;
    total.live_bytes += s.live_bytes;
    total.writes += s.writes;
  }
  if (ctx.json) {
    if (!only.empty()) {
      PrintJson(StatsJson(rows[0].first, rows[0].second));
      return kExitOk;
    }
    nlohmann::json list = nlohmann::json::array();
    for (const auto& [name, s] : rows) list.push_back(StatsJson(name, s));
    nlohmann::json t = StatsJson("", total);
    t.erase("bucket");
    t.erase("generation");
    PrintJson({{"buckets", list}, {"total", t}});
    return kExitOk;
  }
  if (rows.empty()) {
    std::cout << "no buckets\n";
    return kExitOk;
  }
  std::cout << std::left << std::setw(20) << "BUCKET" << std::right << std::setw(10) << "KEYS"
            << std::setw(6) << "GEN" << std::setw(12) << "MEMORY" << std::setw(12) << "USED"
            << std::setw(12) << "LIVE" << std::setw(12) << "WRITES"
            << "\n";
  for (const auto& [name, s] : rows) PrintStatsRow(name, s);
  if (only.empty() && rows.size() > 1) PrintStatsRow("(total)", total);
  return kExitOk;
}

}  // namespace

void AddStatusCommands(CLI::App& app, Context& ctx) {
  auto* status = app.add_subcommand(
      "status", "the supervision tree: kvd and each worker (pid, state, restarts, uptime, keys)");
  OnRun(status, ctx, [&ctx] { return StatusCmd(ctx); });

  auto* stats = app.add_subcommand("stats", "segment counters of one bucket, or of every bucket");
  auto bucket = std::make_shared<std::string>();
  stats->add_option("bucket", *bucket, "bucket name (default: every bucket)");
  OnRun(stats, ctx, [&ctx, bucket] { return Stats(ctx, *bucket); });
}

}  // namespace kv::ctl
