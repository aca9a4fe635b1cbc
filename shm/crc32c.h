// CRC-32C (Castagnoli, the iSCSI/ext4 checksum): the record checksum of the bucket table, verified
// by every direct read. The SSE4.2 `crc32` instruction computes it at 8 bytes per instruction; a
// table-driven version (Boost.CRC) serves CPUs without it. Both give the same value for the same
// bytes, so writers and readers may run on either.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kv::shm {

// Standard CRC-32C state: start from kCrc32cInit, Extend over the bytes in order, and finish with
// Crc32cFinish. Crc32cFinish(Crc32cExtend(kCrc32cInit, "123456789", 9)) == 0xE3069283.
inline constexpr std::uint32_t kCrc32cInit = 0xFFFFFFFFu;
inline std::uint32_t Crc32cFinish(std::uint32_t state) { return ~state; }

// Extends `state` over data[0, size). Thread-safe; uses the instruction when the CPU has it.
std::uint32_t Crc32cExtend(std::uint32_t state, const void* data, std::size_t size);

// The two implementations behind Crc32cExtend, for tests. Crc32cExtendHardware may only be called
// when Crc32cHardwareAvailable().
bool Crc32cHardwareAvailable();
std::uint32_t Crc32cExtendHardware(std::uint32_t state, const void* data, std::size_t size);
std::uint32_t Crc32cExtendSoftware(std::uint32_t state, const void* data, std::size_t size);

}  // namespace kv::shm
