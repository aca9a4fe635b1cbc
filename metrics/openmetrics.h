// kv's metrics in the Prometheus text exposition format (version 0.0.4, which node_exporter's
// textfile collector and Prometheus read): `kvctl metrics` prints them, and kvd writes them to
// `metrics-file` every `metrics-interval-ms` (docs/operations.md, "Metrics").
//
// Families (labels: namespace; per bucket also bucket):
//   kv_up                        gauge    1 if kvd is running
//   kv_kvd_uptime_seconds        gauge    since kvd started (0 if it is not running)
//   kv_buckets                   gauge    buckets in the registry
//   kv_restarts_total            counter  worker restarts, summed over the buckets
//   kv_bucket_keys               gauge    live keys
//   kv_bucket_memory_bytes       gauge    shared memory of the bucket's table
//   kv_bucket_writes_total       counter  writes applied since the bucket was created
//   kv_bucket_restarts_total     counter  restarts of its worker (reset by `kvctl restart`)
//   kv_bucket_state              gauge    1 for the bucket's state, 0 for the others (label state)
//   kv_bucket_queue_depth        gauge    most requests waiting at one look, last second
//   kv_bucket_feed_position      gauge    sequence of the next change in the bucket's feed
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kv/client.h"

namespace kv::metrics {

struct BucketMetrics {
  std::string name;
  std::string state;  // as BucketInfo::state
  std::uint64_t keys = 0;
  std::uint64_t memory_bytes = 0;
  std::uint64_t writes = 0;
  std::uint64_t restarts = 0;
  std::uint64_t queue_depth = 0;
  std::uint64_t feed_position = 0;
};

struct InstanceMetrics {
  std::string ns;
  bool kvd_up = false;
  double kvd_uptime_seconds = 0;
  std::vector<BucketMetrics> buckets;
};

// Reads the metrics of `client`'s instance (registry and segments; no round trip to kvd).
Result<InstanceMetrics> Collect(Client& client);

// The exposition text: HELP and TYPE lines, then one line per sample; ends with a newline.
std::string Format(const InstanceMetrics& m);

// Writes `text` to `path` atomically (a temporary file in the same directory, then rename), so
// a collector never reads half a file. The file is readable by everyone (0644). False with
// *error on failure; `path` is then unchanged.
bool WriteFileAtomically(const std::string& path, const std::string& text, std::string* error);

}  // namespace kv::metrics
