#include "shm/crc32c.h"

#include <boost/crc.hpp>
#include <cstring>

namespace kv::shm {
namespace {

// Reflected CRC-32C without initial value or final xor: the raw register the instruction updates.
using RawCrc32c = boost::crc_optimal<32, 0x1EDC6F41, 0, 0, true, true>;

#if defined(__x86_64__)
const bool kHardware = [] {
  __builtin_cpu_init();  // needed before __builtin_cpu_supports during static initialisation
  return __builtin_cpu_supports("sse4.2") != 0;
}();
#else
constexpr bool kHardware = false;
#endif

}  // namespace

bool Crc32cHardwareAvailable() { return kHardware; }

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint32_t Crc32cExtendHardware(std::uint32_t state,
                                                                     const void* data,
                                                                     std::size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint64_t crc = state;
  for (; size >= 8; size -= 8, p += 8) {
    std::uint64_t word;
    std::memcpy(&word, p, 8);
    crc = __builtin_ia32_crc32di(crc, word);
  }
  auto crc32 = static_cast<std::uint32_t>(crc);
  for (; size > 0; --size, ++p) crc32 = __builtin_ia32_crc32qi(crc32, *p);
  return crc32;
}
#else
std::uint32_t Crc32cExtendHardware(std::uint32_t, const void*, std::size_t) { __builtin_trap(); }
#endif

std::uint32_t Crc32cExtendSoftware(std::uint32_t state, const void* data, std::size_t size) {
  // Boost takes the initial remainder unreflected and returns the reflected register.
  std::uint32_t unreflected = 0;
  for (int bit = 0; bit < 32; ++bit) unreflected |= ((state >> bit) & 1u) << (31 - bit);
  RawCrc32c crc(unreflected);
  crc.process_bytes(data, size);
  return crc.checksum();
}

std::uint32_t Crc32cExtend(std::uint32_t state, const void* data, std::size_t size) {
  return kHardware ? Crc32cExtendHardware(state, data, size)
                   : Crc32cExtendSoftware(state, data, size);
}

}  // namespace kv::shm
