#include "kv/status.h"

namespace kv {

const char* CodeName(Code code) {
  switch (code) {
    case Code::kOk:
      return "OK";
    case Code::kNotFound:
      return "NOT_FOUND";
    case Code::kBucketNotFound:
      return "NO_BUCKET";
    case Code::kInvalidArgument:
      return "INVALID";
    case Code::kTooLarge:
      return "TOO_LARGE";
    case Code::kBucketFull:
      return "BUCKET_FULL";
    case Code::kTimeout:
      return "TIMEOUT";
    case Code::kUnavailable:
      return "UNAVAILABLE";
    case Code::kVersionMismatch:
      return "VERSION_MISMATCH";
    case Code::kNotAnInteger:
      return "NOT_AN_INTEGER";
    case Code::kPermissionDenied:
      return "PERMISSION";
    case Code::kCorrupt:
      return "CORRUPT";
    case Code::kFailed:
      return "FAILED";
    case Code::kInternal:
      return "INTERNAL";
    case Code::kPersistence:
      return "PERSISTENCE";
    case Code::kSnapshotTooOld:
      return "SNAPSHOT_TOO_OLD";
  }
  return "INTERNAL";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s = CodeName(code_);
  if (!message_.empty()) s += ": " + message_;
  return s;
}

}  // namespace kv
