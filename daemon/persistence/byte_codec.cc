#include "daemon/persistence/byte_codec.h"

#include "shm/crc32c.h"

namespace kv::daemon::persistence {

std::uint32_t Crc(const char* data, std::size_t size) {
  return shm::Crc32cFinish(shm::Crc32cExtend(shm::kCrc32cInit, data, size));
}

std::uint32_t Crc(std::string_view bytes) { return Crc(bytes.data(), bytes.size()); }

}  // namespace kv::daemon::persistence
