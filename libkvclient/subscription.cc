// Subscriptions: a reader of the bucket's change feed (shm/change_feed.h) in this process.
//
// Pollable subscriptions (fd, TryNext): the feed wakes its readers with a futex, which no event
// loop can wait on. fd() therefore starts one thread per subscription that sleeps on the futex
// and makes an eventfd readable whenever changes wait past the subscription's position; TryNext
// clears it when it finds no change (then looks once more, so that a change that arrived
// meanwhile re-arms it); both look under the subscription's mutex. The worker knows nothing of
// this: it wakes the thread as it wakes any sleeping subscriber. Cost: a thread (mostly asleep) and
// an eventfd per polled subscription, and one wake-up of that thread per batch of changes.
//
// Being woken: the worker makes the feed's wake-up system call only while a subscriber is
// connected to it (shm/change_feed.h, "Waking"). Before each sleep a subscription makes sure it
// is connected to the worker the anchor names (StayConnected); that worker wakes it when it counts
// the connection, and a worker that replaces it wakes every sleeper when it starts.
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>

#include "client_impl.h"
#include "shm/change_feed.h"
#include "shm/channel.h"
#include "shm/names.h"
#include "shm/unix_socket.h"

namespace kv {
namespace {

// Longer waits are cut to this (a deadline past steady_clock's range would be in the past).
constexpr std::chrono::hours kMaxNextTimeout(24 * 365);

}  // namespace

class Subscription::State {
 public:
  ~State() {
    if (waiter.joinable()) {
      stop.store(true, std::memory_order_seq_cst);
      reader.WakeAll();
      waiter.join();
    }
    if (event_fd >= 0) ::close(event_fd);
    if (worker_sock >= 0) ::close(worker_sock);
  }
  // Before a sleep on the feed (Next, Watch): connects to the bucket's current worker as a
  // subscriber unless already connected to it. A worker that is not running yet wakes every
  // sleeper when it starts, so a failed connection only waits for that.
  void StayConnected() {
    pid_t pid = anchor->worker_pid.load(std::memory_order_acquire);
    std::lock_guard<std::mutex> lock(connect_mu);
    if (worker_sock >= 0 && pid == connected_pid) {
      pollfd p{worker_sock, POLLRDHUP, 0};  // the same pid, but a new worker (pid reuse)?
      if (::poll(&p, 1, 0) == 0) return;
    }
    if (worker_sock >= 0) ::close(worker_sock);
    // Non-blocking: a stopped worker's full backlog must not hold Next past its timeout.
    worker_sock =
        shm::ConnectSeqpacket(shm::BucketSocketAddress(keep_anchor->ns, keep_anchor->id), true);
    connected_pid = pid;
    if (worker_sock >= 0 &&
        !shm::SendPacket(worker_sock, shm::kSubscribeMessage, shm::kRegisterMessageSize)) {
      ::close(worker_sock);
      worker_sock = -1;
    }
  }
  // The waiter thread of fd() (see the top of the file).
  void Watch();
  // True if a change waits past `position` or the bucket was dropped.
  bool Pending() const {
    return reader.Head() > position.load(std::memory_order_seq_cst) ||
           anchor->state.load(std::memory_order_acquire) == shm::kAnchorDropped;
  }
  void Arm() {
    if (!armed.exchange(true, std::memory_order_seq_cst)) {
      std::uint64_t one = 1;
      if (::write(event_fd, &one, sizeof one) < 0) {
        // EAGAIN: the counter is already non-zero, which is all readable needs.
      }
    }
  }
  // TryNext/Next found nothing: the fd stops being readable, unless a change came meanwhile.
  void Disarm() {
    if (event_fd < 0 || !armed.load(std::memory_order_seq_cst)) return;
    std::uint64_t count;
    if (::read(event_fd, &count, sizeof count) < 0) {
      // EAGAIN: already clear.
    }
    armed.store(false, std::memory_order_seq_cst);
    if (Pending()) Arm();
  }

  std::string bucket;
  shm::Segment segment;  // PROT_READ mapping of NS.b<id>.feed
  shm::FeedReader reader;
  const shm::AnchorHeader* anchor = nullptr;
  std::shared_ptr<Bucket::Shared> keep_anchor;  // keeps `anchor` mapped
  std::mutex mu;
  std::uint64_t next = 1;  // guarded by mu
  // The feed's wake value when the reader last loaded the feed's head (guarded by mu).
  std::uint32_t head_wake = 0;
  bool head_loaded = false;
  // Records are read into this, then copied into the caller's Change (guarded by mu): its
  // buffers and the caller's, once large enough, make reading a change allocate nothing.
  shm::FeedRecord scratch;
  // `next` for the waiter thread, which does not take mu.
  std::atomic<std::uint64_t> position{1};
  // fd(): the eventfd, its waiter thread, and whether the eventfd was signalled since it was
  // last cleared.
  std::once_flag fd_once;
  int event_fd = -1;
  std::thread waiter;
  std::atomic<bool> stop{false};
  std::atomic<bool> armed{false};
  // StayConnected: the connection to the worker whose pid the anchor held when it was made.
  std::mutex connect_mu;
  int worker_sock = -1;
  pid_t connected_pid = 0;
};

void Subscription::State::Watch() {
  while (!stop.load(std::memory_order_seq_cst)) {
    std::uint32_t wake = reader.WakeValue();  // before looking: a later change changes it
    {
      // Under mu, as TryNext's Disarm: a look taken before a TryNext consumed the changes
      // cannot arm the fd after it (no spurious readiness), and Next holding mu means a
      // thread is taking the changes anyway.
      std::lock_guard<std::mutex> lock(mu);
      if (Pending()) Arm();
    }
    // Wakes on the next batch of changes; every 100 ms to notice a drop (or stop).
    StayConnected();
    reader.Wait(wake, 100'000'000);
  }
}

int Subscription::fd() const {
  State& s = *state_;
  std::call_once(s.fd_once, [&s] {
    int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) return;
    s.event_fd = fd;
    try {
      s.waiter = std::thread([&s] { s.Watch(); });
    } catch (const std::system_error&) {
      ::close(fd);
      s.event_fd = -1;
    }
  });
  return s.event_fd;
}

Status Subscription::TryNext(Change* change) { return Next(change, std::chrono::milliseconds(0)); }

Result<Subscription> Bucket::Subscribe(std::uint64_t from_sequence) {
  if (shared_->anchor()->state.load(std::memory_order_acquire) == shm::kAnchorDropped) {
    return Status(Code::kBucketNotFound, "bucket '" + shared_->name + "' was dropped");
  }
  auto state = std::make_shared<Subscription::State>();
  state->bucket = shared_->name;
  shm::ShmError error;
  state->segment =
      shm::Segment::OpenReadOnly(shm::FeedObjectName(shared_->ns, shared_->id), &error);
  if (!state->segment.valid()) {
    if (error.kind == shm::ShmError::kNotFound) {
      return Status(Code::kUnavailable, "bucket '" + shared_->name + "' has no change feed yet");
    }
    return FromShmError(error);
  }
  std::string why = state->reader.Attach(state->segment.data(), state->segment.size());
  if (!why.empty()) return Status(Code::kCorrupt, "change feed of '" + shared_->name + "': " + why);
  state->anchor = shared_->anchor();
  state->keep_anchor = shared_;
  state->next = from_sequence != 0 ? from_sequence : state->reader.Head();
  state->position.store(state->next, std::memory_order_relaxed);
  return Subscription(std::move(state));
}

std::uint64_t Subscription::position() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->next;
}

Status Subscription::Next(Change* change, std::chrono::milliseconds timeout) {
  if (timeout.count() < 0) {
    return Status(Code::kInvalidArgument,
                  "timeout is " + std::to_string(timeout.count()) + " ms (negative)");
  }
  timeout = std::min<std::chrono::milliseconds>(timeout, kMaxNextTimeout);
  State& s = *state_;
  std::lock_guard<std::mutex> lock(s.mu);
  std::optional<std::chrono::steady_clock::time_point> deadline;  // taken when there is none
  shm::FeedRecord& record = s.scratch;
  // The head of the feed (next_seq, stored by the worker per record) is loaded at most once per
  // wake-up the worker publishes (per batch of changes): a subscriber that loaded it whenever it
  // caught up would chase a busy writer, reading the very lines it is writing and slowing it.
  // Not losing a change: every append is followed by a publish that changes the wake value.
  for (;;) {
    std::uint64_t first = s.next;
    std::uint64_t missed = 0;
    shm::FeedRead got = s.reader.Read(&s.next, &record, &missed);
    s.position.store(s.next, std::memory_order_seq_cst);
    switch (got) {
      case shm::FeedRead::kRecord:
        change->sequence = record.seq;
        change->missed = 0;
        change->kind = record.op == shm::FeedOp::kPut       ? Change::Kind::kPut
                       : record.op == shm::FeedOp::kDelete  ? Change::Kind::kDelete
                       : record.op == shm::FeedOp::kClear   ? Change::Kind::kClear
                       : record.op == shm::FeedOp::kExpired ? Change::Kind::kExpired
                                                            : Change::Kind::kResync;
        change->key.assign(record.key);
        change->value.assign(record.value);
        change->value_omitted = record.value_omitted;
        return Status();
      case shm::FeedRead::kMissed:
        change->kind = Change::Kind::kMissed;
        change->sequence = first;
        change->missed = missed;
        change->key.clear();
        change->value.clear();
        change->value_omitted = false;
        return Status();
      case shm::FeedRead::kCorrupt:
        return Status(Code::kCorrupt, "change feed of bucket '" + s.bucket + "' failed validation");
      case shm::FeedRead::kEmpty:
        break;
    }
    std::uint32_t wake = s.reader.WakeValue();
    if (!s.head_loaded || wake != s.head_wake) {
      s.head_loaded = true;
      s.head_wake = wake;
      s.reader.RefreshHead();
      continue;
    }
    if (s.anchor->state.load(std::memory_order_acquire) == shm::kAnchorDropped) {
      return Status(Code::kBucketNotFound, "bucket '" + s.bucket + "' was dropped");
    }
    auto now = std::chrono::steady_clock::now();
    if (!deadline) deadline = now + timeout;
    auto remaining = std::chrono::duration_cast<std::chrono::nanoseconds>(*deadline - now).count();
    if (remaining <= 0) {
      s.Disarm();
      return Status(Code::kTimeout, "no change in bucket '" + s.bucket + "'");
    }
    // Sleep on the feed's futex; wake at least every 100 ms to notice a dropped bucket.
    s.StayConnected();
    s.reader.Wait(wake, std::min<long>(remaining, 100'000'000));
  }
}

}  // namespace kv
