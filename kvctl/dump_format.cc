#include "kvctl/dump_format.h"

#include <cstring>

#include "kv/client.h"

namespace kv::ctl {
namespace {

template <typename T>
std::string Le(T v) {
  std::string out(sizeof(T), '\0');
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    out[i] = static_cast<char>((static_cast<std::uint64_t>(v) >> (8 * i)) & 0xff);
  }
  return out;
}

template <typename T>
T FromLe(const std::string& bytes) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  }
  return static_cast<T>(v);
}

}  // namespace

Status DumpWriter::Write(std::string_view bytes) {
  crc_.process_bytes(bytes.data(), bytes.size());
  bytes_ += bytes.size();
  out_.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out_)
    return Status(Code::kFailed, "write failed after " + std::to_string(bytes_) + " bytes");
  return Status();
}

Status DumpWriter::Begin(const DumpHeader& header) {
  if (header.version < kDumpOldestVersion || header.version > kDumpVersion) {
    return Status(Code::kInvalidArgument,
                  "no dump format version " + std::to_string(header.version));
  }
  version_ = header.version;
  std::string h(kDumpMagic, sizeof kDumpMagic);
  h += Le<std::uint32_t>(header.version);
  h += Le<std::uint32_t>(0);
  h += Le<std::uint64_t>(header.created_unix_ms);
  h += Le<std::uint16_t>(static_cast<std::uint16_t>(header.bucket.size()));
  h += header.bucket;
  return Write(h);
}

Status DumpWriter::Add(std::string_view key, std::string_view value,
                       std::uint64_t expires_unix_ms) {
  if (version_ < 2 && expires_unix_ms != 0) {
    return Status(Code::kInvalidArgument, "a version 1 dump holds no expiry times");
  }
  std::string r(1, static_cast<char>(kDumpRecordTag));
  r += Le<std::uint32_t>(static_cast<std::uint32_t>(key.size()));
  r += Le<std::uint32_t>(static_cast<std::uint32_t>(value.size()));
  if (version_ >= 2) r += Le<std::uint64_t>(expires_unix_ms);
  if (Status s = Write(r); !s.ok()) return s;
  if (Status s = Write(key); !s.ok()) return s;
  ++count_;
  return Write(value);
}

Status DumpWriter::Finish() {
  std::string e(1, static_cast<char>(kDumpEndTag));
  e += Le<std::uint64_t>(count_);
  if (Status s = Write(e); !s.ok()) return s;
  std::string crc = Le<std::uint32_t>(crc_.checksum());
  out_.write(crc.data(), static_cast<std::streamsize>(crc.size()));
  out_.flush();
  bytes_ += crc.size();
  if (!out_) return Status(Code::kFailed, "write failed at the end of the dump");
  return Status();
}

bool DumpReader::Read(std::size_t n, std::string* into) {
  into->resize(n);
  if (n == 0) return true;
  in_.read(into->data(), static_cast<std::streamsize>(n));
  if (static_cast<std::size_t>(in_.gcount()) != n) return false;
  crc_.process_bytes(into->data(), n);
  offset_ += n;
  return true;
}

Status DumpReader::Corrupt(const std::string& what) const {
  return Status(Code::kCorrupt,
                "not a valid kv dump: " + what + " at byte " + std::to_string(offset_));
}

Status DumpReader::ReadHeader(DumpHeader* header) {
  std::string b;
  if (!Read(8, &b) || std::memcmp(b.data(), kDumpMagic, 8) != 0) return Corrupt("bad magic");
  if (!Read(4, &b)) return Corrupt("truncated header");
  header->version = FromLe<std::uint32_t>(b);
  if (header->version < kDumpOldestVersion || header->version > kDumpVersion) {
    return Corrupt("unsupported format version " + std::to_string(header->version) +
                   " (this kvctl reads versions " + std::to_string(kDumpOldestVersion) + " to " +
                   std::to_string(kDumpVersion) + ")");
  }
  version_ = header->version;
  if (!Read(4, &b)) return Corrupt("truncated header");
  if (FromLe<std::uint32_t>(b) != 0) return Corrupt("unknown flags");
  if (!Read(8, &b)) return Corrupt("truncated header");
  header->created_unix_ms = FromLe<std::uint64_t>(b);
  if (!Read(2, &b)) return Corrupt("truncated header");
  auto name_len = FromLe<std::uint16_t>(b);
  if (name_len == 0 || name_len > kMaxBucketNameSize) return Corrupt("bad bucket name length");
  if (!Read(name_len, &header->bucket)) return Corrupt("truncated header");
  return Status();
}

Status DumpReader::Next(DumpRecord* record, bool* end) {
  *end = false;
  std::string b;
  if (!Read(1, &b)) return Corrupt("truncated (no end record)");
  auto tag = static_cast<std::uint8_t>(b[0]);
  if (tag == kDumpEndTag) {
    if (!Read(8, &b)) return Corrupt("truncated end record");
    if (FromLe<std::uint64_t>(b) != count_) return Corrupt("record count mismatch");
    std::uint32_t expected = crc_.checksum();
    if (!Read(4, &b)) return Corrupt("truncated checksum");
    if (FromLe<std::uint32_t>(b) != expected) return Corrupt("checksum mismatch");
    if (in_.peek() != std::char_traits<char>::eof()) return Corrupt("trailing bytes");
    *end = true;
    return Status();
  }
  if (tag != kDumpRecordTag) return Corrupt("unknown record tag " + std::to_string(tag));
  if (!Read(8, &b)) return Corrupt("truncated record");
  std::uint32_t key_len = FromLe<std::uint32_t>(b.substr(0, 4));
  std::uint32_t value_len = FromLe<std::uint32_t>(b.substr(4, 4));
  if (key_len == 0 || key_len > kMaxKeySize) return Corrupt("bad key length");
  if (value_len > kMaxValueSize) return Corrupt("bad value length");
  record->expires_unix_ms = 0;
  if (version_ >= 2) {
    if (!Read(8, &b)) return Corrupt("truncated record");
    record->expires_unix_ms = FromLe<std::uint64_t>(b);
  }
  if (!Read(key_len, &record->key) || !Read(value_len, &record->value)) {
    return Corrupt("truncated record");
  }
  ++count_;
  return Status();
}

Status VerifyDump(std::istream& in, DumpHeader* header, std::uint64_t* count) {
  DumpReader reader(in);
  if (Status s = reader.ReadHeader(header); !s.ok()) return s;
  DumpRecord record;
  for (bool end = false; !end;) {
    if (Status s = reader.Next(&record, &end); !s.ok()) return s;
  }
  *count = reader.count();
  return Status();
}

}  // namespace kv::ctl
