// The worker's side of one bucket: its anchor and current table generation, and the application
// of validated requests to them. Single-threaded; exactly one BucketStore per bucket exists at a
// time (the worker holds the bucket's socket address, which the kernel grants to one process).
//
// Start-up repairs what a SIGKILL can leave (docs/design.md, "Crash recovery"):
//   - an anchor whose magic is unset (killed while creating it): rebuilt;
//   - anchor.generation == 0 (killed before the first table was published): first table built;
//   - a half-built or unpublished next generation g+1: unlinked (the anchor still names g);
//   - a replaced generation g-1 not yet unlinked: marked moved (readers follow), then unlinked;
//   - table stats out of step with the slots: recomputed (bucket_table.h, T5);
//   - a write interrupted between its exactly-once intent and its outcome: completed
//     (shm/channel_dedup.h, Recover);
//   - a damaged table: repaired where TableWriter::Open can without guessing, else refused
//     ("CORRUPT: ..."; the worker exits and kvd's restart limit marks the bucket failed).
//   - a batch killed after its slot history was published: completed (slot_history.h);
// Crash points (KV_CRASH_POINT): first-generation-built, generation-built (next generation
// complete, unpublished), generation-published (ready, anchor not yet updated), anchor-updated
// (old generation not yet marked moved), and the table's own (shm::SetTableCrashHook).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/expiry_queue.h"
#include "daemon/table_release.h"
#include "shm/anchor.h"
#include "shm/batch.h"
#include "shm/bucket_table.h"
#include "shm/change_feed.h"
#include "shm/channel_dedup.h"
#include "shm/message.h"
#include "shm/segment.h"
#include "shm/slot_history.h"

namespace kv::daemon {

struct BucketLimits {
  std::uint64_t max_bytes = 1ull << 30;  // largest generation segment
  // Changes the bucket's feed keeps (a power of two), with kFeedBytesPerChange of data ring
  // each. Sizes a feed when it is created; an existing feed keeps its size.
  std::uint64_t feed_changes = shm::kFeedSlots;
  mode_t mode = 0640;
};
inline constexpr std::uint64_t kFeedBytesPerChange = shm::kFeedDataBytes / shm::kFeedSlots;

class BucketStore {
 public:
  // *fresh (if non-null): the bucket had no shared memory (no anchor) and starts empty.
  static std::optional<BucketStore> Open(const std::string& ns, std::uint64_t bucket_id,
                                         const BucketLimits& limits, std::string* error,
                                         bool* fresh = nullptr);

  // Applies one validated request. *number and *value receive the reply's payload. A batch
  // (Op::kBatch) is decoded here; batch() then holds its operations until the next Apply.
  shm::WireStatus Apply(const shm::Request& request, std::int64_t* number, std::string* value);

  // Makes readers see the bucket as dropped (anchor state + moved_to on the table).
  void MarkDropped();
  void Heartbeat();
  // Tells clients how to wait for this worker (shm::AnchorHeader::wait_policy).
  void SetWaitPolicy(shm::WaitPolicy policy) {
    anchor_->wait_policy.store(policy, std::memory_order_relaxed);
  }
  // Tells clients which CPU the worker runs on (shm::AnchorHeader::worker_cpu).
  void SetWorkerCpu(int cpu) { anchor_->worker_cpu.store(cpu, std::memory_order_relaxed); }
  // Tells waiting clients the worker is running (shm::AnchorHeader::worker_pulse): the worker's
  // loop calls it per pass, and the store within long requests (batches), so that no stretch of
  // work leaves it still for longer than a client's stall threshold.
  void Pulse() {
    std::atomic<std::uint32_t>& w = anchor_->worker_pulse;
    w.store(w.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);  // one writer
  }
  // Publishes the queue depth gauge (shm::TableHeader::queue_depth; status, top).
  void SetQueueDepth(std::uint64_t n) { table_.SetQueueDepth(n); }
  const shm::TableWriter& table() const { return table_; }
  // The exactly-once log of the bucket's channels (shm/channel_dedup.h): recovered by Open,
  // told every table write's commit point, carried across generation changes.
  shm::ChannelDedup& dedup() { return dedup_; }
  // The operations of the last batch Apply decoded (views into its request).
  const std::vector<shm::BatchOp>& batch() const { return batch_; }
  // Appends an applied request to the change feed (REQUIRES: Apply returned `status` for it).
  void RecordChange(const shm::Request& request, shm::WireStatus status, std::int64_t number);

  // Active expiry (expiry_queue.h): tombstones up to `budget` keys whose expiry passed by `now`
  // (Unix ms), appending an EXPIRED change for each and calling expired(key) (the worker logs a
  // delete). Returns how many it tombstoned.
  template <typename Fn>
  std::size_t ExpireDue(std::uint64_t now, std::size_t budget, Fn&& expired) {
    due_.clear();
    expiry_.Due(now, budget, &due_);
    std::size_t n = 0;
    for (const ExpiryQueue::Entry& e : due_) {
      if (!table_.Expire(e.key, e.expiry, now)) continue;  // a stale entry
      feed_.Append(shm::FeedOp::kExpired, e.key, {});
      expired(std::string_view(e.key));
      ++n;
    }
    return n;
  }
  // The earliest expiry the active expiry waits for (Unix ms; 0: none).
  std::uint64_t NextExpiry() const { return expiry_.Next(); }
  // Makes the changes recorded since the last call visible to subscribers (once per batch);
  // wakes sleeping ones only while a subscriber is connected (shm/change_feed.h, "Waking").
  void PublishChanges() { feed_.Publish(subscribers_ != 0); }
  // Wakes every sleeping subscriber: the worker calls it once it runs (shm/change_feed.h).
  void WakeSubscribers() { feed_.WakeAll(); }
  // A subscriber connected (kSubscribeMessage) / hung up. A new one is woken at once.
  void AddSubscriber() {
    SetSubscribers(subscribers_ + 1);
    feed_.WakeAll();
  }
  void RemoveSubscriber() { SetSubscribers(subscribers_ - 1); }
  // The subscriber count, also published for `kvctl status` (shm::AnchorHeader::subscribers).
  void SetSubscribers(std::uint32_t n) {
    subscribers_ = n;
    anchor_->subscribers.store(n, std::memory_order_relaxed);
  }
  // Marks the change feed cleanly closed (the next worker appends no resync record).
  void CloseChanges() { feed_.Close(); }

  // The incremental build of the next generation (shm::TableWriter::StartNext; docs/design.md,
  // "Growth"): starts one when the table is nearly full, copies some of it (kNextSlotsPerRequest
  // slots for each of the `requests` the worker's pass took, kNextSlotsIdle after a pass that
  // took none), and publishes it once complete. True while one is under way: the worker does
  // not sleep then. A write that finds the table full finishes the build at once.
  bool AdvanceNextGeneration(std::size_t requests);

  // Restore from disk (daemon/persistence/restore.h), before the worker serves anyone: sizes the
  // table for `keys` more keys of `bytes` record bytes, then applies effects with their versions.
  shm::WireStatus Reserve(std::uint64_t keys, std::uint64_t bytes);
  shm::WireStatus RestorePut(std::string_view key, std::string_view value, std::uint64_t version,
                             std::uint64_t expiry = 0);
  void RestoreDelete(std::string_view key, std::uint64_t last_version);
  shm::WireStatus RestoreClear(std::uint64_t last_version);
  void RaiseLastVersion(std::uint64_t version) { table_.RaiseLastVersion(version); }
  // Removes every shared object of the bucket (a restore that was refused leaves no empty bucket
  // behind, which a later start would take for the truth). The store is unusable afterwards.
  void RemoveObjects();
  shm::AnchorHeader* anchor() { return anchor_; }
  std::uint64_t bucket_id() const { return bucket_id_; }

 private:
  BucketStore() = default;
  // Replaces the table with its next generation (compacted and sized for `extra_bytes` more, or
  // empty), publishing it through the anchor before unlinking the old one.
  shm::WireStatus NextGeneration(std::uint64_t extra_bytes, bool empty,
                                 std::uint64_t extra_keys = 0);
  // Publishes `next` as the current generation and unlinks the old one.
  void Adopt(shm::TableWriter next);
  // Copies up to `slots` more of the build under way and publishes it once complete. True if it
  // published it.
  bool CopyNextGeneration(std::uint64_t slots);
  // The build copies ~60 ns a slot. Started at nine tenths of the heap (twice the live data when
  // it was built), it has ~0.2 writes a key before the heap is full, and there are ~1.7 slots a
  // key: 16 slots a request keep it about twice ahead. A pass without requests copies ~60 µs
  // worth: a request that arrives meanwhile waits no longer than that.
  static constexpr std::uint64_t kNextSlotsPerRequest = 16;
  static constexpr std::uint64_t kNextSlotsIdle = 1024;
  // After a build could not start or ended, the writes before the next try.
  static constexpr std::uint64_t kNextRetryWrites = 4096;
  shm::WireStatus Put(std::string_view key, std::string_view value, std::int64_t* version,
                      std::uint64_t expiry = 0);
  // Expire (expiry != 0) and Persist (0): the key's record rewritten with the expiry.
  shm::WireStatus SetExpiry(std::string_view key, std::uint64_t expiry, std::int64_t* version);
  // Runs a table write, building the next generation (sized for `bytes` more) when it reports
  // kNeedsGrowth, up to 3 times.
  template <typename Write>
  shm::WireStatus Grow(std::uint64_t bytes, Write&& write);
  // Queues every expiring record of the table (start-up).
  void QueueExpiries();
  shm::WireStatus Cas(std::string_view key, std::uint64_t expected, std::string_view value,
                      std::int64_t* version);
  shm::WireStatus Incr(std::string_view key, std::int64_t delta, std::int64_t* result);
  shm::WireStatus Batch(const shm::Request& request, std::int64_t* number);

  std::string ns_;
  std::uint64_t bucket_id_ = 0;
  BucketLimits limits_;
  shm::Segment anchor_segment_;
  shm::AnchorHeader* anchor_ = nullptr;
  shm::TableWriter table_;
  shm::FeedWriter feed_;                 // NS.b<id>.feed: every applied write, for subscribers
  std::uint32_t subscribers_ = 0;        // connections that sent kSubscribeMessage
  shm::ChannelDedup dedup_;              // NS.b<id>.dedup
  ExpiryQueue expiry_;                   // every expiry set, for the active expiry
  std::vector<ExpiryQueue::Entry> due_;  // scratch for ExpireDue
  // NS.b<id>.hist: every slot change, for snapshots and batch recovery. Held by pointer so the
  // table's reference to it survives moves of the store.
  std::unique_ptr<shm::HistoryWriter> history_;
  std::vector<shm::BatchOp> batch_;            // the last decoded batch
  std::uint64_t retry_next_after_writes_ = 0;  // see kNextRetryWrites
  TableRelease released_;                      // the generation Adopt replaced last
};

}  // namespace kv::daemon
