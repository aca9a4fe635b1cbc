#include "daemon/persistence/log_format.h"

#include <algorithm>
#include <cstring>

#include "daemon/persistence/byte_codec.h"
#include "shm/layout.h"

namespace kv::daemon::persistence {

std::string EncodeLogHeader(std::uint64_t bucket_id, std::uint64_t seq) {
  std::string out(kLogMagic, sizeof kLogMagic);
  AppendLe<std::uint32_t>(&out, kLogVersion);
  AppendLe<std::uint32_t>(&out, 0);
  AppendLe<std::uint64_t>(&out, bucket_id);
  AppendLe<std::uint64_t>(&out, seq);
  AppendLe<std::uint32_t>(&out, 0);
  AppendLe<std::uint32_t>(&out, Crc(out));
  return out;
}

void AppendLogRecord(std::string* out, LogOp op, std::string_view key, std::string_view value,
                     std::uint64_t version, std::uint64_t expiry) {
  std::size_t head = out->size();
  std::size_t extra = expiry != 0 ? 8 : 0;
  std::uint32_t body_len =
      static_cast<std::uint32_t>(kLogBodyFixed + extra + key.size() + value.size());
  out->resize(head + kLogRecordHead);
  std::size_t body = out->size();
  AppendLe<std::uint8_t>(out, static_cast<std::uint8_t>(op));
  out->append(3, '\0');
  AppendLe<std::uint32_t>(out, static_cast<std::uint32_t>(key.size()));
  AppendLe<std::uint32_t>(out,
                          static_cast<std::uint32_t>(value.size()) | (extra ? kLogExpires : 0));
  AppendLe<std::uint32_t>(out, 0);
  AppendLe<std::uint64_t>(out, version);
  if (expiry != 0) AppendLe<std::uint64_t>(out, expiry);
  out->append(key);
  out->append(value);
  char* h = out->data() + head;
  StoreLe<std::uint32_t>(h, body_len);
  StoreLe<std::uint32_t>(h + 4, Crc(out->data() + body, body_len));
  StoreLe<std::uint32_t>(h + 8, 0);
  StoreLe<std::uint32_t>(h + 12, Crc(h, 12));
}

void AppendLogBatch(std::string* out, std::string_view inner, std::uint64_t version) {
  std::size_t head = out->size();
  std::uint32_t body_len = static_cast<std::uint32_t>(kLogBodyFixed + inner.size());
  out->resize(head + kLogRecordHead);
  std::size_t body = out->size();
  AppendLe<std::uint8_t>(out, static_cast<std::uint8_t>(LogOp::kBatch));
  out->append(3, '\0');
  AppendLe<std::uint32_t>(out, 0);
  AppendLe<std::uint32_t>(out, static_cast<std::uint32_t>(inner.size()));
  AppendLe<std::uint32_t>(out, 0);
  AppendLe<std::uint64_t>(out, version);
  out->append(inner);
  char* h = out->data() + head;
  StoreLe<std::uint32_t>(h, body_len);
  StoreLe<std::uint32_t>(h + 4, Crc(out->data() + body, body_len));
  StoreLe<std::uint32_t>(h + 8, 0);
  StoreLe<std::uint32_t>(h + 12, Crc(h, 12));
}

std::string LogReader::Open(const std::string& path, const char* data, std::size_t size,
                            std::uint64_t bucket_id, std::uint64_t seq) {
  path_ = path;
  data_ = data;
  size_ = size;
  at_ = kLogHeaderSize;
  if (size < kLogHeaderSize) {
    // A file cut before its header was complete holds no record: a torn, empty log.
    if (size == 0 || std::memcmp(data, kLogMagic, std::min(size, sizeof kLogMagic)) == 0) {
      at_ = 0;
      size_ = 0;
      torn_bytes_ = size;
      return {};
    }
    return "log " + path + " is not a kv log (bad magic)";
  }
  if (std::memcmp(data, kLogMagic, sizeof kLogMagic) != 0) {
    return "log " + path + " is not a kv log (bad magic)";
  }
  std::uint32_t version = LoadLe<std::uint32_t>(data + 8);
  if (LoadLe<std::uint32_t>(data + 36) != Crc(data, 36)) {
    return "log " + path + " is corrupt at byte 36: header checksum mismatch";
  }
  if (version < kLogOldestVersion || version > kLogVersion) {
    return "log " + path + " has format version " + std::to_string(version) +
           "; this build reads versions " + std::to_string(kLogOldestVersion) + " to " +
           std::to_string(kLogVersion);
  }
  version_ = version;
  if (LoadLe<std::uint32_t>(data + 12) != 0) {
    return "log " + path + " is corrupt at byte 12: unknown flags";
  }
  if (LoadLe<std::uint64_t>(data + 16) != bucket_id || LoadLe<std::uint64_t>(data + 24) != seq) {
    return "log " + path + " belongs to bucket " +
           std::to_string(LoadLe<std::uint64_t>(data + 16)) + " sequence " +
           std::to_string(LoadLe<std::uint64_t>(data + 24)) + ", not bucket " +
           std::to_string(bucket_id) + " sequence " + std::to_string(seq);
  }
  return {};
}

bool LogReader::OnlyZerosFrom(std::size_t offset) const {
  return std::all_of(data_ + std::min(offset, size_), data_ + size_, [](char c) { return c == 0; });
}

LogReader::Result LogReader::Torn(std::size_t end) {
  torn_bytes_ = std::min(end, size_) - at_;
  return kEnd;
}

LogReader::Result LogReader::Corrupt(const std::string& what) {
  error_ = "log " + path_ + " is corrupt at byte " + std::to_string(at_) + ": " + what;
  return kCorrupt;
}

std::string LogReader::DecodeBody(const char* b, std::uint32_t body_len, bool in_batch,
                                  LogRecord* record) const {
  auto op = static_cast<LogOp>(LoadLe<std::uint8_t>(b));
  std::uint32_t key_len = LoadLe<std::uint32_t>(b + 4);
  std::uint32_t value_len = LoadLe<std::uint32_t>(b + 8);
  // Version 2: a put's value_len may say an expiry follows the version.
  bool expires = version_ >= 2 && op == LogOp::kPut && (value_len & kLogExpires) != 0;
  if (expires) value_len &= ~kLogExpires;
  std::size_t fixed = kLogBodyFixed + (expires ? 8 : 0);
  bool lengths_ok = std::uint64_t{fixed} + key_len + value_len == body_len;
  bool op_ok =
      (op == LogOp::kPut && key_len >= 1 && key_len <= shm::kMaxKeySize &&
       value_len <= shm::kMaxValueSize) ||
      (op == LogOp::kDelete && key_len >= 1 && key_len <= shm::kMaxKeySize && value_len == 0) ||
      (op == LogOp::kClear && !in_batch && key_len == 0 && value_len == 0);
  if (!lengths_ok || !op_ok) return "record fields invalid";
  record->op = op;
  record->version = LoadLe<std::uint64_t>(b + 16);
  record->expiry = expires ? LoadLe<std::uint64_t>(b + kLogBodyFixed) : 0;
  if (expires && (record->expiry == 0 || record->expiry > shm::kMaxExpiryUnixMs)) {
    return "record expiry out of range";
  }
  record->key = std::string_view(b + fixed, key_len);
  record->value = std::string_view(b + fixed + key_len, value_len);
  return {};
}

LogReader::Result LogReader::NextInBatch(LogRecord* record) {
  const char* h = data_ + batch_at_;
  std::size_t left = batch_end_ - batch_at_;
  if (left < kLogRecordHead + kLogBodyFixed || LoadLe<std::uint32_t>(h + 12) != Crc(h, 12) ||
      LoadLe<std::uint32_t>(h + 8) != 0) {
    return Corrupt("batch record holds a damaged record");
  }
  std::uint32_t body_len = LoadLe<std::uint32_t>(h);
  const char* b = h + kLogRecordHead;
  if (body_len < kLogBodyFixed || body_len > left - kLogRecordHead ||
      LoadLe<std::uint32_t>(h + 4) != Crc(b, body_len)) {
    return Corrupt("batch record holds a damaged record");
  }
  if (std::string why = DecodeBody(b, body_len, true, record); !why.empty()) {
    return Corrupt("batch record holds an invalid record: " + why);
  }
  batch_at_ += kLogRecordHead + body_len;
  if (batch_at_ == batch_end_) {  // the batch's last record: the reader moves past it
    at_ = batch_end_;
    batch_at_ = 0;
  }
  return kRecord;
}

LogReader::Result LogReader::Next(LogRecord* record) {
  if (batch_at_ != 0) return NextInBatch(record);
  if (at_ >= size_) return kEnd;
  std::size_t left = size_ - at_;
  if (left < kLogRecordHead) return Torn(size_);
  const char* h = data_ + at_;
  if (LoadLe<std::uint32_t>(h + 12) != Crc(h, 12) || LoadLe<std::uint32_t>(h + 8) != 0) {
    // Blocks the file system allocated but the power cut left unwritten read as zeros, and so
    // does the preallocated space after the last record.
    // The zeros after the last nonzero byte are such space, not torn bytes.
    if (!OnlyZerosFrom(at_ + kLogRecordHead)) return Corrupt("record head checksum mismatch");
    std::size_t end = at_ + kLogRecordHead;
    while (end > at_ && data_[end - 1] == 0) --end;
    return Torn(end);
  }
  std::uint32_t body_len = LoadLe<std::uint32_t>(h);
  if (body_len < kLogBodyFixed || body_len > kLogBodyFixed + kMaxLogBatchBytes) {
    return Corrupt("record length " + std::to_string(body_len) + " out of range");
  }
  if (left - kLogRecordHead < body_len) return Torn(size_);
  const char* b = h + kLogRecordHead;
  std::size_t record_end = at_ + kLogRecordHead + body_len;
  if (LoadLe<std::uint32_t>(h + 4) != Crc(b, body_len)) {
    // The last record (only zeros after it: preallocated space) was torn.
    return OnlyZerosFrom(record_end) ? Torn(record_end) : Corrupt("record checksum mismatch");
  }
  auto op = static_cast<LogOp>(LoadLe<std::uint8_t>(b));
  std::uint32_t key_len = LoadLe<std::uint32_t>(b + 4);
  std::uint32_t value_len = LoadLe<std::uint32_t>(b + 8);
  bool lengths_ok = std::uint64_t{kLogBodyFixed} + key_len + value_len == body_len;
  if (op == LogOp::kBatch && version_ >= 2) {
    if (!lengths_ok || key_len != 0 || value_len < kLogRecordHead + kLogBodyFixed) {
      return Corrupt("record fields invalid");
    }
    batch_at_ = at_ + kLogRecordHead + kLogBodyFixed;
    batch_end_ = record_end;
    return NextInBatch(record);
  }
  if (body_len > kLogBodyFixed + 8 + shm::kMaxKeySize + shm::kMaxValueSize) {
    return Corrupt("record length " + std::to_string(body_len) + " out of range");
  }
  if (std::string why = DecodeBody(b, body_len, false, record); !why.empty()) {
    return Corrupt(why);
  }
  at_ += kLogRecordHead + body_len;
  return kRecord;
}

}  // namespace kv::daemon::persistence
