// kvd's control protocol: one request packet, one reply packet, on a SOCK_SEQPACKET connection to
// the instance's control socket (names.h). Used by libkvclient for create/drop/restart/shutdown;
// everything that only reads (list, status) is read from the registry directly instead.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kv::shm {

enum class ControlOp : std::uint8_t {
  kCreate = 1,
  kDrop = 2,
  kRestart = 3,  // clears a failed bucket and restarts its worker
  kShutdown = 4,
  kPing = 5,
  kSave = 6,  // asks the bucket's worker for a snapshot (answered once asked, not once done)
  // Create a bucket that mirrors an upstream Redis (shm/upstream.h): the request's "name" is
  // EncodeMirroredCreate's payload (name and upstream).
  kCreateMirrored = 7,
};

enum class ControlStatus : std::uint8_t {
  kOk = 0,
  kNotFound = 1,
  kInvalid = 2,  // bad name or request
  kFull = 3,     // maximum buckets reached
  kFailed = 4,   // worker could not be started
  kDenied = 5,   // peer not allowed
  kBusy = 6,     // a conflicting operation on that bucket is in progress
};

inline constexpr std::size_t kMaxControlPacket = 512;

// Encodes [version=1][op][name]. Decoding returns false for anything malformed.
std::string EncodeControlRequest(ControlOp op, std::string_view name);
bool DecodeControlRequest(const char* data, std::size_t size, ControlOp* op,
                          std::string_view* name);
// Encodes [version=1][status][message].
std::string EncodeControlReply(ControlStatus status, std::string_view message);
bool DecodeControlReply(const char* data, std::size_t size, ControlStatus* status,
                        std::string_view* message);

}  // namespace kv::shm
