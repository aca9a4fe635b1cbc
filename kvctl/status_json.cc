#include "kvctl/status_json.h"

#include "kvctl/output.h"

namespace kv::ctl {

nlohmann::json KvdJson(const InstanceStatus& status) {
  bool running = status.kvd_pid != 0;
  return {{"pid", status.kvd_pid},
          {"running", running},
          {"started_unix_ms", status.kvd_started_unix_ms},
          {"uptime_s", running ? UptimeSeconds(status.kvd_started_unix_ms) : 0},
          {"persistence", status.persistence}};
}

nlohmann::json BucketInfoJson(const BucketInfo& b) {
  return {{"name", b.name},
          {"id", b.id},
          {"state", b.state},
          {"pid", b.worker_pid},
          {"restarts", b.restarts},
          {"started_unix_ms", b.started_unix_ms},
          {"uptime_s", b.worker_pid != 0 ? UptimeSeconds(b.started_unix_ms) : 0},
          {"keys", b.keys},
          {"generation", b.generation},
          {"memory_bytes", b.memory_bytes},
          {"writes", b.writes},
          {"queue_depth", b.worker_pid != 0 ? nlohmann::json(b.queue_depth) : nlohmann::json()},
          {"subscribers", b.worker_pid != 0 ? nlohmann::json(b.subscribers) : nlohmann::json()},
          {"reason", b.reason},
          {"persistence", PersistenceJson(b)},
          {"upstream", UpstreamJson(b)}};
}

nlohmann::json UpstreamJson(const BucketInfo& b) {
  if (b.upstream.empty()) return nullptr;
  return {{"url", b.upstream},
          {"prefix", b.upstream_prefix},
          {"state", b.upstream_state},
          {"since_unix_ms", b.upstream_since_unix_ms},
          {"lag_us", b.upstream_lag_us},
          {"resyncs", b.upstream_resyncs},
          {"resync_ms", b.upstream_resync_ms},
          {"skipped_keys", b.upstream_skipped}};
}

nlohmann::json PersistenceJson(const BucketInfo& b) {
  if (b.persistence == "memory only") return nullptr;
  return {{"mode", b.persistence},
          {"last_save_unix_ms",
           b.last_save_unix_ms != 0 ? nlohmann::json(b.last_save_unix_ms) : nlohmann::json()},
          {"log_bytes", b.log_bytes},
          {"changes_since_save", b.changes_since_save},
          {"last_save_ok", b.last_save_ok},
          {"writes_refused", b.writes_refused},
          {"error",
           b.persistence_error.empty() ? nlohmann::json() : nlohmann::json(b.persistence_error)}};
}

}  // namespace kv::ctl
