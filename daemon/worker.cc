#include "daemon/worker.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <deque>
#include <memory>
#include <unordered_map>
#include <vector>

#include <spdlog/spdlog.h>

#include "daemon/crash_point.h"
#include "daemon/idle_spin.h"
#include "daemon/persistence/commit_gather.h"
#include "daemon/persistence/persistence.h"
#include "daemon/persistence/unsynced_replies.h"
#include "daemon/request_prefetch.h"
#include "daemon/worker_priority.h"
#include "shm/channel.h"
#include "shm/coarse_clock.h"
#include "shm/control_message.h"
#include "shm/names.h"
#include "shm/registry.h"
#include "shm/unix_socket.h"
#ifdef KV_HAVE_MIRROR
#include "daemon/mirror/mirror.h"
#endif

namespace kv::daemon {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kMaxBatchPerChannel = 256;  // fairness between channels
constexpr std::size_t kMaxConnections = 4096;
constexpr std::size_t kMaxStagedPerConnection = 16;  // staged values received, not yet used
// Active expiry: keys tombstoned per pass of the loop at most (bounded work, as Redis's cycle).
constexpr std::size_t kExpiredPerPass = 256;

// A request a mirror bucket answers UNSUPPORTED (docs/mirror.md): setting or removing an expiry
// (the upstream's invalidations cannot bring TTLs back), and a batch (applied only once the
// upstream acknowledged it, which would need the upstream to apply it atomically, cas included).
[[maybe_unused]] bool MirrorRefuses(const shm::Request& request) {
  auto op = static_cast<shm::Op>(request.header.op);
  return op == shm::Op::kExpire || op == shm::Op::kPersist || op == shm::Op::kBatch ||
         (op == shm::Op::kPut && request.header.arg != 0);
}

struct Connection {
  ~Connection() {
    for (int fd : staged) ::close(fd);
    if (doorbell >= 0) ::close(doorbell);  // closing removes it from the epoll set
  }
  int sock = -1;
  bool registered = false;  // a write channel, registered
  bool subscriber = false;  // a subscriber's connection (kSubscribeMessage): no channel
  bool paused = false;      // reply ring full: retry on a timer, not in a busy loop
  bool hung_up = false;
  bool delivered = false;         // requests taken in the worker's last pass (DrainAll)
  std::uint64_t busy_window = 0;  // BusyPriority::Delivered's word for this channel
  SpinScore spin;                 // what spinning for this channel's requests earned lately
  // The channel's entry in the exactly-once log (shm/channel_dedup.h), and for a channel adopted
  // after a crash the request-ring index up to which frames may already have been applied.
  std::uint32_t dedup = shm::kNoDedupEntry;
  std::uint64_t replay_until = 0;
  shm::Channel channel;
  shm::RingReader requests;
  shm::RingWriter replies;
  std::deque<int> staged;                 // staged-value memfds, in the order the client sent them
  persistence::UnsyncedReplies unsynced;  // appendfsync always: awaiting the pass's commit
  bool committing = false;                // appendfsync always: in Worker::committing_
  std::uint64_t answered_round = 0;       // the group commit that last answered it (CommitGather)
  int doorbell = -1;  // the client's doorbell eventfd (edge-triggered in epoll, never read)
};

class Worker {
 public:
  Worker(const WorkerOptions& options, BucketStore store)
      : options_(options),
        store_(std::move(store)),
        idle_spin_(options.wait_policy, std::chrono::microseconds(options.spin_us)),
        busy_priority_(options.nice, options.busy_nice) {}
  ~Worker();
  bool Start(int listen_fd, std::string* error);
  // Restores from / attaches to the data directory (persistence.h); before READY.
  bool OpenPersistence(bool fresh, std::string* error, bool* refused) {
    return persistence_.Open(options_.persistence, options_.ns, &store_, fresh, epoll_fd_, error,
                             refused);
  }
  void RemoveObjects() { store_.RemoveObjects(); }
#ifdef KV_HAVE_MIRROR
  // Makes the bucket a mirror of `upstream` (docs/mirror.md): daemon/mirror/mirror.h.
  void StartMirror(const shm::UpstreamSpec& upstream) {
    mirror_ = std::make_unique<mirror::Mirror>(&store_, upstream, epoll_fd_);
  }
#endif
  void Run();
  bool dropped() const { return drop_; }

 private:
  // Apply what the clients' channels hold (Drain: at most kMaxBatchPerChannel of one channel);
  // return the number of requests taken.
  std::size_t DrainAll();
  std::size_t Drain(Connection& c);
  // Reads every pending packet (doorbells, staged values) of a registered connection.
  void ReadPackets(Connection& c);
  // The next staged value of `c`, read into staged_value_. False if the client sent none or it
  // does not match `size`.
  bool TakeStagedValue(Connection& c, std::uint32_t size);
  // A mirrored delete's old value (the upstream's): false if it deleted nothing.
  static bool MirroredOldValue(const void* mirrored, std::string* value);
  // Sends `value` to the client as a staged reply value. False if the socket refuses it.
  bool SendStagedValue(Connection& c, std::string_view value);
  // A frame of an adopted channel that the previous worker already took (its id is at most the
  // channel's last applied id): answered from the exactly-once log, never applied again.
  enum class Replay { kNotApplied, kAnswered, kPaused };
  Replay ReplayApplied(Connection& c, const shm::Request& request, shm::WireStatus status);
  // Finds (`adopt`: a channel registered with an earlier worker) or claims (a new channel) the
  // channel's exactly-once entry. Empty string, or why not.
  std::string BindDedup(Connection& c, bool adopt);
  void Reply(Connection& c, const shm::RequestHeader& header, shm::WireStatus status,
             std::int64_t number, std::string_view value);
  void WakeClient(Connection& c);
  // Tells waiting clients the worker is running (shm::AnchorHeader::worker_pulse).
  void Pulse() { store_.Pulse(); }
  // The idle period that began at `idle_start` ended with requests: scores the channels that
  // delivered them.
  void ScoreIdlePeriod(Clock::time_point idle_start);
  // The channels whose client is not on `cpu` (the worker's: a client there cannot send while
  // the worker spins), and whether the spins of any of them paid lately.
  IdleSpin::Channels SpinCandidates(int cpu) const;
  // Publishes the CPU the worker runs on (shm::AnchorHeader::worker_cpu) and returns it.
  int PublishCpu();
  // Drain, then the commit of what it took (the hang-up paths, outside DrainAll's passes).
  std::size_t DrainCommitted(Connection& c) {
    std::size_t did = Drain(c);
    CommitPass();
    return did;
  }
  // Group commit (appendfsync always): one fdatasync makes every write the pass took, on every
  // channel, durable before any of the pass's replies is published; if it cannot, each of those
  // successful replies becomes PERSISTENCE. Then each channel's batch is finished.
  void CommitPass();
  // Publishes a drained batch's replies, then releases its requests (see Drain). True if it
  // published a reply.
  bool FinishBatch(Connection& c);
  bool AnyPending() const;
  // Tombstones keys whose expiry passed (at most kExpiredPerPass); the delay until the next
  // expiry is due (ms, capped at `cap`).
  int ActiveExpire(int cap);
  void SetWaiting(std::uint32_t waiting);
  void HandleEvents(int timeout_ms);
  void Accept();
  void Register(Connection& c);
  void Close(int sock, const char* why);

  WorkerOptions options_;
  BucketStore store_;
  int epoll_fd_ = -1;
  int listen_fd_ = -1;
  int signal_fd_ = -1;
  bool stop_ = false;
  bool drop_ = false;
  std::unordered_map<int, std::unique_ptr<Connection>> connections_;
  std::string reply_value_;         // scratch, reused across requests
  std::string old_value_;           // scratch: a delete's old value, to size its reply
  std::string staged_value_;        // scratch: the value of a staged request
  std::vector<Connection*> ready_;  // scratch for DrainAll
  RequestPrefetch prefetch_;
  std::uint32_t sleep_number_ = 0;  // worker_waiting of the current or last sleep
  IdleSpin idle_spin_;
  BusyPriority busy_priority_;  // the loop thread's nice value (worker_priority.h)
  persistence::Persistence persistence_;
  std::vector<Connection*> committing_;  // always: channels whose batch awaits CommitPass
  persistence::CommitGather gather_;     // always: when CommitPass runs (DrainAll)
#ifdef KV_HAVE_MIRROR
  std::unique_ptr<mirror::Mirror> mirror_;  // set for a bucket that mirrors an upstream
#endif
};

Worker::~Worker() {
  for (auto& [sock, c] : connections_) ::close(sock);
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (signal_fd_ >= 0) ::close(signal_fd_);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

bool Worker::Start(int listen_fd, std::string* error) {
  listen_fd_ = listen_fd;
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGUSR1);
  sigaddset(&mask, SIGUSR2);
  sigaddset(&mask, SIGHUP);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  signal_fd_ = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (signal_fd_ < 0 || epoll_fd_ < 0) {
    *error = std::string("cannot set up the event loop: ") + std::strerror(errno);
    return false;
  }
  for (int fd : {listen_fd_, signal_fd_}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }
  return true;
}

void Worker::Close(int sock, const char* why) {
  auto it = connections_.find(sock);
  if (it == connections_.end()) return;
  if (why != nullptr) spdlog::warn("closing client channel (fd {}): {}", sock, why);
  // The client hung up or its ring is corrupt: the channel is most likely gone for good, so its
  // entry is the first to be reused (a worker that stops or crashes never gets here: its
  // clients' entries wait for the next worker).
  if (it->second->dedup != shm::kNoDedupEntry) store_.dedup().Retire(it->second->dedup);
  if (it->second->subscriber) store_.RemoveSubscriber();
  if (it->second->answered_round == gather_.last() && !it->second->committing) gather_.Left();
#ifdef KV_HAVE_MIRROR
  if (mirror_) mirror_->Forget(sock);
#endif
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, sock, nullptr);
  ::close(sock);
  connections_.erase(it);
}

void Worker::Accept() {
  for (;;) {
    int sock = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (sock < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        spdlog::error("cannot accept a client: {}", std::strerror(errno));
      }
      return;
    }
    if (connections_.size() >= kMaxConnections) {
      std::string reply = shm::EncodeControlReply(shm::ControlStatus::kBusy, "too many clients");
      shm::SendPacket(sock, reply.data(), reply.size());
      ::close(sock);
      continue;
    }
    auto c = std::make_unique<Connection>();
    c->sock = sock;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.fd = sock;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, sock, &ev);
    connections_.emplace(sock, std::move(c));
  }
}

void Worker::Register(Connection& c) {
  char buf[64];
  int fd = -1;
  ssize_t n;
  // A client adopting its channel after a crash first re-sends the staged values of its staged
  // frames not yet consumed (docs/protocol.md, "Large values").
  while ((n = shm::ReceivePacket(c.sock, buf, sizeof buf, &fd)) == 1 &&
         buf[0] == shm::kStagedPacket && fd >= 0 && c.staged.size() < kMaxStagedPerConnection) {
    c.staged.push_back(fd);
    fd = -1;
  }
  if (n < 0 && errno == EAGAIN) return;
  if (n == 0) {  // the client left (or was killed) before registering
    Close(c.sock, nullptr);
    return;
  }
  std::string error = "registration packet is malformed";
  if (n > 0 && !shm::PeerMayAccess(c.sock)) {
    // Refused after reading its packet: closing with the packet unread would reset the peer
    // (ECONNRESET) before it could read the refusal.
    if (fd >= 0) ::close(fd);
    std::string reply = shm::EncodeControlReply(shm::ControlStatus::kDenied,
                                                "PERMISSION: not a member of the instance's group");
    shm::SendPacket(c.sock, reply.data(), reply.size());
    Close(c.sock, nullptr);
    return;
  }
  if (n == static_cast<ssize_t>(shm::kRegisterMessageSize) && fd < 0 &&
      std::memcmp(buf, shm::kSubscribeMessage, shm::kRegisterMessageSize) == 0) {
    c.subscriber = true;  // no reply: the subscriber never reads this socket
    store_.AddSubscriber();
    return;
  }
  bool adopt = n == static_cast<ssize_t>(shm::kRegisterMessageSize) &&
               std::memcmp(buf, shm::kAdoptMessage, shm::kRegisterMessageSize) == 0;
  bool ok = n == static_cast<ssize_t>(shm::kRegisterMessageSize) &&
            (adopt || std::memcmp(buf, shm::kRegisterMessage, shm::kRegisterMessageSize) == 0) &&
            fd >= 0;
  if (ok) {
    c.channel = shm::Channel::Attach(fd, &error);
    fd = -1;  // owned by the channel now (closed by it on failure)
    ok = c.channel.valid();
    if (ok) {
      error = BindDedup(c, adopt);
      ok = error.empty();
    }
  }
  if (fd >= 0) ::close(fd);
  if (!ok) {
    std::string reply = shm::EncodeControlReply(shm::ControlStatus::kInvalid, error);
    shm::SendPacket(c.sock, reply.data(), reply.size());
    Close(c.sock, error.c_str());
    return;
  }
  c.requests = c.channel.RequestReader();
  c.replies = c.channel.ReplyWriter();
  c.registered = true;
#ifdef KV_HAVE_MIRROR
  if (mirror_) mirror_->Attach(c.sock, c.channel.channel_id(), c.replay_until);
#endif
  std::string reply = shm::EncodeControlReply(shm::ControlStatus::kOk, {});
  shm::SendPacket(c.sock, reply.data(), reply.size());
}

std::string Worker::BindDedup(Connection& c, bool adopt) {
  shm::ChannelDedup& dedup = store_.dedup();
  std::uint64_t id = c.channel.channel_id();
  // A client whose registration timed out hangs up and registers the same channel again: if its
  // earlier connection is still here (hung up, not yet handled), finish it first, as a hang-up.
  std::vector<int> left;
  for (const auto& [sock, other] : connections_) {
    if (other.get() == &c || !other->registered || other->channel.channel_id() != id) continue;
    pollfd p{sock, POLLRDHUP, 0};
    if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR | POLLRDHUP)) != 0) {
      left.push_back(sock);
    }
  }
  for (int sock : left) {
    Connection& other = *connections_.at(sock);
    while (other.registered && DrainCommitted(other) != 0 && !other.paused) {
    }
    Close(sock, other.registered ? nullptr : "its ring is corrupt");
  }
  std::vector<bool> in_use(shm::kDedupEntries, false);
  for (const auto& [sock, other] : connections_) {
    if (other->registered && other->dedup != shm::kNoDedupEntry) in_use[other->dedup] = true;
  }
  std::uint32_t index = dedup.Find(id);
  if (index != shm::kNoDedupEntry && in_use[index]) return "this channel is already registered";
  if (adopt) {
    // A channel this bucket has no record of (its entry was reused, or the log was reset):
    // which of its requests were applied is unknown, so none is taken.
    if (index == shm::kNoDedupEntry) {
      return "the bucket has no record of this channel (register a new one)";
    }
    // The frames published before now may have been taken by the previous worker.
    c.dedup = index;
    c.replay_until = c.channel.header()->request_tail.load(std::memory_order_acquire);
    // The dead worker's last sleep number must not pass for one of ours (the client would not
    // ring for it): the channel's wake words start afresh, as on a new channel.
    c.channel.header()->worker_waiting.store(0, std::memory_order_relaxed);
    dedup.Touch(index);
    return {};
  }
  index = dedup.Claim(id, [&](std::uint32_t i) { return in_use[i]; });
  if (index == shm::kNoDedupEntry) return "every exactly-once entry is in use";
  c.dedup = index;
  return {};
}

Worker::Replay Worker::ReplayApplied(Connection& c, const shm::Request& request,
                                     shm::WireStatus status) {
  const shm::DedupEntry& e = store_.dedup().entry(c.dedup);
  const shm::RequestHeader& header = request.header;
  if (header.request_id > e.applied_seq) return Replay::kNotApplied;
  // Only the last applied request can still be waited for: the client waits for each sync
  // request's reply before it sends the next one (a timed-out one's late reply is discarded).
  bool answer = (header.flags & shm::kFlagNoReply) == 0 && header.request_id == e.applied_seq;
  auto replayed = static_cast<shm::WireStatus>(e.status);
  bool stage = false;
  old_value_.clear();
  if (answer) {  // reserve the reply first, as Drain does
    if (!shm::ChannelDedup::ReplyValue(e, store_.table().view(), &old_value_)) {
      spdlog::warn("client channel (fd {}): the old value of applied delete {} is gone", c.sock,
                   header.request_id);
      replayed = shm::WireStatus::kInternal;
    }
    stage = shm::ReplySize(old_value_.size()) > c.replies.max_payload();
    std::size_t size = shm::ReplySize(stage ? 0 : old_value_.size());
    bool broken = false;
    if (c.replies.Begin(static_cast<std::uint32_t>(size), &broken) == nullptr) {
      if (!broken) return Replay::kPaused;
      c.registered = false;
      c.hung_up = true;
      return Replay::kAnswered;
    }
  }
  if (status == shm::WireStatus::kOk && request.staged()) {
    TakeStagedValue(c, header.value_len);  // the client re-sent it with the registration
  }
  if (!answer) return Replay::kAnswered;
  if (stage && !SendStagedValue(c, old_value_)) {
    replayed = shm::WireStatus::kInternal;
    old_value_.clear();
  }
  Reply(c, header, replayed, e.number, old_value_);
  return Replay::kAnswered;
}

bool Worker::MirroredOldValue(const void* mirrored, std::string* value) {
#ifdef KV_HAVE_MIRROR
  const auto* outcome = static_cast<const mirror::Outcome*>(mirrored);
  if (outcome->status != shm::WireStatus::kOk) return false;
  *value = outcome->value;
  return true;
#else
  (void)mirrored;
  (void)value;
  return false;
#endif
}

void Worker::ReadPackets(Connection& c) {
  for (;;) {
    char buf[64];
    int fd = -1;
    ssize_t n = shm::ReceivePacket(c.sock, buf, sizeof buf, &fd);
    if (n == 0) c.hung_up = true;
    if (n < 0 && errno == EMSGSIZE) continue;  // an oversized packet: dropped, keep reading
    if (n <= 0) return;
    if (fd < 0) continue;  // a doorbell
    if (buf[0] == shm::kDoorbellFdPacket && c.doorbell < 0) {
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLET;
      ev.data.fd = fd;  // not a connection: HandleEvents only wakes up for it
      if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) == 0) {
        c.doorbell = fd;
        continue;
      }
      spdlog::warn("client channel (fd {}): doorbell descriptor refused: {}", c.sock,
                   std::strerror(errno));
      ::close(fd);
      continue;
    }
    if (c.staged.size() >= kMaxStagedPerConnection || buf[0] != shm::kStagedPacket) {
      spdlog::warn("client channel (fd {}): unexpected descriptor dropped", c.sock);
      ::close(fd);
      continue;
    }
    c.staged.push_back(fd);
  }
}

bool Worker::TakeStagedValue(Connection& c, std::uint32_t size) {
  // The client sends the memfd before it publishes the frame, so it is queued by now.
  if (c.staged.empty()) ReadPackets(c);
  if (c.staged.empty()) {
    spdlog::warn("client channel (fd {}): staged request without a staged value", c.sock);
    return false;
  }
  int fd = c.staged.front();
  c.staged.pop_front();
  std::string error;
  bool ok = shm::ReadStagedValue(fd, size, &staged_value_, &error);
  ::close(fd);
  if (!ok) spdlog::warn("client channel (fd {}): {}", c.sock, error);
  return ok;
}

bool Worker::SendStagedValue(Connection& c, std::string_view value) {
  std::string error;
  int fd = shm::CreateStagedValue(value, &error);
  if (fd < 0) {
    spdlog::warn("cannot stage a reply value: {}", error);
    return false;
  }
  bool ok = shm::SendPacket(c.sock, &shm::kStagedPacket, 1, fd, MSG_DONTWAIT);
  if (!ok) spdlog::warn("client channel (fd {}): cannot send a staged reply value", c.sock);
  ::close(fd);
  return ok;
}

void Worker::Reply(Connection& c, const shm::RequestHeader& header, shm::WireStatus status,
                   std::int64_t number, std::string_view value) {
  if ((header.flags & shm::kFlagNoReply) != 0) {
    // An async delete of a missing key did what was asked; anything else is a failure.
    bool benign =
        status == shm::WireStatus::kOk || (status == shm::WireStatus::kNotFound &&
                                           static_cast<shm::Op>(header.op) == shm::Op::kDelete);
    if (!benign) {
      c.channel.header()->async_last_status.store(static_cast<std::uint32_t>(status),
                                                  std::memory_order_relaxed);
      c.channel.header()->async_failures.fetch_add(1, std::memory_order_release);
    } else if (status == shm::WireStatus::kOk && persistence_.SyncsEachBatch()) {
      c.unsynced.NoteAsyncWrite();
    }
    return;
  }
  bool broken = false;
  bool staged = shm::ReplySize(value.size()) > c.replies.max_payload();
  std::size_t size = shm::ReplySize(staged ? 0 : value.size());
  char* out = c.replies.Begin(static_cast<std::uint32_t>(size), &broken);
  if (out == nullptr) return;  // Drain() reserved the space first; unreachable
  if (staged) {
    shm::EncodeStagedReply(out, status, header.request_id, number,
                           static_cast<std::uint32_t>(value.size()));
  } else {
    shm::EncodeReply(out, status, header.request_id, number, value);
  }
  if (status == shm::WireStatus::kOk && persistence_.SyncsEachBatch()) {
    c.unsynced.NoteReply(out);
  }
  c.replies.Commit();
}

std::size_t Worker::Drain(Connection& c) {
  std::size_t did = 0;
  c.paused = false;
  for (int n = 0; n < kMaxBatchPerChannel; ++n) {
    bool broken = false;
    std::uint32_t size = 0;
    const char* frame = c.requests.Next(&size, &broken);
    if (broken) {
      c.requests = shm::RingReader();
      c.registered = false;
      c.hung_up = true;  // closed by the caller
      spdlog::warn("client channel (fd {}): request ring indices or frame header are invalid",
                   c.sock);
      return did;
    }
    if (frame == nullptr) break;
    if (n == 0) prefetch_.Start(c.requests);
    prefetch_.Advance(c.requests, store_.table());
    shm::Request request;
    shm::WireStatus status = shm::DecodeRequest(frame, size, &request);
    if (c.requests.after_current() <= c.replay_until) {  // adopted after a crash
      Replay replay = ReplayApplied(c, request, status);
      if (replay == Replay::kPaused) {
        c.paused = true;
        break;
      }
      if (!c.registered) return did;  // its reply ring is broken: closed by the caller
      if (replay == Replay::kAnswered) {
        c.requests.Pop();
        ++did;
        continue;
      }
    }
    bool wants_reply = (request.header.flags & shm::kFlagNoReply) == 0;
    auto op = static_cast<shm::Op>(request.header.op);
    // A mirrored bucket's writes go to the upstream first (daemon/mirror/mirror.h): `mirrored`
    // is the outcome, applied to the table already if the upstream acknowledged it.
    const void* mirrored = nullptr;
#ifdef KV_HAVE_MIRROR
    if (mirror_ && status == shm::WireStatus::kOk && MirrorRefuses(request)) {
      status = shm::WireStatus::kUnsupported;
    }
    const mirror::Outcome* outcome = nullptr;
    bool mirror_op = mirror_ && status == shm::WireStatus::kOk && mirror::Mirror::Handles(request);
    if (mirror_op && !request.staged()) {
      mirror_->Prepare(c.sock, c.requests, request);
      outcome = &mirror_->Take(c.sock, c.requests.after_current(), request);
      mirrored = outcome;
    }
#endif
    // Reserve the reply before applying, so an applied write always gets its reply. A delete's
    // reply carries the old value: inline if it fits the reply ring, else staged (a memfd).
    std::size_t reply_size = shm::ReplySize(0);
    bool stage_reply = false;
    if (status == shm::WireStatus::kOk && op == shm::Op::kDelete && wants_reply &&
        (mirrored != nullptr ? MirroredOldValue(mirrored, &old_value_)
                             : store_.table().view().Get(request.key, &old_value_, nullptr) ==
                                   shm::ReadResult::kFound)) {
      stage_reply = shm::ReplySize(old_value_.size()) > c.replies.max_payload();
      if (!stage_reply) reply_size = shm::ReplySize(old_value_.size());
    }
    if (wants_reply &&
        c.replies.Begin(static_cast<std::uint32_t>(reply_size), &broken) == nullptr) {
      if (broken) {
        c.registered = false;
        c.hung_up = true;
        spdlog::warn("client channel (fd {}): reply ring indices are invalid", c.sock);
        return did;
      }
      c.paused = true;  // the client is not reading its replies; try again later
      break;
    }
    if (status == shm::WireStatus::kOk && request.staged()) {
      if (TakeStagedValue(c, request.header.value_len)) {
        request.value = staged_value_;
      } else {
        status = shm::WireStatus::kMalformed;
      }
    }
#ifdef KV_HAVE_MIRROR
    if (mirror_op && outcome == nullptr && status == shm::WireStatus::kOk) {
      outcome = &mirror_->Take(c.sock, c.requests.after_current(), request);  // a staged value
      mirrored = outcome;
    }
#endif
    if (status == shm::WireStatus::kOk && op != shm::Op::kFlush && !persistence_.AcceptsWrites()) {
      status = shm::WireStatus::kPersistence;
    }
    // The old value goes out before the delete is applied: if the socket refuses it, nothing
    // changes and the client gets an error instead of a lost value.
    if (status == shm::WireStatus::kOk && stage_reply && !SendStagedValue(c, old_value_)) {
      status = shm::WireStatus::kInternal;
    }
    std::int64_t number = 0;
    reply_value_.clear();
    // Exactly once across a crash: the outcome is logged atomically with the table write.
    store_.dedup().Begin(c.dedup, request.header.request_id, request.header.op,
                         store_.table().view());
    if (status == shm::WireStatus::kOk && mirrored != nullptr) {
#ifdef KV_HAVE_MIRROR
      status = outcome->status;
      number = outcome->number;
      reply_value_ = outcome->value;
#endif
    } else if (status == shm::WireStatus::kOk) {
      status = store_.Apply(request, &number, &reply_value_);
      store_.RecordChange(request, status, number);
      persistence_.OnApplied(request, status, number);
      CrashPoint("after-apply");
    } else {
      spdlog::warn("rejected request id {}: {}", request.header.request_id,
                   shm::WireStatusName(status));
    }
    store_.dedup().Finish(static_cast<std::uint8_t>(status), number);
    Reply(c, request.header, status, number, reply_value_);
    c.requests.Pop();
    if (++did % shm::kPulseEveryRequests == 0) Pulse();
  }
  if (did != 0) {
    // The batch is made durable (appendfsync always) before anything is published, and its
    // replies are published before its requests are released: a worker killed anywhere in
    // between leaves the frames to its successor, which answers the last one again from the
    // exactly-once log (the client discards a reply it already has). Released first, a kill
    // before the replies left the client waiting for an answer no worker would give.
    // With appendfsync always the commit is the pass's (CommitPass), shared by every channel.
    if (persistence_.SyncsEachBatch()) {
      if (!c.committing) {
        c.committing = true;
        committing_.push_back(&c);
        gather_.Joined(c.answered_round);
      }
    } else {
      persistence_.Commit();  // writes a large buffer; the syncer makes it durable
      FinishBatch(c);
    }
  }
  if (staged_value_.capacity() > (1u << 20)) std::string().swap(staged_value_);  // 16 MiB peaks
  return did;
}

void Worker::CommitPass() {
  if (committing_.empty()) return;
  bool durable = persistence_.Commit();
  std::size_t answered = 0;
  for (Connection* c : committing_) {
    if (durable) {
      c->unsynced.Clear();
    } else {
      c->unsynced.Fail(c->channel.header());
    }
    c->committing = false;
    if (FinishBatch(*c)) {
      c->answered_round = gather_.last() + 1;
      ++answered;
    }
  }
  committing_.clear();
  gather_.Committed(answered, persistence_.TakeSyncTime(), Clock::now());
}

bool Worker::FinishBatch(Connection& c) {
  bool replied = c.replies.Publish();
  CrashPoint("before-request-release");
  c.requests.Release();
  if (replied) WakeClient(c);
  return replied;
}

void Worker::WakeClient(Connection& c) {
  CrashPoint("before-reply-wake");
  shm::ChannelHeader* h = c.channel.header();
  h->reply_seq.fetch_add(1, std::memory_order_release);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (h->client_waiting.load(std::memory_order_relaxed) != 0) shm::FutexWakeAll(&h->reply_seq);
}

std::size_t Worker::DrainAll() {
  std::size_t did = 0;
  // Drain may find a channel broken: collect the registered ones first, close after.
  ready_.clear();
  for (auto& [sock, c] : connections_) {
    if (c->registered) ready_.push_back(c.get());
    c->delivered = false;
  }
  // Group commit (appendfsync always, persistence/commit_gather.h): while the clients the last
  // commit answered are still sending their next requests, look again (each channel's batch is
  // taken once) rather than sleep or commit without them.
  for (bool again = true; again;) {
    for (Connection* c : ready_) {
      if (!c->registered || c->committing) continue;
      std::size_t taken = Drain(*c);
      c->delivered = c->delivered || taken != 0;
      did += taken;
    }
    if (!persistence_.SyncsEachBatch()) break;
    auto now = Clock::now();
    again = committing_.empty() ? gather_.Expecting(now)
                                : persistence_.CommitPending() && gather_.Wait(now);
    if (again) ::sched_yield();  // the clients it waits for may need this CPU
  }
  CommitPass();
  for (Connection* c : ready_) {
    if (c->delivered) busy_priority_.Delivered(&c->busy_window);
    if (c->hung_up && !c->registered) Close(c->sock, "its ring is corrupt");
  }
  return did;
}

void Worker::ScoreIdlePeriod(Clock::time_point idle_start) {
  bool earned = idle_spin_.Earned(Clock::now() - idle_start);
  for (auto& [sock, c] : connections_) {
    if (c->delivered) c->spin.Observe(earned);
  }
}

IdleSpin::Channels Worker::SpinCandidates(int cpu) const {
  IdleSpin::Channels out;
  for (const auto& [sock, c] : connections_) {
    if (!c->registered) continue;
    if (c->channel.header()->client_cpu.load(std::memory_order_relaxed) == cpu) continue;
    out.elsewhere = true;
    if (c->spin.Earns()) {
      out.earning = true;
      break;
    }
  }
  return out;
}

int Worker::PublishCpu() {
  int cpu = ::sched_getcpu();
  store_.SetWorkerCpu(cpu);
  return cpu;
}

int Worker::ActiveExpire(int cap) {
  std::uint64_t next = store_.NextExpiry();
  if (next == 0) return cap;
  std::uint64_t now = shm::RealtimeCoarseMillis();
  if (next <= now) {
    store_.ExpireDue(now, kExpiredPerPass,
                     [this](std::string_view key) { persistence_.OnExpired(key); });
    next = store_.NextExpiry();
    if (next == 0) return cap;
    if (next <= now) return 0;  // more are due: come back without sleeping
  }
  // The coarse clock advances once per tick: wake a tick late rather than early.
  return static_cast<int>(std::min<std::uint64_t>(next - now + 1, static_cast<std::uint64_t>(cap)));
}

bool Worker::AnyPending() const {
  for (const auto& [sock, c] : connections_) {
    if (c->registered && !c->paused && !c->requests.Empty()) return true;
  }
  return false;
}

void Worker::SetWaiting(std::uint32_t waiting) {
  for (auto& [sock, c] : connections_) {
    if (c->registered)
      c->channel.header()->worker_waiting.store(waiting, std::memory_order_relaxed);
  }
}

void Worker::HandleEvents(int timeout_ms) {
  epoll_event events[64];
  int n = ::epoll_wait(epoll_fd_, events, 64, timeout_ms);
  for (int i = 0; i < n; ++i) {
    int fd = events[i].data.fd;
    if (fd == listen_fd_) {
      Accept();
    } else if (fd == signal_fd_) {
      signalfd_siginfo info;
      while (::read(signal_fd_, &info, sizeof info) == sizeof info) {
        if (info.ssi_signo == SIGUSR2) {
          persistence_.RequestSave();
          continue;
        }
        if (info.ssi_signo == SIGUSR1) drop_ = true;
        if (info.ssi_signo != SIGHUP) stop_ = true;
      }
    } else if (fd == persistence_.child_fd()) {
      persistence_.OnChildEvent();
#ifdef KV_HAVE_MIRROR
    } else if (mirror_ && fd == mirror_->event_fd()) {
      mirror_->OnEvent();
#endif
    } else {
      auto it = connections_.find(fd);
      if (it == connections_.end()) continue;  // a doorbell eventfd: the loop drains the rings
      Connection& c = *it->second;
      if (c.subscriber) {  // it has nothing more to say: its packets are read as a channel's
        ReadPackets(c);    // (bounded, and never used); it is closed on hang-up
        if (c.hung_up || (events[i].events & (EPOLLHUP | EPOLLRDHUP | EPOLLERR))) {
          Close(fd, nullptr);
        }
        continue;
      }
      if (!c.registered) {
        if (events[i].events & EPOLLIN) Register(c);
        if (connections_.count(fd) != 0 && !c.registered &&
            (events[i].events & (EPOLLHUP | EPOLLRDHUP | EPOLLERR))) {
          Close(fd, nullptr);
        }
        continue;
      }
      ReadPackets(c);
      if (c.hung_up || (events[i].events & (EPOLLHUP | EPOLLRDHUP | EPOLLERR))) {
        // Apply everything the dead client published completely; then release its channel.
        while (c.registered && DrainCommitted(c) != 0 && !c.paused) {
        }
        Close(fd, c.registered ? nullptr : "its ring is corrupt");
      }
    }
  }
}

void Worker::Run() {
  store_.SetWaitPolicy(options_.wait_policy);
  // Subscribers registered with the previous worker look at worker_pid (stored by now) when they
  // wake, and register with this one (shm/change_feed.h, "Waking").
  store_.WakeSubscribers();
  auto last_heartbeat = Clock::now();
  std::size_t peak_taken = 0;  // most requests one pass took since the last heartbeat
  unsigned iterations = 0;
  // The current idle period (every ring empty since idle_start): spin for spin_budget, then sleep
  // (daemon/idle_spin.h decides the budget from what spins earned lately).
  bool idle = false;
  Clock::time_point idle_start{};
  std::chrono::nanoseconds spin_budget{0};
  while (!stop_) {
    Pulse();
    std::size_t taken = DrainAll();
    peak_taken = std::max(peak_taken, taken);
    bool did = taken != 0;
    bool building = store_.AdvanceNextGeneration(taken);
    if (did && idle) {
      ScoreIdlePeriod(idle_start);  // one clock read per idle period, none per request
      idle = false;
    }
    // Reading the clock is not free (a system call on some VMs): while requests keep coming,
    // only every 64 passes, with the look for new clients, hang-ups and signals.
    bool periodic = (++iterations & 63) == 0;
#ifdef KV_HAVE_MIRROR
    // A mirror's writes each waited for a reply from the upstream in this pass: its announcements
    // are looked for after every busy pass (one epoll_wait, far less than that round trip), not
    // every 64th, which kept changes made elsewhere waiting for 64 round trips while the bucket
    // was written to.
    if (did && mirror_ && !periodic) mirror_->OnEvent();
#endif
    if ((did || building) && !periodic) continue;
    int expiry_ms = ActiveExpire(1000);
    // Subscribers are woken when the stream pauses, and every 256 busy passes while it does not:
    // a futex wake per batch would cost the writer a system call and wake every subscriber for
    // a few records each. (The records themselves are in the feed before their replies.)
    if (!did || (iterations & 255) == 0) store_.PublishChanges();
    auto now = Clock::now();
    persistence_.Tick(now);
#ifdef KV_HAVE_MIRROR
    if (mirror_) mirror_->Tick(now);
#endif
    busy_priority_.Tick(now);
    if (now - last_heartbeat > std::chrono::seconds(1)) {
      store_.Heartbeat();
      store_.SetQueueDepth(peak_taken);
      peak_taken = 0;
      last_heartbeat = now;
    }
    if (!did && !idle) {
      idle = true;
      idle_start = now;
      spin_budget = idle_spin_.Budget(SpinCandidates(PublishCpu()));
    }
    if (did || building || now - idle_start < spin_budget) {
      if (periodic) HandleEvents(0);
      if (!did && !building) __builtin_ia32_pause();
      continue;
    }
    persistence_.BeforeSleep();
    if (++sleep_number_ == 0) sleep_number_ = 1;
    SetWaiting(sleep_number_);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    bool any_paused = false;
    for (auto& [sock, c] : connections_) any_paused |= c->paused;
    int sleep_ms = std::min(any_paused ? 10 : 1000, expiry_ms);
#ifdef KV_HAVE_MIRROR
    if (mirror_) sleep_ms = std::min(sleep_ms, mirror_->TickMs());
#endif
    if (!AnyPending()) HandleEvents(sleep_ms);
    PublishCpu();  // it may wake up elsewhere
    SetWaiting(0);
  }
  DrainAll();
  persistence_.Stop(drop_);
  store_.CloseChanges();
  if (drop_) store_.MarkDropped();
}

}  // namespace

int RunWorker(const WorkerOptions& options) {
  ArmCrashPoints();
  SetWorkerNice(options.nice);  // before any thread: they inherit it
  // The socket address is the bucket's writer lock: bind it before touching any segment.
  int listen_fd = shm::ListenSeqpacket(shm::BucketSocketAddress(options.ns, options.bucket_id));
  if (listen_fd < 0) {
    if (errno == EADDRINUSE) {
      spdlog::error("another worker already serves bucket {}", options.bucket_id);
      return 3;
    }
    spdlog::error("cannot listen on the bucket socket: {}", std::strerror(errno));
    return 1;
  }
  std::string error;
  bool fresh = false;
  std::optional<BucketStore> store =
      BucketStore::Open(options.ns, options.bucket_id, options.limits, &error, &fresh);
  if (!store) {
    spdlog::error("cannot open bucket {}: {}", options.bucket_id, error);
    ::close(listen_fd);
    return 1;
  }
  CrashPoint("worker-start");  // supervisor tests: a worker that dies at every start
  std::uint64_t generation = store->table().generation();
  Worker worker(options, std::move(*store));
  if (!worker.Start(listen_fd, &error)) {
    spdlog::error("{}", error);
    return 1;
  }
  bool refused = false;
  if (!worker.OpenPersistence(fresh, &error, &refused)) {
    spdlog::error("bucket {}: {}", options.bucket_id, error);
    if (!refused) return 1;
    // Nothing of the bucket may stay in shared memory: a later start would take it for the truth.
    if (fresh) worker.RemoveObjects();
    std::string line = "REFUSED " + error + "\n";
    if (::write(STDOUT_FILENO, line.data(), line.size()) < 0) {
      // Started by hand: the log says it.
    }
    return persistence::kExitDataRefused;
  }
  // A bucket that mirrors an upstream (docs/mirror.md): kvd recorded it in the registry.
  shm::UpstreamSpec upstream;
  shm::ShmError registry_error;
  if (std::optional<shm::RegistryReader> registry =
          shm::RegistryReader::Open(options.ns, &registry_error)) {
    for (const shm::BucketRecord& r : registry->List()) {
      if (r.bucket_id == options.bucket_id) upstream = r.upstream;
    }
  }
  if (!upstream.empty()) {
#ifdef KV_HAVE_MIRROR
    worker.StartMirror(upstream);
    spdlog::info("bucket {} mirrors {} (prefix '{}')", options.bucket_id, upstream.url,
                 upstream.prefix);
#else
    spdlog::error("bucket {} mirrors {}, but this kvd was built without hiredis", options.bucket_id,
                  upstream.url);
    return 1;
#endif
  }
  static constexpr char kReady[] = "READY\n";
  if (::write(STDOUT_FILENO, kReady, sizeof kReady - 1) < 0) {
    // Started by hand, without kvd's pipe: nothing to tell.
  }
  int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (devnull >= 0) {
    ::dup2(devnull, STDOUT_FILENO);
    ::close(devnull);
  }
  spdlog::info("serving bucket {} (generation {})", options.bucket_id, generation);
  worker.Run();
  spdlog::info("stopped{}", worker.dropped() ? " (bucket dropped)" : "");
  return 0;
}

}  // namespace kv::daemon
