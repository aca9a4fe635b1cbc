// The bucket table: one generation segment NS.b<id>.g<gen> holding a single-writer, many-reader
// hash table. The worker writes it; clients read it from other processes through PROT_READ
// mappings, without locks and without writing anything.
//
// Layout: [TableHeader | slot array (u64 per slot) | heap of records]. See docs/shm_format.md.
//
// Approach: open addressing with linear probing over 8-byte slots. A slot holds a 16-bit hash tag
// and the heap offset of an immutable record {key_len, value_len, version, key, value}. The heap is
// append-only within a generation: a put writes a new record and swings the slot to it, so a reader
// that loaded a slot copies a record nobody will ever write again, and a torn value is impossible.
// The slot word is the item's sequence counter: every change stores a new, never-repeated value.
// Garbage (superseded records, tombstones) is reclaimed by building the next generation, which also
// grows the table; `clear` is an empty next generation.
//
// Invariants (the writer keeps them in this store order; readers rely on them):
//   T1. A record is fully written, and heap_used advanced past it (release), before any slot
//       points at it. A record is never modified afterwards.
//   T2. Every slot is 0 (empty), 1 (tombstone) or tag<<48 | (offset/8), offset < heap_used.
//   T3. live slots + tombstones <= 80% of slot_count: every probe sequence meets an empty slot.
//   T4. moved_to is stored (release) only after the next generation is ready and the anchor names
//       it; once non-zero it never changes back.
//   T5. stats_seq is odd from before a slot changes until the stats agree with the slots again; a
//       worker that finds it odd on start recomputes the stats from the slots.
//
// What this does not do: durability across reboot (it is memory), or more than one writer.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "shm/layout.h"
#include "shm/segment.h"

namespace kv::shm {

inline constexpr std::uint64_t kSlotEmpty = 0;
inline constexpr std::uint64_t kSlotTombstone = 1;
inline constexpr std::uint64_t kMovedDropped = ~std::uint64_t{0};
inline constexpr std::size_t kTableHeaderSize = 4096;

struct alignas(kCacheLine) TableHeader {
  // Identity and geometry: written once while building, before `ready`.
  std::uint64_t magic;
  std::uint32_t format_version;
  std::uint32_t layout_word;
  std::uint64_t bucket_id;
  std::uint64_t generation;
  std::uint64_t segment_size;
  std::uint64_t slot_count;
  std::uint64_t slots_offset;
  std::uint64_t heap_offset;

  // Publication: read by every get (so nothing else lives on this line).
  alignas(kCacheLine) std::atomic<std::uint32_t> ready;  // 1 once readable (release)
  std::atomic<std::uint64_t> moved_to;  // 0: current; N: generation N replaced this; kMovedDropped

  // Writer progress (worker only; readers use it for stats).
  alignas(kCacheLine) std::atomic<std::uint64_t> heap_used;  // bytes of heap holding records
  std::atomic<std::uint64_t> last_version;  // versions are unique per bucket, across generations

  // Statistics under stats_seq (T5). Readers snapshot them with the seqlock protocol.
  alignas(kCacheLine) std::atomic<std::uint32_t> stats_seq;
  std::atomic<std::uint64_t> key_count;
  std::atomic<std::uint64_t> tombstones;
  std::atomic<std::uint64_t> live_bytes;      // bytes of records slots point at
  std::atomic<std::uint64_t> writes_applied;  // since the bucket was created
};

inline constexpr std::uint32_t kTableLayout =
    LayoutWord(sizeof(TableHeader), alignof(TableHeader), 16);
static_assert(sizeof(TableHeader) <= kTableHeaderSize);

struct RecordHeader {
  std::uint32_t key_len;
  std::uint32_t value_len;
  std::uint64_t version;
};
static_assert(sizeof(RecordHeader) == 16);

inline std::uint64_t RecordSize(std::size_t key_len, std::size_t value_len) {
  return (sizeof(RecordHeader) + key_len + value_len + 7) & ~std::uint64_t{7};
}

struct TableStats {
  std::uint64_t generation = 0;
  std::uint64_t key_count = 0;
  std::uint64_t tombstones = 0;
  std::uint64_t live_bytes = 0;
  std::uint64_t heap_used = 0;
  std::uint64_t segment_size = 0;
  std::uint64_t slot_count = 0;
  std::uint64_t writes_applied = 0;
};

enum class ReadResult { kFound, kNotFound, kMoved, kDropped, kCorrupt };

// A record found by a reader: views into the mapping.
struct RecordRef {
  std::string_view key;
  std::string_view value;
  std::uint64_t version = 0;
};

// A validated view of one generation, for lookups. Holds no ownership: the caller keeps the mapping
// alive. Thread-compatible (const methods may run concurrently).
class TableView {
 public:
  TableView() = default;
  // Checks magic, version, layout, readiness and that the geometry fits in [base, base+size).
  // Returns an empty string when usable, else why not.
  std::string Attach(const char* base, std::size_t size);

  // Finds `key`. On kFound, *record points at its immutable record inside the mapping (valid as
  // long as the mapping is). kMoved/kDropped: this generation is no longer current. kCorrupt: the
  // table is inconsistent (never crashes, never loops: every offset is checked, probes bounded).
  ReadResult Find(std::string_view key, RecordRef* record) const;
  // Find, then copy the value into *value (and its version into *version when non-null).
  ReadResult Get(std::string_view key, std::string* value, std::uint64_t* version) const;

  // The key and value of slot `index` if it is live (for scans). kNotFound for empty slots.
  ReadResult SlotAt(std::uint64_t index, RecordRef* record) const;

  std::uint64_t moved_to() const { return header_->moved_to.load(std::memory_order_acquire); }
  std::uint64_t slot_count() const { return slot_count_; }
  const TableHeader* header() const { return header_; }
  TableStats Stats() const;  // seqlock snapshot; best effort if the writer is mid-update

 private:
  // Returns the record a slot word points at, or nullptr if the slot word is out of bounds.
  const RecordHeader* Record(std::uint64_t slot, std::uint32_t* key_len,
                             std::uint32_t* value_len) const;

  const TableHeader* header_ = nullptr;
  const std::atomic<std::uint64_t>* slots_ = nullptr;
  const char* heap_ = nullptr;
  std::uint64_t slot_count_ = 0;
  std::uint64_t heap_size_ = 0;

  friend class TableWriter;
};

// Result of a table write.
enum class WriteResult {
  kOk,
  kNotFound,         // delete of a missing key
  kVersionMismatch,  // cas
  kNeedsGrowth,      // no room: the caller builds the next generation and retries
};

// The bucket's single writer over one generation. Only the worker constructs it.
class TableWriter {
 public:
  TableWriter() = default;
  TableWriter(TableWriter&&) noexcept = default;
  TableWriter& operator=(TableWriter&&) noexcept = default;

  // Creates generation `generation` of bucket `bucket_id`, empty, with room for at least
  // `slot_count` slots and `heap_size` bytes of records. Not ready until Publish().
  static TableWriter Create(const std::string& name, std::uint64_t bucket_id,
                            std::uint64_t generation, std::uint64_t slot_count,
                            std::uint64_t heap_size, mode_t mode, ShmError* error);
  // Opens an existing generation after a restart: validates it and repairs what a crash can leave
  // (odd stats counter, stats out of step with slots). kCorrupt if it cannot be trusted.
  static TableWriter Open(const std::string& name, ShmError* error);

  // Builds the next generation from this one: copies every live record (keeping versions), sized
  // for the live data plus `extra_bytes` (0 slots/bytes copied when `empty`, for clear).
  TableWriter BuildNext(const std::string& name, std::uint64_t extra_bytes, bool empty,
                        std::uint64_t max_segment_size, ShmError* error) const;

  void Publish();                      // ready = 1 (release)
  void MarkMoved(std::uint64_t next);  // moved_to = next (release); T4

  // Writes. On kOk, *version is the key's new version (put/cas) and *old_value the previous
  // value (delete) when non-null.
  WriteResult Put(std::string_view key, std::string_view value, std::uint64_t* version);
  WriteResult Cas(std::string_view key, std::uint64_t expected_version, std::string_view value,
                  std::uint64_t* version);
  WriteResult Delete(std::string_view key, std::string* old_value);

  const TableView& view() const { return view_; }
  std::uint64_t generation() const { return view_.header_->generation; }
  const std::string& name() const { return segment_.name(); }
  bool valid() const { return segment_.valid(); }

  // When a write returns kNeedsGrowth, this says whether it was /dev/shm that refused memory.
  const ShmError& last_error() const { return last_error_; }

 private:
  TableHeader* header() { return const_cast<TableHeader*>(view_.header_); }
  std::atomic<std::uint64_t>* slots() {
    return const_cast<std::atomic<std::uint64_t>*>(view_.slots_);
  }
  // Probes for `key`: returns its slot index and sets *found, or the index where it would go.
  std::uint64_t Find(std::string_view key, std::uint64_t hash, bool* found) const;
  // Appends a record (T1). Returns its slot word, or 0 if the heap (or /dev/shm) is full.
  std::uint64_t Append(std::uint64_t hash, std::string_view key, std::string_view value,
                       std::uint64_t version);
  void RecomputeStats();

  Segment segment_;
  TableView view_;
  ShmError last_error_;
};

}  // namespace kv::shm
