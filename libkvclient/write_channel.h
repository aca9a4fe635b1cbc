// The client end of one write channel to a bucket worker (shm/channel.h): connects to the
// worker's socket, registers a fresh memfd channel, then sends requests on the request ring and
// waits for replies on the reply ring: it spins only while the worker is seen running (its pulse
// in the bucket's anchor moves), else sleeps on the futex (docs/design.md, "Waiting"). Values
// too large for a ring frame travel as sealed memfds on the socket (docs/protocol.md, "Large
// values").
//
// A worker restart is invisible to the caller: when the socket hangs up, the channel reconnects
// to the restarted worker within the call's timeout and hands it the same memfd, which the worker
// adopts; requests queued in the ring are taken by the new worker, which applies each exactly
// once (shm/channel_dedup.h) and answers the one being waited for. Only a bucket that is not
// back by the deadline, `failed` or dropped gives an error (docs/protocol.md, "When a peer dies").
//
// Thread safety: none; the owner (Bucket::Shared) serialises calls with its mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include "kv/status.h"
#include "shm/anchor.h"
#include "shm/channel.h"
#include "shm/message.h"
#include "shm/registry.h"
#include "shm/spin_score.h"

namespace kv {

struct WriteReply {
  shm::WireStatus status = shm::WireStatus::kOk;
  std::int64_t number = 0;
  std::string value;
};

class WriteChannel {
 public:
  // `anchor`: the bucket's anchor (mapped read-only by the caller, which outlives the channel).
  WriteChannel(std::string ns, std::uint64_t bucket_id, std::string bucket_name,
               const shm::AnchorHeader* anchor);
  ~WriteChannel();
  WriteChannel(const WriteChannel&) = delete;
  WriteChannel& operator=(const WriteChannel&) = delete;

  // Sends one request and waits for its reply until `timeout`, reconnecting to a restarted
  // worker as often as needed meanwhile. kTimeout if no reply came in time (the request stays
  // queued: it is applied once when the worker takes it; a late reply is discarded by request
  // id), kUnavailable if the worker is not back in time, kFailed if the bucket is `failed`.
  Status Call(shm::Op op, std::string_view key, std::string_view value, std::int64_t arg,
              std::chrono::milliseconds timeout, WriteReply* reply);
  // Queues one request without waiting for it to be applied (the worker sends no reply; it
  // counts failures in the channel header). Waits only while the request ring is full.
  Status Cast(shm::Op op, std::string_view key, std::string_view value,
              std::chrono::milliseconds timeout, std::int64_t arg = 0);
  // Async writes that failed since the previous call (and the last failure's status).
  std::uint64_t TakeAsyncFailures(shm::WireStatus* last);

 private:
  // A call's deadline, computed when first needed: the clock is not read on the fast paths (a
  // reply caught while spinning, a request that fits the ring).
  class Deadline {
   public:
    explicit Deadline(std::chrono::milliseconds timeout) : timeout_(timeout) {}
    // Nanoseconds left (<= 0: expired); the first call starts the timeout.
    long remaining_ns();

   private:
    std::chrono::milliseconds timeout_;
    std::chrono::steady_clock::time_point at_{};
    bool set_ = false;
  };

  // Connects and registers the channel: a new one, or (after the worker hung up) the same memfd
  // again, for the restarted worker to adopt. Waits for the bucket's socket to accept until the
  // deadline (backing off from 50 us to 10 ms); a failed or dropped bucket ends the wait at once.
  Status Connect(Deadline& deadline);
  // One connection attempt. *retry: the worker is not (yet) there; try again later.
  Status Register(Deadline& deadline, bool* retry);
  // Reconnects if the worker hung up since it was last heard from.
  Status EnsureConnected(Deadline& deadline);
  // kFailed or kBucketNotFound if the registry says the bucket will not come back.
  Status BucketGone();
  void Disconnect();  // closes the socket, keeps the channel for adoption
  void Reset();       // abandons the channel (a new one is registered next time)
  Status Send(shm::Op op, std::uint16_t flags, std::string_view key, std::string_view value,
              std::int64_t arg, Deadline& deadline);
  Status AwaitReply(Deadline& deadline, WriteReply* reply);
  // Wakes the worker from its sleep: the doorbell eventfd, else a doorbell packet.
  void Ring();
  // Receives the memfd of a staged reply value (kReplyStagedValue) and copies it; returns why
  // that failed, or "".
  std::string ReceiveStagedReply(std::uint32_t size, std::string* value);
  bool WorkerGone() const;
  // True if the worker hung up with no reply left to read (checked at most every millisecond).
  bool StaleChannel();
  Status Unavailable(const std::string& why) const;

  // A staged value whose frame the worker may not have taken yet: re-sent when the channel is
  // adopted by a restarted worker (the previous one took the descriptor with it).
  struct StagedCopy {
    std::uint64_t frame_end;  // request-ring index after its frame
    int fd;
  };
  void ForgetConsumedStaged();

  std::string ns_;
  std::uint64_t bucket_id_;
  std::string bucket_name_;
  std::optional<shm::RegistryReader> registry_;  // opened when a reconnect needs it
  long registry_index_ = -1;                     // the bucket's registry entry, once found
  std::deque<StagedCopy> staged_;
  const shm::AnchorHeader* anchor_;
  int sock_ = -1;
  int doorbell_ = -1;  // eventfd the worker watches (shm/channel.h, "Doorbells"), or -1
  shm::Channel channel_;
  bool registered_ = false;  // a worker accepted channel_: later registrations adopt it
  shm::RingWriter requests_;
  shm::RingReader replies_;
  std::uint64_t next_request_id_ = 1;
  long last_alive_tick_ = -1;         // coarse-clock tick of the last hang-up check or reply
  std::uint32_t rung_for_sleep_ = 0;  // the worker's sleep the last doorbell was for
  bool worker_was_asleep_ = false;    // when the last request was published
  // Whether spinning while a sleeping worker wakes up paid lately (it does on an idle machine;
  // on a busy one the worker waits for a CPU and the spin only delays it).
  shm::SpinScore wake_spin_;
  unsigned wake_waits_ = 0;  // waits for a waking worker, for probing (1 in kProbeEvery)
  std::uint64_t async_failures_seen_ = 0;
  std::uint64_t async_failures_lost_ = 0;  // counted on channels that were reset since
};

}  // namespace kv
