// A bucket worker: the single writer of one bucket (the native KV.Bucket Agent).
//
// It owns the bucket's segments (BucketStore) and a socket at the bucket's address through which
// clients register write channels (shm/channel.h). Its loop drains every channel's request ring,
// applies the requests in arrival order per channel, publishes the replies, and wakes the clients
// that sleep. When every ring is empty it spins for a bounded time, then sleeps in epoll until a
// doorbell, a new connection, a hang-up, a signal, or the heartbeat timer.
//
// Nothing a client does can stop the loop: every frame is validated (DecodeRequest), a corrupt
// ring closes only that client's channel, a full reply ring only pauses that channel, and a dead
// client is a socket hang-up.
#pragma once

#include <cstdint>
#include <string>

#include "daemon/bucket_store.h"
#include "daemon/persistence/options.h"

namespace kv::daemon {

struct WorkerOptions {
  std::string ns;
  std::uint64_t bucket_id = 0;
  BucketLimits limits;
  // The longest an idle worker spins before it sleeps. With kWaitAdaptive it spins only for
  // channels whose recent requests arrived within such a spin (daemon/idle_spin.h); with
  // kWaitDedicated it always spins this long.
  std::uint32_t spin_us = 50;
  int nice = 0;         // daemon/worker_priority.h
  int busy_nice = -10;  // while several clients write at once (BusyPriority)
  shm::WaitPolicy wait_policy = shm::kWaitAdaptive;
  persistence::PersistenceOptions persistence;  // data directory unset: memory only
};

// Runs the worker until SIGTERM (stop) or SIGUSR1 (drop: readers see the bucket as dropped);
// SIGUSR2 asks for a snapshot (`kvctl save`). Writes "READY\n" to fd 1 once clients can connect
// (after a restore from the data directory), then points fd 1 at /dev/null; if the data on disk
// is refused it writes "REFUSED <reason>\n" instead. Returns the process exit code (0 clean,
// 3 another worker owns the bucket, 4 data on disk refused, 1 failure).
int RunWorker(const WorkerOptions& options);

}  // namespace kv::daemon
