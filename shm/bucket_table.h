// The bucket table: one generation segment NS.b<id>.g<gen> holding a single-writer, many-reader
// hash table. The worker writes it; clients read it from other processes through PROT_READ
// mappings, without locks and without writing anything.
//
// Layout: [TableHeader | slot array (u64 per slot) | heap of records]. See docs/shm_format.md.
//
// Approach: open addressing with linear probing over 8-byte slots. A slot holds a 16-bit hash tag,
// an 8-bit check byte and the heap offset of an immutable record {value_len, key_len, check,
// version, key, value}. The heap is append-only within a generation: a put writes a new record
// and swings the slot to it, so a reader that loaded a slot copies a record nobody will ever write
// again, and a torn value is impossible. The slot word is the item's sequence counter: every
// change stores a new, never-repeated value. Garbage (superseded records, tombstones) is reclaimed
// by building the next generation, which also grows the table; `clear` is an empty next
// generation.
//
// Damage detection (a flipped byte must give an error, never a crash, a loop or a wrong answer):
// the geometry fields carry a checksum (geometry_check), every non-empty slot word carries a check
// byte (any single corrupted byte of a slot is detected by the reader that visits it), and every
// record a 16-bit checksum over its header, key and value, verified by readers before a value is
// returned. Every offset and length is bounds-checked before it is followed; probes are bounded.
//
// Invariants (the writer keeps them in this store order; readers rely on them):
//   T1. A record is fully written, and heap_used advanced past it (release), before any slot
//       points at it. A record is never modified afterwards.
//   T2. Every slot is kSlotEmpty, kSlotTombstone or SlotWord(hash, offset) with
//       kHeapReserved <= offset < heap_used; the XOR of a non-empty slot's 8 bytes is kSlotCheck.
//   T3. live slots + tombstones <= 80% of slot_count: every probe sequence meets an empty slot.
//   T4. moved_to is stored (release) only after the next generation is ready and the anchor names
//       it; once non-zero it never changes back.
//   T5. stats_seq is odd from before a slot changes until the stats agree with the slots again; a
//       worker that finds it odd on start recomputes the stats from the slots.
//   T6. A key occupies at most one live slot, reachable from its home slot without crossing an
//       empty slot.
//
// What this does not do: durability across reboot (it is memory), or more than one writer.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "shm/batch.h"
#include "shm/layout.h"
#include "shm/segment.h"
#include "shm/slot_history.h"

namespace kv::shm {

// Slot word: tag (bits 63..48) | check byte (47..40) | record offset / 8 (39..0).
inline constexpr std::uint64_t kSlotCheck = 0x5a;  // XOR of the 8 bytes of every non-empty slot
inline constexpr std::uint64_t kSlotEmpty = 0;
inline constexpr std::uint64_t kSlotTombstone = kSlotCheck << 40;  // tag 0, offset 0
inline constexpr std::uint64_t kHeapReserved = 16;                 // no record at offsets 0 and 8
inline constexpr std::uint64_t kMaxHeapSize = std::uint64_t{8} << 40;  // 40-bit offset / 8
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
  std::uint64_t geometry_check;  // XXH3 of the bytes above (GeometryCheck)

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
  // A gauge outside stats_seq, set once a second: the most requests the worker found waiting
  // at one look over its clients' channels in that second (it takes at most 256 per channel at
  // a time); 0 for a second without requests.
  std::atomic<std::uint64_t> queue_depth;
};

inline constexpr std::uint32_t kTableLayout =
    LayoutWord(sizeof(TableHeader), alignof(TableHeader), 16);
static_assert(sizeof(TableHeader) <= kTableHeaderSize);

// A record in the heap, 8-aligned: the header, then (when value_len has kRecordExpires) the
// 8-byte expiry time, then key_len key bytes and the value's bytes.
struct RecordHeader {
  std::uint32_t value_len;  // the value's length; bit 31 (kRecordExpires): an expiry follows
  std::uint16_t key_len;
  std::uint16_t check;  // RecordCheck(key, value, version, expiry)
  std::uint64_t version;
};
static_assert(sizeof(RecordHeader) == 16);

// value_len bit 31: the record expires. An expiring record's header is followed by a u64, the
// Unix time in milliseconds (RealtimeCoarseMillis) from which readers treat the key as absent;
// the record check covers it. A record without the flag has no expiry and costs nothing more.
inline constexpr std::uint32_t kRecordExpires = 0x80000000u;
inline constexpr std::uint32_t kRecordValueLenMask = ~kRecordExpires;

inline std::uint64_t RecordSize(std::size_t key_len, std::size_t value_len, bool expires = false) {
  return (sizeof(RecordHeader) + (expires ? 8 : 0) + key_len + value_len + 7) & ~std::uint64_t{7};
}
// The expiry of a record (0: none).
inline std::uint64_t RecordExpiry(const RecordHeader* rec) {
  if ((rec->value_len & kRecordExpires) == 0) return 0;
  std::uint64_t at;
  __builtin_memcpy(&at, rec + 1, sizeof at);
  return at;
}
// Where a record's key begins (its value follows the key).
inline const char* RecordKey(const RecordHeader* rec) {
  return reinterpret_cast<const char*>(rec + 1) + ((rec->value_len & kRecordExpires) ? 8 : 0);
}

// Checksums (stable across builds: XXH3 for the geometry, CRC-32C for records). `expiry` 0: the
// record does not expire (and the check is what format version 4 computed).
std::uint64_t GeometryCheck(const TableHeader& header);
std::uint16_t RecordCheck(const char* key_and_value, std::size_t key_len, std::size_t value_len,
                          std::uint64_t version, std::uint64_t expiry = 0);

// Lets the worker inject named crash points (daemon/crash_point.h) into table code, which must
// not depend on the daemon. Points: "table-record-appended" (record written, slot not yet
// stored), "table-slot-stored" (slot stored, stats not yet even), "generation-half-copied".
using TableCrashHook = void (*)(const char* point);
void SetTableCrashHook(TableCrashHook hook);

// Told the commit point of every table write, for the exactly-once log (shm/channel_dedup.h):
// Put calls it after appending the new record (T1) and before the slot store that publishes it,
// Delete before the store that tombstones the key's record, with the generation and the
// record's heap offset. The store that follows is the commit point.
using SwingHook = void (*)(void* context, std::uint64_t generation, std::uint64_t record_offset);

struct TableStats {
  std::uint64_t generation = 0;
  std::uint64_t key_count = 0;
  std::uint64_t tombstones = 0;
  std::uint64_t live_bytes = 0;
  std::uint64_t heap_used = 0;
  std::uint64_t segment_size = 0;
  std::uint64_t slot_count = 0;
  std::uint64_t writes_applied = 0;
  std::uint64_t queue_depth = 0;
};

enum class ReadResult { kFound, kNotFound, kMoved, kDropped, kCorrupt };

// A record found by a reader: views into the mapping.
struct RecordRef {
  std::string_view key;
  std::string_view value;
  std::uint64_t version = 0;
  std::uint64_t expires_unix_ms = 0;  // 0: the key does not expire
};

// A validated view of one generation, for lookups. Holds no ownership: the caller keeps the mapping
// alive. Thread-compatible (const methods may run concurrently).
class TableView {
 public:
  TableView() = default;
  // Checks magic, version, layout, readiness, the geometry checksum and that the geometry fits
  // in [base, base+size). Returns an empty string when usable, else why not.
  std::string Attach(const char* base, std::size_t size, bool require_ready = true);

  // Finds `key`. On kFound, *record points at its immutable record inside the mapping (valid as
  // long as the mapping is), its checksum verified. kMoved/kDropped: this generation is no longer
  // current. kCorrupt: the table is damaged (never crashes, never loops: every offset is
  // checked, probes are bounded). Damage within a generation is permanent: retrying is useless.
  // A key whose expiry time has passed (by RealtimeCoarseMillis) is kNotFound: the check is a
  // flag test, and for an expiring record one clock read and a compare.
  ReadResult Find(std::string_view key, RecordRef* record) const {
    return FindAt(key, record, /*now_unix_ms=*/0);
  }
  // Find, with expired keys found too (the worker, which reclaims them).
  ReadResult FindAny(std::string_view key, RecordRef* record) const {
    return FindAt(key, record, ~std::uint64_t{0});
  }
  // Find, then copy the value into *value (and its version into *version when non-null).
  ReadResult Get(std::string_view key, std::string* value, std::uint64_t* version) const;

  // The key and value of slot `index` if it is live (for scans). kNotFound for empty slots and
  // expired keys (`now_unix_ms`: the time to compare expiries with; 0 reads the clock).
  ReadResult SlotAt(std::uint64_t index, RecordRef* record, std::uint64_t now_unix_ms = 0) const;

  // Point-in-time reads (kv::Snapshot, shm/slot_history.h): Find and SlotAt over the words the
  // slots held at a snapshot's moment, as `source(context, index)` gives them, instead of the
  // words they hold now, with keys expired at `at_unix_ms` (the snapshot's moment) absent.
  // moved_to is not looked at: a snapshot may read a replaced generation.
  using SlotSource = std::uint64_t (*)(void* context, std::uint64_t index);
  ReadResult FindThrough(std::string_view key, RecordRef* record, SlotSource source, void* context,
                         std::uint64_t at_unix_ms) const;
  // The record of slot word `word` (kNotFound: empty, tombstone, or expired at `at_unix_ms`;
  // 0 reads the clock when an expiring record is met).
  ReadResult WordRecord(std::uint64_t word, RecordRef* record, std::uint64_t at_unix_ms) const;

  std::uint64_t moved_to() const { return header_->moved_to.load(std::memory_order_acquire); }
  std::uint64_t slot_count() const { return slot_count_; }
  // The raw word of slot `index` (< slot_count()): a snapshot copies them (daemon/persistence).
  std::uint64_t SlotWord(std::uint64_t index) const {
    return slots_[index].load(std::memory_order_relaxed);
  }
  const TableHeader* header() const { return header_; }
  TableStats Stats() const;  // seqlock snapshot; best effort if the writer is mid-update

  // Returns the record a live slot word points at, or nullptr if the slot word or the record's
  // lengths are out of bounds. Does not verify the record checksum (CheckedRecord does).
  const RecordHeader* Record(std::uint64_t slot, std::uint32_t* key_len,
                             std::uint32_t* value_len) const;
  // Record, and its checksum verified.
  const RecordHeader* CheckedRecord(std::uint64_t slot, std::uint32_t* key_len,
                                    std::uint32_t* value_len) const;
  // The record at heap offset `offset` (bounds and checksum checked), or nullptr.
  const RecordHeader* RecordAt(std::uint64_t offset, RecordRef* record) const;
  // The heap offset of a record Find or RecordAt returned from this view.
  std::uint64_t RecordOffset(const RecordRef& record) const;

 private:
  // `now_unix_ms`: 0 reads the clock when an expiring record is met; ~0 finds expired keys too.
  ReadResult FindAt(std::string_view key, RecordRef* record, std::uint64_t now_unix_ms) const;
  // *record from checked record `rec` unless it expired at `at_unix_ms` (0: the clock, read
  // only for an expiring record) -> kNotFound.
  static ReadResult Unexpired(const RecordHeader* rec, std::uint32_t key_len,
                              std::uint32_t value_len, std::uint64_t at_unix_ms, RecordRef* record);

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

// What a batch needs of a generation (TableWriter::BatchNeeds).
struct BatchNeeds {
  std::uint64_t new_keys = 0;
  std::uint64_t bytes = 0;  // record bytes
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
  // Opens the current generation after a restart and verifies every slot and record. Repairs
  // what a crash can leave (odd stats counter, stats out of step with the slots, ready not yet
  // stored) and what damage can be repaired without guessing (a slot whose tag or check byte is
  // wrong but whose record is intact, heap_used or last_version behind the records, moved_to set
  // on a live bucket's current table); *repairs (if non-null) lists what was repaired. kCorrupt
  // with the slot or field named if anything else is wrong: the table is refused, never guessed.
  static TableWriter Open(const std::string& name, ShmError* error, std::string* repairs = nullptr);
  // Opens a replaced generation left behind by a crash, only to mark it moved (T4).
  static void MarkReplaced(const std::string& name, std::uint64_t next);

  // Builds the next generation from this one: copies every live record (keeping versions), sized
  // for the live data plus `extra_bytes` (0 slots/bytes copied when `empty`, for clear). Slots
  // are sized for a load of 60% after the copy (growth by ~1.33x per rebuild keeps the slot array
  // at 10-13 bytes per key); the heap's virtual size is twice the live data, reserved lazily.
  // `extra_keys` more keys are planned for too (a restore sizes the table once).
  TableWriter BuildNext(const std::string& name, std::uint64_t extra_bytes, bool empty,
                        std::uint64_t max_segment_size, ShmError* error,
                        std::uint64_t extra_keys = 0) const;

  // The incremental build of the next generation (docs/design.md, "Growth"), which spares the
  // writer BuildNext's pause. StartNext creates the next generation empty, sized as BuildNext
  // would (no bytes extra); CopyNext copies this table's slots into it a few at a time, in slot
  // order (the copy's cursor); and every slot store of this table below the cursor is reflected
  // into it as it happens. When the cursor reaches the end the next generation holds exactly
  // this table's keys, records and versions. It stays unpublished (no reader sees it) until the
  // caller takes and publishes it; a crash leaves an unpublished generation, which the next
  // worker removes. A copy or reflection that does not fit (heap, slots, /dev/shm) ends the
  // build and removes its segment; the table itself is never affected. Worker only.
  //
  // NearlyFull says when to start: the heap or the slots are nine tenths of the way to where a
  // write would need a new generation, and a new one would have more room (the table may grow
  // within `max_segment_size`, 0: no limit, or a quarter of it is garbage).
  bool NearlyFull(std::uint64_t max_segment_size) const;
  bool StartNext(const std::string& name, std::uint64_t max_segment_size, ShmError* error);
  bool building_next() const { return next_ != nullptr; }
  // Copies up to `slots` more slots (crash hook generation-half-copied at the middle). True once
  // every slot is copied; false while slots remain, or if the build ended (building_next()).
  bool CopyNext(std::uint64_t slots);
  // The complete next generation (CopyNext returned true), with this table's version counter
  // and write count; the build ends.
  TableWriter TakeNext();
  // Ends the build, if any, and removes its segment.
  void AbandonNext();

  // Appends a copy of `from`'s record at heap offset `offset` that no slot points at (kept for
  // the exactly-once log across a generation change). Returns its offset here, 0 if `from` has
  // no valid record there or this heap is full.
  std::uint64_t CarryRecord(const TableView& from, std::uint64_t offset);
  // See SwingHook. Not carried to the next generation (BuildNext): set it on each.
  void SetSwingHook(SwingHook hook, void* context) {
    swing_hook_ = hook;
    swing_context_ = context;
  }

  // The bucket's slot history (shm/slot_history.h): every slot change is recorded in it before
  // its slot store and committed after. Not carried by BuildNext: set it on each generation.
  // Without one (tests of the table alone) nothing is recorded.
  void SetHistory(HistoryWriter* history) { history_ = history; }
  // Crash recovery (HistoryWriter::RollForward): stores `word` in slot `index` as recorded by
  // the dead worker. The caller re-opens the table afterwards (stats are recomputed there).
  void RestoreSlot(std::uint64_t index, std::uint64_t word);

  // Sets the writes_applied statistic (crash recovery: shm/channel_dedup.h knows the count).
  void SetWritesApplied(std::uint64_t n);

  void Publish();                       // ready = 1 (release)
  void SetQueueDepth(std::uint64_t n);  // the queue_depth gauge (stored only when it changes)
  void MarkMoved(std::uint64_t next);   // moved_to = next (release); T4

  // Writes. On kOk, *version is the key's new version (put/cas) and *old_value the previous
  // value (delete) when non-null. An expired key (Find) counts as absent: Cas and Delete do not
  // see it, and Put replaces it. `expiry`: the new record's expiry (Unix ms, 0: none); Cas keeps
  // the key's expiry (a new key gets none).
  WriteResult Put(std::string_view key, std::string_view value, std::uint64_t* version,
                  std::uint64_t expiry = 0);
  WriteResult Cas(std::string_view key, std::uint64_t expected_version, std::string_view value,
                  std::uint64_t* version);
  WriteResult Delete(std::string_view key, std::string* old_value);
  // Rewrites the key's record with expiry `expiry` (0: none) and a new version. kNotFound if the
  // key is absent or expired.
  WriteResult SetExpiry(std::string_view key, std::uint64_t expiry, std::uint64_t* version);
  // Tombstones `key` if its record expires exactly at `expiry` and that is <= now_unix_ms (the
  // worker's active expiry). True if it did.
  bool Expire(std::string_view key, std::uint64_t expiry, std::uint64_t now_unix_ms);
  // Applies a validated batch (shm/batch.h: unique keys) all-or-nothing. First every cas is
  // checked against the current state (kVersionMismatch, *failed = its index: nothing changed),
  // then room (kNeedsGrowth: nothing changed; BatchNeeds says what the next generation needs,
  // last_error() whether /dev/shm refused memory). Then the records are appended, every slot
  // change is recorded in the history and published, the slots are stored in order, and the
  // changes committed (shm/slot_history.h): a crash anywhere leaves none of it or, once the
  // history is published, all of it after recovery. Operation i gets version V - n + 1 + i
  // where *version = V is the version counter after the batch; a delete of a missing key
  // changes nothing (but takes its version). Expiry as the single writes: a put's record has
  // none, a cas keeps the key's (a new key gets none). The swing hook is told (generation, last
  // history sequence of the batch) before the first slot store. REQUIRES: a history
  // (SetHistory).
  WriteResult ApplyBatch(const std::vector<BatchOp>& ops, std::size_t* failed,
                         std::uint64_t* version);
  // What `ops` would need: new keys and record bytes (for sizing the next generation; a cas
  // counts its record with an expiry, which it may keep).
  BatchNeeds Needs(const std::vector<BatchOp>& ops) const;

  // Restore from disk (daemon/persistence): puts `value` with exactly `version` and raises the
  // version counter to it; RaiseLastVersion raises it (never lowers it).
  WriteResult PutVersioned(std::string_view key, std::string_view value, std::uint64_t version,
                           std::uint64_t expiry = 0);
  void RaiseLastVersion(std::uint64_t version);

  // Hints for a write to the key of hash `hash` (HashKey) that comes a few requests later: first
  // PrefetchSlot (starts fetching its home slot), then, once that has had time to arrive,
  // PrefetchRecord (starts fetching the record the home slot points at). Change nothing, never
  // fault; a wrong or stale hint only costs its memory traffic.
  void PrefetchSlot(std::uint64_t hash) const;
  void PrefetchRecord(std::uint64_t hash) const;

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
  // `overlay` (optional): slot words planned by a batch but not stored yet, by slot index.
  using Overlay = std::unordered_map<std::uint64_t, std::uint64_t>;
  std::uint64_t Find(std::string_view key, std::uint64_t hash, bool* found,
                     const Overlay* overlay = nullptr) const;
  // Room for `size` bytes at the end of the heap (memory reserved), and its heap offset; nullptr
  // (last_error_ set if /dev/shm refused memory) if the heap is full.
  char* Allocate(std::uint64_t size, std::uint64_t* offset);
  // Reserves history memory for `entries` slot changes (true without a history); false, with
  // last_error_ set, if /dev/shm refused it: the write must not start.
  bool PrepareHistory(std::size_t entries);
  // Stores `word` in slot `at`, recorded in the history first (H1, H2).
  void StoreSlot(std::uint64_t at, std::uint64_t word);
  // Appends a record (T1). Returns its slot word, or 0 if the heap (or /dev/shm) is full.
  std::uint64_t Append(std::uint64_t hash, std::string_view key, std::string_view value,
                       std::uint64_t version, std::uint64_t expiry);
  WriteResult PutAt(std::string_view key, std::string_view value, std::uint64_t exact_version,
                    std::uint64_t* version, std::uint64_t expiry);
  // Tombstones the live slot `at` (its record `rec`, k/v its lengths).
  void Tombstone(std::uint64_t at, std::uint32_t k, std::uint32_t v, const RecordHeader* rec);
  // Appends a byte-for-byte copy of another generation's record of `size` bytes (T1).
  std::uint64_t AppendCopy(std::uint64_t hash, const RecordHeader* rec, std::uint64_t size);

  // BuildNext and StartNext: the next generation, empty, sized for this one's live data plus
  // `extra_bytes` and `extra_keys` (none when `empty`); with `reserve_heap`, the memory for that
  // data is reserved at once (one call, not one per chunk as the copy goes).
  TableWriter CreateNext(const std::string& name, std::uint64_t extra_bytes, bool empty,
                         std::uint64_t max_segment_size, ShmError* error, std::uint64_t extra_keys,
                         bool reserve_heap) const;
  // Copies the live record of this table's slot word `word` into `next` as a key it does not
  // hold. False if it does not fit.
  bool CopyInto(TableWriter& next, std::uint64_t word) const;
  // CopyInto for every live slot in [from, to) (crash hook generation-half-copied at the middle).
  bool CopyRange(TableWriter& next, std::uint64_t from, std::uint64_t to) const;
  // Whether a key may take one more slot (T3: the load stays within kMaxLoadPercent).
  bool RoomForNewSlot() const;
  // Applies to the next generation the store of `new_word` over `old_word` in one of this
  // table's slots below the copy's cursor; ends the build if it does not fit.
  void ReflectIntoNext(std::uint64_t old_word, std::uint64_t new_word);
  // After every slot store (StoreSlot, ApplyBatch): reflects it if the build has copied slot `at`.
  void ReflectIfCopied(std::uint64_t at, std::uint64_t old_word, std::uint64_t new_word) {
    if (next_ != nullptr && at < next_cursor_) ReflectIntoNext(old_word, new_word);
  }

  void Swing(std::uint64_t word) {
    if (swing_hook_ != nullptr) swing_hook_(swing_context_, generation(), SlotOffsetOf(word));
  }
  static std::uint64_t SlotOffsetOf(std::uint64_t word);

  Segment segment_;
  TableView view_;
  ShmError last_error_;
  SwingHook swing_hook_ = nullptr;
  void* swing_context_ = nullptr;
  HistoryWriter* history_ = nullptr;
  std::unique_ptr<TableWriter> next_;  // the incremental build, if one is under way
  std::uint64_t next_cursor_ = 0;      // slots below it are in next_
};

}  // namespace kv::shm
