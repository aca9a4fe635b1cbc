// Hides the bucket table's memory latency from the worker's drain loop. Applying a put costs two
// dependent cache misses (the key's slot, then the record it points at, to compare keys) in a
// table far larger than the cache; requests arrive in batches, so the keys of the next ones are
// already in the ring. While request i is applied, this has the home slots of requests up to
// i + kDistance and the record of request i + kDistance/2 on their way (TableWriter::PrefetchSlot
// and PrefetchRecord), which turns a chain of misses into overlapping ones.
//
// Hints only: it never consumes, validates or trusts a frame (a garbage key costs one useless
// fetch), and a table replaced meanwhile only makes a hint useless.
#pragma once

#include <array>
#include <cstdint>

#include "shm/bucket_table.h"
#include "shm/ring.h"

namespace kv::daemon {

class RequestPrefetch {
 public:
  // Call after requests.Next() returned the first frame of a drain pass.
  void Start(const shm::RingReader& requests);
  // Call after every Next() of the pass (the first one too, after Start), before applying it.
  void Advance(const shm::RingReader& requests, const shm::TableWriter& table);

 private:
  static constexpr unsigned kDistance = 8;
  std::uint64_t cursor_ = 0;  // ring index of the next frame to peek
  unsigned current_ = 0;      // number of the frame being applied (the first is 0)
  unsigned peeked_ = 0;       // frames 1..peeked_ after the first have had their slot hint
  std::array<std::uint64_t, 2 * kDistance> hashes_{};  // frame n's key hash at [n % size]; 0: none
};

}  // namespace kv::daemon
