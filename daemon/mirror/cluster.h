// What the mirror needs to know of a Redis Cluster (docs/mirror.md, "Redis Cluster"): which slot
// a key hashes to, and which master serves each slot.
//
// KeySlot follows the Redis Cluster specification: CRC16 (XMODEM: polynomial 0x1021, initial 0)
// of the key, modulo 16384, where a key holding a non-empty "{tag}" hashes only the tag (the
// first '{' and the first '}' after it). ParseShards/ParseSlots read the replies of CLUSTER
// SHARDS (Redis 7) and CLUSTER SLOTS (older servers) in RESP2. This file talks to nobody.
#pragma once

#include <hiredis/hiredis.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kv::daemon::mirror {

inline constexpr int kClusterSlots = 16384;

int KeySlot(std::string_view key);

// One master and the slots it serves.
struct ClusterMaster {
  std::string host;
  int port = 0;
  std::vector<std::pair<int, int>> ranges;  // [first, last] slots, inclusive
  std::string name() const { return host + ":" + std::to_string(port); }
};

// The masters of a CLUSTER SHARDS reply (shards without a master, or whose master's health is
// not "online", are left out: their slots stay unserved). Empty, or why the reply is not one.
std::string ParseShards(const redisReply* reply, std::vector<ClusterMaster>* out);
// The masters of a CLUSTER SLOTS reply (a master listed for several ranges appears once).
std::string ParseSlots(const redisReply* reply, std::vector<ClusterMaster>* out);

}  // namespace kv::daemon::mirror
