#include "write_channel.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "shm/coarse_clock.h"
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
// means the worker is not on a CPU, and the reply cannot come before it is: sleep at once. Not
// shorter: a worker is often off its CPU for a few microseconds only, while a client it has just
// woken there reads its reply, and a client elsewhere that slept through that cost both sides a
// futex round trip (four clients on two CPUs: 284-297k/s with 4 us, 302-321k/s with 20 us, and
// p99 53 us -> 22 us; beside four busy loops 101-123k/s -> 128-136k/s).
constexpr std::chrono::nanoseconds kStalledPulse = std::chrono::microseconds(20);
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
// write is noticed within 10 ms, and a long wait costs a few wake-ups. The first slice is longer
// than the scheduler tick (4 ms at HZ=250, 10 ms at HZ=100) on purpose: a timeout earlier than
// the CPU's next tick makes the kernel reprogram the timer hardware when the futex wait arms it
// and again when a wake-up cancels it, which on a VM is an exit to the hypervisor each time. With
// 1 ms, that cost a sleeping hand-off 1.6 us of its 3.6 us (futex ping-pong on one CPU), and kv's
// sync put with client and worker on one CPU 20% of its rate.
constexpr long kFirstSleepSliceNs = 10'000'000;
constexpr long kMaxSleepSliceNs = 40'000'000;
// Waiting for a restarted worker's socket: the first retry after this long, then twice as long
// each time up to the last, so a fast restart is caught within tens of microseconds and a slow
// one costs a few hundred attempts at most.
constexpr long kFirstConnectRetryNs = 50'000;
constexpr long kMaxConnectRetryNs = 10'000'000;

inline void CpuRelax() { __builtin_ia32_pause(); }

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

void WriteChannel::Disconnect() {
  rung_for_sleep_ = 0;  // the next worker numbers its sleeps afresh
  if (sock_ >= 0) ::close(sock_);
  if (doorbell_ >= 0) ::close(doorbell_);  // the dead worker's; the next one gets a new one
  sock_ = -1;
  doorbell_ = -1;
}

void WriteChannel::Reset() {
  if (channel_.valid()) {
    std::uint64_t total = channel_.header()->async_failures.load(std::memory_order_acquire);
    async_failures_lost_ += total - async_failures_seen_;
  }
  async_failures_seen_ = 0;
  Disconnect();
  registered_ = false;
  for (const StagedCopy& s : staged_) ::close(s.fd);
  staged_.clear();
  channel_ = shm::Channel();
  requests_ = shm::RingWriter();
  replies_ = shm::RingReader();
}

void WriteChannel::ForgetConsumedStaged() {
  if (staged_.empty()) return;
  std::uint64_t head = channel_.header()->request_head.load(std::memory_order_acquire);
  while (!staged_.empty() && staged_.front().frame_end <= head) {
    ::close(staged_.front().fd);
    staged_.pop_front();
  }
}

Status WriteChannel::BucketGone() {
  if (!registry_) {
    shm::ShmError error;
    registry_ = shm::RegistryReader::Open(ns_, &error);
    if (!registry_) return Status();  // kvd restarting: nothing says the bucket is gone
  }
  // The entry's index is looked up by name once, then read directly (a name lookup scans).
  std::optional<shm::BucketRecord> record;
  if (registry_index_ >= 0) record = registry_->Read(static_cast<std::uint32_t>(registry_index_));
  if (!record || record->bucket_id != bucket_id_) record = registry_->Find(bucket_name_);
  if (record && record->bucket_id == bucket_id_) registry_index_ = record->index;
  if (!record || record->bucket_id != bucket_id_ || record->state == shm::kBucketFree ||
      record->state == shm::kBucketDropping) {
    return Status(Code::kBucketNotFound, "bucket '" + bucket_name_ + "' was dropped");
  }
  if (record->state == shm::kBucketFailed) {
    return Status(Code::kFailed, "bucket '" + bucket_name_ + "' failed (" + record->reason +
                                     "); writes are refused until `kvctl restart`");
  }
  return Status();
}

Status WriteChannel::EnsureConnected(Deadline& deadline) {
  if (sock_ >= 0 && StaleChannel()) Disconnect();  // the worker restarted since the last call
  return sock_ >= 0 ? Status() : Connect(deadline);
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
  // that then reaches a dead ring is noticed while its reply is awaited, and the channel
  // reconnects then.)
  long tick = shm::CoarseMillis();
  if (tick == last_alive_tick_) return false;
  last_alive_tick_ = tick;
  return WorkerGone() && replies_.Empty();
}

Status WriteChannel::Connect(Deadline& deadline) {
  long backoff = kFirstConnectRetryNs;
  for (;;) {
    bool retry = false;
    Status s = Register(deadline, &retry);
    if (!retry) return s;
    if (Status gone = BucketGone(); !gone.ok()) {
      // A failed bucket keeps the channel (a `kvctl restart` adopts its queued writes).
      if (gone.code() == Code::kBucketNotFound) Reset();
      return gone;
    }
    long remaining = deadline.remaining_ns();
    if (remaining <= 0) return s;
    timespec ts{0, std::min({backoff, remaining, 999'999'999L})};
    ::nanosleep(&ts, nullptr);
    backoff = std::min(backoff * 2, kMaxConnectRetryNs);
  }
}

Status WriteChannel::Register(Deadline& deadline, bool* retry) {
  *retry = false;
  sock_ = shm::ConnectSeqpacket(shm::BucketSocketAddress(ns_, bucket_id_));
  if (sock_ < 0) {
    int err = errno;
    if (err == EACCES || err == EPERM) {
      Reset();
      return Status(Code::kPermissionDenied, std::strerror(err));
    }
    *retry = true;  // no worker listening (restarting), or its backlog is full
    return Unavailable(std::string("is not running (") + std::strerror(err) + ")");
  }
  bool adopt = registered_;
  if (!channel_.valid()) {
    std::string error;
    channel_ =
        shm::Channel::Create(shm::kDefaultRequestCapacity, shm::kDefaultReplyCapacity, &error);
    if (!channel_.valid()) {
      Reset();
      return Status(Code::kInternal, error);
    }
    requests_ = channel_.RequestWriter();
    replies_ = channel_.ReplyReader();
  }
  // Adopting: first the staged values of frames the worker may not have taken, in ring order.
  ForgetConsumedStaged();
  bool sent = true;
  for (const StagedCopy& copy : staged_) {
    sent = sent && shm::SendPacket(sock_, &shm::kStagedPacket, 1, copy.fd, MSG_DONTWAIT);
  }
  // A channel some worker accepted before is adopted; until then (even if a worker died while
  // registering it) nothing was published in it and it is registered as new.
  const char* message = registered_ ? shm::kAdoptMessage : shm::kRegisterMessage;
  sent = sent && shm::SendPacket(sock_, message, shm::kRegisterMessageSize, channel_.fd());
  if (!sent) {
    Disconnect();
    *retry = true;
    return Unavailable("refused the channel");
  }
  long remaining_ms = (deadline.remaining_ns() + 999'999) / 1'000'000;
  if (remaining_ms <= 0 || !shm::WaitReadable(sock_, static_cast<int>(remaining_ms))) {
    Disconnect();
    return Status(Code::kTimeout, "worker of bucket '" + bucket_name_ +
                                      "' did not accept the write channel in time");
  }
  char buf[shm::kMaxControlPacket];
  int fd;
  ssize_t n = shm::ReceivePacket(sock_, buf, sizeof buf, &fd);
  if (fd >= 0) ::close(fd);
  shm::ControlStatus status;
  std::string_view why;
  if (n <= 0 || !shm::DecodeControlReply(buf, static_cast<std::size_t>(n), &status, &why)) {
    Disconnect();  // the worker died during the registration: the next one adopts the channel
    *retry = true;
    return Unavailable("closed the channel during registration");
  }
  if (status == shm::ControlStatus::kFailed) {
    // The bucket failed (kvd answers for it): keep the channel, so that once `kvctl restart`
    // brings a worker back, it adopts the writes queued in it.
    Disconnect();
    return Status(Code::kFailed, std::string(why));
  }
  if (status != shm::ControlStatus::kOk) {
    Code code = status == shm::ControlStatus::kDenied ? Code::kPermissionDenied : Code::kFailed;
    std::string reason(why);
    Reset();
    if (adopt && status == shm::ControlStatus::kInvalid) {
      // The restarted worker has no record of the channel: whether its queued requests were
      // applied cannot be known. Never reached while the bucket's log is intact.
      return Status(Code::kUnavailable, "worker of bucket '" + bucket_name_ +
                                            "' could not adopt the write channel (" + reason +
                                            "); queued writes may or may not be applied");
    }
    return Status(code, reason);
  }
  registered_ = true;
  last_alive_tick_ = shm::CoarseMillis();
  // Ring by eventfd from now on (cheaper than a packet for both sides); without one (the worker
  // refused it, or no eventfd could be made), doorbell packets still work. Handed to every
  // worker the channel is registered with (a restarted one watches a new one).
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
    bool reconnect = false;
    while (out != nullptr && staged_fd >= 0 &&
           !shm::SendPacket(sock_, &shm::kStagedPacket, 1, staged_fd, MSG_DONTWAIT)) {
      if (errno != EAGAIN || WorkerGone()) {
        reconnect = true;  // the frame is not committed: begun again on the new connection
        break;
      }
      if (deadline.remaining_ns() <= 0) {
        return Status(Code::kTimeout,
                      "worker of bucket '" + bucket_name_ + "' is not consuming staged values");
      }
      ::usleep(100);
    }
    if (reconnect) {
      Disconnect();
      if (Status s = Connect(deadline); !s.ok()) return s;
      continue;
    }
    if (out != nullptr) {
      if (staged) {
        shm::EncodeStagedRequest(out, op, flags, next_request_id_, key,
                                 static_cast<std::uint32_t>(value.size()), arg);
      } else {
        shm::EncodeRequest(out, op, flags, next_request_id_, key, value, arg);
      }
      requests_.Commit();
      if (staged) {
        ForgetConsumedStaged();
        int copy = ::fcntl(staged_fd, F_DUPFD_CLOEXEC, 0);
        if (copy >= 0) staged_.push_back({requests_.committed(), copy});
      }
      requests_.Publish();
      break;
    }
    // The ring is full: the worker is behind (or stopped). Wait for space, not forever.
    if (WorkerGone()) {
      Disconnect();
      if (Status s = Connect(deadline); !s.ok()) return s;
      continue;
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

std::string WriteChannel::ReceiveStagedReply(std::uint32_t size, std::string* value) {
  // The worker sends the memfd before it publishes the reply frame: it is queued by now.
  char byte;
  int fd = -1;
  if (!shm::WaitReadable(sock_, 0)) return "its staged value is not on the socket";
  if (shm::ReceivePacket(sock_, &byte, 1, &fd) != 1 || fd < 0) {
    if (fd >= 0) ::close(fd);
    return "the socket carries no staged value";
  }
  std::string error;
  bool ok = shm::ReadStagedValue(fd, size, value, &error);
  ::close(fd);
  return ok ? std::string() : error;
}

Status WriteChannel::AwaitReply(Deadline& deadline, WriteReply* reply) {
  shm::ChannelHeader* h = channel_.header();
  std::uint64_t want = next_request_id_ - 1;
  // Spin while the reply can come soon (adaptive): the worker is not on this CPU, and it is
  // awake with its pulse moving, or was asleep and is within kWakeGrace of being rung for; with
  // dedicated cores, up to kReplySpin whatever it does. The clock and the pulse are read every
  // kSpinPollsPerClockRead polls of the ring.
  bool dedicated = anchor_->wait_policy.load(std::memory_order_relaxed) == shm::kWaitDedicated;
  bool spinning =
      dedicated || anchor_->worker_cpu.load(std::memory_order_relaxed) != ::sched_getcpu();
  bool wake_spin = spinning && worker_was_asleep_ && !dedicated &&
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
      std::string staged_value, why = ok ? "" : "undecodable frame";
      if (ok && (header.flags & shm::kReplyStagedValue) != 0) {
        why = ReceiveStagedReply(header.value_len, &staged_value);  // consumed even when late
        ok = why.empty();
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
        return Status(Code::kInternal,
                      "malformed reply from worker of '" + bucket_name_ + "': " + why);
      }
      last_alive_tick_ = shm::CoarseMillis();
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
                                        "' did not reply in time (the write stays queued: it "
                                        "is applied once, later)");
    }
    std::uint32_t seq = h->reply_seq.load(std::memory_order_acquire);
    h->client_waiting.store(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (replies_.Empty()) shm::FutexWait(&h->reply_seq, seq, std::min(remaining, sleep_slice));
    sleep_slice = std::min(sleep_slice * 2, kMaxSleepSliceNs);
    h->client_waiting.store(0, std::memory_order_relaxed);
    // Empty, hung up, and still empty: a reply the worker published before it died is read
    // (with its staged value, queued on this socket) before the channel is left; a reply that
    // is there costs no poll().
    if (replies_.Empty() && WorkerGone() && replies_.Empty()) {
      // The worker died: the restarted one adopts the channel and answers this request, applied
      // by its predecessor or by itself, exactly once.
      Disconnect();
      if (Status s = Connect(deadline); !s.ok()) return s;
      spinning = true;
      polls = 0;
      sleep_slice = kFirstSleepSliceNs;
    }
  }
}

Status WriteChannel::Call(shm::Op op, std::string_view key, std::string_view value,
                          std::int64_t arg, std::chrono::milliseconds timeout, WriteReply* reply) {
  Deadline deadline(timeout);
  if (Status s = EnsureConnected(deadline); !s.ok()) return s;
  Status s = Send(op, 0, key, value, arg, deadline);
  if (!s.ok()) return s;
  ++next_request_id_;
  return AwaitReply(deadline, reply);
}

}  // namespace kv

namespace kv {

Status WriteChannel::Cast(shm::Op op, std::string_view key, std::string_view value,
                          std::chrono::milliseconds timeout, std::int64_t arg) {
  Deadline deadline(timeout);
  if (Status s = EnsureConnected(deadline); !s.ok()) return s;
  Status s = Send(op, shm::kFlagNoReply, key, value, arg, deadline);
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
