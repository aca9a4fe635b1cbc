#include "write_channel.h"

#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "shm/control_message.h"
#include "shm/names.h"
#include "shm/unix_socket.h"

namespace kv {
namespace {

using Clock = std::chrono::steady_clock;

// Spin at most this long for a reply before sleeping on the futex: a worker that is running
// answers a small write in well under this, and a sleeping client costs a futex wake on the
// worker side.
constexpr std::chrono::nanoseconds kReplySpin = std::chrono::microseconds(50);
// Adaptive waiting (shm::kWaitAdaptive): a worker that is running stores a new pulse at least
// every few requests it applies (a microsecond or two); a pulse that stands still this long
// means the worker is not on a CPU, and the reply cannot come before it is: sleep at once.
constexpr std::chrono::nanoseconds kStalledPulse = std::chrono::microseconds(4);
// A worker that was asleep when the request was sent (and has been rung for) is given this long
// to wake up and start pulsing, if such spins paid lately (wake_spin_): on an idle machine it
// wakes within a few to some tens of microseconds, and a client that spins through it is
// answered without a futex round trip, which keeps both sides in the fast, spinning regime; on
// a busy one the woken worker waits for a CPU, and a spin would only delay it. One wait in
// kWakeProbeEvery spins anyway, to notice when waking becomes quick again.
constexpr std::chrono::nanoseconds kWakeGrace = std::chrono::microseconds(30);
constexpr unsigned kWakeProbeEvery = 16;
// While spinning for a reply, look at the ring this many times between looks at the clock and at
// the worker's pulse.
constexpr unsigned kSpinPollsPerClockRead = 32;
// While sleeping for a reply, wake to look for a dead worker (its socket hangs up) after the
// first slice, then after slices twice as long each, up to the last: a worker killed during a
// write is noticed within about a millisecond, and a long wait costs a few wake-ups.
constexpr long kFirstSleepSliceNs = 1'000'000;
constexpr long kMaxSleepSliceNs = 16'000'000;

inline void CpuRelax() { __builtin_ia32_pause(); }

// Milliseconds of CLOCK_MONOTONIC_COARSE: no system call, and advancing once per kernel tick
// (1-4 ms). A channel that answered within the current tick is assumed alive without a poll().
long CoarseTick() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1'000'000;
}

}  // namespace

long WriteChannel::Deadline::remaining_ns() {
  auto now = Clock::now();
  if (!set_) {
    at_ = now + timeout_;
    set_ = true;
  }
  return std::chrono::duration_cast<std::chrono::nanoseconds>(at_ - now).count();
}

WriteChannel::WriteChannel(std::string ns, std::uint64_t bucket_id, std::string bucket_name,
                           const shm::AnchorHeader* anchor)
    : ns_(std::move(ns)),
      bucket_id_(bucket_id),
      bucket_name_(std::move(bucket_name)),
      anchor_(anchor) {}

WriteChannel::~WriteChannel() { Reset(); }

void WriteChannel::Reset() {
  if (channel_.valid()) {
    std::uint64_t total = channel_.header()->async_failures.load(std::memory_order_acquire);
    async_failures_lost_ += total - async_failures_seen_;
  }
  async_failures_seen_ = 0;
  rung_for_sleep_ = 0;
  if (sock_ >= 0) ::close(sock_);
  if (doorbell_ >= 0) ::close(doorbell_);
  sock_ = -1;
  doorbell_ = -1;
  channel_ = shm::Channel();
  requests_ = shm::RingWriter();
  replies_ = shm::RingReader();
}

Status WriteChannel::Unavailable(const std::string& why) const {
  return Status(Code::kUnavailable, "worker of bucket '" + bucket_name_ + "' " + why);
}

bool WriteChannel::WorkerGone() const {
  // The worker sends staged reply values on the socket, so readable is not gone: only a hang-up.
  pollfd p{sock_, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR | POLLRDHUP)) != 0;
}

bool WriteChannel::StaleChannel() {
  // A poll() per write would cost a syscall on the hot path: look for a hang-up only when the
  // worker has not been heard from for a while. (A worker can die right after any check; a write
  // that then reaches a dead ring fails with kUnavailable either way.)
  long tick = CoarseTick();
  if (tick == last_alive_tick_) return false;
  last_alive_tick_ = tick;
  return WorkerGone() && replies_.Empty();
}

Status WriteChannel::Connect(Deadline& deadline) {
  sock_ = shm::ConnectSeqpacket(shm::BucketSocketAddress(ns_, bucket_id_));
  if (sock_ < 0) {
    int err = errno;
    Reset();
    if (err == EACCES || err == EPERM) return Status(Code::kPermissionDenied, std::strerror(err));
    return Unavailable(std::string("is not running (") + std::strerror(err) + ")");
  }
  std::string error;
  channel_ = shm::Channel::Create(shm::kDefaultRequestCapacity, shm::kDefaultReplyCapacity, &error);
  if (!channel_.valid()) {
    Reset();
    return Status(Code::kInternal, error);
  }
  if (!shm::SendPacket(sock_, shm::kRegisterMessage, shm::kRegisterMessageSize, channel_.fd())) {
    Reset();
    return Unavailable("refused the channel");
  }
  long remaining_ms = deadline.remaining_ns() / 1'000'000;
  if (remaining_ms <= 0 || !shm::WaitReadable(sock_, static_cast<int>(remaining_ms))) {
    Reset();
    return Status(Code::kTimeout, "worker of bucket '" + bucket_name_ +
                                      "' did not accept the write channel in time");
  }
  char buf[shm::kMaxControlPacket];
  int fd;
  ssize_t n = shm::ReceivePacket(sock_, buf, sizeof buf, &fd);
  if (fd >= 0) ::close(fd);
  shm::ControlStatus status;
  std::string_view message;
  if (n <= 0 || !shm::DecodeControlReply(buf, static_cast<std::size_t>(n), &status, &message)) {
    Reset();
    return Unavailable("closed the channel during registration");
  }
  if (status != shm::ControlStatus::kOk) {
    Code code = status == shm::ControlStatus::kDenied ? Code::kPermissionDenied : Code::kFailed;
    Reset();
    return Status(code, std::string(message));
  }
  requests_ = channel_.RequestWriter();
  replies_ = channel_.ReplyReader();
  // Ring by eventfd from now on (cheaper than a packet for both sides); without one (the worker
  // refused it, or no eventfd could be made), doorbell packets still work.
  int doorbell = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (doorbell >= 0 && shm::SendPacket(sock_, &shm::kDoorbellFdPacket, 1, doorbell)) {
    doorbell_ = doorbell;
  } else if (doorbell >= 0) {
    ::close(doorbell);
  }
  return Status();
}

Status WriteChannel::Send(shm::Op op, std::uint16_t flags, std::string_view key,
                          std::string_view value, std::int64_t arg, Deadline& deadline) {
  // A value too large for a ring frame travels in a sealed memfd sent on the socket just before
  // the frame (which then carries the key only): see docs/protocol.md, "Large values".
  bool staged = shm::RequestSize(key.size(), value.size()) > requests_.max_payload();
  std::size_t size = shm::RequestSize(key.size(), staged ? 0 : value.size());
  int staged_fd = -1;
  if (staged) {
    std::string error;
    staged_fd = shm::CreateStagedValue(value, &error);
    if (staged_fd < 0) return Status(Code::kInternal, error);
  }
  struct CloseFd {
    int fd;
    ~CloseFd() {
      if (fd >= 0) ::close(fd);
    }
  } close_staged{staged_fd};
  shm::ChannelHeader* h = channel_.header();
  for (;;) {
    bool broken = false;
    char* out = requests_.Begin(static_cast<std::uint32_t>(size), &broken);
    if (broken) {
      Reset();
      return Status(Code::kInternal, "write channel of bucket '" + bucket_name_ + "' is corrupt");
    }
    // The frame's space is reserved (only this process fills the ring): hand over the staged
    // value first, so that it is queued on the socket before the worker can see the frame.
    while (out != nullptr && staged_fd >= 0 &&
           !shm::SendPacket(sock_, &shm::kStagedPacket, 1, staged_fd, MSG_DONTWAIT)) {
      if (errno != EAGAIN || WorkerGone()) {
        Reset();
        return Unavailable("refused a staged value");
      }
      if (deadline.remaining_ns() <= 0) {
        return Status(Code::kTimeout,
                      "worker of bucket '" + bucket_name_ + "' is not consuming staged values");
      }
      ::usleep(100);
    }
    if (out != nullptr) {
      if (staged) {
        shm::EncodeStagedRequest(out, op, flags, next_request_id_, key,
                                 static_cast<std::uint32_t>(value.size()), arg);
      } else {
        shm::EncodeRequest(out, op, flags, next_request_id_, key, value, arg);
      }
      requests_.Commit();
      requests_.Publish();
      break;
    }
    // The ring is full: the worker is behind (or stopped). Wait for space, not forever.
    if (WorkerGone()) {
      Reset();
      return Unavailable("exited");
    }
    if (deadline.remaining_ns() <= 0) {
      return Status(Code::kTimeout,
                    "worker of bucket '" + bucket_name_ + "' is not consuming requests");
    }
    ::usleep(100);
  }
  h->client_cpu.store(::sched_getcpu(), std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);  // Dekker: see shm/channel.h
  std::uint32_t sleep = h->worker_waiting.load(std::memory_order_relaxed);
  worker_was_asleep_ = sleep != 0;
  if (sleep != rung_for_sleep_) {
    rung_for_sleep_ = sleep;  // 0 (awake) too: a later sleep of the same number is rung for
    if (sleep != 0) Ring();
  }
  return Status();
}

void WriteChannel::Ring() {
  if (doorbell_ >= 0) {
    std::uint64_t one = 1;
    if (::write(doorbell_, &one, sizeof one) == sizeof one) return;
  }
  // EAGAIN: the socket is full of doorbells the worker has not read yet; one is enough.
  ::send(sock_, &shm::kDoorbellPacket, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
}

bool WriteChannel::ReceiveStagedReply(std::uint32_t size, std::string* value) {
  // The worker sends the memfd before it publishes the reply frame: it is queued by now.
  char byte;
  int fd = -1;
  if (!shm::WaitReadable(sock_, 0) || shm::ReceivePacket(sock_, &byte, 1, &fd) != 1 || fd < 0) {
    if (fd >= 0) ::close(fd);
    return false;
  }
  std::string error;
  bool ok = shm::ReadStagedValue(fd, size, value, &error);
  ::close(fd);
  return ok;
}

Status WriteChannel::AwaitReply(Deadline& deadline, WriteReply* reply) {
  shm::ChannelHeader* h = channel_.header();
  std::uint64_t want = next_request_id_ - 1;
  // Spin while the reply can come soon (adaptive): the worker is not on this CPU, and it is
  // awake with its pulse moving, or was asleep and is within kWakeGrace of being rung for; with
  // dedicated cores, up to kReplySpin whatever it does. The clock and the pulse are read every
  // kSpinPollsPerClockRead polls of the ring.
  bool dedicated = anchor_->wait_policy.load(std::memory_order_relaxed) == shm::kWaitDedicated;
  bool spinning = dedicated || !contention_.Contended();
  bool wake_spin = worker_was_asleep_ && !dedicated &&
                   (wake_spin_.Earns() || ++wake_waits_ % kWakeProbeEvery == 0);
  auto stalled_after = wake_spin ? kWakeGrace : kStalledPulse;
  int cpu = -1;
  Clock::time_point spin_until{};
  Clock::time_point pulse_seen_at{};
  std::uint32_t pulse = 0;
  long sleep_slice = kFirstSleepSliceNs;
  for (unsigned polls = 1;; ++polls) {
    bool broken = false;
    std::uint32_t size;
    const char* frame = replies_.Next(&size, &broken);
    if (broken) {
      Reset();
      return Status(Code::kInternal, "reply ring of bucket '" + bucket_name_ + "' is corrupt");
    }
    if (frame != nullptr) {
      shm::ReplyHeader header;
      std::string_view value;
      bool ok = shm::DecodeReply(frame, size, &header, &value);
      std::string staged_value;
      if (ok && (header.flags & shm::kReplyStagedValue) != 0) {
        ok = ReceiveStagedReply(header.value_len, &staged_value);  // consumed even when late
        value = staged_value;
      }
      if (ok && header.request_id == want) {
        reply->status = static_cast<shm::WireStatus>(header.status);
        reply->number = header.number;
        reply->value.assign(value.data(), value.size());
      }
      replies_.Pop();
      replies_.Release();
      if (!ok) {
        Reset();
        return Status(Code::kInternal, "malformed reply from worker of '" + bucket_name_ + "'");
      }
      last_alive_tick_ = CoarseTick();
      if (header.request_id != want) continue;  // a late reply to a request that timed out earlier
      if (wake_spin) wake_spin_.Observe(true);  // answered within the grace
      return Status();
    }
    if (spinning) {
      if (polls % kSpinPollsPerClockRead != 0) {
        CpuRelax();
        continue;
      }
      auto now = Clock::now();
      std::uint32_t p = anchor_->worker_pulse.load(std::memory_order_relaxed);
      if (polls == kSpinPollsPerClockRead) {
        spin_until = now + kReplySpin;
        pulse = p;
        pulse_seen_at = now;
        cpu = ::sched_getcpu();
      } else if (p != pulse) {
        pulse = p;
        pulse_seen_at = now;
        if (wake_spin) wake_spin_.Observe(true);  // it woke up within the grace
        wake_spin = false;
        stalled_after = kStalledPulse;  // awake now
      }
      bool worker_running =
          dedicated || (now - pulse_seen_at < stalled_after &&
                        anchor_->worker_cpu.load(std::memory_order_relaxed) != cpu);
      if (now < spin_until && worker_running) {
        CpuRelax();
        continue;
      }
      if (wake_spin) wake_spin_.Observe(false);  // the worker did not wake up within the grace
      wake_spin = false;
      spinning = false;
    }
    long remaining = deadline.remaining_ns();
    if (remaining <= 0) {
      return Status(Code::kTimeout, "worker of bucket '" + bucket_name_ +
                                        "' did not reply in time (the write may still be applied)");
    }
    std::uint32_t seq = h->reply_seq.load(std::memory_order_acquire);
    h->client_waiting.store(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (replies_.Empty()) shm::FutexWait(&h->reply_seq, seq, std::min(remaining, sleep_slice));
    sleep_slice = std::min(sleep_slice * 2, kMaxSleepSliceNs);
    h->client_waiting.store(0, std::memory_order_relaxed);
    if (replies_.Empty() && WorkerGone()) {
      Reset();
      return Unavailable("exited before replying (the write may or may not be applied)");
    }
  }
}

Status WriteChannel::Call(shm::Op op, std::string_view key, std::string_view value,
                          std::int64_t arg, std::chrono::milliseconds timeout, WriteReply* reply,
                          bool* sent) {
  *sent = false;
  Deadline deadline(timeout);
  if (sock_ >= 0 && StaleChannel()) Reset();  // the worker restarted since the last call
  if (sock_ < 0) {
    Status s = Connect(deadline);
    if (!s.ok()) return s;
  }
  Status s = Send(op, 0, key, value, arg, deadline);
  if (!s.ok()) return s;
  *sent = true;
  ++next_request_id_;
  return AwaitReply(deadline, reply);
}

}  // namespace kv

namespace kv {

Status WriteChannel::Cast(shm::Op op, std::string_view key, std::string_view value,
                          std::chrono::milliseconds timeout) {
  Deadline deadline(timeout);
  if (sock_ >= 0 && StaleChannel()) Reset();
  if (sock_ < 0) {
    Status s = Connect(deadline);
    if (!s.ok()) return s;
  }
  Status s = Send(op, shm::kFlagNoReply, key, value, 0, deadline);
  if (s.ok()) ++next_request_id_;
  return s;
}

std::uint64_t WriteChannel::TakeAsyncFailures(shm::WireStatus* last) {
  std::uint64_t failures = async_failures_lost_;
  async_failures_lost_ = 0;
  if (channel_.valid()) {
    shm::ChannelHeader* h = channel_.header();
    std::uint64_t total = h->async_failures.load(std::memory_order_acquire);
    failures += total - async_failures_seen_;
    async_failures_seen_ = total;
    *last = static_cast<shm::WireStatus>(h->async_last_status.load(std::memory_order_relaxed));
  }
  return failures;
}

}  // namespace kv
