#include "shm/bucket_table.h"

#include <algorithm>
#include <cstring>

#include "shm/hash.h"
#include "shm/seqlock.h"

namespace kv::shm {
namespace {

constexpr std::uint64_t kOffsetMask = (std::uint64_t{1} << 48) - 1;
constexpr std::uint64_t kHeapReserved =
    16;  // offset 0 and 8 would collide with kSlotEmpty/Tombstone
constexpr std::uint64_t kMinSlots = 64;
constexpr std::uint64_t kMinHeap = 16 * 1024;
constexpr int kMaxLoadPercent = 80;

std::uint64_t HomeSlot(std::uint64_t hash, std::uint64_t slot_count) {
  return static_cast<std::uint64_t>((static_cast<unsigned __int128>(hash) * slot_count) >> 64);
}
std::uint64_t Tag(std::uint64_t hash) { return hash & 0xffff; }
std::uint64_t SlotWord(std::uint64_t hash, std::uint64_t offset) {
  return (Tag(hash) << 48) | (offset >> 3);
}
bool IsLive(std::uint64_t word) { return word > kSlotTombstone; }

std::uint64_t AlignUp(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

// Bytes to reserve ahead of the bump pointer: a syscall per chunk, not per record.
std::uint64_t ReserveChunk(std::uint64_t heap_used) {
  return std::clamp<std::uint64_t>(heap_used / 8, 64 * 1024, 4u << 20);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// TableView (readers)

std::string TableView::Attach(const char* base, std::size_t size) {
  if (size < kTableHeaderSize) return "segment is smaller than a table header";
  const auto* h = reinterpret_cast<const TableHeader*>(base);
  if (h->magic != kTableMagic) return "not a kv bucket table (bad magic)";
  if (h->format_version != kFormatVersion) {
    return "bucket table format version " + std::to_string(h->format_version) +
           ", this build reads version " + std::to_string(kFormatVersion);
  }
  if (h->layout_word != kTableLayout) return "bucket table layout word does not match this build";
  if (h->ready.load(std::memory_order_acquire) != 1) return "bucket table is not ready";
  std::uint64_t slot_count = h->slot_count;
  if (h->segment_size != size || h->slots_offset < kTableHeaderSize || h->slots_offset % 8 != 0 ||
      slot_count == 0 || slot_count > size / 8 ||
      h->slots_offset + slot_count * 8 > h->heap_offset || h->heap_offset % 8 != 0 ||
      h->heap_offset + kHeapReserved > size) {
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
  std::uint64_t offset = (slot & kOffsetMask) << 3;
  if (offset < kHeapReserved || offset > heap_size_ - sizeof(RecordHeader)) return nullptr;
  const auto* rec = reinterpret_cast<const RecordHeader*>(heap_ + offset);
  std::uint32_t k = rec->key_len;
  std::uint32_t v = rec->value_len;
  if (k > kMaxKeySize || v > kMaxValueSize) return nullptr;
  if (offset + sizeof(RecordHeader) + k + v > heap_size_) return nullptr;
  *key_len = k;
  *value_len = v;
  return rec;
}

ReadResult TableView::Find(std::string_view key, RecordRef* record) const {
  std::uint64_t moved = header_->moved_to.load(std::memory_order_acquire);
  if (moved != 0) return moved == kMovedDropped ? ReadResult::kDropped : ReadResult::kMoved;
  std::uint64_t hash = HashKey(key);
  std::uint64_t tag = Tag(hash);
  std::uint64_t index = HomeSlot(hash, slot_count_);
  for (std::uint64_t probes = 0; probes < slot_count_; ++probes) {
    std::uint64_t word = slots_[index].load(std::memory_order_acquire);
    if (word == kSlotEmpty) return ReadResult::kNotFound;
    if (IsLive(word) && (word >> 48) == tag) {
      std::uint32_t key_len, value_len;
      const RecordHeader* rec = Record(word, &key_len, &value_len);
      if (rec == nullptr) return ReadResult::kCorrupt;
      const char* rec_key = reinterpret_cast<const char*>(rec + 1);
      if (key_len == key.size() && std::memcmp(rec_key, key.data(), key_len) == 0) {
        record->key = std::string_view(rec_key, key_len);
        record->value = std::string_view(rec_key + key_len, value_len);
        record->version = rec->version;
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

ReadResult TableView::SlotAt(std::uint64_t index, RecordRef* record) const {
  if (index >= slot_count_) return ReadResult::kNotFound;
  std::uint64_t word = slots_[index].load(std::memory_order_acquire);
  if (!IsLive(word)) return ReadResult::kNotFound;
  std::uint32_t key_len, value_len;
  const RecordHeader* rec = Record(word, &key_len, &value_len);
  if (rec == nullptr) return ReadResult::kCorrupt;
  const char* rec_key = reinterpret_cast<const char*>(rec + 1);
  record->key = std::string_view(rec_key, key_len);
  record->value = std::string_view(rec_key + key_len, value_len);
  record->version = rec->version;
  return ReadResult::kFound;
}

TableStats TableView::Stats() const {
  TableStats s;
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::uint32_t seq;
    if (!ReadBegin(header_->stats_seq, &seq)) continue;
    s.key_count = header_->key_count.load(std::memory_order_relaxed);
    s.tombstones = header_->tombstones.load(std::memory_order_relaxed);
    s.live_bytes = header_->live_bytes.load(std::memory_order_relaxed);
    s.writes_applied = header_->writes_applied.load(std::memory_order_relaxed);
    if (ReadValid(header_->stats_seq, seq)) break;
  }
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
  heap_size = AlignUp(std::max(heap_size, kMinHeap), 8);
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
  h->heap_used.store(kHeapReserved, std::memory_order_relaxed);
  // Attach() insists on readiness; the writer attaches to its own unpublished table directly.
  h->ready.store(1, std::memory_order_relaxed);
  std::string why = w.view_.Attach(w.segment_.data(), w.segment_.size());
  h->ready.store(0, std::memory_order_relaxed);
  if (!why.empty()) {
    *error = {ShmError::kCorrupt, why};
    Segment::Remove(name);
    return {};
  }
  return w;
}

TableWriter TableWriter::Open(const std::string& name, ShmError* error) {
  TableWriter w;
  w.segment_ = Segment::OpenReadWrite(name, error);
  if (!w.segment_.valid()) return {};
  std::string why = w.view_.Attach(w.segment_.data(), w.segment_.size());
  if (!why.empty()) {
    *error = {ShmError::kCorrupt, "bucket table '" + name + "': " + why};
    return {};
  }
  TableHeader* h = w.header();
  std::uint64_t heap_used = h->heap_used.load(std::memory_order_relaxed);
  if (heap_used < kHeapReserved || heap_used > w.view_.heap_size_) {
    *error = {ShmError::kCorrupt, "bucket table '" + name + "': heap_used is out of bounds"};
    return {};
  }
  // Every slot must point below heap_used at a well-formed record (T1, T2).
  std::uint64_t live = 0, tombstones = 0, live_bytes = 0;
  for (std::uint64_t i = 0; i < w.view_.slot_count_; ++i) {
    std::uint64_t word = w.view_.slots_[i].load(std::memory_order_relaxed);
    if (word == kSlotTombstone) ++tombstones;
    if (!IsLive(word)) continue;
    std::uint32_t k, v;
    if (w.view_.Record(word, &k, &v) == nullptr || ((word & kOffsetMask) << 3) >= heap_used) {
      *error = {ShmError::kCorrupt, "bucket table '" + name + "': slot " + std::to_string(i) +
                                        " points outside the records written"};
      return {};
    }
    ++live;
    live_bytes += RecordSize(k, v);
  }
  if (live + tombstones > w.view_.slot_count_ * kMaxLoadPercent / 100 + 1) {
    *error = {ShmError::kCorrupt, "bucket table '" + name + "': more slots used than allowed"};
    return {};
  }
  // T5: a crash between a slot store and the stats update leaves stats_seq odd; the scan above is
  // the truth either way, so store it.
  WriteBegin(h->stats_seq);
  h->key_count.store(live, std::memory_order_relaxed);
  h->tombstones.store(tombstones, std::memory_order_relaxed);
  h->live_bytes.store(live_bytes, std::memory_order_relaxed);
  WriteEnd(h->stats_seq);
  ShmError reserve = w.segment_.Reserve(h->heap_offset + heap_used + ReserveChunk(heap_used));
  if (reserve) {
    *error = reserve;
    return {};
  }
  return w;
}

TableWriter TableWriter::BuildNext(const std::string& name, std::uint64_t extra_bytes, bool empty,
                                   std::uint64_t max_segment_size, ShmError* error) const {
  TableStats stats = view_.Stats();
  std::uint64_t keys = empty ? 0 : stats.key_count;
  std::uint64_t live = empty ? 0 : stats.live_bytes;
  std::uint64_t need_heap = kHeapReserved + live + extra_bytes;
  std::uint64_t heap = std::max(2 * need_heap, kMinHeap);
  std::uint64_t slots = std::max((keys + 1) * 100 / kMaxLoadPercent * 2, kMinSlots);
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
  if (ShmError e = next.segment_.Reserve(nh->heap_offset + need_heap + ReserveChunk(need_heap))) {
    *error = e;
    Segment::Remove(name);
    return {};
  }
  if (!empty) {
    for (std::uint64_t i = 0; i < view_.slot_count_; ++i) {
      std::uint64_t word = view_.slots_[i].load(std::memory_order_relaxed);
      if (!IsLive(word)) continue;
      std::uint32_t k, v;
      const RecordHeader* rec = view_.Record(word, &k, &v);
      if (rec == nullptr) continue;  // Open() validated every slot; unreachable in practice
      std::string_view key(reinterpret_cast<const char*>(rec + 1), k);
      std::uint64_t hash = HashKey(key);
      bool found;
      std::uint64_t at = next.Find(key, hash, &found);
      std::uint64_t new_word =
          next.Append(hash, key, std::string_view(key.data() + k, v), rec->version);
      next.slots()[at].store(new_word, std::memory_order_relaxed);
    }
  }
  nh->key_count.store(keys, std::memory_order_relaxed);
  nh->live_bytes.store(live, std::memory_order_relaxed);
  return next;
}

void TableWriter::Publish() { header()->ready.store(1, std::memory_order_release); }

void TableWriter::MarkMoved(std::uint64_t next) {
  header()->moved_to.store(next, std::memory_order_release);
}

std::uint64_t TableWriter::Find(std::string_view key, std::uint64_t hash, bool* found) const {
  std::uint64_t tag = Tag(hash);
  std::uint64_t index = HomeSlot(hash, view_.slot_count_);
  std::uint64_t first_tombstone = ~std::uint64_t{0};
  for (std::uint64_t probes = 0; probes < view_.slot_count_; ++probes) {
    std::uint64_t word = view_.slots_[index].load(std::memory_order_relaxed);
    if (word == kSlotEmpty) break;
    if (word == kSlotTombstone) {
      if (first_tombstone == ~std::uint64_t{0}) first_tombstone = index;
    } else if ((word >> 48) == tag) {
      std::uint32_t k, v;
      const RecordHeader* rec = view_.Record(word, &k, &v);
      if (rec != nullptr && k == key.size() && std::memcmp(rec + 1, key.data(), key.size()) == 0) {
        *found = true;
        return index;
      }
    }
    if (++index == view_.slot_count_) index = 0;
  }
  *found = false;
  return first_tombstone != ~std::uint64_t{0} ? first_tombstone : index;
}

std::uint64_t TableWriter::Append(std::uint64_t hash, std::string_view key, std::string_view value,
                                  std::uint64_t version) {
  last_error_ = {};
  TableHeader* h = header();
  std::uint64_t used = h->heap_used.load(std::memory_order_relaxed);
  std::uint64_t size = RecordSize(key.size(), value.size());
  if (size > view_.heap_size_ - used) return 0;
  last_error_ = segment_.Reserve(h->heap_offset + used + size + ReserveChunk(used));
  if (last_error_) return 0;
  char* at = const_cast<char*>(view_.heap_) + used;
  RecordHeader rec{static_cast<std::uint32_t>(key.size()), static_cast<std::uint32_t>(value.size()),
                   version};
  std::memcpy(at, &rec, sizeof rec);
  std::memcpy(at + sizeof rec, key.data(), key.size());
  if (!value.empty()) std::memcpy(at + sizeof rec + key.size(), value.data(), value.size());
  h->heap_used.store(used + size, std::memory_order_release);  // T1: before any slot points here
  return SlotWord(hash, used);
}

WriteResult TableWriter::Put(std::string_view key, std::string_view value, std::uint64_t* version) {
  TableHeader* h = header();
  std::uint64_t hash = HashKey(key);
  bool found;
  std::uint64_t at = Find(key, hash, &found);
  std::uint64_t used_slots =
      h->key_count.load(std::memory_order_relaxed) + h->tombstones.load(std::memory_order_relaxed);
  bool reuses_tombstone = !found && slots()[at].load(std::memory_order_relaxed) == kSlotTombstone;
  if (!found && !reuses_tombstone && (used_slots + 1) * 100 > view_.slot_count_ * kMaxLoadPercent) {
    return WriteResult::kNeedsGrowth;  // T3
  }
  std::uint64_t new_version = h->last_version.load(std::memory_order_relaxed) + 1;
  std::uint64_t word = Append(hash, key, value, new_version);
  if (word == 0) return WriteResult::kNeedsGrowth;
  h->last_version.store(new_version, std::memory_order_relaxed);

  std::uint32_t old_k = 0, old_v = 0;
  if (found) view_.Record(slots()[at].load(std::memory_order_relaxed), &old_k, &old_v);
  WriteBegin(h->stats_seq);
  slots()[at].store(word, std::memory_order_release);
  if (found) {
    h->live_bytes.fetch_sub(RecordSize(old_k, old_v), std::memory_order_relaxed);
  } else {
    h->key_count.fetch_add(1, std::memory_order_relaxed);
    if (reuses_tombstone) h->tombstones.fetch_sub(1, std::memory_order_relaxed);
  }
  h->live_bytes.fetch_add(RecordSize(key.size(), value.size()), std::memory_order_relaxed);
  h->writes_applied.fetch_add(1, std::memory_order_relaxed);
  WriteEnd(h->stats_seq);
  if (version != nullptr) *version = new_version;
  return WriteResult::kOk;
}

WriteResult TableWriter::Cas(std::string_view key, std::uint64_t expected_version,
                             std::string_view value, std::uint64_t* version) {
  std::string current;
  std::uint64_t current_version = 0;
  ReadResult r = view_.Get(key, &current, &current_version);
  // Version 0 means "the key must not exist".
  bool matches =
      (r == ReadResult::kFound) ? current_version == expected_version : expected_version == 0;
  if (!matches) {
    if (version != nullptr) *version = (r == ReadResult::kFound) ? current_version : 0;
    return WriteResult::kVersionMismatch;
  }
  return Put(key, value, version);
}

WriteResult TableWriter::Delete(std::string_view key, std::string* old_value) {
  TableHeader* h = header();
  std::uint64_t hash = HashKey(key);
  bool found;
  std::uint64_t at = Find(key, hash, &found);
  if (!found) return WriteResult::kNotFound;
  std::uint32_t k = 0, v = 0;
  const RecordHeader* rec = view_.Record(slots()[at].load(std::memory_order_relaxed), &k, &v);
  if (old_value != nullptr && rec != nullptr) {
    old_value->assign(reinterpret_cast<const char*>(rec + 1) + k, v);
  }
  WriteBegin(h->stats_seq);
  slots()[at].store(kSlotTombstone, std::memory_order_release);
  h->key_count.fetch_sub(1, std::memory_order_relaxed);
  h->tombstones.fetch_add(1, std::memory_order_relaxed);
  h->live_bytes.fetch_sub(RecordSize(k, v), std::memory_order_relaxed);
  h->writes_applied.fetch_add(1, std::memory_order_relaxed);
  h->last_version.fetch_add(1, std::memory_order_relaxed);
  WriteEnd(h->stats_seq);
  return WriteResult::kOk;
}

}  // namespace kv::shm
