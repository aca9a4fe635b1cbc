// Exactly-once for the mirror's writes that are not idempotent: incr, delete and cas
// (docs/mirror.md, "A worker killed mid-write").
//
// A worker killed after the upstream applied a write and before the worker applied it to the
// table leaves the request in the client's ring, and the next worker sends it again: the
// bucket's exactly-once log (shm/channel_dedup.h) covers only what reached the table. Sent twice,
// an INCRBY counts twice, a GETDEL answers NOT_FOUND (or deletes a value written since), a cas
// answers VERSION_MISMATCH. So each of these writes runs upstream as a Lua script that first
// looks for its request in its channel's record and answers from it; else it executes the write
// and adds the outcome to the record, in the same atomic step.
//
// The record is a sorted set in the upstream, `kv-once:<channel id, 16 hex digits>`, or in a
// cluster `kv-once:{TAG}<channel id>` where TAG hashes to the written key's slot (the script's
// two keys must share a slot). Members are "<request id>:<outcome>", scored by request id (ids
// up to 2^53 are exact). A script drops the members below the lowest request id its channel may
// still send again, so a record holds at most one pipelined batch; it expires kRecordTtlMs after
// its last write, so a channel gone leaves nothing for long. Upstream keys starting with
// kReservedPrefix are never mirrored.
//
// Every script takes KEYS = {the written key, the record} (or the key alone: executed without a
// record, at least once, where a cluster cannot hold the record beside the key: its slot is
// being migrated and the two keys are not on one node) and ARGV = {request id, lowest request
// id still to keep, record TTL in ms, the op's own arguments...}. It answers an error (the
// write's own, e.g. not an integer) or an array {flag, outcome}: flag 1 = executed now (and
// recorded), 2 = executed before (outcome from the record: apply nothing locally), 0 = a cas the
// upstream refused (outcome: its current value, if any; nothing recorded, nothing written).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kv::daemon::mirror {

inline constexpr std::string_view kReservedPrefix = "kv-once:";
inline constexpr std::int64_t kRecordTtlMs = 3600 * 1000;

// ARGV[4]: the increment. Outcome: the new value, decimal.
extern const std::string kIncrOnceScript;
// Outcome: "1" followed by the deleted value, or "0" if the key was absent.
extern const std::string kDeleteOnceScript;
// ARGV[4] "0" = the key must be absent, "1" = it must hold ARGV[5], "?" = only look the request
// up in the record (answers {0} if it is not there); ARGV[6] the new value. Outcome "1" when set.
extern const std::string kCasOnceScript;

// The record of channel `channel_id` for writes of upstream key `key` (cluster: in key's slot).
std::string RecordKey(std::string_view key, std::uint64_t channel_id, bool cluster);

// A string whose hash slot is `slot` (0 <= slot < 16384): a cluster tag.
const std::string& SlotTag(int slot);

}  // namespace kv::daemon::mirror
