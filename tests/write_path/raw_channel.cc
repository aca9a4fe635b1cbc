#include "tests/write_path/raw_channel.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "shm/names.h"
#include "shm/unix_socket.h"

namespace kv::testing {

RawChannel::~RawChannel() {
  if (sock_ >= 0) ::close(sock_);
}

bool RawChannel::Connect(const std::string& ns, std::uint64_t bucket_id) {
  sock_ = shm::ConnectSeqpacket(shm::BucketSocketAddress(ns, bucket_id));
  return sock_ >= 0;
}

shm::ControlStatus RawChannel::Register(std::string_view packet, int fd, std::string* message) {
  if (!shm::SendPacket(sock_, packet.data(), packet.size(), fd) ||
      !shm::WaitReadable(sock_, 5000)) {
    *message = "no answer";
    return shm::ControlStatus::kFailed;
  }
  char buf[shm::kMaxControlPacket];
  int received = -1;
  ssize_t n = shm::ReceivePacket(sock_, buf, sizeof buf, &received);
  if (received >= 0) ::close(received);
  shm::ControlStatus status;
  std::string_view text;
  if (n <= 0 || !shm::DecodeControlReply(buf, static_cast<std::size_t>(n), &status, &text)) {
    *message = "hang-up";
    return shm::ControlStatus::kFailed;
  }
  *message = std::string(text);
  return status;
}

bool RawChannel::Open(const std::string& ns, std::uint64_t bucket_id, std::string* error) {
  if (!Connect(ns, bucket_id)) {
    *error = "connect failed";
    return false;
  }
  channel_ = shm::Channel::Create(shm::kDefaultRequestCapacity, shm::kDefaultReplyCapacity, error);
  if (!channel_.valid()) return false;
  shm::ControlStatus s = Register(
      std::string_view(shm::kRegisterMessage, shm::kRegisterMessageSize), channel_.fd(), error);
  if (s != shm::ControlStatus::kOk) return false;
  requests_ = channel_.RequestWriter();
  replies_ = channel_.ReplyReader();
  return true;
}

void RawChannel::RingDoorbell() {
  ::send(sock_, &shm::kDoorbellPacket, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
}

bool RawChannel::SendFrame(std::string_view frame) {
  bool broken = false;
  char* out = requests_.Begin(static_cast<std::uint32_t>(frame.size()), &broken);
  if (out == nullptr) return false;
  if (!frame.empty()) std::memcpy(out, frame.data(), frame.size());
  requests_.Commit();
  requests_.Publish();
  RingDoorbell();
  return true;
}

bool RawChannel::Send(shm::Op op, std::uint64_t id, std::string_view key, std::string_view value,
                      std::int64_t arg, std::uint16_t flags) {
  return SendFrame(Frame(op, id, key, value, arg, flags));
}

bool RawChannel::SendStagedFd(int fd) { return shm::SendPacket(sock_, &shm::kStagedPacket, 1, fd); }

bool RawChannel::Await(RawReply* reply, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    bool broken = false;
    std::uint32_t size = 0;
    const char* frame = replies_.Next(&size, &broken);
    if (broken) return false;
    if (frame == nullptr) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    shm::ReplyHeader header;
    std::string_view value;
    bool ok = shm::DecodeReply(frame, size, &header, &value);
    if (ok) {
      reply->status = static_cast<shm::WireStatus>(header.status);
      reply->request_id = header.request_id;
      reply->number = header.number;
      reply->flags = header.flags;
      reply->value.assign(value.data(), value.size());
    }
    replies_.Pop();
    replies_.Release();
    return ok;
  }
  return false;
}

bool RawChannel::WorkerClosed(std::chrono::milliseconds wait) {
  pollfd p{sock_, POLLRDHUP, 0};
  return ::poll(&p, 1, static_cast<int>(wait.count())) > 0 &&
         (p.revents & (POLLHUP | POLLRDHUP | POLLERR)) != 0;
}

std::string Frame(shm::Op op, std::uint64_t id, std::string_view key, std::string_view value,
                  std::int64_t arg, std::uint16_t flags) {
  std::string frame(shm::RequestSize(key.size(), value.size()), '\0');
  shm::EncodeRequest(frame.data(), op, flags, id, key, value, arg);
  return frame;
}

shm::RequestHeader* HeaderOf(std::string& frame) {
  return reinterpret_cast<shm::RequestHeader*>(frame.data());
}

}  // namespace kv::testing
