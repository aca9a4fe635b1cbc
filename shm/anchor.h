// The bucket anchor: a small segment NS.b<id> that says which generation segment holds the bucket
// now. It exists for the whole life of the bucket; generations come and go behind it.
//
// Written only by the bucket's worker; read (mapped PROT_READ) by clients and kvd.
// Invariants:
//   A1. `generation` names a generation segment that is ready (TableHeader::ready == 1) from the
//       moment it is stored until a later generation has been stored.
//   A2. A generation is unlinked only after `generation` points past it.
#pragma once

#include <atomic>
#include <cstdint>

#include "shm/layout.h"

namespace kv::shm {

enum AnchorState : std::uint32_t { kAnchorLive = 1, kAnchorDropped = 2 };

// How the bucket's worker and its clients wait for each other (docs/design.md, "Waiting").
enum WaitPolicy : std::uint32_t {
  // Spin only while the peer is seen making progress, sleep on the futex otherwise: safe on a
  // shared or oversubscribed machine and under a CPU quota. The default.
  kWaitAdaptive = 0,
  // Spin up to the configured bound whatever the peer does: for hosts whose operator pinned kv's
  // processes to CPUs of their own.
  kWaitDedicated = 1,
};

struct alignas(kCacheLine) AnchorHeader {
  // Identity: written once at creation, before any other process can find the bucket.
  std::uint64_t magic;
  std::uint32_t format_version;
  std::uint32_t layout_word;
  std::uint64_t bucket_id;

  // Publication (worker stores with release; readers load with acquire).
  alignas(kCacheLine) std::atomic<std::uint64_t> generation;
  std::atomic<std::uint32_t> state;  // AnchorState

  // Liveness, for kvd's watchdog: the worker stores its pid at start and a CLOCK_MONOTONIC time
  // in ns at least once a second while it runs (relaxed; only compared against "now").
  alignas(kCacheLine) std::atomic<std::int32_t> worker_pid;
  std::atomic<std::uint64_t> heartbeat_ns;
  // The worker's start time (/proc/<pid>/stat field 22), stored before worker_pid: with it a kvd
  // that died between starting a worker and recording it recognises the worker (pids are reused).
  std::atomic<std::uint64_t> worker_start_ticks;
  // Subscribers connected to the running worker (shm/change_feed.h, "Waking"): stored by the
  // worker (relaxed) at start (0) and whenever one connects or hangs up; read by `kvctl status`.
  std::atomic<std::uint32_t> subscribers;

  // Progress, for waiting clients: the worker stores a new value (relaxed) on every pass of its
  // loop while it is awake and at least every kPulseEveryRequests requests (or operations of a
  // batch) it applies, so a client that sees it stand still for a few microseconds knows the
  // worker is not running (preempted, or asleep) and sleeps instead of spinning. `worker_cpu`: the
  // CPU the worker last ran on, stored when it begins to wait (a client on that CPU cannot be
  // running at the same time as the worker). `wait_policy` (WaitPolicy) is stored by the worker at
  // start; clients follow it.
  alignas(kCacheLine) std::atomic<std::uint32_t> worker_pulse;
  std::atomic<std::int32_t> worker_cpu;
  std::atomic<std::uint32_t> wait_policy;
  // Persistence (docs/persistence.md): written by the worker (relaxed), read by `kvctl status`.
  // persist_mode 0 means memory only (no data directory).
  alignas(kCacheLine) std::atomic<std::uint32_t> persist_mode;  // kPersist* bits
  std::atomic<std::uint32_t> writes_refused;      // 1 while writes are refused after a failed save
  std::atomic<std::uint32_t> persist_error;       // errno of the failure being reported (0: none)
  std::atomic<std::uint32_t> persist_error_what;  // PersistFailure of it
  std::atomic<std::uint64_t> saves;               // snapshot attempts finished, good or not
  std::atomic<std::uint64_t> last_save_unix_ms;   // last good snapshot (0: none yet)
  std::atomic<std::uint64_t> log_bytes;           // bytes in the log files after the snapshot
  std::atomic<std::uint64_t> changes_since_save;  // writes applied since the last good snapshot
  std::atomic<std::uint32_t> last_save_ok;        // 1 if the last snapshot attempt succeeded
  // Mirror of an upstream Redis (docs/mirror.md): written by the worker (relaxed), read by
  // `kvctl status`. mirror_state 0 means the bucket is not a mirror.
  alignas(kCacheLine) std::atomic<std::uint32_t> mirror_state;  // MirrorState
  std::atomic<std::uint32_t> mirror_live_once;      // 1 once a full sync completed (this worker)
  std::atomic<std::uint64_t> mirror_since_unix_ms;  // stale: since when; else when it entered
  std::atomic<std::uint64_t> mirror_lag_us;         // last change: invalidation to applied
  std::atomic<std::uint64_t> mirror_resyncs;        // full resyncs completed
  std::atomic<std::uint64_t> mirror_resync_ms;      // duration of the last one
  std::atomic<std::uint64_t> mirror_changes;        // upstream changes applied to the table
  std::atomic<std::uint64_t> mirror_skipped;        // upstream keys not mirrored (too large...)
};

// AnchorHeader::mirror_state.
enum MirrorState : std::uint32_t {
  kMirrorNone = 0,
  kMirrorSyncing = 1,  // connected, loading every key (first load or after a gap)
  kMirrorLive = 2,     // following the upstream's invalidations
  kMirrorStale = 3,    // upstream unreachable: reads serve the values of mirror_since_unix_ms
};
const char* MirrorStateName(std::uint32_t state);

// AnchorHeader::persist_mode bits; the fsync policy is (mode >> 4) & 3 (1 always, 2 everysec,
// 3 no) when kPersistLog is set.
inline constexpr std::uint32_t kPersistSnapshots = 1;
inline constexpr std::uint32_t kPersistLog = 2;
// AnchorHeader::persist_error_what.
enum PersistFailure : std::uint32_t {
  kPersistFailNone = 0,
  kPersistFailSnapshot = 1,  // writing a snapshot failed
  kPersistFailLogWrite = 2,  // appending to the log failed
  kPersistFailLogSync = 3,   // fdatasync of the log failed
};

inline constexpr unsigned kPulseEveryRequests = 4;

inline constexpr std::size_t kAnchorSize = 4096;
inline constexpr std::uint32_t kAnchorLayout =
    LayoutWord(sizeof(AnchorHeader), alignof(AnchorHeader));
static_assert(sizeof(AnchorHeader) <= kAnchorSize);

}  // namespace kv::shm
