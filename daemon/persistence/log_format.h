// The append-only log: every write a worker applied since the snapshot it follows, as effects
// (the key's resulting value and version), so replaying it needs no request semantics.
// docs/persistence.md has the tables; all integers little-endian, checksums CRC-32C.
//
//   file header  magic        8 bytes  89 4B 56 41 4C 4F 47 0A  ("\x89KVALOG\n")
//   (40 bytes)   version      u32      2 (1 is read too: no expiry times, no batch records)
//                flags        u32      0
//                bucket_id    u64
//                seq          u64      the file's sequence number (its name: log.<seq>)
//                reserved     u32      0
//                header_crc   u32      CRC-32C of the 36 bytes before it
//   record       body_len     u32      24 + key_len + value_len
//                body_crc     u32      CRC-32C of the body
//                reserved     u32      0
//                head_crc     u32      CRC-32C of the 12 bytes before it
//   body         op           u8       1 put, 2 delete, 3 clear, 4 batch
//                pad          3 bytes  0
//                key_len      u32      put/delete: 1..kMaxKeySize; clear: 0
//                value_len    u32      put: 0..kMaxValueSize; else 0. Bit 31 (version 2, put
//                                      only, in a batch too): an expiry follows the version
//                pad          u32      0
//                version      u64      put: the key's new version; delete/clear: the bucket's
//                                      version counter after the write
//                expiry       u64      only with value_len bit 31: the key's expiry, Unix ms
//                key, value   bytes
//
// A batch (version 2) is one record whose value is the batch's put and delete records, each
// framed as above (head and body, own checksums; a cas's put carries the expiry it kept), and
// whose key is empty; its version is the bucket's version counter after the batch. Under the
// outer checksum the batch is all-or-nothing: a torn tail that cuts it drops all of it. The
// reader returns its inner records one by one (valid_end() moves past the batch with its last
// one); a batch record that is not a sequence of valid put/delete records is corruption.
//
// A log written with appendfsync always may end with zeros (space preallocated ahead of the last
// record, daemon/persistence/log_appender.h); they are the end of the log, not a torn tail.
//
// Reading (LogReader): a record that ends past the end of the file, a record head that is
// incomplete, a last record (followed by nothing or by zeros only) whose body checksum fails, or a
// head whose checksum fails followed only by zero bytes is a torn tail (a power cut during an
// append): the file is cut there and the bytes dropped (the torn record's, not the zeros after
// it) are reported. Any other failure -- a bad file header, a bad record with bytes
// after it -- is corruption: the file is refused.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kv::daemon::persistence {

inline constexpr char kLogMagic[8] = {'\x89', 'K', 'V', 'A', 'L', 'O', 'G', '\n'};
inline constexpr std::uint32_t kLogVersion = 2;
inline constexpr std::uint32_t kLogOldestVersion = 1;      // still read (no expiry times)
inline constexpr std::uint32_t kLogExpires = 0x80000000u;  // value_len flag (version 2)
// Bytes of inner records one batch record may hold (a batch request's value is at most
// kMaxValueSize; its records add a little per operation).
inline constexpr std::uint64_t kMaxLogBatchBytes = std::uint64_t{32} << 20;
inline constexpr std::size_t kLogHeaderSize = 40;
inline constexpr std::size_t kLogRecordHead = 16;
inline constexpr std::size_t kLogBodyFixed = 24;

enum class LogOp : std::uint8_t { kPut = 1, kDelete = 2, kClear = 3, kBatch = 4 };

std::string EncodeLogHeader(std::uint64_t bucket_id, std::uint64_t seq);
// `expiry`: a put's expiry time (Unix ms, 0: none).
void AppendLogRecord(std::string* out, LogOp op, std::string_view key, std::string_view value,
                     std::uint64_t version, std::uint64_t expiry = 0);
// Appends one batch record framing `inner` (records appended with AppendLogRecord: puts and
// deletes only); `version` is the bucket's version counter after the batch.
void AppendLogBatch(std::string* out, std::string_view inner, std::uint64_t version);

struct LogRecord {
  LogOp op = LogOp::kPut;
  std::string_view key;
  std::string_view value;
  std::uint64_t version = 0;
  std::uint64_t expiry = 0;  // put: the key's expiry (Unix ms, 0: none)
};

// Iterates the records of one log file held in memory.
class LogReader {
 public:
  enum Result { kRecord, kEnd, kCorrupt };
  // Checks the file header; "" or what is wrong (naming `path`).
  std::string Open(const std::string& path, const char* data, std::size_t size,
                   std::uint64_t bucket_id, std::uint64_t seq);
  // kRecord: *record is the next one. kEnd: no more (see torn_bytes()). kCorrupt: error().
  Result Next(LogRecord* record);
  // Bytes after the last valid record that were dropped as a torn tail, preallocated zeros after
  // it not counted (set at kEnd; 0: the log ended cleanly).
  std::uint64_t torn_bytes() const { return torn_bytes_; }
  // Offset just past the last valid record.
  std::uint64_t valid_end() const { return at_; }
  const std::string& error() const { return error_; }

 private:
  // The bytes from the last valid record to `end` are a torn tail.
  Result Torn(std::size_t end);
  bool OnlyZerosFrom(std::size_t offset) const;
  Result Corrupt(const std::string& what);
  // The next record inside the current batch record.
  Result NextInBatch(LogRecord* record);
  // Decodes the body of a put, delete or (outside a batch) clear record into *record; "" or
  // what is wrong with its fields.
  std::string DecodeBody(const char* body, std::uint32_t body_len, bool in_batch,
                         LogRecord* record) const;
  std::string path_;
  std::size_t batch_at_ = 0;   // next inner record (0: not inside a batch)
  std::size_t batch_end_ = 0;  // end of the batch record
  const char* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t at_ = 0;
  std::uint64_t torn_bytes_ = 0;
  std::uint32_t version_ = kLogVersion;
  std::string error_;
};

}  // namespace kv::daemon::persistence
