// The key hash stored (in part) in the bucket table. It must never change between builds, so it is
// XXH3-64 with seed 0 (stable output since xxhash 0.8.0), never std::hash. Inlined (header-only
// xxhash: same output as the library) because the direct-read path hashes every key it looks up.
#pragma once

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#endif
#include <xxhash.h>

#include <cstdint>
#include <string_view>

namespace kv::shm {

inline std::uint64_t HashKey(std::string_view key) { return XXH3_64bits(key.data(), key.size()); }

}  // namespace kv::shm
