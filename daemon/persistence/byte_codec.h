// Little-endian integers in byte buffers, for the data directory's file formats
// (docs/persistence.md): the same bytes on every host.
#pragma once

#include <boost/endian/conversion.hpp>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace kv::daemon::persistence {

template <typename T>
inline void AppendLe(std::string* out, T v) {
  v = boost::endian::native_to_little(v);
  out->append(reinterpret_cast<const char*>(&v), sizeof v);
}

template <typename T>
inline T LoadLe(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return boost::endian::little_to_native(v);
}

template <typename T>
inline void StoreLe(char* p, T v) {
  v = boost::endian::native_to_little(v);
  std::memcpy(p, &v, sizeof v);
}

// CRC-32C (shm/crc32c.h) of `bytes`, finished.
std::uint32_t Crc(std::string_view bytes);
std::uint32_t Crc(const char* data, std::size_t size);

}  // namespace kv::daemon::persistence
