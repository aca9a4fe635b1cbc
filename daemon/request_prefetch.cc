#include "daemon/request_prefetch.h"

#include <cstddef>
#include <cstring>

#include "shm/hash.h"
#include "shm/layout.h"
#include "shm/message.h"

namespace kv::daemon {
namespace {

// The hash of a request frame's key, or 0 if the frame does not look like it has one.
std::uint64_t KeyHash(const char* frame, std::uint32_t size) {
  if (size < sizeof(shm::RequestHeader)) return 0;
  std::uint32_t key_len;
  std::memcpy(&key_len, frame + offsetof(shm::RequestHeader, key_len), sizeof key_len);
  if (key_len == 0 || key_len > shm::kMaxKeySize || key_len > size - sizeof(shm::RequestHeader)) {
    return 0;
  }
  return shm::HashKey({frame + sizeof(shm::RequestHeader), key_len});
}

}  // namespace

void RequestPrefetch::Start(const shm::RingReader& requests) {
  cursor_ = requests.after_current();
  current_ = 0;
  peeked_ = 0;
}

void RequestPrefetch::Advance(const shm::RingReader& requests, const shm::TableWriter& table) {
  if (peeked_ < current_) {  // fell behind (a peek failed): restart after the current frame
    cursor_ = requests.after_current();
    peeked_ = current_;
  }
  while (peeked_ < current_ + kDistance) {
    std::uint32_t size;
    const char* frame = requests.Peek(&cursor_, &size);
    if (frame == nullptr) break;
    std::uint64_t hash = KeyHash(frame, size);
    hashes_[++peeked_ % hashes_.size()] = hash;
    if (hash != 0) table.PrefetchSlot(hash);
  }
  unsigned half = current_ + kDistance / 2;
  if (half <= peeked_ && half > current_) {
    std::uint64_t hash = hashes_[half % hashes_.size()];
    if (hash != 0) table.PrefetchRecord(hash);
  }
  ++current_;
}

}  // namespace kv::daemon
