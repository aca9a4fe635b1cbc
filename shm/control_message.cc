#include "shm/control_message.h"

#include "shm/layout.h"

namespace kv::shm {
namespace {
constexpr char kControlVersion = 1;
}

std::string EncodeControlRequest(ControlOp op, std::string_view name) {
  std::string out;
  out.push_back(kControlVersion);
  out.push_back(static_cast<char>(op));
  out.append(name);
  return out;
}

bool DecodeControlRequest(const char* data, std::size_t size, ControlOp* op,
                          std::string_view* name) {
  if (size < 2 || data[0] != kControlVersion) return false;
  auto raw = static_cast<std::uint8_t>(data[1]);
  if (raw < 1 || raw > static_cast<std::uint8_t>(ControlOp::kCreateMirrored)) return false;
  *op = static_cast<ControlOp>(raw);
  *name = std::string_view(data + 2, size - 2);
  if (*op == ControlOp::kCreateMirrored) return true;  // decoded by DecodeMirroredCreate
  return name->size() <= kMaxBucketNameSize * 4;       // names are validated by the caller
}

std::string EncodeControlReply(ControlStatus status, std::string_view message) {
  std::string out;
  out.push_back(kControlVersion);
  out.push_back(static_cast<char>(status));
  out.append(message.substr(0, kMaxControlPacket - 2));
  return out;
}

bool DecodeControlReply(const char* data, std::size_t size, ControlStatus* status,
                        std::string_view* message) {
  if (size < 2 || data[0] != kControlVersion) return false;
  auto raw = static_cast<std::uint8_t>(data[1]);
  if (raw > static_cast<std::uint8_t>(ControlStatus::kBusy)) return false;
  *status = static_cast<ControlStatus>(raw);
  *message = std::string_view(data + 2, size - 2);
  return true;
}

}  // namespace kv::shm
