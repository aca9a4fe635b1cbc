#include "daemon/persistence/snapshot_format.h"

#include <cstring>
#include <utility>

#include "daemon/persistence/byte_codec.h"
#include "shm/crc32c.h"
#include "shm/layout.h"

namespace kv::daemon::persistence {
namespace {

constexpr std::size_t kFixedHeader = 8 + 4 + 4 + 8 * 5 + 2;  // up to the name
constexpr std::size_t kRecordHeader = 4 + 4 + 8;
constexpr std::size_t kEndSize = 4 + 8 + 4;

// How ReadSnapshotHeader and ReadSnapshot refuse a file.
std::string Corrupt(const std::string& path, std::size_t offset, const std::string& what) {
  return "snapshot " + path + " is corrupt at byte " + std::to_string(offset) + ": " + what;
}

}  // namespace

std::string EncodeSnapshotHeader(const SnapshotHeader& h) {
  std::string out(kSnapshotMagic, sizeof kSnapshotMagic);
  AppendLe<std::uint32_t>(&out, kSnapshotVersion);
  AppendLe<std::uint32_t>(&out, 0);
  AppendLe<std::uint64_t>(&out, h.bucket_id);
  AppendLe<std::uint64_t>(&out, h.created_unix_ms);
  AppendLe<std::uint64_t>(&out, h.last_version);
  AppendLe<std::uint64_t>(&out, h.next_log_seq);
  AppendLe<std::uint64_t>(&out, h.key_count);
  AppendLe<std::uint16_t>(&out, static_cast<std::uint16_t>(h.name.size()));
  out += h.name;
  AppendLe<std::uint32_t>(&out, Crc(out));
  return out;
}

void AppendSnapshotRecord(std::string* out, std::string_view key, std::string_view value,
                          std::uint64_t version, std::uint64_t expiry) {
  AppendLe<std::uint32_t>(out, static_cast<std::uint32_t>(key.size()));
  AppendLe<std::uint32_t>(
      out, static_cast<std::uint32_t>(value.size()) | (expiry != 0 ? kSnapshotExpires : 0));
  AppendLe<std::uint64_t>(out, version);
  if (expiry != 0) AppendLe<std::uint64_t>(out, expiry);
  out->append(key);
  out->append(value);
}

std::string EncodeSnapshotEnd(std::uint64_t count, std::uint32_t crc_state) {
  std::string out;
  AppendLe<std::uint32_t>(&out, 0);
  AppendLe<std::uint64_t>(&out, count);
  crc_state = shm::Crc32cExtend(crc_state, out.data(), out.size());
  AppendLe<std::uint32_t>(&out, shm::Crc32cFinish(crc_state));
  return out;
}

std::string ReadSnapshotHeader(const std::string& path, const char* data, std::size_t size,
                               SnapshotHeader* header, std::size_t* header_end) {
  if (size < sizeof kSnapshotMagic || std::memcmp(data, kSnapshotMagic, sizeof kSnapshotMagic)) {
    return "snapshot " + path + " is not a kv snapshot (bad magic)";
  }
  if (size < kFixedHeader) return Corrupt(path, size, "truncated header");
  std::uint32_t version = LoadLe<std::uint32_t>(data + 8);
  if (version < kSnapshotOldestVersion || version > kSnapshotVersion) {
    return "snapshot " + path + " has format version " + std::to_string(version) +
           "; this build reads versions " + std::to_string(kSnapshotOldestVersion) + " to " +
           std::to_string(kSnapshotVersion);
  }
  if (LoadLe<std::uint32_t>(data + 12) != 0) return Corrupt(path, 12, "unknown flags");
  SnapshotHeader h;
  h.bucket_id = LoadLe<std::uint64_t>(data + 16);
  h.created_unix_ms = LoadLe<std::uint64_t>(data + 24);
  h.last_version = LoadLe<std::uint64_t>(data + 32);
  h.next_log_seq = LoadLe<std::uint64_t>(data + 40);
  h.key_count = LoadLe<std::uint64_t>(data + 48);
  std::size_t name_len = LoadLe<std::uint16_t>(data + 56);
  std::size_t end = kFixedHeader + name_len + 4;
  if (name_len == 0 || name_len > shm::kMaxBucketNameSize || size < end) {
    return Corrupt(path, 56, "bad name length " + std::to_string(name_len));
  }
  if (LoadLe<std::uint32_t>(data + end - 4) != Crc(data, end - 4)) {
    return Corrupt(path, end - 4, "header checksum mismatch");
  }
  h.name.assign(data + kFixedHeader, name_len);
  *header = std::move(h);
  if (header_end != nullptr) *header_end = end;
  return {};
}

std::string ReadSnapshot(const std::string& path, const char* data, std::size_t size,
                         SnapshotHeader* header, const SnapshotRecordFn& each) {
  SnapshotHeader h;
  std::size_t header_end = 0;
  if (std::string e = ReadSnapshotHeader(path, data, size, &h, &header_end); !e.empty()) return e;
  // Version 2: value_len bit 31 says an expiry follows the version.
  std::uint32_t expires_flag = LoadLe<std::uint32_t>(data + 8) >= 2 ? kSnapshotExpires : 0;
  // Pass 1: structure and checksum; nothing is handed out before the whole file checks.
  std::uint32_t crc = shm::kCrc32cInit;
  std::size_t at = header_end;
  std::uint64_t count = 0;
  for (;;) {
    if (size - at < 4) return Corrupt(path, at, "truncated (no end record)");
    std::uint32_t key_len = LoadLe<std::uint32_t>(data + at);
    if (key_len == 0) break;
    if (size - at < kRecordHeader) return Corrupt(path, at, "truncated record");
    std::uint32_t value_len = LoadLe<std::uint32_t>(data + at + 4);
    std::size_t extra = (value_len & expires_flag) ? 8 : 0;
    value_len &= ~expires_flag;
    if (key_len > shm::kMaxKeySize || value_len > shm::kMaxValueSize) {
      return Corrupt(path, at, "record lengths out of range");
    }
    std::size_t record = kRecordHeader + extra + key_len + value_len;
    if (size - at < record) return Corrupt(path, at, "truncated record");
    if (extra != 0) {
      std::uint64_t expiry = LoadLe<std::uint64_t>(data + at + kRecordHeader);
      if (expiry == 0 || expiry > shm::kMaxExpiryUnixMs) {
        return Corrupt(path, at, "record expiry out of range");
      }
    }
    crc = shm::Crc32cExtend(crc, data + at, record);
    at += record;
    ++count;
  }
  if (size - at != kEndSize) return Corrupt(path, at, "truncated end record or bytes after it");
  crc = shm::Crc32cExtend(crc, data + at, 12);
  if (LoadLe<std::uint64_t>(data + at + 4) != count || count != h.key_count) {
    return Corrupt(path, at, "record count mismatch");
  }
  if (LoadLe<std::uint32_t>(data + at + 12) != shm::Crc32cFinish(crc)) {
    return Corrupt(path, at + 12, "checksum mismatch");
  }
  *header = h;
  // Pass 2: hand the records out.
  for (std::size_t p = header_end; p < at;) {
    std::uint32_t key_len = LoadLe<std::uint32_t>(data + p);
    std::uint32_t value_len = LoadLe<std::uint32_t>(data + p + 4);
    std::size_t extra = (value_len & expires_flag) ? 8 : 0;
    value_len &= ~expires_flag;
    std::uint64_t v = LoadLe<std::uint64_t>(data + p + 8);
    std::uint64_t expiry = extra != 0 ? LoadLe<std::uint64_t>(data + p + kRecordHeader) : 0;
    std::size_t fixed = kRecordHeader + extra;
    std::string_view key(data + p + fixed, key_len);
    std::string_view value(data + p + fixed + key_len, value_len);
    if (!each(key, value, v, expiry)) return "snapshot " + path + ": the bucket refused a record";
    p += fixed + key_len + value_len;
  }
  return {};
}

}  // namespace kv::daemon::persistence
