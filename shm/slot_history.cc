#include "shm/slot_history.h"

#include <algorithm>

namespace kv::shm {
namespace {

constexpr std::uint64_t kReserveEntries = 1024;  // 40 KiB of entries per posix_fallocate

bool IsPowerOfTwo(std::uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace

static_assert(kMaxBatchOps <= kHistoryEntries / 4, "H3");

HistoryWriter HistoryWriter::OpenOrCreate(const std::string& name, std::uint64_t bucket_id,
                                          mode_t mode, bool* reset, ShmError* error) {
  HistoryWriter w;
  *reset = false;
  w.segment_ = Segment::OpenReadWrite(name, error);
  if (w.segment_.valid()) {
    HistoryReader check;
    std::string why = check.Attach(w.segment_.data(), w.segment_.size());
    const auto* h = reinterpret_cast<const HistoryHeader*>(w.segment_.data());
    if (!why.empty() || h->bucket_id != bucket_id) {
      // Killed while creating it, or left by another build: history is only needed by the
      // snapshots of a running bucket and by a batch interrupted by a crash of this build.
      w.segment_ = Segment();
      Segment::Remove(name);
    }
  } else if (error->kind != ShmError::kNotFound && error->kind != ShmError::kNotReady) {
    return {};
  } else if (error->kind == ShmError::kNotReady) {
    Segment::Remove(name);
  }
  if (!w.segment_.valid()) {
    *error = {};
    *reset = true;
    std::uint64_t entries_offset = kCacheLine * 4;
    std::uint64_t size = entries_offset + kHistoryEntries * sizeof(HistoryEntry);
    w.segment_ = Segment::Create(name, size, entries_offset, mode, error);  // H4: lazily
    if (!w.segment_.valid()) return {};
    auto* h = new (w.segment_.data()) HistoryHeader();
    h->format_version = kFormatVersion;
    h->layout_word = kHistoryLayout;
    h->bucket_id = bucket_id;
    h->entry_count = kHistoryEntries;
    h->entries_offset = entries_offset;
    h->head.store(1, std::memory_order_relaxed);
    h->commit.store(0, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    h->magic = kHistoryMagic;
  }
  w.header_ = reinterpret_cast<HistoryHeader*>(w.segment_.data());
  w.entries_ = reinterpret_cast<HistoryEntry*>(w.segment_.data() + w.header_->entries_offset);
  // Entries at or past head were never published: overwritten by the next changes.
  w.next_ = w.header_->head.load(std::memory_order_relaxed);
  w.reserved_ = w.header_->reserved_entries.load(std::memory_order_relaxed);
  return w;
}

bool HistoryWriter::Prepare(std::uint64_t n) {
  std::uint64_t count = header_->entry_count;
  // Indices next_ .. next_ + n - 1 (mod count): all of [0, need) once the ring wraps.
  std::uint64_t need = std::min(next_ + n, count);
  if (reserved_ >= count || need <= reserved_) return true;
  std::uint64_t upto = std::min(count, std::max(need, reserved_ + kReserveEntries));
  if (segment_.ReserveRange(header_->entries_offset + reserved_ * sizeof(HistoryEntry),
                            (upto - reserved_) * sizeof(HistoryEntry))) {
    return false;
  }
  reserved_ = upto;
  header_->reserved_entries.store(upto, std::memory_order_relaxed);
  return true;
}

std::uint64_t HistoryWriter::Record(std::uint64_t generation, std::uint64_t index,
                                    std::uint64_t old_word, std::uint64_t new_word) {
  std::uint64_t seq = next_++;
  HistoryEntry& e = entries_[seq & (header_->entry_count - 1)];
  e.seq.store(0, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  e.generation.store(generation, std::memory_order_relaxed);
  e.index.store(index, std::memory_order_relaxed);
  e.old_word.store(old_word, std::memory_order_relaxed);
  e.new_word.store(new_word, std::memory_order_relaxed);
  e.seq.store(seq, std::memory_order_release);
  return seq;
}

std::uint64_t HistoryWriter::RollForward(
    std::uint64_t generation, const std::function<void(std::uint64_t, std::uint64_t)>& apply) {
  std::uint64_t head = header_->head.load(std::memory_order_relaxed);
  std::uint64_t commit = header_->commit.load(std::memory_order_relaxed);
  std::uint64_t done = 0;
  for (std::uint64_t seq = commit + 1; seq < head; ++seq) {
    HistoryEntry& e = entries_[seq & (header_->entry_count - 1)];
    if (e.seq.load(std::memory_order_relaxed) != seq) continue;  // H3 says unreachable
    if (e.generation.load(std::memory_order_relaxed) != generation) continue;
    apply(e.index.load(std::memory_order_relaxed), e.new_word.load(std::memory_order_relaxed));
    ++done;
  }
  next_ = head;
  if (head - 1 != commit) header_->commit.store(head - 1, std::memory_order_release);
  return done;
}

std::string HistoryReader::Attach(const char* base, std::size_t size) {
  if (size < sizeof(HistoryHeader)) return "segment is smaller than a slot history header";
  const auto* h = reinterpret_cast<const HistoryHeader*>(base);
  if (h->magic != kHistoryMagic) return "not a kv slot history (bad magic)";
  if (h->format_version != kFormatVersion || h->layout_word != kHistoryLayout) {
    return "slot history format or layout does not match this build";
  }
  if (!IsPowerOfTwo(h->entry_count) || h->entries_offset < sizeof(HistoryHeader) ||
      h->entries_offset % 8 != 0 || h->entry_count > size / sizeof(HistoryEntry) ||
      h->entries_offset + h->entry_count * sizeof(HistoryEntry) > size) {
    return "slot history geometry is inconsistent with its segment";
  }
  header_ = h;
  entries_ = reinterpret_cast<const HistoryEntry*>(base + h->entries_offset);
  mask_ = h->entry_count - 1;
  return {};
}

bool HistoryReader::Read(std::uint64_t seq, HistoryRecord* out) const {
  const HistoryEntry& e = entries_[seq & mask_];
  if (e.seq.load(std::memory_order_acquire) != seq) return false;
  out->generation = e.generation.load(std::memory_order_relaxed);
  out->index = e.index.load(std::memory_order_relaxed);
  out->old_word = e.old_word.load(std::memory_order_relaxed);
  out->new_word = e.new_word.load(std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_acquire);
  return e.seq.load(std::memory_order_relaxed) == seq;
}

}  // namespace kv::shm
