// Writes a snapshot file of one table generation from a frozen copy of its slot array
// (snapshot_format.h), atomically: <dir>/snapshot.tmp written and fsync'ed, renamed over
// <dir>/snapshot, <dir> fsync'ed. Records are immutable once written (shm/bucket_table.h, T1), so
// a slot array copied at one instant names exactly the bucket's state at that instant, however
// the writer changes the table afterwards -- the basis of the forked snapshot (persistence.h).
//
// Async-signal-safe enough for a forked child of a multi-threaded worker: it allocates with
// malloc (glibc resets its locks in the child) and takes no other lock; it never logs.
// Crash points (KV_CRASH_POINT): snapshot-half-written, snapshot-before-rename.
#pragma once

#include <cstdint>
#include <string>

#include "daemon/persistence/snapshot_format.h"
#include "shm/bucket_table.h"

namespace kv::daemon::persistence {

// Returns "" or why not (the file named); *err receives the errno when a system call failed.
// `header.key_count` is filled in here. A record whose checksum fails is an error (no snapshot
// is ever written from a damaged table).
std::string WriteSnapshotFile(const std::string& dir, SnapshotHeader header,
                              const shm::TableView& table, const std::uint64_t* slots,
                              std::uint64_t slot_count, int* err);

}  // namespace kv::daemon::persistence
