#include "shm/ring.h"

#include <cstring>

namespace kv::shm {

RingWriter::RingWriter(std::atomic<std::uint64_t>* tail, const std::atomic<std::uint64_t>* head,
                       char* data, std::uint64_t capacity)
    : tail_(tail), head_(head), data_(data), capacity_(capacity) {
  local_tail_ = published_tail_ = tail->load(std::memory_order_relaxed);
  // Nothing is known free until the consumer's head is read (the first Begin reads it).
  seen_head_ = local_tail_ - capacity_;
}

char* RingWriter::Begin(std::uint32_t size, bool* broken) {
  if (size > max_payload()) return nullptr;
  std::uint64_t need = FrameBytes(size);
  std::uint64_t offset = local_tail_ & (capacity_ - 1);
  std::uint64_t to_end = capacity_ - offset;
  std::uint64_t wrap = (to_end < need) ? to_end : 0;
  if (local_tail_ + wrap + need - seen_head_ > capacity_) {
    std::uint64_t head = head_->load(std::memory_order_acquire);
    // Head ahead of tail or beyond a lap, or either index unaligned (our own tail came from
    // shared memory when the ring was attached: a peer could have set it to anything before).
    if (local_tail_ - head > capacity_ || head % 8 != 0 || local_tail_ % 8 != 0) {
      *broken = true;
      return nullptr;
    }
    seen_head_ = head;
    if (local_tail_ + wrap + need - head > capacity_) return nullptr;
  }
  if (wrap != 0) {
    std::uint32_t marker = kWrapMarker;
    std::memcpy(data_ + offset, &marker, sizeof marker);
    local_tail_ += wrap;
    offset = 0;
  }
  std::uint32_t header[2] = {size, 0};
  std::memcpy(data_ + offset, header, sizeof header);
  pending_frame_ = need;
  return data_ + offset + kFrameHeader;
}

void RingWriter::Commit() {
  local_tail_ += pending_frame_;
  pending_frame_ = 0;
}

bool RingWriter::Publish() {
  if (local_tail_ == published_tail_) return false;
  tail_->store(local_tail_, std::memory_order_release);
  published_tail_ = local_tail_;
  return true;
}

std::uint64_t RingWriter::Pending() const {
  return local_tail_ - head_->load(std::memory_order_acquire);
}

RingReader::RingReader(const std::atomic<std::uint64_t>* tail, std::atomic<std::uint64_t>* head,
                       const char* data, std::uint64_t capacity)
    : tail_(tail), head_(head), data_(data), capacity_(capacity) {
  local_head_ = next_head_ = seen_tail_ = head->load(std::memory_order_relaxed);
}

const char* RingReader::FrameAt(std::uint64_t at, std::uint64_t tail, std::uint32_t* size,
                                std::uint64_t* start, bool* broken) const {
  for (int hops = 0; hops < 2; ++hops) {
    if (tail == at) return nullptr;
    if (tail - at > capacity_ || tail % 8 != 0 || at % 8 != 0) {
      *broken = true;
      return nullptr;
    }
    std::uint64_t offset = at & (capacity_ - 1);
    std::uint32_t header[2];
    std::memcpy(header, data_ + offset, sizeof header);
    if (header[0] == kWrapMarker) {
      at += capacity_ - offset;
      continue;
    }
    std::uint64_t frame = FrameBytes(header[0]);
    if (header[0] > capacity_ / 2 || frame > capacity_ - offset || frame > tail - at) {
      *broken = true;
      return nullptr;
    }
    *size = header[0];
    *start = at;
    return data_ + offset + kFrameHeader;
  }
  *broken = true;  // two wrap markers in a row cannot happen
  return nullptr;
}

const char* RingReader::Next(std::uint32_t* size, bool* broken) {
  if (seen_tail_ == local_head_) {
    // Everything seen is consumed: look again. An impossible tail breaks the ring (and is not
    // kept).
    std::uint64_t tail = tail_->load(std::memory_order_acquire);
    if (tail - local_head_ > capacity_ || tail % 8 != 0) {
      *broken = true;
      return nullptr;
    }
    seen_tail_ = tail;
  }
  std::uint64_t start;
  const char* frame = FrameAt(local_head_, seen_tail_, size, &start, broken);
  if (frame == nullptr) return nullptr;
  local_head_ = start;  // a wrap marker before the frame is consumed with it
  next_head_ = start + FrameBytes(*size);
  return frame;
}

const char* RingReader::Peek(std::uint64_t* cursor, std::uint32_t* size) const {
  // Only within [local_head_, seen_tail_]: indices the checks in Next() already vouched for.
  if (*cursor - local_head_ > seen_tail_ - local_head_) return nullptr;
  bool broken = false;
  std::uint64_t start;
  const char* frame = FrameAt(*cursor, seen_tail_, size, &start, &broken);
  if (frame != nullptr) *cursor = start + FrameBytes(*size);
  return frame;
}

void RingReader::Pop() { local_head_ = next_head_; }

void RingReader::Release() { head_->store(local_head_, std::memory_order_release); }

}  // namespace kv::shm
