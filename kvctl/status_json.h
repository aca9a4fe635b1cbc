// The JSON form of the supervision tree, shared by every document that shows it (`status --json`
// and each frame of `top --json`), so a field means the same thing, under the same name, in both.
// Fields are listed in docs/kvctl.md.
#pragma once

#include <nlohmann/json.hpp>

#include "kv/client.h"

namespace kv::ctl {

// {"pid","running","started_unix_ms","uptime_s","persistence"} of kvd (pid 0 and uptime 0 when
// not running; persistence "memory only" or what kvd keeps in its data directory).
nlohmann::json KvdJson(const InstanceStatus& status);
// {"name","id","state","pid","restarts","started_unix_ms","uptime_s","keys","generation",
//  "memory_bytes","writes","queue_depth","reason"} of one bucket; "pid" is the worker's (0 if
// none), "uptime_s" 0 without a worker, "queue_depth" null without a worker.
// "persistence": null when memory only, else PersistenceJson.
nlohmann::json BucketInfoJson(const BucketInfo& b);
// {"mode","last_save_unix_ms" (null: never),"log_bytes","changes_since_save","last_save_ok",
//  "writes_refused","error" (null: none)} of one bucket.
nlohmann::json PersistenceJson(const BucketInfo& b);
// "upstream": null unless the bucket mirrors an upstream Redis (docs/mirror.md).
nlohmann::json UpstreamJson(const BucketInfo& b);

}  // namespace kv::ctl
