// One connection to an upstream Redis/Valkey, through hiredis (Debian's libhiredis, RESP2).
//
// Blocking with a deadline: every call returns within the link's timeout (set on the socket), and
// any failure (refused, closed, timed out, protocol error) marks the link failed for good: the
// caller drops it and connects anew, and after any such gap resynchronises (docs/mirror.md).
// Commands are pipelined: Append any number, then take their replies in order with Read.
#pragma once

#include <hiredis/hiredis.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "shm/upstream.h"

namespace kv::daemon::mirror {

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

class RedisLink {
 public:
  RedisLink() = default;
  ~RedisLink();
  RedisLink(RedisLink&& o) noexcept
      : c_(o.c_), error_(std::move(o.error_)), spin_(o.spin_), pulse_(std::move(o.pulse_)) {
    o.c_ = nullptr;
  }
  RedisLink& operator=(RedisLink&& o) noexcept;

  // Connects, authenticates (password file, if any) and selects the database. On failure the
  // link is not ok() and error() says why.
  static RedisLink Connect(const shm::UpstreamAddress& address, const std::string& password_file,
                           std::chrono::milliseconds timeout);

  bool ok() const { return c_ != nullptr && error_.empty(); }
  const std::string& error() const { return error_; }
  int fd() const { return c_ != nullptr ? c_->fd : -1; }

  // Queues a command (binary-safe arguments); sent by the next Read.
  void Append(const std::vector<std::string_view>& args);
  // The next reply, in order; nullptr (and !ok()) when the link failed.
  Reply Read();
  // While waiting for a reply, Read polls the socket for up to `spin` before it blocks, calling
  // `pulse` on every poll (the worker's progress word: a client waiting for the write being
  // relayed keeps spinning instead of sleeping). A reply from a Redis on another CPU then costs
  // no wake-up on either side; the mirror sets a spin only for kvd's `wait dedicated` (a spin
  // holds a CPU that Redis may need to answer: topology.cc, ConnectNode). 0: blocks at once.
  void SetSpin(std::chrono::microseconds spin, std::function<void()> pulse) {
    spin_ = spin;
    pulse_ = std::move(pulse);
  }
  // Append + Read.
  Reply Command(const std::vector<std::string_view>& args);
  // Replies already received, without blocking (a subscriber's pushed messages): nullptr when
  // none is complete. Call after epoll reported the socket readable; reads it once (false if the
  // link failed or the peer closed).
  bool Receive();
  Reply Buffered();

 private:
  void Fail(std::string why);
  redisContext* c_ = nullptr;
  std::string error_;
  std::chrono::microseconds spin_{0};
  std::function<void()> pulse_;
};

// A reply's text (status, error or string), for messages.
std::string ReplyText(const redisReply* r);
// No reply (a failed link), or an error reply.
inline bool IsError(const redisReply* r) { return r == nullptr || r->type == REDIS_REPLY_ERROR; }
// A string, status or error reply's bytes.
inline std::string_view Str(const redisReply* r) { return {r->str, r->len}; }
// A cluster's redirection: "MOVED slot host:port", "ASK slot host:port" or "TRYAGAIN ...".
inline bool IsRedirect(const redisReply* r) {
  if (r == nullptr || r->type != REDIS_REPLY_ERROR) return false;
  std::string_view e = Str(r);
  return e.substr(0, 6) == "MOVED " || e.substr(0, 4) == "ASK " || e.substr(0, 8) == "TRYAGAIN";
}

}  // namespace kv::daemon::mirror
