#include "shm/crc32c.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace kv::shm {
namespace {

std::uint32_t Crc32c(std::uint32_t (*extend)(std::uint32_t, const void*, std::size_t),
                     const std::string& bytes) {
  return Crc32cFinish(extend(kCrc32cInit, bytes.data(), bytes.size()));
}

TEST(Crc32cTest, StandardCheckValue) {
  EXPECT_EQ(Crc32c(Crc32cExtendSoftware, "123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(Crc32cExtend, "123456789"), 0xE3069283u);
  if (Crc32cHardwareAvailable()) {
    EXPECT_EQ(Crc32c(Crc32cExtendHardware, "123456789"), 0xE3069283u);
  }
}

// Writers and readers may run on CPUs with and without the instruction: both implementations must
// agree on every length and alignment, also when a checksum is extended piece by piece.
TEST(Crc32cTest, HardwareAndSoftwareAgreeOnEveryLengthAndSplit) {
  if (!Crc32cHardwareAvailable()) GTEST_SKIP() << "this CPU has no SSE4.2 crc32 instruction";
  std::mt19937_64 rng(7);
  std::string buffer(600, '\0');
  for (char& c : buffer) c = static_cast<char>(rng());
  for (std::size_t offset = 0; offset < 8; ++offset) {
    for (std::size_t size = 0; size + offset <= 300; ++size) {
      std::string bytes = buffer.substr(offset, size);
      ASSERT_EQ(Crc32c(Crc32cExtendHardware, bytes), Crc32c(Crc32cExtendSoftware, bytes))
          << "offset " << offset << " size " << size;
      std::size_t split = size / 3;
      std::uint32_t hw = Crc32cExtendHardware(kCrc32cInit, bytes.data(), split);
      std::uint32_t sw = Crc32cExtendSoftware(kCrc32cInit, bytes.data(), split);
      ASSERT_EQ(hw, sw);
      hw = Crc32cExtendHardware(hw, bytes.data() + split, size - split);
      sw = Crc32cExtendSoftware(sw, bytes.data() + split, size - split);
      ASSERT_EQ(hw, sw) << "offset " << offset << " size " << size << " split " << split;
    }
  }
}

TEST(Crc32cTest, EverySingleByteChangeChangesTheChecksum) {
  std::string bytes(96, 'k');
  std::uint32_t original = Crc32c(Crc32cExtend, bytes);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    for (int flip = 1; flip < 256; ++flip) {
      std::string damaged = bytes;
      damaged[i] = static_cast<char>(damaged[i] ^ flip);
      ASSERT_NE(Crc32c(Crc32cExtend, damaged), original) << "byte " << i << " xor " << flip;
    }
  }
}

}  // namespace
}  // namespace kv::shm
