// The snapshot file: a point-in-time image of one bucket (docs/persistence.md has the table).
//
// All integers little-endian. CRC-32C (shm/crc32c.h) everywhere.
//
//   header   magic          8 bytes  89 4B 56 53 4E 41 50 0A  ("\x89KVSNAP\n")
//            version        u32      2 (1: no expiry times, still read; others refused)
//            flags          u32      0 (a reader refuses unknown bits)
//            bucket_id      u64
//            created        u64      unix time, milliseconds
//            last_version   u64      the bucket's version counter at the snapshot
//            next_log_seq   u64      log files with this sequence number and above follow it
//            key_count      u64
//            name_len       u16      1..64, then the bucket's name
//            header_crc     u32      CRC-32C of every header byte before it
//   record   key_len        u32      1..kMaxKeySize
//  (per key) value_len      u32      0..kMaxValueSize; bit 31 (version 2): an expiry follows
//            version        u64      the key's version
//            expiry         u64      only with value_len bit 31: the key's expiry, Unix ms
//            key, value     bytes
//   end      zero           u32      0 (a key_len no record has)
//            count          u64      records, == key_count
//            body_crc       u32      CRC-32C of every byte after the header CRC and before this
//
// The dump format of `kvctl dump` (kvctl/dump_format.h) was the model, but it has no bucket id,
// no versions and no log position, and a CRC-32 computed a byte at a time: a snapshot needs all
// three and is read at start-up, where CRC-32C's instruction is 10x faster.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace kv::daemon::persistence {

inline constexpr char kSnapshotMagic[8] = {'\x89', 'K', 'V', 'S', 'N', 'A', 'P', '\n'};
inline constexpr std::uint32_t kSnapshotVersion = 2;
inline constexpr std::uint32_t kSnapshotOldestVersion = 1;      // still read (no expiry times)
inline constexpr std::uint32_t kSnapshotExpires = 0x80000000u;  // value_len flag (version 2)

struct SnapshotHeader {
  std::uint64_t bucket_id = 0;
  std::uint64_t created_unix_ms = 0;
  std::uint64_t last_version = 0;
  std::uint64_t next_log_seq = 1;
  std::uint64_t key_count = 0;
  std::string name;
};

// Encoding, in order: header, records, end. `crc` accumulates the body CRC-32C state
// (start from shm::kCrc32cInit after the header).
std::string EncodeSnapshotHeader(const SnapshotHeader& header);
// `expiry`: the key's expiry time (Unix ms, 0: none).
void AppendSnapshotRecord(std::string* out, std::string_view key, std::string_view value,
                          std::uint64_t version, std::uint64_t expiry = 0);
// The end record; `crc_state` covers every record byte (the end's zero and count are added here).
std::string EncodeSnapshotEnd(std::uint64_t count, std::uint32_t crc_state);

// Checks and decodes the header alone (magic, version, flags, name length, header checksum):
// "" or what is wrong, as ReadSnapshot says it; *header_end (if not null): where the records start.
std::string ReadSnapshotHeader(const std::string& path, const char* data, std::size_t size,
                               SnapshotHeader* header, std::size_t* header_end = nullptr);

// Checks a whole snapshot held in [data, data+size) -- magic, version, flags, every length, the
// count and both checksums, nothing after the end -- and, only if all of it is right, calls
// `each` for every record. Returns "" or what is wrong (with the byte offset); `path` names the
// file in the message.
using SnapshotRecordFn = std::function<bool(std::string_view key, std::string_view value,
                                            std::uint64_t version, std::uint64_t expiry)>;
std::string ReadSnapshot(const std::string& path, const char* data, std::size_t size,
                         SnapshotHeader* header, const SnapshotRecordFn& each);

}  // namespace kv::daemon::persistence
