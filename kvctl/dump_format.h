// The kvctl dump format: a portable, binary-safe image of one bucket (`kvctl dump` / `load`).
//
// All integers are little-endian, whatever the host. Layout (docs/kvctl.md has the same table):
//
//   header   magic      8 bytes  89 4B 56 44 55 4D 50 0A  ("\x89KVDUMP\n")
//            version    u32      2 (1 is read too: records without expires)
//            flags      u32      0 (reserved; a reader rejects unknown bits)
//            created    u64      unix time of the dump, milliseconds
//            name_len   u16      length of the bucket's name (1..64)
//            name       bytes    the bucket's name when dumped (informational)
//   record   tag        u8       0x01
//  (repeated key_len    u32      1..1024
//   per key) value_len  u32      0..16 MiB
//            expires    u64      version 2 only: the key's expiry time, Unix ms (0: none)
//            key        bytes
//            value      bytes
//   end      tag        u8       0x00
//            count      u64      number of records
//            crc32      u32      CRC-32 (ISO-HDLC, as zlib's crc32) of every byte before it
//
// The high first magic byte and the "\n" catch 7-bit and newline-translating transfers, as PNG's
// signature does. A reader checks the magic, version, every length against its limit, the count
// and the checksum, and that nothing follows the end record; any failure is kCorrupt. `kvctl
// dump` reads through a kv::Snapshot: the bucket at one moment, each key with its expiry.
#pragma once

#include <boost/crc.hpp>
#include <cstdint>
#include <istream>
#include <ostream>
#include <string>
#include <string_view>

#include "kv/status.h"

namespace kv::ctl {

inline constexpr char kDumpMagic[8] = {'\x89', 'K', 'V', 'D', 'U', 'M', 'P', '\n'};
inline constexpr std::uint32_t kDumpVersion = 2;
inline constexpr std::uint32_t kDumpOldestVersion = 1;  // still read (no expiry times)
inline constexpr std::uint8_t kDumpRecordTag = 0x01;
inline constexpr std::uint8_t kDumpEndTag = 0x00;

// The dump's checksum: CRC-32/ISO-HDLC (zlib's crc32: reflected polynomial 0xEDB88320, init and
// final xor 0xFFFFFFFF), computed by Boost.CRC over every byte written or read.
using DumpCrc = boost::crc_32_type;

struct DumpHeader {
  std::string bucket;
  std::uint64_t created_unix_ms = 0;
  // Written by DumpWriter (kDumpOldestVersion: records without expiry times), set by
  // ReadHeader.
  std::uint32_t version = kDumpVersion;
};

// One key of a dump.
struct DumpRecord {
  std::string key;
  std::string value;
  std::uint64_t expires_unix_ms = 0;  // 0: does not expire (always 0 in a version 1 dump)
};

// Writes a dump to `out`. Call Begin once, Add per key, Finish once. Any stream failure is
// kFailed. Thread safety: none.
class DumpWriter {
 public:
  explicit DumpWriter(std::ostream& out) : out_(out) {}
  Status Begin(const DumpHeader& header);
  // `expires_unix_ms`: the key's expiry time (0: none); kInvalidArgument if not 0 in a version 1
  // dump.
  Status Add(std::string_view key, std::string_view value, std::uint64_t expires_unix_ms = 0);
  Status Finish();
  std::uint64_t count() const { return count_; }
  std::uint64_t bytes() const { return bytes_; }

 private:
  Status Write(std::string_view bytes);
  std::ostream& out_;
  DumpCrc crc_;
  std::uint32_t version_ = kDumpVersion;
  std::uint64_t count_ = 0;
  std::uint64_t bytes_ = 0;
};

// Reads a dump from `in`. ReadHeader first, then Next until *end; Next verifies the end record
// (count, checksum, nothing after it). Errors: kCorrupt with the byte offset.
class DumpReader {
 public:
  explicit DumpReader(std::istream& in) : in_(in) {}
  Status ReadHeader(DumpHeader* header);
  Status Next(DumpRecord* record, bool* end);
  std::uint64_t count() const { return count_; }

 private:
  bool Read(std::size_t n, std::string* into);
  Status Corrupt(const std::string& what) const;
  std::istream& in_;
  DumpCrc crc_;
  std::uint32_t version_ = kDumpVersion;
  std::uint64_t count_ = 0;
  std::uint64_t offset_ = 0;
};

// Reads a whole dump, checking everything; *header and *count describe it.
Status VerifyDump(std::istream& in, DumpHeader* header, std::uint64_t* count);

}  // namespace kv::ctl
