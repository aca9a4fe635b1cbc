// The bucket's slot history: NS.b<id>.hist, a ring of the most recent slot changes of the
// bucket's table, written by the worker before each slot store. It gives readers two things
// (docs/design.md, "Batches and snapshots"):
//
//  - Point-in-time reads (kv::Snapshot). Every slot change gets a sequence number; `commit` is
//    the last one whose slot store is done. A snapshot records S = commit (and the generation it
//    maps). To read slot i as of S it loads the slot word, then looks in the ring for the first
//    change of slot i with a sequence > S: if there is one, the slot held that entry's old word
//    at S; if not, it still holds what it held at S. The heap is append-only within a
//    generation, so the old word's record is still there; a generation replaced since S stops
//    changing, and its mapping stays valid after it is unlinked. When entries after S have been
//    overwritten before the snapshot read them, the snapshot cannot answer: SNAPSHOT_TOO_OLD,
//    never a wrong value.
//  - Atomic batches, across a worker crash. A batch writes the entries of all its slot changes
//    (old and new word) and publishes `head` before its first slot store, and moves `commit`
//    past them after its last: a worker killed in between leaves entries in (commit, head) that
//    its successor completes (RollForward) before serving anyone. Readers that saw a slot of
//    the batch therefore never see it undone, and snapshots never see a part of a batch (a
//    snapshot's S is a commit, never inside a batch). A single write is a batch of one.
//
// Layout: [HistoryHeader | entry_count x HistoryEntry]; entry s is at index s mod entry_count.
//
// Invariants (writer store order):
//   H1. An entry is complete (its seq stored last, release) before `head` passes it; head is
//       stored (release) before the slot stores of the changes it covers.
//   H2. `commit` (release) is stored after the slot stores of every change <= commit.
//   H3. head - 1 - commit <= kMaxBatchOps <= entry_count / 4 (one change per operation of a
//       batch): entries not yet committed are never overwritten.
//   H4. Memory is reserved (posix_fallocate) for an entry before it is first written; readers
//       read only entries below head.
//   H5. Sequence numbers never repeat in the object's life (it lives as long as the bucket).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "shm/layout.h"
#include "shm/segment.h"

namespace kv::shm {

inline constexpr std::uint64_t kHistoryMagic = 0x313054534948564bULL;  // "KVHIST01"
// Slot changes a snapshot may fall behind before it is too old (the window). A power of two.
inline constexpr std::uint64_t kHistoryEntries = std::uint64_t{1} << 16;

struct HistoryEntry {
  std::atomic<std::uint64_t> seq;  // 0 while (re)written; else the change's sequence number
  std::atomic<std::uint64_t> generation;
  std::atomic<std::uint64_t> index;  // slot index in that generation
  std::atomic<std::uint64_t> old_word;
  std::atomic<std::uint64_t> new_word;
};
static_assert(sizeof(HistoryEntry) == 40);

struct alignas(kCacheLine) HistoryHeader {
  std::uint64_t magic;  // stored last at creation (after a release fence)
  std::uint32_t format_version;
  std::uint32_t layout_word;
  std::uint64_t bucket_id;
  std::uint64_t entry_count;
  std::uint64_t entries_offset;
  // Written by the worker (release), read by snapshots (acquire).
  alignas(kCacheLine) std::atomic<std::uint64_t> head;  // entries < head are complete (H1)
  std::atomic<std::uint64_t> commit;                    // changes <= commit are applied (H2)
  std::atomic<std::uint64_t> reserved_entries;          // H4: entries below have memory
};
inline constexpr std::uint32_t kHistoryLayout =
    LayoutWord(sizeof(HistoryHeader), sizeof(HistoryEntry), alignof(HistoryHeader));

// A consistent copy of one entry.
struct HistoryRecord {
  std::uint64_t generation = 0;
  std::uint64_t index = 0;
  std::uint64_t old_word = 0;
  std::uint64_t new_word = 0;
};

// The worker's side. Not thread-safe (single writer).
class HistoryWriter {
 public:
  // Opens the bucket's history or creates it (empty; also when it is incomplete or of another
  // build: *reset then says so).
  static HistoryWriter OpenOrCreate(const std::string& name, std::uint64_t bucket_id, mode_t mode,
                                    bool* reset, ShmError* error);
  bool valid() const { return header_ != nullptr; }

  // Makes sure the next `n` entries have memory (H4). False (kNoSpace) if /dev/shm is full.
  bool Prepare(std::uint64_t n);
  // Writes the next entry (REQUIRES: Prepare covered it). Returns its sequence number.
  std::uint64_t Record(std::uint64_t generation, std::uint64_t index, std::uint64_t old_word,
                       std::uint64_t new_word);
  // head = next (H1): before the slot stores of the recorded changes.
  void Publish() { header_->head.store(next_, std::memory_order_release); }
  // commit = next - 1 (H2): after them.
  void Commit() { header_->commit.store(next_ - 1, std::memory_order_release); }
  // The sequence the next Record gets.
  std::uint64_t next() const { return next_; }
  std::uint64_t commit() const { return header_->commit.load(std::memory_order_relaxed); }

  // Crash recovery: calls apply(index, new_word) for every published, uncommitted entry of
  // `generation`, in order, then commits them. Returns how many.
  std::uint64_t RollForward(std::uint64_t generation,
                            const std::function<void(std::uint64_t, std::uint64_t)>& apply);

 private:
  Segment segment_;
  HistoryHeader* header_ = nullptr;
  HistoryEntry* entries_ = nullptr;
  std::uint64_t next_ = 1;
  std::uint64_t reserved_ = 0;  // writer's copy of reserved_entries
};

// A reader (snapshots): PROT_READ mapping, writes nothing. Thread-compatible.
class HistoryReader {
 public:
  // "" when usable, else why not.
  std::string Attach(const char* base, std::size_t size);
  std::uint64_t head() const { return header_->head.load(std::memory_order_acquire); }
  std::uint64_t commit() const { return header_->commit.load(std::memory_order_acquire); }
  // Copies entry `seq` (REQUIRES: seq < a head loaded before). False if it was overwritten.
  bool Read(std::uint64_t seq, HistoryRecord* out) const;

 private:
  const HistoryHeader* header_ = nullptr;
  const HistoryEntry* entries_ = nullptr;
  std::uint64_t mask_ = 0;
};

}  // namespace kv::shm
