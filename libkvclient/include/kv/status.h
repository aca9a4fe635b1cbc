// kv::Status and kv::Result<T>: errors as values. No exception crosses the library boundary.
//
// A Status is a code from a small closed set plus a message with context (bucket, key length,
// limit). ToString() gives "CODE: message", where CODE is one upper-case word scripts can match
// (the same words kvctl prints). Status is cheap to copy; an OK status allocates nothing.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace kv {

enum class Code {
  kOk = 0,
  kNotFound,          // NOT_FOUND: the key does not exist
  kBucketNotFound,    // NO_BUCKET: the bucket does not exist (or was dropped)
  kInvalidArgument,   // INVALID: bad name, empty key, malformed input
  kTooLarge,          // TOO_LARGE: key or value over its limit
  kBucketFull,        // BUCKET_FULL: the bucket reached its maximum size, or /dev/shm is full
  kTimeout,           // TIMEOUT: the worker did not answer in time (it may still apply the write)
  kUnavailable,       // UNAVAILABLE: kvd or the bucket's worker is not running
  kVersionMismatch,   // VERSION_MISMATCH: compare-and-set lost
  kNotAnInteger,      // NOT_AN_INTEGER: incr on a value that is not a decimal int64
  kPermissionDenied,  // PERMISSION: not allowed to open the instance's objects
  kCorrupt,           // CORRUPT: a segment failed validation
  kFailed,            // FAILED: the operation could not be done (e.g. bucket failed, limit hit)
  kInternal,          // INTERNAL: a bug or an unexpected system error
  kPersistence,       // PERSISTENCE: the write is not durable (disk failure), or writes are
                      // refused after a failed save (docs/persistence.md)
  kSnapshotTooOld,    // SNAPSHOT_TOO_OLD: a snapshot fell out of the bucket's history window or
                      // exceeded what it may pin (kv::Snapshot); take a new one
};

// The upper-case word for a code ("NOT_FOUND", ...).
const char* CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  std::string ToString() const;  // "OK" or "CODE: message"

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// A value or a Status. REQUIRES: status passed to the error constructor is not OK.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  // REQUIRES: ok().
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace kv
