// Helpers for the bucket-table process tests: self-checking values and memory shared with forked
// children (which tests/testing/child_process.h starts).
//
// Values carry their own checksum: [u64 counter][u32 payload length][payload][u64 check], where
// check = XXH3(key + counter + payload). A reader can tell a torn, stale-garbage or misplaced
// value (another key's) from a good one without knowing what the writer wrote.
//
// Counts: the tests run at a CI size by default; KV_STRESS_FULL=1 selects the full counts of
// issue 3 (>= 10 million reads, >= 1,000 worker crashes). See tests/table/CMakeLists.txt.
#pragma once

#include <sys/mman.h>
#include <xxhash.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <string>
#include <string_view>

#include "tests/testing/child_process.h"

namespace kv::testing {

inline bool FullCounts() {
  const char* env = std::getenv("KV_STRESS_FULL");
  return env != nullptr && std::string(env) == "1";
}

inline std::uint64_t ValueCheck(std::string_view key, std::uint64_t counter,
                                std::string_view payload) {
  std::string buf(key);
  buf.append(reinterpret_cast<const char*>(&counter), sizeof counter);
  buf.append(payload);
  return XXH3_64bits(buf.data(), buf.size());
}

// A value for `key` carrying `counter`, with a payload of `payload_len` bytes (including \0, \xff).
inline std::string MakeValue(std::string_view key, std::uint64_t counter, std::size_t payload_len) {
  std::string payload(payload_len, '\0');
  std::mt19937_64 rng(counter * 31 + key.size());
  for (char& c : payload) c = static_cast<char>(rng() % 3 == 0 ? 0xff : rng());
  std::uint32_t len = static_cast<std::uint32_t>(payload_len);
  std::uint64_t check = ValueCheck(key, counter, payload);
  std::string v(reinterpret_cast<const char*>(&counter), sizeof counter);
  v.append(reinterpret_cast<const char*>(&len), sizeof len);
  v.append(payload);
  v.append(reinterpret_cast<const char*>(&check), sizeof check);
  return v;
}

// True if `value` is a well-formed value of `key`; its counter goes to *counter.
inline bool CheckValue(std::string_view key, std::string_view value, std::uint64_t* counter) {
  if (value.size() < 20) return false;
  std::uint32_t len;
  std::memcpy(counter, value.data(), 8);
  std::memcpy(&len, value.data() + 8, 4);
  if (value.size() != 20 + std::size_t{len}) return false;
  std::uint64_t check;
  std::memcpy(&check, value.data() + 12 + len, 8);
  return check == ValueCheck(key, *counter, value.substr(12, len));
}

// `T` placed in a MAP_SHARED anonymous mapping, visible to children forked afterwards.
template <typename T>
class SharedMemory {
 public:
  SharedMemory() {
    void* p = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) std::abort();
    value_ = new (p) T();
  }
  ~SharedMemory() {
    value_->~T();
    ::munmap(value_, sizeof(T));
  }
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  T* operator->() { return value_; }
  T& operator*() { return *value_; }

 private:
  T* value_;
};

// A short error text a child leaves for the parent (first writer wins).
struct ErrorSlot {
  std::atomic<int> taken{0};
  char text[256] = {};
  void Set(const std::string& s) {
    if (taken.exchange(1) != 0) return;
    std::strncpy(text, s.c_str(), sizeof text - 1);
  }
};

}  // namespace kv::testing
