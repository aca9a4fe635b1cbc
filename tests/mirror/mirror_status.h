// What `kvctl status` says of a mirror bucket, for the mirror tests (single server and cluster).
#pragma once

#include <optional>
#include <string>

#include "kv/client.h"

namespace kv::testing {

// The bucket's entry in the instance status; nullopt if the status cannot be read or the bucket
// is not listed.
inline std::optional<BucketInfo> MirrorInfo(Client& client, const std::string& bucket) {
  Result<InstanceStatus> st = client.GetStatus();
  if (!st.ok()) return std::nullopt;
  for (const BucketInfo& b : st->buckets) {
    if (b.name == bucket) return b;
  }
  return std::nullopt;
}

// Whether the bucket's upstream state is `state` ("syncing", "live", "stale").
inline bool InState(Client& client, const std::string& bucket, const std::string& state) {
  std::optional<BucketInfo> b = MirrorInfo(client, bucket);
  return b && b->upstream_state == state;
}

}  // namespace kv::testing
