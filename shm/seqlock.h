// Sequence counters for items that one writer mutates in place while other processes read them.
//
// Writer:  WriteBegin(seq); ...stores (relaxed atomics or plain)...; WriteEnd(seq);
// Reader:  uint32_t s; if (!ReadBegin(seq, &s)) retry; ...copy out...; if (!ReadValid(seq, s))
// retry;
//
// The counter is odd while a write is in progress. A writer killed mid-write leaves it odd; the
// next writer repairs the item and calls WriteEnd, which makes it even again. Readers never write
// and never wait unboundedly: ReadBegin returns false on an odd counter and the caller bounds its
// retries.
#pragma once

#include <atomic>
#include <cstdint>

namespace kv::shm {

inline void WriteBegin(std::atomic<std::uint32_t>& seq) {
  std::uint32_t s = seq.load(std::memory_order_relaxed);
  seq.store(s | 1u, std::memory_order_relaxed);  // idempotent: a counter left odd stays odd
  std::atomic_thread_fence(std::memory_order_release);
}

inline void WriteEnd(std::atomic<std::uint32_t>& seq) {
  std::uint32_t s = seq.load(std::memory_order_relaxed);
  seq.store((s | 1u) + 1u, std::memory_order_release);
}

[[nodiscard]] inline bool ReadBegin(const std::atomic<std::uint32_t>& seq, std::uint32_t* out) {
  std::uint32_t s = seq.load(std::memory_order_acquire);
  *out = s;
  return (s & 1u) == 0;
}

[[nodiscard]] inline bool ReadValid(const std::atomic<std::uint32_t>& seq, std::uint32_t begin) {
  std::atomic_thread_fence(std::memory_order_acquire);
  return seq.load(std::memory_order_relaxed) == begin;
}

// Readers copy fields protected by a seqlock with relaxed atomic loads so that the race with the
// writer is not undefined behaviour; these helpers do that for plain byte arrays.
inline void RacyCopy(void* dst, const void* src, std::size_t n) {
  auto* d = static_cast<unsigned char*>(dst);
  const auto* s = static_cast<const volatile unsigned char*>(src);
  for (std::size_t i = 0; i < n; ++i) d[i] = s[i];
}

}  // namespace kv::shm
