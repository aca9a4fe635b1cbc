// Constants shared by every shared-memory structure of kv: magics, the format version, the layout
// word, and the size limits users see.
//
// Every segment starts with (magic, format_version, layout_word). A process that finds a different
// triple refuses the segment with a clear error instead of interpreting it: the layout word changes
// whenever a struct's size or alignment changes, so two builds with different layouts never meet.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace kv::shm {

inline constexpr std::size_t kCacheLine = 64;

// "KVREGIS1", "KVANCHR1", "KVTABLE1", "KVCHANL1" read as little-endian u64.
inline constexpr std::uint64_t kRegistryMagic = 0x3153494745525650ULL;
inline constexpr std::uint64_t kAnchorMagic = 0x315248434e414b56ULL;
inline constexpr std::uint64_t kTableMagic = 0x31454c4241544b56ULL;
inline constexpr std::uint64_t kChannelMagic = 0x314c4e4148434b56ULL;

// 2: record checks are CRC-32C (were XXH3-64). 3: the anchor carries the worker's pulse and wait
// policy. 5: a record may carry an expiry time (value_len bit 31, bucket_table.h); batches and
// snapshots: the slot-history object NS.b<id>.hist (shm/slot_history.h).
inline constexpr std::uint32_t kFormatVersion = 5;

// Limits (documented in docs/shm_format.md and kv/client.h).
inline constexpr std::size_t kMaxKeySize = 1024;
inline constexpr std::size_t kMaxValueSize = 16u << 20;  // 16 MiB
inline constexpr std::size_t kMaxBucketNameSize = 64;
inline constexpr std::size_t kMaxNamespaceSize = 32;
// Key expiry times are Unix milliseconds (RealtimeCoarseMillis, coarse_clock.h); the latest one a
// record can hold (2^46 ms after 1970: the year 4199). Requests past it are refused.
inline constexpr std::uint64_t kMaxExpiryUnixMs = std::uint64_t{1} << 46;
// Operations in one batch (shm/batch.h): far below the slot history's window (slot_history.h),
// which must hold every entry of a batch being applied.
inline constexpr std::size_t kMaxBatchOps = 4096;

// Every atomic that a read-only client loads must be a plain load: at most 8 bytes and lock-free.
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

// Builds a layout word from the sizes of the structs a segment contains.
constexpr std::uint32_t LayoutWord(std::size_t a, std::size_t b, std::size_t c = 0) {
  return static_cast<std::uint32_t>((a & 0xfff) | ((b & 0xfff) << 12) | ((c & 0xff) << 24));
}

}  // namespace kv::shm
