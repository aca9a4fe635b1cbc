// A single-producer / single-consumer byte ring in memory shared by two processes that do not
// trust each other (a client and a bucket worker). No locks: the producer owns `tail`, the
// consumer owns `head`; each keeps its own copy of its index and only *reads* the other's, and
// validates what it reads, so a peer that scribbles on the ring can only break its own channel.
//
// Both indices must stay multiples of 8 (so a frame header never straddles the ring's end): an
// unaligned index, including one a peer planted before the ring was attached, breaks the ring.
//
// Frames: [u32 size][u32 zero][payload, padded to 8]. A size of kWrapMarker means "continue at
// offset 0". A frame never wraps. Indices grow monotonically (u64) and are reduced modulo the
// capacity, which is a power of two.
//
// Each side re-reads the other's index only when the copy it read last does not suffice (the
// writer when the ring looks full, the reader when it has consumed everything it saw), so that
// the index's cache line moves between the processes once per batch, not once per frame.
#pragma once

#include <atomic>
#include <cstdint>

namespace kv::shm {

inline constexpr std::uint32_t kWrapMarker = 0xffffffffu;
inline constexpr std::uint32_t kFrameHeader = 8;

inline std::uint32_t FrameBytes(std::uint32_t payload) {
  return kFrameHeader + ((payload + 7u) & ~7u);
}

class RingWriter {
 public:
  RingWriter() = default;
  RingWriter(std::atomic<std::uint64_t>* tail, const std::atomic<std::uint64_t>* head, char* data,
             std::uint64_t capacity);

  // The largest payload a frame can carry.
  std::uint32_t max_payload() const {
    return static_cast<std::uint32_t>(capacity_ / 2) - kFrameHeader;
  }

  // Space for a payload of `size` bytes, or nullptr if the consumer has not freed enough yet.
  // Sets *broken if the consumer's head is impossible (the channel must then be abandoned).
  char* Begin(std::uint32_t size, bool* broken);
  // Finishes the frame begun last (not yet visible to the consumer).
  void Commit();
  // Makes every committed frame visible (release). Returns true if anything new was published.
  bool Publish();
  // Bytes committed but not yet consumed (by the consumer's last published head).
  std::uint64_t Pending() const;
  // The index just after the last committed frame.
  std::uint64_t committed() const { return local_tail_; }

 private:
  std::atomic<std::uint64_t>* tail_ = nullptr;
  const std::atomic<std::uint64_t>* head_ = nullptr;
  char* data_ = nullptr;
  std::uint64_t capacity_ = 0;
  std::uint64_t local_tail_ = 0;
  std::uint64_t published_tail_ = 0;
  std::uint64_t pending_frame_ = 0;
  std::uint64_t seen_head_ = 0;  // the consumer's head as last read (validated)
};

class RingReader {
 public:
  RingReader() = default;
  RingReader(const std::atomic<std::uint64_t>* tail, std::atomic<std::uint64_t>* head,
             const char* data, std::uint64_t capacity);

  // The next frame's payload and size, or nullptr if the ring is empty. Sets *broken if the
  // producer's tail or a frame header is impossible. The pointer is valid until Release().
  const char* Next(std::uint32_t* size, bool* broken);
  // Looking ahead without consuming (for prefetching): the frame at index *cursor, advancing
  // *cursor past it; nullptr if *cursor is not within what the last Next() saw published, or the
  // frame there is invalid (Next() reports that when it gets there). Start with
  // *cursor = after_current(). The pointer is valid until Release(); the producer may still be
  // writing a frame Peek returns only if it is hostile (as with Next).
  const char* Peek(std::uint64_t* cursor, std::uint32_t* size) const;
  // The index just after the frame the last Next() returned.
  std::uint64_t after_current() const { return next_head_; }
  // Consumes the frame returned by the last Next().
  void Pop();
  // Publishes the consumed position to the producer (release).
  void Release();
  bool Empty() const { return tail_->load(std::memory_order_acquire) == local_head_; }

 private:
  // Validates the frame at index `at` (following a wrap marker there) against a published
  // `tail`: its payload, or nullptr if the ring is empty there or (*broken) invalid. *start is
  // the frame's own index (after the wrap), *size its payload size.
  const char* FrameAt(std::uint64_t at, std::uint64_t tail, std::uint32_t* size,
                      std::uint64_t* start, bool* broken) const;

  const std::atomic<std::uint64_t>* tail_ = nullptr;
  std::atomic<std::uint64_t>* head_ = nullptr;
  const char* data_ = nullptr;
  std::uint64_t capacity_ = 0;
  std::uint64_t local_head_ = 0;
  std::uint64_t next_head_ = 0;
  std::uint64_t seen_tail_ = 0;  // the producer's tail as last read (validated)
};

}  // namespace kv::shm
