// The worker's active expiry (as Redis's): a min-heap of (expiry time, key) for every key given
// an expiry, so that the worker tombstones expired keys itself and their memory returns without
// any reader's help (readers already treat them as absent: shm/bucket_table.h, Find).
//
// Entries are hints, never the truth: the key's record in the table is. An entry whose key was
// since overwritten, deleted, given another expiry or persisted is dropped when it comes due
// (TableWriter::Expire compares the record's expiry with the entry's). Each pass of the worker's
// loop does bounded work (Due hands out at most `budget` entries), as Redis's active expiry
// cycle does. The heap lives in the worker's memory; a restarted worker rebuilds it from the
// table (BucketStore::Open), so expiry survives a SIGKILL: the times themselves are in the
// records, in shared memory.
//
// What it does not do: keep one entry per key (a key given a new expiry N times before it comes
// due has N entries, each dropped when it comes due; 40-odd bytes plus the key each).
#pragma once

#include <cstdint>
#include <queue>
#include <string>
#include <string_view>
#include <vector>

namespace kv::daemon {

class ExpiryQueue {
 public:
  struct Entry {
    std::uint64_t expiry = 0;  // Unix ms (shm::RealtimeCoarseMillis)
    std::string key;
  };

  void Push(std::string_view key, std::uint64_t expiry);
  // The earliest expiry queued (0: none).
  std::uint64_t Next() const { return heap_.empty() ? 0 : heap_.top().expiry; }
  // Moves into *out the entries due at `now` (expiry <= now), at most `budget` of them,
  // earliest first. Returns how many.
  std::size_t Due(std::uint64_t now, std::size_t budget, std::vector<Entry>* out);
  std::size_t size() const { return heap_.size(); }
  void Clear() { heap_ = {}; }

 private:
  struct Later {
    bool operator()(const Entry& a, const Entry& b) const { return a.expiry > b.expiry; }
  };
  std::priority_queue<Entry, std::vector<Entry>, Later> heap_;
};

}  // namespace kv::daemon
