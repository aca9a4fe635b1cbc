// Loads a bucket from its directory (snapshot, then the logs that follow it) into an empty
// BucketStore, before its worker serves anyone.
//
// Everything is checked before anything is applied: the snapshot (ReadSnapshot checks the whole
// file first) and every log. Outcomes (docs/persistence.md, "Faults"):
//   - no snapshot and no log: an empty bucket;
//   - a torn log tail: cut at the last valid record (the file is truncated there), with the count
//     of bytes dropped in *notes;
//   - a corrupt snapshot or log body, a file of another format version, a missing log in the
//     chain (or logs without the snapshot they follow): refused -- the error names the file, and
//     no file is changed.
#pragma once

#include <cstdint>
#include <string>

#include "daemon/bucket_store.h"

namespace kv::daemon::persistence {

struct RestoreResult {
  std::uint64_t keys = 0;              // keys in the snapshot
  std::uint64_t log_records = 0;       // log records replayed
  std::uint64_t last_log_seq = 0;      // highest log sequence number present (0: none)
  std::uint64_t next_log_seq = 1;      // the first log sequence number after the snapshot
  std::uint64_t snapshot_unix_ms = 0;  // when the snapshot was taken (0: none)
  // ScanBucketDir: the snapshot's header checks, and the bucket's version counter it records.
  bool snapshot_header_ok = false;
  std::uint64_t snapshot_last_version = 0;
  std::string notes;  // torn tails cut, stale logs ignored (for the log)
};

// Returns "" or why the data is refused.
std::string RestoreBucket(const std::string& dir, BucketStore* store, RestoreResult* result);

// The log sequence numbers present and the first after the snapshot, and the snapshot's header,
// without loading anything (a worker that starts on existing shared memory continues the chain
// from there, and with appendfsync always compares the header with its table).
void ScanBucketDir(const std::string& dir, RestoreResult* result);

}  // namespace kv::daemon::persistence
