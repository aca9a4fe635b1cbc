// The change feed of a bucket: segment NS.b<id>.feed, where the worker appends one record per
// applied write and any number of subscribers, in any process, read them through PROT_READ
// mappings — the worker never waits for a subscriber and never learns that one exists.
//
// Layout: [FeedHeader | FeedSlot x slot_count | data ring of data_capacity bytes]. Change number
// `seq` (1, 2, ...) lives in slot seq % slot_count; its key and value bytes live in the data ring
// at byte position data_pos (positions grow monotonically; the ring holds the last
// data_capacity bytes). A record's data never wraps around the ring's end.
//
// Invariants (writer = the bucket's worker, single-threaded):
//   F1. next_seq is stored (release) only after the slot of every smaller sequence is complete.
//   F2. Before the writer overwrites data bytes below position P, it stores data_floor >= P
//       (then a release fence). A reader copies bytes, then (acquire fence) checks data_floor: if
//       it passed the record's data_pos, the copy may be torn and the record counts as missed.
//       The writer raises data_floor a chunk (1/kFloorChunks of the ring) past what it needs,
//       so that it stores it once per chunk, not once per record.
//   F3. A slot's `seq` is 0 while the writer fills it and the record's sequence afterwards; a
//       reader re-checks it after copying (seqlock) and treats any change as "overwritten".
//   F4. The feed survives worker restarts (next_seq continues). A worker that starts after an
//       unclean stop appends a kResync record first: changes applied by the dead worker after its
//       last feed record may be missing, and a subscriber must resynchronise (e.g. with a scan).
//   F5. Memory is reserved lazily: the object is sized with ftruncate (sparse, free until
//       written) and only its first page is reserved at creation. The writer reserves slots and
//       data bytes in chunks (posix_fallocate) before first writing them, then raises
//       slots_ready / data_ready (release). Readers never touch a slot at or above slots_ready
//       nor data at or above data_ready (a read fault there would allocate, or SIGBUS on a full
//       /dev/shm). When a reservation fails the change is still numbered but marked lost (or its
//       slot is left unreserved): readers count it as missed, never skip it silently.
//       A bucket nobody writes costs one page.
// Readers never block the writer; a slow reader is told exactly how many changes it missed.
//
// Waking: a reader sleeps on the futex word `wake`, which the writer bumps per batch (Publish).
// The wake-up system call is made only while the worker knows of a subscriber: each subscription
// keeps a connection to the bucket socket open (kSubscribeMessage, shm/channel.h) with the worker
// it last saw in the anchor (worker_pid), and registers again before it sleeps if that changed.
// The worker wakes the feed unconditionally (WakeAll) when it starts, after storing worker_pid,
// and when it counts a new subscriber; so a subscriber that sleeps on a wake value is woken by
// any later Publish, by its own registration, or by the start of a new worker, whichever comes
// first. Without a subscriber a batch of writes costs no system call for the feed.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "shm/layout.h"
#include "shm/segment.h"

namespace kv::shm {

inline constexpr std::uint64_t kFeedMagic = 0x314445454650564bULL;  // "KVPFEED1"

enum class FeedOp : std::uint32_t {
  kPut = 1,      // key, value (also cas and incr: the value stored)
  kDelete = 2,   // key
  kClear = 3,    // no key
  kResync = 4,   // the worker restarted after a crash: changes may be missing before this
  kExpired = 5,  // key: its expiry time passed and the worker removed it
};

inline constexpr std::uint32_t kFeedValueOmitted = 1;  // flag: value too large for the feed
inline constexpr std::uint32_t kFeedLost = 2;          // flag: no memory for the record's data (F5)

struct alignas(kCacheLine) FeedHeader {
  std::uint64_t magic;
  std::uint32_t format_version;
  std::uint32_t layout_word;
  std::uint64_t bucket_id;
  std::uint64_t slot_count;     // power of two
  std::uint64_t data_capacity;  // power of two
  std::uint64_t slots_offset;
  std::uint64_t data_offset;

  alignas(kCacheLine) std::atomic<std::uint64_t> next_seq;    // F1, stored after each record
  std::atomic<std::uint32_t> wake;                            // futex word, bumped per batch
  alignas(kCacheLine) std::atomic<std::uint64_t> data_floor;  // F2
  // Where the next record's data goes, as of the last Publish (or slot-less record): the
  // writer's own copy runs ahead within a batch; a restarted writer also looks at the last
  // published record's end.
  std::atomic<std::uint64_t> data_head;
  std::atomic<std::uint32_t> clean;  // 1 after a clean stop, 0 while a worker runs
  // F5: slots [0, slots_ready) and data bytes [0, data_ready) have reserved memory. Written by the
  // writer (release, after posix_fallocate), read by readers (acquire); they only grow.
  std::atomic<std::uint64_t> slots_ready;
  std::atomic<std::uint64_t> data_ready;
};

struct FeedSlot {
  std::atomic<std::uint64_t> seq;  // F3
  std::atomic<std::uint64_t> data_pos;
  std::atomic<std::uint32_t> op;
  std::atomic<std::uint32_t> flags;
  std::atomic<std::uint32_t> key_len;
  std::atomic<std::uint32_t> value_len;
};
static_assert(sizeof(FeedSlot) == 32);

inline constexpr std::uint32_t kFeedLayout =
    LayoutWord(sizeof(FeedHeader), sizeof(FeedSlot), alignof(FeedHeader));

// The default size of a bucket's feed (kvd's feed-changes scales both): it keeps the last
// kFeedSlots changes and at most kFeedDataBytes of their keys and values. A busy bucket's feed
// then costs about 1.5 MiB of shared memory; 16384 changes are ~14 ms of the fastest writer on a
// 2-core machine.
inline constexpr std::uint64_t kFeedSlots = 16384;
inline constexpr std::uint64_t kFeedDataBytes = 1024 * 1024;

// F2: the writer raises data_floor 1/kFloorChunks of the data ring at a time.
inline constexpr std::uint64_t kFloorChunks = 16;

// Values longer than this are not copied into the feed (the record says kFeedValueOmitted).
inline constexpr std::uint32_t kMaxFeedValue = 64 * 1024;

// Writer side: the bucket's worker. Not thread-safe.
class FeedWriter {
 public:
  // Opens the bucket's feed or creates it. *unclean tells whether the previous worker stopped
  // without Close() (F4); the caller then appends kResync.
  static FeedWriter OpenOrCreate(const std::string& name, std::uint64_t bucket_id,
                                 std::uint64_t slot_count, std::uint64_t data_capacity, mode_t mode,
                                 bool* unclean, ShmError* error);
  bool valid() const { return header_ != nullptr; }
  // Appends one record, visible at once to readers that look (the worker appends before it
  // replies to the write's client, so a change is in the feed before its writer learns it
  // applied). Sleeping readers learn of it on the next Publish.
  void Append(FeedOp op, std::string_view key, std::string_view value);
  // A group of records readers see at once (the changes of one atomic batch): between
  // BeginGroup and EndGroup, Append writes records but does not move next_seq; EndGroup
  // publishes them together (F1). A worker killed inside a group left no visible record of it
  // (its successor overwrites them and appends kResync, F4).
  void BeginGroup() { grouping_ = true; }
  void EndGroup();
  // Makes the records appended since the last call visible to sleeping subscribers: bumps the
  // wake word, and wakes its sleepers (one futex system call) if `wake_sleepers`, i.e. if the
  // worker knows of a subscriber (see "Waking" above).
  void Publish(bool wake_sleepers);
  // Bumps the wake word and wakes every sleeper, whether records were appended or not.
  void WakeAll();
  // Marks a clean stop (F4).
  void Close();
  std::uint64_t next_seq() const { return next_seq_; }

 private:
  // F5: reserve the memory of slot `index` / of data ring bytes [0, end). False if /dev/shm is
  // full.
  bool ReserveSlot(std::uint64_t index);
  bool ReserveData(std::uint64_t end);

  Segment segment_;
  FeedHeader* header_ = nullptr;
  FeedSlot* slots_ = nullptr;
  char* data_ = nullptr;
  std::uint64_t next_seq_ = 1;
  std::uint64_t data_head_ = 0;
  std::uint64_t data_floor_ = 0;   // F2, the writer's copy
  std::uint64_t slots_ready_ = 0;  // F5, the writer's copies
  std::uint64_t data_ready_ = 0;
  bool dirty_ = false;
  bool grouping_ = false;
};

struct FeedRecord {
  std::uint64_t seq = 0;
  FeedOp op = FeedOp::kPut;
  bool value_omitted = false;
  std::string key;
  std::string value;
};

enum class FeedRead { kRecord, kEmpty, kMissed, kCorrupt };

// Reader side: any process, PROT_READ mapping. One reader per thread (or lock around it).
class FeedReader {
 public:
  std::string Attach(const char* base, std::size_t size);
  // The sequence the next change will get (changes < it exist or existed).
  std::uint64_t Head() const { return header_->next_seq.load(std::memory_order_acquire); }
  // Reads change `*seq`. kRecord: *record filled, *seq advanced. kEmpty: not written yet, as
  // far as the head last loaded by RefreshHead says: Read never loads next_seq itself (a reader
  // that keeps up with a busy writer and loaded it whenever it caught up would read the lines
  // the writer is writing, and slow it). kMissed: changes [*seq, *seq + *missed) are gone
  // (overwritten); *seq is advanced past them. kCorrupt: the feed failed validation.
  FeedRead Read(std::uint64_t* seq, FeedRecord* record, std::uint64_t* missed) const;
  void RefreshHead() const { known_head_ = Head(); }
  // Sleeps until the feed may have changed since `wake_value` (futex) or `timeout_ns` passes.
  void Wait(std::uint32_t wake_value, long timeout_ns) const;
  std::uint32_t WakeValue() const { return header_->wake.load(std::memory_order_acquire); }
  // Wakes every thread sleeping in Wait on this feed, in any process (they look again and find
  // nothing new): for a reader's own thread that must stop sleeping now. Writes nothing.
  void WakeAll() const;

 private:
  static void Populate(const char* from, const char* to);

  const FeedHeader* header_ = nullptr;
  const FeedSlot* slots_ = nullptr;
  const char* data_ = nullptr;
  std::uint64_t slot_count_ = 0;
  std::uint64_t data_capacity_ = 0;
  // As last loaded: next_seq, slots_ready, data_ready (they only grow). Loaded again only when
  // a record lies beyond them, so that a reader does not pull the writer's lines per record.
  mutable std::uint64_t known_head_ = 0;
  mutable std::uint64_t known_slots_ready_ = 0;
  mutable std::uint64_t known_data_ready_ = 0;
};

}  // namespace kv::shm
