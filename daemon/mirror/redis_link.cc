#include "daemon/mirror/redis_link.h"

#include <poll.h>
#include <sys/time.h>

#include <fstream>
#include <sstream>

namespace kv::daemon::mirror {

RedisLink::~RedisLink() {
  if (c_ != nullptr) redisFree(c_);
}

RedisLink& RedisLink::operator=(RedisLink&& o) noexcept {
  if (this != &o) {
    if (c_ != nullptr) redisFree(c_);
    c_ = o.c_;
    error_ = std::move(o.error_);
    spin_ = o.spin_;
    pulse_ = std::move(o.pulse_);
    o.c_ = nullptr;
  }
  return *this;
}

void RedisLink::Fail(std::string why) {
  if (error_.empty()) error_ = std::move(why);
}

RedisLink RedisLink::Connect(const shm::UpstreamAddress& address, const std::string& password_file,
                             std::chrono::milliseconds timeout) {
  RedisLink link;
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  link.c_ = address.unix_socket ? redisConnectUnixWithTimeout(address.path.c_str(), tv)
                                : redisConnectWithTimeout(address.host.c_str(), address.port, tv);
  if (link.c_ == nullptr) {
    link.Fail("out of memory");
    return link;
  }
  if (link.c_->err != 0) {
    link.Fail(std::string("cannot connect: ") + link.c_->errstr);
    return link;
  }
  redisSetTimeout(link.c_, tv);
  if (!password_file.empty()) {
    std::ifstream in(password_file);
    std::string password;
    if (!in || !std::getline(in, password)) {
      link.Fail("cannot read the password file " + password_file);
      return link;
    }
    if (!password.empty() && password.back() == '\r') password.pop_back();
    Reply r = link.Command({"AUTH", password});
    if (!r || r->type == REDIS_REPLY_ERROR) {
      link.Fail("AUTH refused: " + (r ? ReplyText(r.get()) : link.error()));
      return link;
    }
  }
  if (address.db != 0) {
    std::string db = std::to_string(address.db);
    Reply r = link.Command({"SELECT", db});
    if (!r || r->type == REDIS_REPLY_ERROR) {
      link.Fail("SELECT " + db + " refused: " + (r ? ReplyText(r.get()) : link.error()));
      return link;
    }
  }
  return link;
}

void RedisLink::Append(const std::vector<std::string_view>& args) {
  if (!ok()) return;
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (std::string_view a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  if (redisAppendCommandArgv(c_, static_cast<int>(args.size()), argv.data(), lens.data()) !=
      REDIS_OK) {
    Fail(std::string("cannot queue a command: ") + c_->errstr);
  }
}

Reply RedisLink::Read() {
  if (!ok()) return nullptr;
  void* reply = nullptr;
  if (redisGetReplyFromReader(c_, &reply) != REDIS_OK) {
    Fail(std::string("protocol error: ") + c_->errstr);
    return nullptr;
  }
  if (reply != nullptr) return Reply(static_cast<redisReply*>(reply));
  int done = 0;
  do {
    if (redisBufferWrite(c_, &done) != REDIS_OK) {
      Fail(c_->err != 0 ? std::string(c_->errstr) : std::string("connection lost"));
      return nullptr;
    }
  } while (done == 0);
  auto spin_until = std::chrono::steady_clock::now() + spin_;
  for (;;) {
    if (spin_.count() != 0) {
      pollfd p{c_->fd, POLLIN, 0};
      while (::poll(&p, 1, 0) == 0 && std::chrono::steady_clock::now() < spin_until) {
        if (pulse_) pulse_();
      }
    }
    if (redisBufferRead(c_) != REDIS_OK) {  // blocks up to the timeout
      Fail(c_->err != 0 ? std::string(c_->errstr) : std::string("connection lost"));
      return nullptr;
    }
    if (redisGetReplyFromReader(c_, &reply) != REDIS_OK) {
      Fail(std::string("protocol error: ") + c_->errstr);
      return nullptr;
    }
    if (reply != nullptr) return Reply(static_cast<redisReply*>(reply));
  }
}

Reply RedisLink::Command(const std::vector<std::string_view>& args) {
  Append(args);
  return Read();
}

bool RedisLink::Receive() {
  if (!ok()) return false;
  if (redisBufferRead(c_) != REDIS_OK) {
    Fail(c_->err != 0 ? std::string(c_->errstr) : std::string("connection lost"));
    return false;
  }
  return true;
}

Reply RedisLink::Buffered() {
  if (!ok()) return nullptr;
  void* reply = nullptr;
  if (redisGetReplyFromReader(c_, &reply) != REDIS_OK) {
    Fail(std::string("protocol error: ") + c_->errstr);
    return nullptr;
  }
  return Reply(static_cast<redisReply*>(reply));
}

std::string ReplyText(const redisReply* r) {
  if (r == nullptr) return "no reply";
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      return std::string(r->str, r->len);
    case REDIS_REPLY_INTEGER:
      return std::to_string(r->integer);
    case REDIS_REPLY_NIL:
      return "(nil)";
    default:
      return "(array)";
  }
}

}  // namespace kv::daemon::mirror
