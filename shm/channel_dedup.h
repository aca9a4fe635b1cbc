// The bucket's exactly-once log: NS.b<id>.dedup, written by the bucket's worker only (mode 0600;
// readers never need it). It lets a worker that starts after a crash tell, for every client
// channel it adopts (the client hands it the same channel memfd again, shm/channel.h), which of
// the requests still in the channel's request ring the dead worker already applied, and what it
// answered to the last one, so that nothing is applied twice and nothing is lost
// (docs/protocol.md, "When a peer dies").
//
// Layout: [DedupHeader | DedupIntent | kDedupEntries x DedupEntry], see docs/shm_format.md.
//
// One DedupEntry per channel (found by the channel's random 64-bit id) holds the last request id
// applied on that channel and its reply (status, number, and for a delete the deleted record,
// which stays in its generation's append-only heap). The single DedupIntent describes the one
// write being applied (the worker is single-threaded) and makes the entry's update atomic with
// the table write:
//   D1. Begin stores the intent (entry, request id, op, generation) and then state = kBegun.
//   D2. The table's swing hook (shm/bucket_table.h) stores the record's generation and offset,
//       then state = kSwung, before the slot store that commits the write.
//   D3. Finish stores the outcome, state = kDone, copies it into the entry, then state = kIdle.
// Recover (the next worker, before it serves anyone) completes an interrupted intent:
//   kBegun: nothing reached the table (except a clear, applied iff the anchor's generation moved
//   on since Begin): the request is not applied; kSwung: applied iff the key's slot points at the
//   recorded record (put, cas, incr) or no longer points at it (delete), the outcome is rebuilt
//   from the record; a batch (Op::kBatch) is applied iff the slot history committed the last
//   change the swing hook recorded for it; kDone: the copy into the entry is redone. The table's
//   writes_applied statistic, which a crash between a slot store and its update can leave one
//   behind, is set to what Begin saw plus the write if it was applied: it counts every write
//   exactly once.
// Every store is a plain store in program order to shared memory that outlives the process, so a
// SIGKILL at any instruction leaves one of these states.
//
// A delete's record reference must survive generation changes (growth, compaction, clear): the
// worker carries each referenced record into the next generation before publishing it
// (CarryValues: the copy's offset goes to next_generation/next_offset) and makes it the entry's
// reference once the anchor names the new generation (AdoptGeneration; Recover finishes it).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "shm/bucket_table.h"
#include "shm/layout.h"
#include "shm/segment.h"

namespace kv::shm {

inline constexpr std::uint64_t kDedupMagic = 0x3150554445444b56ULL;  // "KVDEDUP1"
inline constexpr std::uint32_t kDedupEntries = 4096;  // one per channel a worker accepts at most
inline constexpr std::uint32_t kNoDedupEntry = ~std::uint32_t{0};

enum DedupState : std::uint32_t {
  kDedupIdle = 0,
  kDedupBegun = 1,
  kDedupSwung = 2,
  kDedupDone = 3
};

struct DedupEntry {
  std::uint64_t channel_id;   // 0: free
  std::uint64_t applied_seq;  // request id of the last request taken from the channel
  std::int64_t number;        // its reply's number
  std::uint8_t status;        // its reply's WireStatus
  std::uint8_t op;            // its op
  std::uint16_t reserved;
  std::uint32_t last_used;  // DedupHeader::clock at its last registration (eviction order)
  // A delete's reply value: the deleted record, in the heap of value_generation (0: none).
  std::uint64_t value_generation;
  std::uint64_t value_offset;
  // The same record carried into a generation being built (0: none).
  std::uint64_t next_generation;
  std::uint64_t next_offset;
};
static_assert(sizeof(DedupEntry) == 64);

struct DedupIntent {
  std::atomic<std::uint32_t> state;  // DedupState
  std::uint32_t entry;
  std::uint64_t seq;
  std::uint64_t begin_generation;  // the table's generation at Begin
  std::uint64_t writes_before;     // the table's writes_applied at Begin
  std::uint64_t generation;        // kSwung: the record's generation and heap offset
  std::uint64_t record_offset;
  std::int64_t number;  // kDone: the outcome
  std::uint8_t status;
  std::uint8_t op;
};

struct alignas(kCacheLine) DedupHeader {
  std::uint64_t magic;
  std::uint32_t format_version;
  std::uint32_t layout_word;
  std::uint64_t bucket_id;
  std::uint32_t entry_count;
  std::uint32_t clock;  // bumped at every registration
  alignas(kCacheLine) DedupIntent intent;
};

inline constexpr std::uint32_t kDedupLayout =
    LayoutWord(sizeof(DedupHeader), sizeof(DedupIntent), sizeof(DedupEntry));
inline constexpr std::size_t kDedupHeaderSize = 4096;
static_assert(sizeof(DedupHeader) <= kDedupHeaderSize);
inline constexpr std::size_t kDedupSize = kDedupHeaderSize + kDedupEntries * sizeof(DedupEntry);

// The worker's handle on the log. Not thread-safe (the worker is single-threaded).
class ChannelDedup {
 public:
  ChannelDedup() = default;
  ChannelDedup(ChannelDedup&&) noexcept = default;
  ChannelDedup& operator=(ChannelDedup&&) noexcept = default;

  // Opens the log of bucket `bucket_id`, or creates it (empty) if it does not exist, is
  // incomplete (killed while creating it) or of another build; *reset says it was (re)created.
  static ChannelDedup OpenOrCreate(const std::string& name, std::uint64_t bucket_id, mode_t mode,
                                   bool* reset, ShmError* error);
  bool valid() const { return header_ != nullptr; }

  // Completes an interrupted intent (see the header comment) against the current generation,
  // and finishes an interrupted AdoptGeneration. Returns what it did, for the log ("" if
  // nothing). Call once, after the table was opened (and repaired), before serving anyone.
  // `history_commit`: the slot history's commit after its RollForward (shm/slot_history.h): a
  // batch (whose swing hook records its last history sequence) was applied iff it is covered.
  std::string Recover(TableWriter& current, std::uint64_t history_commit = 0);

  // The entry of channel `channel_id`, or kNoDedupEntry.
  std::uint32_t Find(std::uint64_t channel_id) const;
  // A fresh entry for `channel_id`: its existing one (emptied), else a free one, else the least
  // recently registered one that `in_use` does not claim. kNoDedupEntry if every entry is in
  // use (REQUIRES: channel_id's existing entry, if any, is not in use).
  std::uint32_t Claim(std::uint64_t channel_id, const std::function<bool(std::uint32_t)>& in_use);
  // Marks entry `index` registered now (eviction order).
  void Touch(std::uint32_t index);
  // Ages the entry of a channel whose client hung up: it becomes the first to be reused. Not
  // freed, because a client also hangs up to reconnect (a registration that timed out) and
  // then adopts its channel again.
  void Retire(std::uint32_t index);
  const DedupEntry& entry(std::uint32_t index) const { return entries_[index]; }

  // D1..D3 for one request of the channel of entry `index` (every request taken from a ring,
  // applied or rejected). Swung is the table's SwingHook, with swing_context() as its context
  // (an address in the mapping: it stays valid when this handle is moved).
  void Begin(std::uint32_t index, std::uint64_t seq, std::uint8_t op, const TableView& table);
  static void Swung(void* context, std::uint64_t generation, std::uint64_t record_offset);
  void Finish(std::uint8_t status, std::int64_t number);
  void* swing_context() { return &header_->intent; }

  // Generation changes: before `next` is published, carry every delete's record referenced in
  // `current` into it; once the anchor names `next_generation`, make the copies the references.
  void CarryValues(const TableView& current, TableWriter& next, std::uint64_t next_generation);
  void AdoptGeneration(std::uint64_t generation);

  // The value of the reply recorded in `e` (a delete's old value) from the current generation.
  // False if the record is no longer there (it could not be carried: the next heap was full).
  static bool ReplyValue(const DedupEntry& e, const TableView& current, std::string* value);

 private:
  DedupIntent& intent() { return header_->intent; }
  void CopyOutcome();  // D3: intent -> entry

  Segment segment_;
  DedupHeader* header_ = nullptr;
  DedupEntry* entries_ = nullptr;
};

}  // namespace kv::shm
