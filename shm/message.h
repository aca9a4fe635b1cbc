// The write-path wire format: requests a client puts on a channel's request ring and the replies
// the worker puts on its reply ring (docs/protocol.md). Fixed little-endian headers, then bytes.
//
// Every request field is validated by DecodeRequest before the worker uses it; DecodeRequest never
// reads outside [frame, frame+size) and never trusts a length it has not checked.
#pragma once

#include <cstdint>
#include <string_view>

namespace kv::shm {

inline constexpr std::uint8_t kProtocolVersion = 1;

enum class Op : std::uint8_t {
  kPut = 1,      // key, value, arg = expiry (Unix ms, 0: none; <= kMaxExpiryUnixMs)
  kDelete = 2,   // key; reply carries the old value
  kCas = 3,      // key, value, arg = expected version (0: key must be absent); keeps the expiry
  kIncr = 4,     // key, arg = signed delta; reply number = new value; keeps the expiry
  kClear = 5,    // no key
  kFlush = 6,    // no key; replies once everything sent before it is applied
  kExpire = 7,   // key, arg = expiry (Unix ms, 1..kMaxExpiryUnixMs); reply number = new version
  kPersist = 8,  // key; removes its expiry; reply number = new version, 0 if it had none
  // No key; the value is a batch body (shm/batch.h), arg = its operation count. Applied
  // all-or-nothing; reply number = the bucket's version counter after the batch (operation i
  // of n got version number - n + 1 + i); VERSION_MISMATCH's number is the failing index.
  kBatch = 9,
};
inline constexpr std::uint8_t kMaxOp = 9;

// Request flags.
// Async (Agent.cast): the worker sends no reply; failures are counted in the channel header.
inline constexpr std::uint16_t kFlagNoReply = 1;
// Large value (put/cas only): the frame carries the key only; the value_len bytes of the value
// travel in a sealed memfd sent on the channel's socket (SCM_RIGHTS) before the frame is
// published. value_len is the memfd's exact size.
inline constexpr std::uint16_t kFlagStagedValue = 2;
inline constexpr std::uint16_t kKnownRequestFlags = kFlagNoReply | kFlagStagedValue;

// Reply flags.
// The value (delete's old value) travels in a memfd the worker sent on the channel socket before
// publishing this reply; value_len is its size and the frame carries no value bytes.
inline constexpr std::uint16_t kReplyStagedValue = 2;

// A value whose request would not fit half the request ring is staged (see kFlagStagedValue).
// The largest value either way is kMaxValueSize (layout.h, 16 MiB).

// Wire status codes (replies). Values are stable: they are part of the protocol.
enum class WireStatus : std::uint8_t {
  kOk = 0,
  kNotFound = 1,
  kVersionMismatch = 2,
  kNotAnInteger = 3,
  kBucketFull = 4,
  kTooLarge = 5,
  kMalformed = 6,  // lengths inconsistent with the frame, reserved bits set, truncated
  kUnknownOp = 7,
  kBadVersion = 8,     // protocol version not spoken by this worker
  kWritesRefused = 9,  // bucket failed or dropping
  kInternal = 10,
  // The write could not be made durable (appendfsync always), or writes are refused after a
  // failed save (docs/persistence.md). A write answered so may be visible in memory; it is not
  // on disk.
  kPersistence = 11,
  // A mirrored bucket's upstream is unreachable, or refused the write (docs/mirror.md): nothing
  // was applied.
  kUnavailable = 12,
  // The bucket does not support the request: expiry or a batch on a bucket that mirrors Redis
  // (docs/mirror.md). Nothing was applied.
  kUnsupported = 13,
};
const char* WireStatusName(WireStatus s);

struct RequestHeader {
  std::uint8_t version;
  std::uint8_t op;
  std::uint16_t flags;
  std::uint32_t key_len;
  std::uint64_t request_id;
  std::uint32_t value_len;
  std::uint32_t reserved;  // must be 0
  std::int64_t arg;
};
static_assert(sizeof(RequestHeader) == 32);

struct ReplyHeader {
  std::uint8_t version;
  std::uint8_t status;  // WireStatus
  std::uint16_t flags;
  std::uint32_t value_len;
  std::uint64_t request_id;
  std::int64_t number;  // put/cas: new version; cas mismatch: current version; incr: new value
};
static_assert(sizeof(ReplyHeader) == 24);

struct Request {
  RequestHeader header;
  std::string_view key;
  std::string_view value;  // empty for a staged value: the caller fills it from the memfd
  bool staged() const { return (header.flags & kFlagStagedValue) != 0; }
};

// Decodes and validates one request frame. On failure returns the status to answer with;
// out->header.request_id and flags are filled in whenever the frame was long enough to hold them
// (flags only when they are known: an unknown flag never asks for "no reply").
WireStatus DecodeRequest(const char* frame, std::size_t size, Request* out);

// Bytes EncodeRequest writes.
inline std::size_t RequestSize(std::size_t key_len, std::size_t value_len) {
  return sizeof(RequestHeader) + key_len + value_len;
}
void EncodeRequest(char* out, Op op, std::uint16_t flags, std::uint64_t request_id,
                   std::string_view key, std::string_view value, std::int64_t arg);
// A staged request: the frame holds the header and key; value_len announces the memfd's size.
void EncodeStagedRequest(char* out, Op op, std::uint16_t flags, std::uint64_t request_id,
                         std::string_view key, std::uint32_t value_len, std::int64_t arg);

inline std::size_t ReplySize(std::size_t value_len) { return sizeof(ReplyHeader) + value_len; }
void EncodeReply(char* out, WireStatus status, std::uint64_t request_id, std::int64_t number,
                 std::string_view value);
// A reply whose value (value_len bytes) travels in a memfd (kReplyStagedValue).
void EncodeStagedReply(char* out, WireStatus status, std::uint64_t request_id, std::int64_t number,
                       std::uint32_t value_len);

// Decodes a reply frame (the client validates too: a buggy worker must not crash it). For a
// staged reply *value is empty and header->value_len is the memfd's size.
bool DecodeReply(const char* frame, std::size_t size, ReplyHeader* header, std::string_view* value);

}  // namespace kv::shm
