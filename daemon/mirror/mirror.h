// The worker's side of a bucket that mirrors an upstream Redis/Valkey (docs/mirror.md).
//
// The bucket's worker is the only process that talks to the upstream, and the only writer of
// the table: this class runs inside the worker's loop (single-threaded), on two connections:
//   - `data`: commands (SCAN/MGET for the full load, GET for changed keys, the clients' writes),
//     with `CLIENT TRACKING on REDIRECT <sub> BCAST PREFIX <prefix> NOLOOP` so that every change
//     made by anyone else under the prefix is announced;
//   - `sub`: subscribed to `__redis__:invalidate` (RESP2), in the worker's epoll set; each
//     announcement makes the worker fetch the keys named and apply them to the table.
// Everything it applies goes through BucketStore (the change feed carries it). Replies on
// `data` are applied strictly in the order Redis sent them, so the table converges to the
// upstream: a fetch is sent after its announcement arrived, which Redis sent after the change.
//
// Connection, and any gap (a connection lost, a flush): full resync, with tracking enabled
// before the scan; keys the scan did not see are deleted locally afterwards. While the upstream
// is unreachable the state is `stale` (reads keep the last values), writes fail UNAVAILABLE, and
// the worker reconnects with backoff (50 ms doubling to 2 s).
//
// Writes: put -> SET, delete -> GETDEL, incr -> INCRBY, cas -> a Lua script comparing the
// upstream value with the value the mirror holds at the expected version, clear -> a Lua script
// that UNLINKs every key under the prefix. A write is applied to the table only once the upstream
// acknowledged it, and never when it did not.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "daemon/bucket_store.h"
#include "daemon/mirror/redis_link.h"
#include "shm/message.h"
#include "shm/ring.h"
#include "shm/upstream.h"

namespace kv::daemon::mirror {

// What a write did: the reply the worker sends (status, number, delete's old value).
struct Outcome {
  shm::WireStatus status = shm::WireStatus::kOk;
  std::int64_t number = 0;
  std::string value;
};

class Mirror {
 public:
  using Clock = std::chrono::steady_clock;

  // `epoll_fd`: the worker's; the subscriber connection is added to it while connected.
  Mirror(BucketStore* store, shm::UpstreamSpec spec, int epoll_fd);
  ~Mirror();

  // The subscriber connection's descriptor (-1 while disconnected): the worker calls OnEvent
  // when epoll reports it.
  int event_fd() const { return sub_.fd(); }
  void OnEvent();
  // Connects (first call, and after a failure once its backoff passed) and pings the upstream
  // once a second. Call at least every TickMs() milliseconds.
  void Tick(Clock::time_point now);
  int TickMs() const { return live() ? 1000 : 50; }
  bool live() const { return state_ == shm::kMirrorLive; }

  // True for the ops that go to the upstream (put, delete, cas, incr, clear).
  static bool Handles(const shm::Request& request);
  // True for the requests Prepare pipelines (put, delete, incr; not staged).
  static bool Pipelines(const shm::Request& request);

  // Call for the request the channel's ring returned last (ring.Next), before Take: if it is a
  // put, delete or incr not executed yet, sends its upstream command and those of the frames
  // after it in the ring, up to the first that is not such a request (a cas, a clear and a
  // staged value are executed alone by Take) or that ends at or before `skip_until` (a restarted
  // worker may find those already applied), in one pipeline, and applies the acknowledged ones.
  void Prepare(int channel, const shm::RingReader& ring, const shm::Request& current,
               std::uint64_t skip_until);
  // The outcome of the request whose frame ends at ring index `index` (RingReader::after_current)
  // on `channel`: prepared, or executed now. Kept until Take is called again with a later index
  // (a reply ring that is full makes the worker come back for it).
  const Outcome& Take(int channel, std::uint64_t index, const shm::Request& request);
  // The channel is gone: forget its outcomes.
  void Forget(int channel) { channels_.erase(channel); }

 private:
  struct Channel {
    std::uint64_t executed_until = 0;  // ring index after the last frame executed
    std::deque<std::pair<std::uint64_t, Outcome>> outcomes;
  };
  struct Pending {  // one command sent for a request, awaiting its reply
    shm::Request request;
    std::string key;    // the request's key, owned
    std::string value;  // the request's value, owned
    std::uint64_t index = 0;
  };

  void Connect(Clock::time_point now);
  void Down(std::string why);
  bool Resync();
  void SetState(shm::MirrorState state);
  // Sends `batch`'s commands in one pipeline and applies the replies; outcomes go to `channel`.
  void Execute(Channel& channel, std::deque<Pending>& batch);
  Outcome Cas(const shm::Request& request);
  Outcome Clear();
  // Makes the table hold `value` for bucket key `key` (absent: nullptr), as the upstream does.
  // Returns the key's version afterwards (0 if absent).
  std::int64_t ApplyUpstream(std::string_view key, const redisReply* value);
  // Applies a write the upstream acknowledged.
  shm::WireStatus ApplyLocal(shm::Op op, std::string_view key, std::string_view value,
                             std::int64_t* number);
  // Fetches the current upstream value of each upstream key and applies it (MGET, pipelined).
  bool Fetch(const std::vector<std::string>& upstream_keys, std::vector<std::string>* seen);
  // The bucket key of an upstream key, or false if it is not mirrored here.
  bool BucketKey(std::string_view upstream_key, std::string_view* key) const;
  void CountSkipped(std::string_view key, const std::string& why);

  BucketStore* store_;
  shm::UpstreamSpec spec_;
  shm::UpstreamAddress address_;
  int epoll_fd_;
  RedisLink data_;
  RedisLink sub_;
  shm::MirrorState state_ = shm::kMirrorSyncing;
  Clock::time_point next_attempt_{};
  Clock::time_point last_ping_{};
  std::chrono::milliseconds backoff_{50};
  bool ever_live_ = false;
  std::string last_error_;
  std::unordered_map<int, Channel> channels_;
  Outcome scratch_;
};

}  // namespace kv::daemon::mirror
