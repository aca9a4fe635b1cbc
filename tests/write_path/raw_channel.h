// A hand-driven write channel for protocol tests: registers a real shm::Channel with a real worker
// and lets a test put any bytes it likes on the request ring (or the rings' indices), then read
// the raw replies. What libkvclient's WriteChannel does, minus every safety check.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "shm/channel.h"
#include "shm/control_message.h"
#include "shm/message.h"

namespace kv::testing {

struct RawReply {
  shm::WireStatus status = shm::WireStatus::kInternal;
  std::uint64_t request_id = 0;
  std::int64_t number = 0;
  std::uint16_t flags = 0;
  std::string value;
};

class RawChannel {
 public:
  RawChannel() = default;
  ~RawChannel();
  RawChannel(const RawChannel&) = delete;
  RawChannel& operator=(const RawChannel&) = delete;

  // Connects to bucket `bucket_id` of `ns` and registers a fresh channel. False (and *error) if
  // the worker refused it.
  bool Open(const std::string& ns, std::uint64_t bucket_id, std::string* error);
  // Connects only (no registration): for registration-packet tests.
  bool Connect(const std::string& ns, std::uint64_t bucket_id);
  // Sends a raw registration packet (with `fd` attached if >= 0) and returns the worker's control
  // status (kOk...), or nullopt-like kFailed with *message "hang-up" if the socket closed.
  shm::ControlStatus Register(std::string_view packet, int fd, std::string* message);

  // Puts `frame` on the request ring as one frame, publishes it and rings the doorbell.
  bool SendFrame(std::string_view frame);
  // Encodes a request with EncodeRequest and sends it.
  bool Send(shm::Op op, std::uint64_t id, std::string_view key, std::string_view value,
            std::int64_t arg = 0, std::uint16_t flags = 0);
  // Sends `fd` on the socket as a staged value packet.
  bool SendStagedFd(int fd);
  void RingDoorbell();
  // Waits (up to `timeout`) for the next reply frame. False on timeout, hang-up or a bad frame.
  bool Await(RawReply* reply, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // True once the worker has closed this channel's socket.
  bool WorkerClosed(std::chrono::milliseconds wait = std::chrono::seconds(5));

  shm::Channel& channel() { return channel_; }
  shm::ChannelHeader* header() { return channel_.header(); }
  int sock() const { return sock_; }

 private:
  int sock_ = -1;
  shm::Channel channel_;
  shm::RingWriter requests_;
  shm::RingReader replies_;
};

// Encodes a request frame with EncodeRequest (a valid one; tests then break a field).
std::string Frame(shm::Op op, std::uint64_t id, std::string_view key, std::string_view value,
                  std::int64_t arg = 0, std::uint16_t flags = 0);
// The header at the start of a frame, for editing fields in place.
shm::RequestHeader* HeaderOf(std::string& frame);

}  // namespace kv::testing
