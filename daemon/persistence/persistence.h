// A worker's persistence: the bucket's snapshots and append-only log in the data directory
// (docs/persistence.md). One object per worker, driven from the worker's single thread through
// a few hooks (daemon/worker.cc):
//
//   Open       at start, before READY: restores the bucket from disk if its shared memory was
//              gone (`fresh`), else keeps shared memory as the truth; opens a new log file. With
//              appendfsync=always on existing shared memory it first makes the table durable (a
//              snapshot written in place, "catch-up"), unless the disk holds it already: the
//              previous worker may have applied writes it never logged, and the exactly-once log
//              answers them as applied when their clients adopt their channels.
//   AcceptsWrites / OnApplied / Commit
//              per request and per drained batch: OnApplied appends the write's effect to an
//              in-memory buffer; Commit ends a batch. With appendfsync=always the worker calls
//              Commit once per pass over every channel (group commit across clients): it writes
//              the buffer into the preallocated log (log_appender.h) and fdatasyncs it, and the
//              pass's replies are published only after it returns; false means the pass is not
//              durable and its replies must say PERSISTENCE (unsynced_replies.h). Otherwise the
//              buffer is written by Tick once it is 1 ms old, by BeforeSleep, or when it grows
//              large, and a background thread fdatasyncs the log once a second (everysec).
//   Tick       from the loop: writes an old buffer, runs the `save` rules, retries failed saves.
//   BeforeSleep  before the worker sleeps: writes the buffer.
//   RequestSave  `kvctl save` (SIGUSR2).
//   Stop       at exit: the log synced, and on a clean stop (not a drop) a last snapshot.
//
// Snapshots are taken by a forked child (Redis's BGSAVE): the worker rotates the log (new file
// log.<seq+1>), copies the table's slot array (8 bytes a slot; records are immutable, so the
// copy freezes the bucket's state), forks, and goes on serving. The child touches no ring, socket,
// futex or lock of its parent: it syncs the old log (and outside `always` the new one's header
// and directory entry), writes the snapshot (snapshot_writer.h), deletes the logs it covers, and
// exits; it dies with the worker (PR_SET_PDEATHSIG). Nothing that waits for the disk beyond a
// file creation runs on the worker's thread when a snapshot starts or ends. A thread instead of a
// fork would share the worker's address space, so a crash while writing would take the bucket's
// writer down with it, and it would need the generation kept mapped across growth; the fork costs
// one page-table copy of the worker's small private memory.
//
// Failures (ENOSPC, EIO, EFBIG -- SIGXFSZ is ignored): shown in the anchor (kvctl status) and
// the log. With `always` a failed log write refuses writes (PERSISTENCE) until a snapshot
// succeeds; otherwise a failed save does, if stop-writes-on-save-error. A snapshot is retried
// every second while one is failing.
//
// Crash points (KV_CRASH_POINT): log-appended (batch written, not yet synced), log-synced
// (synced, replies not yet published), snapshot-log-rotated (new log open, child not forked),
// snapshot-installed (child done, covered logs not yet deleted); in the child (which then dies
// alone): snapshot-half-written, snapshot-before-rename -- reached by the worker itself in the
// snapshots it writes in place (the catch-up at start and the last one at stop).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "daemon/bucket_store.h"
#include "daemon/persistence/log_appender.h"
#include "daemon/persistence/options.h"
#include "daemon/persistence/snapshot_format.h"
#include "shm/message.h"

namespace kv::daemon::persistence {

// Exit code of a worker whose data on disk was refused (kvd marks the bucket failed at once).
inline constexpr int kExitDataRefused = 4;

class Persistence {
 public:
  using Clock = std::chrono::steady_clock;

  Persistence() = default;  // disabled: memory only
  ~Persistence();
  Persistence(const Persistence&) = delete;
  Persistence& operator=(const Persistence&) = delete;

  // Returns false with *error when the worker cannot run; *refused then says the data on disk
  // was refused (the caller removes the fresh shared memory and exits with kExitDataRefused).
  bool Open(const PersistenceOptions& options, const std::string& ns, BucketStore* store,
            bool fresh, int epoll_fd, std::string* error, bool* refused);

  bool enabled() const { return store_ != nullptr; }
  // False while writes are refused (PERSISTENCE).
  bool AcceptsWrites() const { return !refusing_; }
  // True when replies must wait for Commit (appendfsync always).
  bool SyncsEachBatch() const { return always_; }
  void OnApplied(const shm::Request& request, shm::WireStatus status, std::int64_t number) {
    if (store_ != nullptr && status == shm::WireStatus::kOk) Record(request, number);
  }
  // The active expiry removed `key` (BucketStore::ExpireDue): logged as a delete.
  void OnExpired(std::string_view key);
  // False also while the table holds writes no file has (a catch-up that failed, see Open): the
  // exactly-once log's answers to them must not be published as durable.
  bool Commit() { return store_ == nullptr || ((buffer_.empty() || CommitSlow()) && !undurable_); }
  // True when the next Commit has records to make durable.
  bool CommitPending() const { return !buffer_.empty(); }
  // How long the syncs of Commit took since the last call (zero: none), then forgets it; the
  // group commit's wait is sized by it (commit_gather.h).
  Clock::duration TakeSyncTime() { return std::exchange(sync_time_, Clock::duration::zero()); }
  void Tick(Clock::time_point now);
  // The worker is about to sleep: what the log buffer holds is written now (outside `always`,
  // where Commit has written it already), not after the sleep.
  void BeforeSleep() {
    if (store_ != nullptr && !always_ && !buffer_.empty()) WriteBuffer();
  }
  // At once: the next Tick starts it (Tick otherwise looks every 100 ms, and an idle worker
  // sleeps up to a second between Ticks).
  void RequestSave() {
    save_requested_ = true;
    next_check_ = {};
  }
  // The running snapshot child's pidfd (-1: none), watched by the worker's epoll.
  int child_fd() const { return child_pidfd_; }
  void OnChildEvent() { ReapChild(false); }
  void Stop(bool dropped);

 private:
  void Record(const shm::Request& request, std::int64_t number);
  bool CommitSlow();
  // appendfsync always, on existing shared memory (Open): a snapshot of the table written here,
  // unless `in_step` (the disk holds the table already); if it fails, writes are refused and
  // commits fail (undurable_) until a snapshot succeeds.
  void CatchUp(bool in_step);
  // Writes a snapshot of the table in this process, with `next_log_seq` as the first log after
  // it (at start before READY and at stop: nothing changes the table meanwhile), and records
  // what it covers for SaveSucceeded. "" or why not.
  std::string SnapshotInPlace(std::uint64_t next_log_seq, int* err);
  // The header of a snapshot of the table as it is now, whose log continues at `next_log_seq`.
  SnapshotHeader HeaderNow(std::uint64_t next_log_seq) const;
  // Writes the buffer to the log (no sync). Returns 0 or errno (reported).
  int WriteBuffer();
  void Failed(std::uint32_t what, int err, const std::string& message);
  // Creates log `seq` with its header; `sync`: made durable here (else by the snapshot child).
  bool OpenLog(std::uint64_t seq, bool sync, int* fd, std::string* error, int* err);
  void StartSnapshot();
  void ReapChild(bool wait);
  void SaveSucceeded(std::uint64_t covered_below);
  void SyncLoop();
  void Publish();

  PersistenceOptions options_;
  std::string dir_;
  std::string name_;
  BucketStore* store_ = nullptr;
  shm::AnchorHeader* anchor_ = nullptr;
  int epoll_fd_ = -1;
  bool log_on_ = false;
  bool always_ = false;
  bool preallocate_ = false;  // always, not on tmpfs: the log is zeroed ahead (log_appender.h)
  bool refusing_ = false;
  bool undurable_ = false;   // always: the table holds writes no file has (CatchUp failed)
  bool log_broken_ = false;  // a write to the current log failed: append nothing more to it
  std::string buffer_;       // records not yet written
  Clock::time_point buffered_since_{};  // the first Tick that saw buffer_ non-empty ({}: none)
  Clock::duration sync_time_{};         // always: time spent in Commit's fdatasync (TakeSyncTime)
  int log_fd_ = -1;
  LogAppender appender_;  // appends to log_fd_
  std::uint64_t log_seq_ = 0;
  std::uint64_t log_bytes_ = 0;  // bytes written to logs after the last good snapshot
  std::uint64_t changes_ = 0;    // writes applied since the last good snapshot
  // The slot array frozen for a snapshot: a shared anonymous mapping kept between snapshots, so
  // the worker's copy before each fork writes to pages it has mapped. (A private vector's pages
  // fault on every copy, fresh or copy-on-write after the last fork: 3,000+ faults, 40-60 ms of
  // pause for 1M keys.) The child only reads it; the worker writes it only while no child runs.
  std::uint64_t* frozen_ = nullptr;
  std::size_t frozen_slots_ = 0;     // the slots of the last freeze
  std::size_t frozen_capacity_ = 0;  // slots mapped
  bool FreezeSlots();
  bool save_requested_ = false;
  bool save_failing_ = false;
  Clock::time_point last_good_save_;
  Clock::time_point retry_at_;
  Clock::time_point next_check_;
  // The snapshot in progress.
  pid_t child_pid_ = 0;
  int child_pidfd_ = -1;
  std::uint64_t child_next_seq_ = 0;
  std::uint64_t child_changes_ = 0;
  std::uint64_t child_log_bytes_ = 0;
  char* child_error_ = nullptr;  // a shared page the child writes its error to
  // everysec: the background fdatasync.
  std::thread syncer_;
  std::mutex sync_mu_;  // guards log_fd_ against rotation while the syncer uses it
  std::condition_variable sync_cv_;
  bool sync_stop_ = false;
  std::atomic<std::uint64_t> written_{0};  // bytes written (write()) to the current log
  std::uint64_t synced_ = 0;               // syncer, and the rotation; under sync_mu_
  std::uint64_t log_generation_ = 0;       // bumped at each rotation; under sync_mu_
  std::atomic<int> sync_error_{0};
};

}  // namespace kv::daemon::persistence
