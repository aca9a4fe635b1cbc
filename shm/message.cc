#include "shm/message.h"

#include <cstring>

#include "shm/layout.h"

namespace kv::shm {

const char* WireStatusName(WireStatus s) {
  switch (s) {
    case WireStatus::kOk:
      return "OK";
    case WireStatus::kNotFound:
      return "NOT_FOUND";
    case WireStatus::kVersionMismatch:
      return "VERSION_MISMATCH";
    case WireStatus::kNotAnInteger:
      return "NOT_AN_INTEGER";
    case WireStatus::kBucketFull:
      return "BUCKET_FULL";
    case WireStatus::kTooLarge:
      return "TOO_LARGE";
    case WireStatus::kMalformed:
      return "MALFORMED";
    case WireStatus::kUnknownOp:
      return "UNKNOWN_OP";
    case WireStatus::kBadVersion:
      return "BAD_VERSION";
    case WireStatus::kWritesRefused:
      return "WRITES_REFUSED";
    case WireStatus::kInternal:
      return "INTERNAL";
    case WireStatus::kPersistence:
      return "PERSISTENCE";
    case WireStatus::kUnavailable:
      return "UNAVAILABLE";
    case WireStatus::kUnsupported:
      return "UNSUPPORTED";
  }
  return "UNKNOWN_STATUS";
}

WireStatus DecodeRequest(const char* frame, std::size_t size, Request* out) {
  *out = Request{};
  RequestHeader& h = out->header;
  if (size < sizeof(RequestHeader)) {
    if (size >= 16) std::memcpy(&h.request_id, frame + 8, 8);
    if (size >= 4) {
      std::uint16_t flags;
      std::memcpy(&flags, frame + 2, 2);
      if ((flags & ~kKnownRequestFlags) == 0) h.flags = flags;
    }
    return WireStatus::kMalformed;
  }
  std::memcpy(&h, frame, sizeof h);  // a private copy: the client may change the frame meanwhile
  if ((h.flags & ~kKnownRequestFlags) != 0) {
    h.flags = 0;  // unknown flags: answer (an async request would otherwise fail silently)
    return WireStatus::kMalformed;
  }
  if (h.version != kProtocolVersion) return WireStatus::kBadVersion;
  if (h.op == 0 || h.op > kMaxOp) return WireStatus::kUnknownOp;
  if (h.reserved != 0) return WireStatus::kMalformed;
  Op op = static_cast<Op>(h.op);
  bool keyed = op != Op::kClear && op != Op::kFlush && op != Op::kBatch;
  bool valued = op == Op::kPut || op == Op::kCas || op == Op::kBatch;
  bool staged = (h.flags & kFlagStagedValue) != 0;
  std::uint64_t body = size - sizeof(RequestHeader);
  std::uint64_t in_frame = std::uint64_t{h.key_len} + (staged ? 0 : h.value_len);
  if (h.key_len > kMaxKeySize || h.value_len > kMaxValueSize) {
    return in_frame == body || staged ? WireStatus::kTooLarge : WireStatus::kMalformed;
  }
  if (in_frame != body) return WireStatus::kMalformed;
  if (keyed != (h.key_len != 0)) return WireStatus::kMalformed;  // keyed ops need a non-empty key
  if (!valued && (h.value_len != 0 || staged)) return WireStatus::kMalformed;
  if (op == Op::kPut || op == Op::kExpire) {
    // An expiry time: Unix milliseconds (kExpire needs one; 0 on a put is "none").
    if (h.arg < (op == Op::kExpire ? 1 : 0) ||
        static_cast<std::uint64_t>(h.arg) > kMaxExpiryUnixMs) {
      return WireStatus::kMalformed;
    }
  } else if (op == Op::kBatch) {
    // A batch's operation count; its body is checked by DecodeBatch (shm/batch.h).
    if (h.arg < 1 || h.arg > static_cast<std::int64_t>(kMaxBatchOps)) {
      return h.arg > 0 ? WireStatus::kTooLarge : WireStatus::kMalformed;
    }
  } else if (op != Op::kCas && op != Op::kIncr && h.arg != 0) {
    return WireStatus::kMalformed;
  }
  out->key = std::string_view(frame + sizeof h, h.key_len);
  if (!staged) out->value = std::string_view(frame + sizeof h + h.key_len, h.value_len);
  return WireStatus::kOk;
}

void EncodeRequest(char* out, Op op, std::uint16_t flags, std::uint64_t request_id,
                   std::string_view key, std::string_view value, std::int64_t arg) {
  RequestHeader h{kProtocolVersion,
                  static_cast<std::uint8_t>(op),
                  flags,
                  static_cast<std::uint32_t>(key.size()),
                  request_id,
                  static_cast<std::uint32_t>(value.size()),
                  0,
                  arg};
  std::memcpy(out, &h, sizeof h);
  if (!key.empty()) std::memcpy(out + sizeof h, key.data(), key.size());
  if (!value.empty()) std::memcpy(out + sizeof h + key.size(), value.data(), value.size());
}

void EncodeStagedRequest(char* out, Op op, std::uint16_t flags, std::uint64_t request_id,
                         std::string_view key, std::uint32_t value_len, std::int64_t arg) {
  RequestHeader h{kProtocolVersion,
                  static_cast<std::uint8_t>(op),
                  static_cast<std::uint16_t>(flags | kFlagStagedValue),
                  static_cast<std::uint32_t>(key.size()),
                  request_id,
                  value_len,
                  0,
                  arg};
  std::memcpy(out, &h, sizeof h);
  if (!key.empty()) std::memcpy(out + sizeof h, key.data(), key.size());
}

void EncodeReply(char* out, WireStatus status, std::uint64_t request_id, std::int64_t number,
                 std::string_view value) {
  ReplyHeader h{kProtocolVersion,
                static_cast<std::uint8_t>(status),
                0,
                static_cast<std::uint32_t>(value.size()),
                request_id,
                number};
  std::memcpy(out, &h, sizeof h);
  if (!value.empty()) std::memcpy(out + sizeof h, value.data(), value.size());
}

void EncodeStagedReply(char* out, WireStatus status, std::uint64_t request_id, std::int64_t number,
                       std::uint32_t value_len) {
  ReplyHeader h{kProtocolVersion,  static_cast<std::uint8_t>(status),
                kReplyStagedValue, value_len,
                request_id,        number};
  std::memcpy(out, &h, sizeof h);
}

bool DecodeReply(const char* frame, std::size_t size, ReplyHeader* header,
                 std::string_view* value) {
  if (size < sizeof(ReplyHeader)) return false;
  std::memcpy(header, frame, sizeof *header);
  if (header->version != kProtocolVersion || (header->flags & ~kReplyStagedValue) != 0) {
    return false;
  }
  if ((header->flags & kReplyStagedValue) != 0) {
    *value = {};
    return size == sizeof(ReplyHeader) && header->value_len <= kMaxValueSize;
  }
  if (header->value_len != size - sizeof(ReplyHeader)) return false;
  *value = std::string_view(frame + sizeof(ReplyHeader), header->value_len);
  return true;
}

}  // namespace kv::shm
