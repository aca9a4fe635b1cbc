#include "shm/change_feed.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "shm/channel.h"

namespace kv::shm {
namespace {

constexpr int kMaxReadAttempts = 64;
constexpr std::uint64_t kSlotChunk = 512;        // slots reserved at a time (16 KiB)
constexpr std::uint64_t kDataChunk = 64 * 1024;  // data bytes reserved at a time

bool IsPowerOfTwo(std::uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

std::uint64_t AlignUp(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

}  // namespace

FeedWriter FeedWriter::OpenOrCreate(const std::string& name, std::uint64_t bucket_id,
                                    std::uint64_t slot_count, std::uint64_t data_capacity,
                                    mode_t mode, bool* unclean, ShmError* error) {
  FeedWriter w;
  *unclean = false;
  w.segment_ = Segment::OpenReadWrite(name, error);
  if (w.segment_.valid()) {
    FeedReader check;
    std::string why = check.Attach(w.segment_.data(), w.segment_.size());
    const auto* h = reinterpret_cast<const FeedHeader*>(w.segment_.data());
    if (!why.empty() || h->bucket_id != bucket_id) {
      *error = {ShmError::kCorrupt,
                "change feed '" + name + "': " + (why.empty() ? "belongs to another bucket" : why)};
      return {};
    }
  } else {
    if (error->kind != ShmError::kNotFound) return {};
    *error = {};
    if (!IsPowerOfTwo(slot_count) || !IsPowerOfTwo(data_capacity)) {
      *error = {ShmError::kOther, "change feed sizes must be powers of two"};
      return {};
    }
    std::uint64_t slots_offset = AlignUp(sizeof(FeedHeader), kCacheLine);
    std::uint64_t data_offset = AlignUp(slots_offset + slot_count * sizeof(FeedSlot), kCacheLine);
    std::uint64_t size = data_offset + data_capacity;
    w.segment_ = Segment::Create(name, size, sizeof(FeedHeader), mode, error);  // F5
    if (!w.segment_.valid()) return {};
    auto* h = new (w.segment_.data()) FeedHeader();
    h->format_version = kFormatVersion;
    h->layout_word = kFeedLayout;
    h->bucket_id = bucket_id;
    h->slot_count = slot_count;
    h->data_capacity = data_capacity;
    h->slots_offset = slots_offset;
    h->data_offset = data_offset;
    h->next_seq.store(1, std::memory_order_relaxed);
    h->clean.store(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    h->magic = kFeedMagic;  // last: a feed without magic is refused by readers
  }
  w.header_ = reinterpret_cast<FeedHeader*>(w.segment_.data());
  w.slots_ = reinterpret_cast<FeedSlot*>(w.segment_.data() + w.header_->slots_offset);
  w.data_ = w.segment_.data() + w.header_->data_offset;
  w.next_seq_ = w.header_->next_seq.load(std::memory_order_relaxed);
  // New data goes after every published record's: data_head is stored per batch (Publish), so
  // a worker killed in a batch left records past it; the last one ends past all others
  // (positions only grow). Positions below data_floor + capacity are never reused.
  w.data_head_ = std::max(w.header_->data_head.load(std::memory_order_relaxed),
                          w.header_->data_floor.load(std::memory_order_relaxed));
  if (w.next_seq_ > 1) {
    std::uint64_t last = w.next_seq_ - 1;
    std::uint64_t index = last & (w.header_->slot_count - 1);
    const std::uint64_t slots_ready =
        std::min(w.header_->slots_ready.load(std::memory_order_relaxed), w.header_->slot_count);
    if (index < slots_ready && w.slots_[index].seq.load(std::memory_order_relaxed) == last) {
      const FeedSlot& slot = w.slots_[index];
      w.data_head_ = std::max(w.data_head_, slot.data_pos.load(std::memory_order_relaxed) +
                                                slot.key_len.load(std::memory_order_relaxed) +
                                                slot.value_len.load(std::memory_order_relaxed));
    }
  }
  w.slots_ready_ =
      std::min(w.header_->slots_ready.load(std::memory_order_relaxed), w.header_->slot_count);
  w.data_ready_ =
      std::min(w.header_->data_ready.load(std::memory_order_relaxed), w.header_->data_capacity);
  w.data_floor_ = w.header_->data_floor.load(std::memory_order_relaxed);
  *unclean = w.header_->clean.load(std::memory_order_relaxed) == 0;
  w.header_->clean.store(0, std::memory_order_relaxed);
  return w;
}

bool FeedWriter::ReserveSlot(std::uint64_t index) {
  if (index < slots_ready_) return true;
  std::uint64_t upto = std::min(AlignUp(index + 1, kSlotChunk), header_->slot_count);
  std::uint64_t from = header_->slots_offset + slots_ready_ * sizeof(FeedSlot);
  std::uint64_t to = header_->slots_offset + upto * sizeof(FeedSlot);
  if (segment_.ReserveRange(from, to - from)) return false;
  slots_ready_ = upto;
  header_->slots_ready.store(upto, std::memory_order_release);  // F5
  return true;
}

bool FeedWriter::ReserveData(std::uint64_t end) {
  if (end <= data_ready_) return true;
  std::uint64_t upto = std::min(AlignUp(end, kDataChunk), header_->data_capacity);
  if (segment_.ReserveRange(header_->data_offset + data_ready_, upto - data_ready_)) return false;
  data_ready_ = upto;
  header_->data_ready.store(upto, std::memory_order_release);  // F5
  return true;
}

void FeedWriter::Append(FeedOp op, std::string_view key, std::string_view value) {
  const std::uint64_t index = next_seq_ & (header_->slot_count - 1);
  if (!ReserveSlot(index)) {  // F5: the slot stays unreserved; readers count the change missed
    ++next_seq_;
    header_->data_head.store(data_head_, std::memory_order_relaxed);  // no slot tells it
    if (!grouping_) header_->next_seq.store(next_seq_, std::memory_order_release);  // F1
    dirty_ = true;
    return;
  }
  std::uint32_t flags = 0;
  if (value.size() > kMaxFeedValue) {
    value = {};
    flags |= kFeedValueOmitted;
  }
  const std::uint64_t cap = header_->data_capacity;
  std::uint64_t len = std::min<std::uint64_t>(key.size() + value.size(), cap);
  std::uint64_t pos = data_head_;
  if ((pos % cap) + len > cap) pos = AlignUp(pos, cap);  // F: data never wraps
  if (!ReserveData((pos % cap) + len)) {                 // F5: numbered, but marked lost
    flags = kFeedLost;
    len = 0;
    key = {};
    value = {};
    pos = data_head_;
  }
  if (pos + len > cap && pos + len - cap > data_floor_) {
    // F2, a chunk at a time: raising the floor past what this record needs only counts a few
    // records near the ring's tail as overwritten early, and the line it shares with the
    // readers' per-record checks changes once per chunk instead of once per record.
    data_floor_ = pos + len - cap + std::max<std::uint64_t>(cap / kFloorChunks, 1);
    header_->data_floor.store(data_floor_, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
  }
  char* at = data_ + (pos % cap);
  if (len > 0) {
    std::memcpy(at, key.data(), std::min<std::uint64_t>(key.size(), len));
    if (!value.empty()) std::memcpy(at + key.size(), value.data(), len - key.size());
  }
  data_head_ = pos + len;

  FeedSlot& slot = slots_[index];
  slot.seq.store(0, std::memory_order_relaxed);  // F3
  std::atomic_thread_fence(std::memory_order_release);
  slot.data_pos.store(pos, std::memory_order_relaxed);
  slot.op.store(static_cast<std::uint32_t>(op), std::memory_order_relaxed);
  slot.flags.store(flags, std::memory_order_relaxed);
  slot.key_len.store(static_cast<std::uint32_t>(key.size()), std::memory_order_relaxed);
  slot.value_len.store(static_cast<std::uint32_t>(value.size()), std::memory_order_relaxed);
  slot.seq.store(next_seq_, std::memory_order_release);
  ++next_seq_;
  if (!grouping_) header_->next_seq.store(next_seq_, std::memory_order_release);  // F1
  dirty_ = true;
}

void FeedWriter::EndGroup() {
  grouping_ = false;
  header_->next_seq.store(next_seq_, std::memory_order_release);  // F1
}

void FeedWriter::Publish(bool wake_sleepers) {
  if (!dirty_) return;
  dirty_ = false;
  header_->data_head.store(data_head_, std::memory_order_relaxed);
  header_->wake.fetch_add(1, std::memory_order_release);
  if (wake_sleepers) FutexWakeAll(&header_->wake);
}

void FeedWriter::WakeAll() {
  Publish(false);
  header_->wake.fetch_add(1, std::memory_order_release);
  FutexWakeAll(&header_->wake);
}

void FeedWriter::Close() {
  WakeAll();
  header_->clean.store(1, std::memory_order_release);
}

void FeedReader::Populate(const char* from, const char* to) {
  // The pages of [from, to) are reserved (F5): mapping them in one call instead of a page fault
  // each (a subscriber reads the whole ring) is most of what reading a fast feed costs. Failure
  // (a kernel without MADV_POPULATE_READ) only leaves them to be faulted in.
  auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  auto begin = reinterpret_cast<std::uintptr_t>(from) & ~(page - 1);
  auto end = reinterpret_cast<std::uintptr_t>(to);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_READ);
}

std::string FeedReader::Attach(const char* base, std::size_t size) {
  if (size < sizeof(FeedHeader)) return "segment is smaller than a feed header";
  const auto* h = reinterpret_cast<const FeedHeader*>(base);
  if (h->magic != kFeedMagic) return "not a kv change feed (bad magic)";
  if (h->format_version != kFormatVersion || h->layout_word != kFeedLayout) {
    return "change feed format or layout does not match this build";
  }
  if (!IsPowerOfTwo(h->slot_count) || !IsPowerOfTwo(h->data_capacity) ||
      h->slots_offset < sizeof(FeedHeader) ||
      h->slots_offset + h->slot_count * sizeof(FeedSlot) > h->data_offset ||
      h->data_offset + h->data_capacity > size) {
    return "change feed geometry is inconsistent with its segment";
  }
  header_ = h;
  slots_ = reinterpret_cast<const FeedSlot*>(base + h->slots_offset);
  data_ = base + h->data_offset;
  slot_count_ = h->slot_count;
  data_capacity_ = h->data_capacity;
  return {};
}

FeedRead FeedReader::Read(std::uint64_t* seq, FeedRecord* record, std::uint64_t* missed) const {
  for (int attempt = 0; attempt < kMaxReadAttempts; ++attempt) {
    if (*seq == 0) *seq = 1;
    // A stale head only makes `oldest` too small; the slot's stamp then reports the overwrite.
    std::uint64_t head = known_head_;
    if (*seq >= head) return FeedRead::kEmpty;
    std::uint64_t oldest = head > slot_count_ ? head - slot_count_ : 1;
    if (*seq < oldest) {
      *missed = oldest - *seq;
      *seq = oldest;
      return FeedRead::kMissed;
    }
    const std::uint64_t index = *seq & (slot_count_ - 1);
    if (index >= known_slots_ready_) {
      std::uint64_t ready =
          std::min(header_->slots_ready.load(std::memory_order_acquire), slot_count_);
      Populate(reinterpret_cast<const char*>(slots_ + known_slots_ready_),
               reinterpret_cast<const char*>(slots_ + ready));
      known_slots_ready_ = ready;
    }
    if (index >= known_slots_ready_) {
      *missed = 1;  // F5: the writer had no memory for this change's slot
      ++*seq;
      return FeedRead::kMissed;
    }
    const FeedSlot& slot = slots_[index];
    std::uint64_t stamp = slot.seq.load(std::memory_order_acquire);
    if (stamp != *seq) {
      // Overwritten by a newer record the writer has not published yet (or is writing now):
      // every sequence up to stamp - slot_count is gone as well, since slots are filled in order.
      std::uint64_t first_kept = stamp > *seq ? stamp - slot_count_ + 1 : *seq + 1;
      *missed = first_kept - *seq;
      *seq = first_kept;
      return FeedRead::kMissed;
    }
    std::uint64_t pos = slot.data_pos.load(std::memory_order_relaxed);
    auto op = slot.op.load(std::memory_order_relaxed);
    std::uint32_t flags = slot.flags.load(std::memory_order_relaxed);
    std::uint64_t key_len = slot.key_len.load(std::memory_order_relaxed);
    std::uint64_t value_len = slot.value_len.load(std::memory_order_relaxed);
    const std::uint64_t end = (pos % data_capacity_) + key_len + value_len;
    if (end > known_data_ready_ && end <= data_capacity_) {
      std::uint64_t ready =
          std::min(header_->data_ready.load(std::memory_order_acquire), data_capacity_);
      Populate(data_ + known_data_ready_, data_ + ready);
      known_data_ready_ = ready;
    }
    if (key_len > kMaxKeySize || value_len > kMaxFeedValue || end > data_capacity_ ||
        end > known_data_ready_ || op < 1 || op > 5) {
      if (slot.seq.load(std::memory_order_acquire) != *seq) continue;
      return FeedRead::kCorrupt;
    }
    const char* at = data_ + (pos % data_capacity_);
    record->key.resize(key_len);
    record->value.resize(value_len);
    std::memcpy(record->key.data(), at, key_len);
    std::memcpy(record->value.data(), at + key_len, value_len);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (slot.seq.load(std::memory_order_relaxed) != *seq) continue;  // re-evaluated above
    if ((flags & kFeedLost) != 0 || header_->data_floor.load(std::memory_order_relaxed) > pos) {
      *missed = 1;  // its bytes were overwritten while we copied them
      ++*seq;
      return FeedRead::kMissed;
    }
    record->seq = *seq;
    record->op = static_cast<FeedOp>(op);
    record->value_omitted = (flags & kFeedValueOmitted) != 0;
    ++*seq;
    return FeedRead::kRecord;
  }
  return FeedRead::kCorrupt;
}

void FeedReader::WakeAll() const { FutexWakeAll(&header_->wake); }

void FeedReader::Wait(std::uint32_t wake_value, long timeout_ns) const {
  FutexWait(&header_->wake, wake_value, timeout_ns);
}

}  // namespace kv::shm
