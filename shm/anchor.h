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

  // Progress, for waiting clients: the worker stores a new value (relaxed) on every pass of its
  // loop while it is awake and at least every kPulseEveryRequests requests it applies, so a
  // client that sees it stand still for a few microseconds knows the worker is not running
  // (preempted, or asleep) and sleeps instead of spinning. `worker_cpu`: the CPU the worker last
  // ran on, stored when it begins to wait (a client on that CPU cannot be running at the same
  // time as the worker). `wait_policy` (WaitPolicy) is stored by the worker at start; clients
  // follow it.
  alignas(kCacheLine) std::atomic<std::uint32_t> worker_pulse;
  std::atomic<std::int32_t> worker_cpu;
  std::atomic<std::uint32_t> wait_policy;
};

inline constexpr unsigned kPulseEveryRequests = 4;

inline constexpr std::size_t kAnchorSize = 4096;
inline constexpr std::uint32_t kAnchorLayout =
    LayoutWord(sizeof(AnchorHeader), alignof(AnchorHeader));
static_assert(sizeof(AnchorHeader) <= kAnchorSize);

}  // namespace kv::shm
