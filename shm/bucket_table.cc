#include "shm/bucket_table.h"

#include <sched.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "shm/coarse_clock.h"
#include "shm/crc32c.h"
#include "shm/hash.h"
#include "shm/seqlock.h"

namespace kv::shm {
namespace {

constexpr std::uint64_t kOffsetMask = (std::uint64_t{1} << 40) - 1;
constexpr std::uint64_t kMinSlots = 64;
constexpr std::uint64_t kMinHeap = 16 * 1024;
constexpr int kMaxLoadPercent = 80;
constexpr int kBuildLoadPercent = 60;

TableCrashHook g_crash_hook = nullptr;

void CrashHook(const char* point) {
  if (__builtin_expect(g_crash_hook != nullptr, 0)) g_crash_hook(point);
}

std::uint64_t HomeSlot(std::uint64_t hash, std::uint64_t slot_count) {
  return static_cast<std::uint64_t>((static_cast<unsigned __int128>(hash) * slot_count) >> 64);
}
std::uint64_t Tag(std::uint64_t hash) { return hash >> 48; }
// XOR of the word's 8 bytes.
std::uint64_t FoldBytes(std::uint64_t word) {
  word ^= word >> 32;
  word ^= word >> 16;
  word ^= word >> 8;
  return word & 0xff;
}
std::uint64_t SlotWord(std::uint64_t hash, std::uint64_t offset) {
  std::uint64_t word = (Tag(hash) << 48) | (offset >> 3);
  return word | ((FoldBytes(word) ^ kSlotCheck) << 40);
}
bool SlotValid(std::uint64_t word) { return word == kSlotEmpty || FoldBytes(word) == kSlotCheck; }
// Only for valid words.
bool IsLive(std::uint64_t word) { return (word & kOffsetMask) != 0; }
std::uint64_t SlotOffset(std::uint64_t word) { return (word & kOffsetMask) << 3; }

// Starts fetching the record a live slot word points at (both lines of a typical small record).
// A hint only: never faults, whatever the word says.
void PrefetchRecordAt(const char* heap, std::uint64_t heap_size, std::uint64_t word) {
  if (SlotOffset(word) >= heap_size) return;
  const char* rec = heap + SlotOffset(word);
  __builtin_prefetch(rec);
  __builtin_prefetch(rec + 64);
}

// Counters only the (single) writer changes: a load and a store, no locked read-modify-write.
void Add(std::atomic<std::uint64_t>& counter, std::uint64_t n) {
  counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
void Sub(std::atomic<std::uint64_t>& counter, std::uint64_t n) {
  counter.store(counter.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
}

// How far ahead of the heap's end Allocate prefetches for writing.
constexpr std::uint64_t kWritePrefetchBytes = 2048;

// How many slots ahead BuildNext prefetches the records it copies.
constexpr std::uint64_t kCopyPrefetch = 16;

std::uint64_t AlignUp(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

// Bytes to reserve ahead of the bump pointer: a syscall per chunk, not per record, and at most
// 1 MiB of reserved but unused memory per bucket.
std::uint64_t ReserveChunk(std::uint64_t heap_used) {
  return std::clamp<std::uint64_t>(heap_used / 32, 64 * 1024, 1u << 20);
}

}  // namespace

std::uint64_t GeometryCheck(const TableHeader& header) {
  return XXH3_64bits(&header, offsetof(TableHeader, geometry_check));
}

std::uint16_t RecordCheck(const char* key_and_value, std::size_t key_len, std::size_t value_len,
                          std::uint64_t version, std::uint64_t expiry) {
  // The stored value_len word (with its kRecordExpires flag) and the expiry are covered.
  std::uint64_t lens = (std::uint64_t{key_len} << 32) | value_len | (expiry ? kRecordExpires : 0);
  const std::uint64_t header[3] = {version, lens, expiry};
  std::uint32_t state = Crc32cExtend(kCrc32cInit, header, expiry ? 24 : 16);
  std::uint32_t crc = Crc32cFinish(Crc32cExtend(state, key_and_value, key_len + value_len));
  return static_cast<std::uint16_t>(crc ^ (crc >> 16));
}

void SetTableCrashHook(TableCrashHook hook) { g_crash_hook = hook; }

// ---------------------------------------------------------------------------------------------
// TableView (readers)

std::string TableView::Attach(const char* base, std::size_t size, bool require_ready) {
  if (size < kTableHeaderSize) return "segment is smaller than a table header";
  const auto* h = reinterpret_cast<const TableHeader*>(base);
  if (h->magic != kTableMagic) return "not a kv bucket table (bad magic)";
  if (h->format_version != kFormatVersion) {
    return "bucket table format version " + std::to_string(h->format_version) +
           ", this build reads version " + std::to_string(kFormatVersion);
  }
  if (h->layout_word != kTableLayout) return "bucket table layout word does not match this build";
  if (require_ready && h->ready.load(std::memory_order_acquire) != 1) {
    return "bucket table is not ready";
  }
  if (h->geometry_check != GeometryCheck(*h)) return "bucket table header fails its checksum";
  std::uint64_t slot_count = h->slot_count;
  if (h->segment_size != size || h->slots_offset != kTableHeaderSize || slot_count == 0 ||
      slot_count > size / 8 ||
      h->heap_offset != AlignUp(h->slots_offset + slot_count * 8, kCacheLine) ||
      h->heap_offset + kHeapReserved + sizeof(RecordHeader) > size ||
      size - h->heap_offset > kMaxHeapSize) {
    return "bucket table geometry is inconsistent with its segment";
  }
  header_ = h;
  slots_ = reinterpret_cast<const std::atomic<std::uint64_t>*>(base + h->slots_offset);
  heap_ = base + h->heap_offset;
  slot_count_ = slot_count;
  heap_size_ = size - h->heap_offset;
  return {};
}

const RecordHeader* TableView::Record(std::uint64_t slot, std::uint32_t* key_len,
                                      std::uint32_t* value_len) const {
  std::uint64_t offset = SlotOffset(slot);
  if (offset < kHeapReserved || offset > heap_size_ - sizeof(RecordHeader)) return nullptr;
  const auto* rec = reinterpret_cast<const RecordHeader*>(heap_ + offset);
  std::uint32_t k = rec->key_len;
  std::uint32_t raw = rec->value_len;
  std::uint32_t v = raw & kRecordValueLenMask;
  std::uint32_t extra = (raw & kRecordExpires) ? 8 : 0;
  if (k == 0 || k > kMaxKeySize || v > kMaxValueSize) return nullptr;
  if (k + v + extra > heap_size_ - offset - sizeof(RecordHeader)) return nullptr;
  *key_len = k;
  *value_len = v;
  return rec;
}

const RecordHeader* TableView::CheckedRecord(std::uint64_t slot, std::uint32_t* key_len,
                                             std::uint32_t* value_len) const {
  const RecordHeader* rec = Record(slot, key_len, value_len);
  if (rec == nullptr || rec->check != RecordCheck(RecordKey(rec), *key_len, *value_len,
                                                  rec->version, RecordExpiry(rec))) {
    return nullptr;
  }
  return rec;
}

const RecordHeader* TableView::RecordAt(std::uint64_t offset, RecordRef* record) const {
  if (offset % 8 != 0 || offset >= kMaxHeapSize) return nullptr;
  std::uint32_t k = 0, v = 0;
  const RecordHeader* rec = CheckedRecord(shm::SlotWord(0, offset), &k, &v);
  if (rec == nullptr) return nullptr;
  const char* key = RecordKey(rec);
  record->key = {key, k};
  record->value = {key + k, v};
  record->version = rec->version;
  record->expires_unix_ms = RecordExpiry(rec);
  return rec;
}

std::uint64_t TableView::RecordOffset(const RecordRef& record) const {
  std::uint64_t expiry_bytes = record.expires_unix_ms != 0 ? 8 : 0;
  return static_cast<std::uint64_t>(record.key.data() - expiry_bytes - sizeof(RecordHeader) -
                                    heap_);
}

std::uint64_t TableWriter::SlotOffsetOf(std::uint64_t word) { return SlotOffset(word); }

ReadResult TableView::FindAt(std::string_view key, RecordRef* record,
                             std::uint64_t now_unix_ms) const {
  std::uint64_t moved = header_->moved_to.load(std::memory_order_acquire);
  if (moved != 0) return moved == kMovedDropped ? ReadResult::kDropped : ReadResult::kMoved;
  std::uint64_t hash = HashKey(key);
  std::uint64_t tag = Tag(hash);
  std::uint64_t index = HomeSlot(hash, slot_count_);
  for (std::uint64_t probes = 0; probes < slot_count_; ++probes) {
    std::uint64_t word = slots_[index].load(std::memory_order_acquire);
    if (word == kSlotEmpty) return ReadResult::kNotFound;
    if (!SlotValid(word)) return ReadResult::kCorrupt;
    if ((word >> 48) == tag && IsLive(word)) {
      // A record usually spans two cache lines: start fetching the second with the first.
      __builtin_prefetch(heap_ + SlotOffset(word) + 64);
      std::uint32_t key_len, value_len;
      const RecordHeader* rec = Record(word, &key_len, &value_len);
      if (rec == nullptr) return ReadResult::kCorrupt;
      const char* rec_key = RecordKey(rec);
      // Its last line too (a record with an expiry often reaches a third line): the key compare
      // and the check below then overlap with fetching it.
      __builtin_prefetch(rec_key + key_len + value_len - 1);
      std::uint64_t expiry = RecordExpiry(rec);
      bool same = key_len == key.size() && std::memcmp(rec_key, key.data(), key_len) == 0;
      // Checked on every tag match, not only on a key match: a damaged key must not turn into
      // a silent miss.
      if (rec->check != RecordCheck(rec_key, key_len, value_len, rec->version, expiry)) {
        return ReadResult::kCorrupt;
      }
      if (same) {
        // An expired key is absent; the worker tombstones it soon (its active expiry).
        // (now_unix_ms ~0: FindAny, expired keys are found too.)
        if (__builtin_expect(expiry != 0, 0) && now_unix_ms != ~std::uint64_t{0} &&
            expiry <= (now_unix_ms != 0 ? now_unix_ms : RealtimeCoarseMillis())) {
          return ReadResult::kNotFound;
        }
        record->key = std::string_view(rec_key, key_len);
        record->value = std::string_view(rec_key + key_len, value_len);
        record->version = rec->version;
        record->expires_unix_ms = expiry;
        return ReadResult::kFound;
      }
    }
    if (++index == slot_count_) index = 0;
  }
  return ReadResult::kCorrupt;  // T3 says an empty slot ends every probe sequence
}

ReadResult TableView::Get(std::string_view key, std::string* value, std::uint64_t* version) const {
  RecordRef record;
  ReadResult r = Find(key, &record);
  if (r == ReadResult::kFound) {
    value->assign(record.value.data(), record.value.size());
    if (version != nullptr) *version = record.version;
  }
  return r;
}

ReadResult TableView::SlotAt(std::uint64_t index, RecordRef* record,
                             std::uint64_t now_unix_ms) const {
  if (index >= slot_count_) return ReadResult::kNotFound;
  return WordRecord(slots_[index].load(std::memory_order_acquire), record, now_unix_ms);
}

ReadResult TableView::FindThrough(std::string_view key, RecordRef* record, SlotSource source,
                                  void* context, std::uint64_t at_unix_ms) const {
  std::uint64_t hash = HashKey(key);
  std::uint64_t tag = Tag(hash);
  std::uint64_t index = HomeSlot(hash, slot_count_);
  for (std::uint64_t probes = 0; probes < slot_count_; ++probes) {
    std::uint64_t word = source(context, index);
    if (word == kSlotEmpty) return ReadResult::kNotFound;
    if (!SlotValid(word)) return ReadResult::kCorrupt;
    if ((word >> 48) == tag && IsLive(word)) {
      std::uint32_t key_len, value_len;
      const RecordHeader* rec = CheckedRecord(word, &key_len, &value_len);
      if (rec == nullptr) return ReadResult::kCorrupt;
      if (std::string_view(RecordKey(rec), key_len) == key) {
        return Unexpired(rec, key_len, value_len, at_unix_ms, record);
      }
    }
    if (++index == slot_count_) index = 0;
  }
  return ReadResult::kCorrupt;
}

ReadResult TableView::WordRecord(std::uint64_t word, RecordRef* record,
                                 std::uint64_t at_unix_ms) const {
  if (word == kSlotEmpty) return ReadResult::kNotFound;
  if (!SlotValid(word)) return ReadResult::kCorrupt;
  if (!IsLive(word)) return ReadResult::kNotFound;
  std::uint32_t key_len, value_len;
  const RecordHeader* rec = CheckedRecord(word, &key_len, &value_len);
  if (rec == nullptr) return ReadResult::kCorrupt;
  return Unexpired(rec, key_len, value_len, at_unix_ms, record);
}

ReadResult TableView::Unexpired(const RecordHeader* rec, std::uint32_t key_len,
                                std::uint32_t value_len, std::uint64_t at_unix_ms,
                                RecordRef* record) {
  std::uint64_t expiry = RecordExpiry(rec);
  if (expiry != 0 && expiry <= (at_unix_ms != 0 ? at_unix_ms : RealtimeCoarseMillis())) {
    return ReadResult::kNotFound;
  }
  const char* rec_key = RecordKey(rec);
  record->key = std::string_view(rec_key, key_len);
  record->value = std::string_view(rec_key + key_len, value_len);
  record->version = rec->version;
  record->expires_unix_ms = expiry;
  return ReadResult::kFound;
}

TableStats TableView::Stats() const {
  TableStats s;
  // The writer keeps stats_seq odd only while it stores one write's slot and counters, but a
  // reader that shares its CPU, or a slow one (sanitizers), can meet it odd time after time: it
  // gives the writer the CPU now and then, and its last attempt reads the counters as they are
  // (off by the write in progress at most), never zeros.
  constexpr int kAttempts = 10000;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    if (attempt % 16 == 15) sched_yield();
    std::uint32_t seq;
    bool begun = ReadBegin(header_->stats_seq, &seq);
    if (!begun && attempt + 1 < kAttempts) continue;
    s.key_count = header_->key_count.load(std::memory_order_relaxed);
    s.tombstones = header_->tombstones.load(std::memory_order_relaxed);
    s.live_bytes = header_->live_bytes.load(std::memory_order_relaxed);
    s.writes_applied = header_->writes_applied.load(std::memory_order_relaxed);
    if (begun && ReadValid(header_->stats_seq, seq)) break;
  }
  s.queue_depth = header_->queue_depth.load(std::memory_order_relaxed);
  s.generation = header_->generation;
  s.heap_used = header_->heap_used.load(std::memory_order_relaxed);
  s.segment_size = header_->segment_size;
  s.slot_count = slot_count_;
  return s;
}

// ---------------------------------------------------------------------------------------------
// TableWriter (the worker)

TableWriter TableWriter::Create(const std::string& name, std::uint64_t bucket_id,
                                std::uint64_t generation, std::uint64_t slot_count,
                                std::uint64_t heap_size, mode_t mode, ShmError* error) {
  slot_count = std::max(slot_count, kMinSlots);
  heap_size = std::min(AlignUp(std::max(heap_size, kMinHeap), 8), kMaxHeapSize);
  std::uint64_t slots_offset = kTableHeaderSize;
  std::uint64_t heap_offset = AlignUp(slots_offset + slot_count * 8, kCacheLine);
  std::uint64_t size = heap_offset + heap_size;
  std::uint64_t reserve = heap_offset + std::min(heap_size, ReserveChunk(0));

  TableWriter w;
  w.segment_ = Segment::Create(name, size, reserve, mode, error);
  if (!w.segment_.valid()) return {};
  auto* h = new (w.segment_.data()) TableHeader();
  h->magic = kTableMagic;
  h->format_version = kFormatVersion;
  h->layout_word = kTableLayout;
  h->bucket_id = bucket_id;
  h->generation = generation;
  h->segment_size = size;
  h->slot_count = slot_count;
  h->slots_offset = slots_offset;
  h->heap_offset = heap_offset;
  h->geometry_check = GeometryCheck(*h);
  h->heap_used.store(kHeapReserved, std::memory_order_relaxed);
  std::string why = w.view_.Attach(w.segment_.data(), w.segment_.size(), false);
  if (!why.empty()) {
    *error = {ShmError::kCorrupt, why};
    Segment::Remove(name);
    return {};
  }
  return w;
}

namespace {

// The slot word `word` should be if it points at an intact record, differing from it in one
// byte (a damaged tag or check byte); 0 if there is no such word.
std::uint64_t RepairedSlot(const TableView& view, std::uint64_t word) {
  std::uint32_t k, v;
  const RecordHeader* rec = view.CheckedRecord(word, &k, &v);
  if (rec == nullptr) return 0;
  std::uint64_t fixed = SlotWord(HashKey({RecordKey(rec), k}), SlotOffset(word));
  int bytes_differing = 0;
  for (std::uint64_t diff = fixed ^ word; diff != 0; diff >>= 8)
    bytes_differing += (diff & 0xff) != 0;
  return bytes_differing == 1 ? fixed : 0;
}

}  // namespace

TableWriter TableWriter::Open(const std::string& name, ShmError* error, std::string* repairs) {
  TableWriter w;
  std::string repaired;
  auto refuse = [&](const std::string& why) {
    *error = {ShmError::kCorrupt, "bucket table '" + name + "': " + why};
    return TableWriter();
  };
  w.segment_ = Segment::OpenReadWrite(name, error);
  if (!w.segment_.valid()) return {};
  std::string why = w.view_.Attach(w.segment_.data(), w.segment_.size(), false);
  if (!why.empty()) return refuse(why);
  TableHeader* h = w.header();
  const TableView& view = w.view_;

  // Every slot: a valid word, pointing at an intact record whose key hashes to its tag (T2).
  std::uint64_t live = 0, tombstones = 0, live_bytes = 0, records_end = kHeapReserved;
  std::uint64_t max_version = 0;
  for (std::uint64_t i = 0; i < view.slot_count_; ++i) {
    std::uint64_t word = view.slots_[i].load(std::memory_order_relaxed);
    if (word == kSlotEmpty) continue;
    std::uint32_t k = 0, v = 0;
    const RecordHeader* rec = nullptr;
    if (SlotValid(word) && IsLive(word)) rec = view.CheckedRecord(word, &k, &v);
    bool tag_ok = rec != nullptr && (word >> 48) == Tag(HashKey({RecordKey(rec), k}));
    if (!SlotValid(word) || (IsLive(word) && !tag_ok)) {
      std::uint64_t fixed = RepairedSlot(view, word);
      if (fixed == 0) {
        return refuse("slot " + std::to_string(i) + " (word 0x" + [&] {
          char buf[17];
          std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(word));
          return std::string(buf);
        }() + ") is damaged or points at a damaged record; refusing to guess");
      }
      w.slots()[i].store(fixed, std::memory_order_relaxed);
      repaired += "slot " + std::to_string(i) + " check byte/tag; ";
      word = fixed;
      rec = view.CheckedRecord(word, &k, &v);
    }
    if (!IsLive(word)) {
      ++tombstones;
      continue;
    }
    ++live;
    std::uint64_t size = RecordSize(k, v, RecordExpiry(rec) != 0);
    live_bytes += size;
    records_end = std::max(records_end, SlotOffset(word) + size);
    max_version = std::max(max_version, rec->version);
  }
  if ((live + tombstones) * 100 > view.slot_count_ * kMaxLoadPercent + 100) {
    return refuse("more slots used (" + std::to_string(live + tombstones) + ") than allowed");
  }
  // T6: every live key is reachable from its home slot.
  for (std::uint64_t i = 0; i < view.slot_count_; ++i) {
    std::uint64_t word = view.slots_[i].load(std::memory_order_relaxed);
    if (word == kSlotEmpty || !IsLive(word)) continue;
    std::uint32_t k, v;
    const RecordHeader* rec = view.Record(word, &k, &v);
    std::uint64_t j = HomeSlot(HashKey({RecordKey(rec), k}), view.slot_count_);
    for (; j != i; j = (j + 1 == view.slot_count_) ? 0 : j + 1) {
      if (view.slots_[j].load(std::memory_order_relaxed) == kSlotEmpty) {
        return refuse("slot " + std::to_string(i) + " is unreachable from its home slot");
      }
    }
  }
  // Counters a crash or damage can leave behind the records: move them forward, never back.
  std::uint64_t heap_used = h->heap_used.load(std::memory_order_relaxed);
  if (heap_used < records_end || heap_used > view.heap_size_) {
    h->heap_used.store(records_end, std::memory_order_release);
    repaired += "heap_used; ";
  }
  if (h->last_version.load(std::memory_order_relaxed) < max_version) {
    h->last_version.store(max_version, std::memory_order_relaxed);
    repaired += "last_version; ";
  }
  // The anchor names this table: it is published and current, whatever these words say.
  if (h->ready.load(std::memory_order_relaxed) != 1) {
    h->ready.store(1, std::memory_order_release);
    repaired += "ready; ";
  }
  if (h->moved_to.load(std::memory_order_relaxed) != 0) {
    h->moved_to.store(0, std::memory_order_release);
    repaired += "moved_to; ";
  }
  // T5: a crash between a slot store and the stats update leaves stats_seq odd; the scan above is
  // the truth either way, so store it.
  WriteBegin(h->stats_seq);
  h->key_count.store(live, std::memory_order_relaxed);
  h->tombstones.store(tombstones, std::memory_order_relaxed);
  h->live_bytes.store(live_bytes, std::memory_order_relaxed);
  WriteEnd(h->stats_seq);
  heap_used = h->heap_used.load(std::memory_order_relaxed);
  if (ShmError e = w.segment_.Reserve(h->heap_offset + heap_used + ReserveChunk(heap_used))) {
    *error = e;
    return {};
  }
  if (repairs != nullptr) *repairs = repaired;
  return w;
}

void TableWriter::MarkReplaced(const std::string& name, std::uint64_t next) {
  ShmError error;
  Segment segment = Segment::OpenReadWrite(name, &error);
  if (!segment.valid() || segment.size() < kTableHeaderSize) return;
  TableView view;
  if (!view.Attach(segment.data(), segment.size(), false).empty()) return;
  auto* h = reinterpret_cast<TableHeader*>(segment.data());
  if (h->moved_to.load(std::memory_order_relaxed) == 0) {
    h->moved_to.store(next, std::memory_order_release);
  }
}

TableWriter TableWriter::CreateNext(const std::string& name, std::uint64_t extra_bytes, bool empty,
                                    std::uint64_t max_segment_size, ShmError* error,
                                    std::uint64_t extra_keys, bool reserve_heap) const {
  TableStats stats = view_.Stats();
  std::uint64_t keys = (empty ? 0 : stats.key_count) + extra_keys;
  std::uint64_t live = empty ? 0 : stats.live_bytes;
  std::uint64_t need_heap = kHeapReserved + live + extra_bytes;
  std::uint64_t heap = std::max(2 * need_heap, kMinHeap);
  std::uint64_t slots = std::max((keys + 1) * 100 / kBuildLoadPercent + 1, kMinSlots);
  auto total = [](std::uint64_t s, std::uint64_t hp) {
    return AlignUp(kTableHeaderSize + s * 8, kCacheLine) + hp;
  };
  if (max_segment_size != 0 && total(slots, heap) > max_segment_size) {
    // Shrink the headroom, never below what the data needs.
    std::uint64_t min_slots = std::max((keys + 1) * 100 / kMaxLoadPercent + 1, kMinSlots);
    slots = std::max(min_slots, std::min(slots, max_segment_size / 8 / 8));
    if (total(slots, need_heap) > max_segment_size) {
      *error = {ShmError::kNoSpace, "bucket would exceed its maximum size of " +
                                        std::to_string(max_segment_size) + " bytes"};
      return {};
    }
    heap = max_segment_size - AlignUp(kTableHeaderSize + slots * 8, kCacheLine);
  }
  TableWriter next =
      Create(name, view_.header_->bucket_id, generation() + 1, slots, heap, 0640, error);
  if (!next.valid()) return {};
  TableHeader* nh = next.header();
  nh->last_version.store(view_.header_->last_version.load(std::memory_order_relaxed),
                         std::memory_order_relaxed);
  nh->writes_applied.store(stats.writes_applied, std::memory_order_relaxed);
  if (reserve_heap) {
    if (ShmError e = next.segment_.Reserve(nh->heap_offset + need_heap + ReserveChunk(need_heap))) {
      *error = e;
      Segment::Remove(name);
      return {};
    }
  }
  return next;
}

bool TableWriter::CopyInto(TableWriter& next, std::uint64_t word) const {
  std::uint32_t k, v;
  const RecordHeader* rec = view_.Record(word, &k, &v);
  if (rec == nullptr) return true;  // Open() validated every slot; unreachable in practice
  TableHeader* nh = next.header();
  if (!next.RoomForNewSlot()) return false;  // T3
  std::uint64_t hash = HashKey({RecordKey(rec), k});
  // The key is not in `next`: it goes to the first empty slot of its probe sequence, and the
  // record is copied as it is (same version, same checksum).
  std::uint64_t at = HomeSlot(hash, next.view_.slot_count_);
  while (next.view_.slots_[at].load(std::memory_order_relaxed) != kSlotEmpty) {
    if (++at == next.view_.slot_count_) at = 0;
  }
  std::uint64_t size = RecordSize(k, v, RecordExpiry(rec) != 0);
  std::uint64_t new_word = next.AppendCopy(hash, rec, size);
  if (new_word == 0) return false;
  next.slots()[at].store(new_word, std::memory_order_relaxed);
  Add(nh->key_count, 1);
  Add(nh->live_bytes, size);
  return true;
}

TableWriter TableWriter::BuildNext(const std::string& name, std::uint64_t extra_bytes, bool empty,
                                   std::uint64_t max_segment_size, ShmError* error,
                                   std::uint64_t extra_keys) const {
  TableWriter next = CreateNext(name, extra_bytes, empty, max_segment_size, error, extra_keys,
                                /*reserve_heap=*/true);
  if (!next.valid()) return {};
  if (!CopyRange(next, 0, empty ? 0 : view_.slot_count_)) {
    *error = next.last_error_ ? next.last_error_
                              : ShmError{ShmError::kNoSpace, "next generation heap is full"};
    Segment::Remove(name);
    return {};
  }
  return next;
}

bool TableWriter::CopyRange(TableWriter& next, std::uint64_t from, std::uint64_t to) const {
  for (std::uint64_t i = from; i < to; ++i) {
    if (i == view_.slot_count_ / 2) CrashHook("generation-half-copied");
    // Records are visited in slot (random) order: fetch a few slots ahead so that the misses
    // overlap instead of costing one memory latency each.
    if (i + kCopyPrefetch < view_.slot_count_) {
      std::uint64_t ahead = view_.slots_[i + kCopyPrefetch].load(std::memory_order_relaxed);
      if (IsLive(ahead)) PrefetchRecordAt(view_.heap_, view_.heap_size_, ahead);
    }
    std::uint64_t word = view_.slots_[i].load(std::memory_order_relaxed);
    if (IsLive(word) && !CopyInto(next, word)) return false;
  }
  return true;
}

bool TableWriter::RoomForNewSlot() const {
  const TableHeader* h = view_.header_;
  std::uint64_t used_slots =
      h->key_count.load(std::memory_order_relaxed) + h->tombstones.load(std::memory_order_relaxed);
  return (used_slots + 1) * 100 <= view_.slot_count_ * kMaxLoadPercent;
}

bool TableWriter::NearlyFull(std::uint64_t max_segment_size) const {
  const TableHeader* h = view_.header_;
  std::uint64_t used = h->heap_used.load(std::memory_order_relaxed);
  std::uint64_t tombstones = h->tombstones.load(std::memory_order_relaxed);
  std::uint64_t used_slots = h->key_count.load(std::memory_order_relaxed) + tombstones;
  if (used * 10 < view_.heap_size_ * 9 &&
      used_slots * 100 * 10 < view_.slot_count_ * kMaxLoadPercent * 9) {
    return false;
  }
  // Worth a build only if it makes room: the table may grow, or a quarter of it is garbage (a
  // table at its maximum size and full of live keys would otherwise be copied over and over).
  bool may_grow = max_segment_size == 0 || h->segment_size < max_segment_size;
  std::uint64_t garbage = used - kHeapReserved - h->live_bytes.load(std::memory_order_relaxed);
  return may_grow || garbage * 4 >= view_.heap_size_ || tombstones * 4 >= used_slots;
}

bool TableWriter::StartNext(const std::string& name, std::uint64_t max_segment_size,
                            ShmError* error) {
  AbandonNext();
  // The heap is reserved as the copy fills it: no pause here for memory the copy needs later.
  TableWriter next = CreateNext(name, 0, false, max_segment_size, error, 0, /*reserve_heap=*/false);
  if (!next.valid()) return false;
  next_ = std::make_unique<TableWriter>(std::move(next));
  next_cursor_ = 0;
  return true;
}

bool TableWriter::CopyNext(std::uint64_t slots) {
  if (next_ == nullptr) return false;
  std::uint64_t end =
      slots >= view_.slot_count_ - next_cursor_ ? view_.slot_count_ : next_cursor_ + slots;
  if (!CopyRange(*next_, next_cursor_, end)) {
    AbandonNext();
    return false;
  }
  next_cursor_ = end;
  return next_cursor_ == view_.slot_count_;
}

TableWriter TableWriter::TakeNext() {
  TableWriter next = std::move(*next_);
  next_.reset();
  next_cursor_ = 0;
  TableHeader* nh = next.header();
  nh->last_version.store(view_.header_->last_version.load(std::memory_order_relaxed),
                         std::memory_order_relaxed);
  nh->writes_applied.store(view_.header_->writes_applied.load(std::memory_order_relaxed),
                           std::memory_order_relaxed);
  return next;
}

void TableWriter::AbandonNext() {
  if (next_ == nullptr) return;
  std::string name = next_->name();
  next_.reset();
  next_cursor_ = 0;
  Segment::Remove(name);
}

void TableWriter::ReflectIntoNext(std::uint64_t old_word, std::uint64_t new_word) {
  // The key is in the record the slot points at now, or pointed at (a delete).
  std::uint64_t source = IsLive(new_word) ? new_word : old_word;
  if (!IsLive(source)) return;
  std::uint32_t k, v;
  const RecordHeader* rec = view_.Record(source, &k, &v);
  if (rec == nullptr) return AbandonNext();
  TableWriter& next = *next_;
  TableHeader* nh = next.header();
  std::string_view key(RecordKey(rec), k);
  std::uint64_t hash = HashKey(key);
  bool found = false;
  std::uint64_t at = next.Find(key, hash, &found);
  std::uint64_t there = next.view_.slots_[at].load(std::memory_order_relaxed);
  std::uint64_t there_size = 0;
  if (found) {
    std::uint32_t tk, tv;
    const RecordHeader* old = next.view_.Record(there, &tk, &tv);
    if (old != nullptr) there_size = RecordSize(tk, tv, RecordExpiry(old) != 0);
  }
  if (!IsLive(new_word)) {
    if (!found) return;
    next.slots()[at].store(kSlotTombstone, std::memory_order_relaxed);
    Sub(nh->key_count, 1);
    Add(nh->tombstones, 1);
    Sub(nh->live_bytes, there_size);
    return;
  }
  if (!found && there != kSlotTombstone && !next.RoomForNewSlot()) return AbandonNext();  // T3
  std::uint64_t size = RecordSize(k, v, RecordExpiry(rec) != 0);
  std::uint64_t word = next.AppendCopy(hash, rec, size);
  if (word == 0) return AbandonNext();
  next.slots()[at].store(word, std::memory_order_relaxed);
  if (found) {
    Sub(nh->live_bytes, there_size);
  } else {
    Add(nh->key_count, 1);
    if (there == kSlotTombstone) Sub(nh->tombstones, 1);
  }
  Add(nh->live_bytes, size);
}

std::uint64_t TableWriter::CarryRecord(const TableView& from, std::uint64_t offset) {
  RecordRef ref;
  const RecordHeader* rec = from.RecordAt(offset, &ref);
  if (rec == nullptr) return 0;
  std::uint64_t word =
      AppendCopy(0, rec, RecordSize(ref.key.size(), ref.value.size(), ref.expires_unix_ms != 0));
  return word == 0 ? 0 : SlotOffset(word);
}

void TableWriter::SetWritesApplied(std::uint64_t n) {
  TableHeader* h = header();
  WriteBegin(h->stats_seq);
  h->writes_applied.store(n, std::memory_order_relaxed);
  WriteEnd(h->stats_seq);
}

void TableWriter::Publish() { header()->ready.store(1, std::memory_order_release); }

void TableWriter::SetQueueDepth(std::uint64_t n) {
  std::atomic<std::uint64_t>& depth = header()->queue_depth;
  if (depth.load(std::memory_order_relaxed) != n) depth.store(n, std::memory_order_relaxed);
}

void TableWriter::MarkMoved(std::uint64_t next) {
  header()->moved_to.store(next, std::memory_order_release);
}

void TableWriter::PrefetchSlot(std::uint64_t hash) const {
  __builtin_prefetch(&view_.slots_[HomeSlot(hash, view_.slot_count_)]);
}

void TableWriter::PrefetchRecord(std::uint64_t hash) const {
  std::uint64_t word =
      view_.slots_[HomeSlot(hash, view_.slot_count_)].load(std::memory_order_relaxed);
  if (word != kSlotEmpty && (word >> 48) == Tag(hash)) {
    PrefetchRecordAt(view_.heap_, view_.heap_size_, word);
  }
}

std::uint64_t TableWriter::Find(std::string_view key, std::uint64_t hash, bool* found,
                                const Overlay* overlay) const {
  std::uint64_t tag = Tag(hash);
  std::uint64_t index = HomeSlot(hash, view_.slot_count_);
  std::uint64_t first_tombstone = ~std::uint64_t{0};
  for (std::uint64_t probes = 0; probes < view_.slot_count_; ++probes) {
    std::uint64_t word = view_.slots_[index].load(std::memory_order_relaxed);
    if (overlay != nullptr) {
      if (auto it = overlay->find(index); it != overlay->end()) word = it->second;
    }
    if (word == kSlotEmpty) break;
    if (word == kSlotTombstone) {
      if (first_tombstone == ~std::uint64_t{0}) first_tombstone = index;
    } else if ((word >> 48) == tag) {
      std::uint32_t k, v;
      const RecordHeader* rec = view_.Record(word, &k, &v);
      if (rec != nullptr && k == key.size() &&
          std::memcmp(RecordKey(rec), key.data(), key.size()) == 0) {
        *found = true;
        return index;
      }
    }
    if (++index == view_.slot_count_) index = 0;
  }
  *found = false;
  return first_tombstone != ~std::uint64_t{0} ? first_tombstone : index;
}

char* TableWriter::Allocate(std::uint64_t size, std::uint64_t* offset) {
  if (last_error_) last_error_ = {};
  TableHeader* h = header();
  std::uint64_t used = h->heap_used.load(std::memory_order_relaxed);
  if (size > view_.heap_size_ - used) return nullptr;
  // Reserve a chunk ahead only when this record crosses what is reserved: one syscall per chunk.
  if (h->heap_offset + used + size > segment_.reserved()) {
    last_error_ = segment_.Reserve(h->heap_offset + used + size + ReserveChunk(used));
    if (last_error_) return nullptr;
  }
  *offset = used;
  char* at = const_cast<char*>(view_.heap_) + used;
  // Records are written in sequence into memory nobody has touched since the kernel zeroed it:
  // fetch (for writing) a few lines ahead, which the hardware prefetcher does not do across
  // pages. A hint: the address may lie past the heap's end, where it does nothing.
  __builtin_prefetch(at + kWritePrefetchBytes, 1);
  return at;
}

std::uint64_t TableWriter::Append(std::uint64_t hash, std::string_view key, std::string_view value,
                                  std::uint64_t version, std::uint64_t expiry) {
  std::uint64_t size = RecordSize(key.size(), value.size(), expiry != 0);
  std::uint64_t used;
  char* at = Allocate(size, &used);
  if (at == nullptr) return 0;
  RecordHeader rec{static_cast<std::uint32_t>(value.size()) | (expiry ? kRecordExpires : 0),
                   static_cast<std::uint16_t>(key.size()), 0, version};
  char* body = at + sizeof rec;
  if (expiry != 0) {
    std::memcpy(body, &expiry, sizeof expiry);
    body += sizeof expiry;
  }
  std::memcpy(body, key.data(), key.size());
  if (!value.empty()) std::memcpy(body + key.size(), value.data(), value.size());
  rec.check = RecordCheck(body, key.size(), value.size(), version, expiry);
  std::memcpy(at, &rec, sizeof rec);
  header()->heap_used.store(used + size, std::memory_order_release);  // T1: before any slot
  return SlotWord(hash, used);
}

std::uint64_t TableWriter::AppendCopy(std::uint64_t hash, const RecordHeader* rec,
                                      std::uint64_t size) {
  std::uint64_t used;
  char* at = Allocate(size, &used);
  if (at == nullptr) return 0;
  std::memcpy(at, rec, size);
  header()->heap_used.store(used + size, std::memory_order_release);  // T1
  return SlotWord(hash, used);
}

WriteResult TableWriter::Put(std::string_view key, std::string_view value, std::uint64_t* version,
                             std::uint64_t expiry) {
  return PutAt(key, value, 0, version, expiry);
}

WriteResult TableWriter::PutVersioned(std::string_view key, std::string_view value,
                                      std::uint64_t version, std::uint64_t expiry) {
  return PutAt(key, value, version, nullptr, expiry);
}

void TableWriter::RaiseLastVersion(std::uint64_t version) {
  if (header()->last_version.load(std::memory_order_relaxed) < version) {
    header()->last_version.store(version, std::memory_order_relaxed);
  }
}

WriteResult TableWriter::PutAt(std::string_view key, std::string_view value,
                               std::uint64_t exact_version, std::uint64_t* version,
                               std::uint64_t expiry) {
  TableHeader* h = header();
  std::uint64_t hash = HashKey(key);
  bool found;
  std::uint64_t at = Find(key, hash, &found);
  bool reuses_tombstone = !found && slots()[at].load(std::memory_order_relaxed) == kSlotTombstone;
  if (!found && !reuses_tombstone && !RoomForNewSlot()) return WriteResult::kNeedsGrowth;  // T3
  if (!PrepareHistory(1)) return WriteResult::kNeedsGrowth;
  std::uint64_t last = h->last_version.load(std::memory_order_relaxed);
  std::uint64_t new_version = exact_version != 0 ? exact_version : last + 1;
  std::uint64_t word = Append(hash, key, value, new_version, expiry);
  if (word == 0) return WriteResult::kNeedsGrowth;
  h->last_version.store(std::max(last, new_version), std::memory_order_relaxed);
  CrashHook("table-record-appended");

  std::uint32_t old_k = 0, old_v = 0;
  std::uint64_t old_size = 0;
  if (found) {
    const RecordHeader* old =
        view_.Record(slots()[at].load(std::memory_order_relaxed), &old_k, &old_v);
    if (old != nullptr) old_size = RecordSize(old_k, old_v, RecordExpiry(old) != 0);
  }
  Swing(word);
  WriteBegin(h->stats_seq);
  StoreSlot(at, word);
  CrashHook("table-slot-stored");
  if (found) {
    Sub(h->live_bytes, old_size);
  } else {
    Add(h->key_count, 1);
    if (reuses_tombstone) Sub(h->tombstones, 1);
  }
  Add(h->live_bytes, RecordSize(key.size(), value.size(), expiry != 0));
  Add(h->writes_applied, 1);
  WriteEnd(h->stats_seq);
  if (version != nullptr) *version = new_version;
  return WriteResult::kOk;
}

WriteResult TableWriter::Cas(std::string_view key, std::uint64_t expected_version,
                             std::string_view value, std::uint64_t* version) {
  RecordRef current;
  ReadResult r = view_.Find(key, &current);
  // Version 0 means "the key must not exist".
  bool matches =
      (r == ReadResult::kFound) ? current.version == expected_version : expected_version == 0;
  if (!matches) {
    if (version != nullptr) *version = (r == ReadResult::kFound) ? current.version : 0;
    return WriteResult::kVersionMismatch;
  }
  // Cas keeps the key's expiry (as Redis's INCR keeps a TTL); a new key has none.
  std::uint64_t expiry = r == ReadResult::kFound ? current.expires_unix_ms : 0;
  return Put(key, value, version, expiry);
}

void TableWriter::Tombstone(std::uint64_t at, std::uint32_t k, std::uint32_t v,
                            const RecordHeader* rec) {
  TableHeader* h = header();
  Swing(slots()[at].load(std::memory_order_relaxed));
  WriteBegin(h->stats_seq);
  StoreSlot(at, kSlotTombstone);
  CrashHook("table-slot-stored");
  Sub(h->key_count, 1);
  Add(h->tombstones, 1);
  Sub(h->live_bytes, RecordSize(k, v, rec != nullptr && RecordExpiry(rec) != 0));
  Add(h->writes_applied, 1);
  Add(h->last_version, 1);
  WriteEnd(h->stats_seq);
}

WriteResult TableWriter::Delete(std::string_view key, std::string* old_value) {
  std::uint64_t hash = HashKey(key);
  bool found;
  std::uint64_t at = Find(key, hash, &found);
  if (!found) return WriteResult::kNotFound;
  std::uint32_t k = 0, v = 0;
  const RecordHeader* rec = view_.Record(slots()[at].load(std::memory_order_relaxed), &k, &v);
  // An expired key is absent for its clients; the active expiry reclaims it.
  std::uint64_t expiry = rec != nullptr ? RecordExpiry(rec) : 0;
  if (expiry != 0 && expiry <= RealtimeCoarseMillis()) return WriteResult::kNotFound;
  if (!PrepareHistory(1)) return WriteResult::kNeedsGrowth;
  if (old_value != nullptr && rec != nullptr) old_value->assign(RecordKey(rec) + k, v);
  Tombstone(at, k, v, rec);
  return WriteResult::kOk;
}

WriteResult TableWriter::SetExpiry(std::string_view key, std::uint64_t expiry,
                                   std::uint64_t* version) {
  RecordRef record;
  if (view_.Find(key, &record) != ReadResult::kFound) return WriteResult::kNotFound;
  // The record is rewritten with its value (read from the old record: records are immutable).
  return Put(key, record.value, version, expiry);
}

bool TableWriter::Expire(std::string_view key, std::uint64_t expiry, std::uint64_t now_unix_ms) {
  std::uint64_t hash = HashKey(key);
  bool found;
  std::uint64_t at = Find(key, hash, &found);
  if (!found) return false;
  std::uint32_t k = 0, v = 0;
  const RecordHeader* rec = view_.Record(slots()[at].load(std::memory_order_relaxed), &k, &v);
  if (rec == nullptr || RecordExpiry(rec) != expiry || expiry == 0 || expiry > now_unix_ms) {
    return false;
  }
  if (!PrepareHistory(1)) return false;  // no memory for the slot history yet: a later pass
  Tombstone(at, k, v, rec);
  return true;
}

bool TableWriter::PrepareHistory(std::size_t entries) {
  if (history_ == nullptr || history_->Prepare(entries)) return true;
  last_error_ = {ShmError::kNoSpace, "no memory for the slot history"};
  return false;
}

void TableWriter::StoreSlot(std::uint64_t at, std::uint64_t word) {
  std::uint64_t old_word = slots()[at].load(std::memory_order_relaxed);
  if (history_ != nullptr) {
    history_->Record(generation(), at, old_word, word);
    history_->Publish();  // H1: before the slot store
  }
  slots()[at].store(word, std::memory_order_release);
  if (history_ != nullptr) history_->Commit();  // H2
  ReflectIfCopied(at, old_word, word);
}

void TableWriter::RestoreSlot(std::uint64_t index, std::uint64_t word) {
  if (index < view_.slot_count_ && SlotValid(word) &&
      (!IsLive(word) || SlotOffset(word) < header()->heap_used.load(std::memory_order_relaxed))) {
    slots()[index].store(word, std::memory_order_release);
  }
}

BatchNeeds TableWriter::Needs(const std::vector<BatchOp>& ops) const {
  BatchNeeds needs;
  for (const BatchOp& op : ops) {
    if (op.op == Op::kDelete) continue;
    bool found = false;
    Find(op.key, HashKey(op.key), &found);
    if (!found) ++needs.new_keys;
    needs.bytes += RecordSize(op.key.size(), op.value.size(), op.op == Op::kCas);
  }
  return needs;
}

WriteResult TableWriter::ApplyBatch(const std::vector<BatchOp>& ops, std::size_t* failed,
                                    std::uint64_t* version) {
  TableHeader* h = header();
  *failed = 0;
  // 1. Every condition against the state before the batch (keys are unique: shm/batch.h). A
  // cas keeps the key's expiry, as Cas does: expiries[i] is operation i's new record's.
  std::vector<std::uint64_t> expiries(ops.size(), 0);
  for (std::size_t i = 0; i < ops.size(); ++i) {
    if (ops[i].op != Op::kCas) continue;
    RecordRef current;
    ReadResult r = view_.Find(ops[i].key, &current);
    bool matches = r == ReadResult::kFound
                       ? current.version == static_cast<std::uint64_t>(ops[i].arg)
                       : ops[i].arg == 0;
    if (!matches) {
      *failed = i;
      *version = r == ReadResult::kFound ? current.version : 0;
      return WriteResult::kVersionMismatch;
    }
    if (r == ReadResult::kFound) expiries[i] = current.expires_unix_ms;
  }
  // 2. Room: slots (T3, counting every new key as taking a fresh slot), heap and history
  // memory, all reserved before anything is written.
  if (last_error_) last_error_ = {};
  BatchNeeds needs = Needs(ops);
  std::uint64_t used_slots =
      h->key_count.load(std::memory_order_relaxed) + h->tombstones.load(std::memory_order_relaxed);
  std::uint64_t used = h->heap_used.load(std::memory_order_relaxed);
  if ((used_slots + needs.new_keys) * 100 > view_.slot_count_ * kMaxLoadPercent ||
      needs.bytes > view_.heap_size_ - used) {
    return WriteResult::kNeedsGrowth;
  }
  if (h->heap_offset + used + needs.bytes > segment_.reserved()) {
    last_error_ = segment_.Reserve(h->heap_offset + used + needs.bytes + ReserveChunk(used));
    if (last_error_) return WriteResult::kNeedsGrowth;
  }
  if (!PrepareHistory(ops.size())) return WriteResult::kNeedsGrowth;
  // 3. Records (T1: invisible until a slot points at them), then the plan: each operation's
  // slot as if the operations before it were applied (the overlay), so that every prefix of
  // the slot stores below is a valid table (T2, T3, T6) for readers and for recovery.
  struct Change {
    std::uint64_t at, old_word, new_word;
  };
  std::vector<Change> plan;
  plan.reserve(ops.size());
  Overlay overlay;
  overlay.reserve(ops.size() * 2);
  std::uint64_t last = h->last_version.load(std::memory_order_relaxed);
  std::int64_t d_keys = 0, d_tombstones = 0, d_live = 0;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const BatchOp& op = ops[i];
    std::uint64_t hash = HashKey(op.key);
    bool found = false;
    std::uint64_t at = Find(op.key, hash, &found, &overlay);
    std::uint64_t old_word = slots()[at].load(std::memory_order_relaxed);
    if (auto it = overlay.find(at); it != overlay.end()) old_word = it->second;
    ++last;
    std::uint64_t new_word;
    if (op.op == Op::kDelete) {
      if (!found) continue;
      new_word = kSlotTombstone;
      --d_keys;
      ++d_tombstones;
    } else {
      new_word = Append(hash, op.key, op.value, last, expiries[i]);  // room reserved: never 0
      if (new_word == 0) return WriteResult::kNeedsGrowth;           // nothing is published yet
      if (!found) {
        ++d_keys;
        if (old_word == kSlotTombstone) --d_tombstones;
      }
      d_live +=
          static_cast<std::int64_t>(RecordSize(op.key.size(), op.value.size(), expiries[i] != 0));
    }
    if (found) {
      std::uint32_t k = 0, v = 0;
      if (const RecordHeader* old = view_.Record(old_word, &k, &v); old != nullptr) {
        d_live -= static_cast<std::int64_t>(RecordSize(k, v, RecordExpiry(old) != 0));
      }
    }
    overlay[at] = new_word;
    plan.push_back({at, old_word, new_word});
  }
  h->last_version.store(last, std::memory_order_relaxed);
  *version = last;
  if (plan.empty()) return WriteResult::kOk;  // deletes of missing keys only
  // 4. The history (H1), then the commit point's hook, then the slots, then the commit (H2).
  for (const Change& c : plan) history_->Record(generation(), c.at, c.old_word, c.new_word);
  if (swing_hook_ != nullptr) swing_hook_(swing_context_, generation(), history_->next() - 1);
  CrashHook("batch-planned");
  history_->Publish();
  CrashHook("batch-history-published");
  WriteBegin(h->stats_seq);
  for (std::size_t i = 0; i < plan.size(); ++i) {
    if (i == plan.size() / 2 && i != 0) CrashHook("batch-half-applied");
    slots()[plan[i].at].store(plan[i].new_word, std::memory_order_release);
    ReflectIfCopied(plan[i].at, plan[i].old_word, plan[i].new_word);
  }
  CrashHook("batch-slots-stored");
  history_->Commit();
  h->key_count.store(
      h->key_count.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(d_keys),
      std::memory_order_relaxed);
  h->tombstones.store(
      h->tombstones.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(d_tombstones),
      std::memory_order_relaxed);
  h->live_bytes.store(
      h->live_bytes.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(d_live),
      std::memory_order_relaxed);
  Add(h->writes_applied, 1);
  WriteEnd(h->stats_seq);
  return WriteResult::kOk;
}

}  // namespace kv::shm
