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
// A Redis Cluster (redis-cluster:// seeds, or a redis:// server that answers CLUSTER SHARDS):
// the worker asks a seed for the masters (CLUSTER SHARDS, else CLUSTER SLOTS), holds the two
// connections above on every master (tracking on each, redirected to the subscriber on the same
// master), scans every master, and sends each key's command to the master of its hash slot
// (cluster.h). MOVED updates the slot map and retries there; ASK retries once on the target after
// ASKING; a MOVED to a master it does not know, or any master lost, is a gap: the worker
// re-discovers the masters and resyncs in full. The subscribers sit in an epoll set of the
// mirror's own, whose descriptor is the one the worker watches.
//
// Connection, and any gap (a connection lost, a flush): full resync, with tracking enabled
// before the scan; keys the scan did not see are deleted locally afterwards. While the upstream
// is unreachable the state is `stale` (reads keep the last values), writes fail UNAVAILABLE, and
// the worker reconnects with backoff (50 ms doubling to 2 s).
//
// Writes: put -> SET, delete -> GETDEL, incr -> INCRBY, cas -> comparing the upstream value with
// the value the mirror holds at the expected version, clear -> a Lua script that UNLINKs every
// key under the prefix. Delete, incr and cas run as Lua scripts that execute each request once
// (exactly_once.h), so that a worker killed between the upstream's reply and the table write
// does not make its successor execute them twice. A write is applied to the table only once the
// upstream acknowledged it, and never when it did not.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "daemon/bucket_store.h"
#include "daemon/mirror/cluster.h"
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

  // The descriptor the worker watches (an epoll set over the subscriber connections, in the
  // worker's epoll set for the mirror's lifetime): the worker calls OnEvent when it is readable.
  int event_fd() const { return events_; }
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

  // A client channel registered (fd `channel_fd`, id `channel_id`). `sent_until`: the ring
  // index up to which a predecessor of this worker may have taken its requests (0 for a new
  // channel): such a request not in the table may have been executed upstream already, and is
  // sent again only as a script that executes it once (exactly_once.h).
  void Attach(int channel_fd, std::uint64_t channel_id, std::uint64_t sent_until);

  // Call for the request the channel's ring returned last (ring.Next), before Take: if it is a
  // put, delete or incr not executed yet, sends its upstream command and those of the frames
  // after it in the ring, up to the first that is not such a request (a cas, a clear and a
  // staged value are executed alone by Take) or that ends at or before `sent_until` (the worker
  // looks each of those up in its exactly-once log first), in one pipeline, and applies the
  // acknowledged ones.
  void Prepare(int channel_fd, const shm::RingReader& ring, const shm::Request& current);
  // The outcome of the request whose frame ends at ring index `index` (RingReader::after_current)
  // on `channel_fd`: prepared, or executed now. Kept until Take is called again with a later
  // index (a reply ring that is full makes the worker come back for it).
  const Outcome& Take(int channel_fd, std::uint64_t index, const shm::Request& request);
  // The channel is gone: forget its outcomes.
  void Forget(int channel) { channels_.erase(channel); }

 private:
  struct Channel {
    std::uint64_t id = 0;              // the channel's id (shm/channel.h): its record upstream
    std::uint64_t sent_until = 0;      // Attach's
    std::uint64_t executed_until = 0;  // ring index after the last frame executed
    std::deque<std::pair<std::uint64_t, Outcome>> outcomes;
  };
  struct Pending {  // one command sent for a request, awaiting its reply
    shm::Request request;
    std::string key;    // the request's key, owned
    std::string value;  // the request's value, owned
    std::uint64_t index = 0;
  };
  // One upstream server (the only one, or a cluster master) and the mirror's two connections.
  struct Node {
    shm::UpstreamAddress address;
    std::string name;  // HOST:PORT or the socket path, for messages and MOVED/ASK
    RedisLink data;
    RedisLink sub;
  };
  static constexpr std::uint16_t kNoNode = 0xffff;

  void Connect(Clock::time_point now);
  // The masters to connect to: the URL's server alone, or a cluster's masters (asked of the
  // seeds, then of the masters known before). False (and Down) if no seed answered.
  bool Discover(std::vector<ClusterMaster>* masters);
  // Connects `node`'s subscriber and data links, tracking on. Empty, or why not.
  std::string ConnectNode(Node& node);
  bool connected() const { return !nodes_.empty(); }
  // The node serving upstream key `key`: the only one, or its slot's master (nullptr: none).
  Node* Owner(std::string_view key);
  Node* NodeNamed(std::string_view name);
  // A reply that redirects (MOVED, ASK, TRYAGAIN) is followed: the command is sent again where
  // it says, up to a few times. Returns the final reply; nullptr if a link failed.
  Reply Follow(Reply reply, std::string_view key, const std::vector<std::string_view>& args);
  // A write redirected to a master this mirror does not know (slots moved to a new master):
  // re-discovers now (a full resync) and sends it again once, so that such a resharding costs
  // the writer a pause rather than an error. Otherwise returns `reply`.
  Reply Rediscovered(Reply reply, std::string_view key, const std::vector<std::string_view>& args);
  // A script of exactly_once.h still redirected after Follow (ASK or TRYAGAIN: its key's slot is
  // in mid-migration and the key and its record are not together on either node): sent again
  // without the record, so that it is executed (at least once) rather than refused. Otherwise
  // returns `reply`.
  Reply WithoutRecord(Reply reply, std::string_view key, const std::vector<std::string_view>& args);
  // Sends one key's command to its node and follows redirections.
  Reply Routed(std::string_view key, const std::vector<std::string_view>& args);
  // Down if any link failed; true if all are ok.
  bool CheckLinks();
  void Down(std::string why);
  bool Resync();
  void SetState(shm::MirrorState state);
  // Sends `batch`'s commands in one pipeline and applies the replies; outcomes go to `channel`.
  void Execute(Channel& channel, std::deque<Pending>& batch);
  // `maybe_sent`: a predecessor may have executed it (Attach).
  Outcome Cas(const Channel& channel, const shm::Request& request, bool maybe_sent);
  Outcome Clear();
  // Makes the table hold `value` for bucket key `key` (absent: nullptr), as the upstream does.
  // Returns the key's version afterwards (0 if absent).
  std::int64_t ApplyUpstream(std::string_view key, const redisReply* value);
  // Applies a write the upstream acknowledged.
  shm::WireStatus ApplyLocal(shm::Op op, std::string_view key, std::string_view value,
                             std::int64_t* number);
  // The fetch of a list of upstream keys in three steps, so that other commands can share the
  // pipeline: SendFetch queues an MGET per group (all keys at once on a single server; per hash
  // slot in a cluster, on `via` if given, else on the slot's master); ReadFetch reads and applies
  // the replies, and lists the keys of a redirected MGET in `retry`; FetchEach fetches those one
  // by one, following the redirections. False if a link failed (the mirror is Down then).
  struct FetchGroup {
    Node* node;
    std::vector<std::size_t> keys;  // indexes in the key list
  };
  std::vector<FetchGroup> SendFetch(const std::vector<std::string>& keys, Node* via);
  bool ReadFetch(const std::vector<std::string>& keys, const std::vector<FetchGroup>& groups,
                 std::vector<std::string>* seen, std::vector<std::string>* retry);
  bool FetchEach(const std::vector<std::string>& keys, std::vector<std::string>* seen);
  bool Fetch(const std::vector<std::string>& upstream_keys, std::vector<std::string>* seen);
  // Loads every key under the prefix that `node` holds (SCAN, pipelined with the fetches).
  bool ScanNode(Node& node, std::vector<std::string>* seen);
  // True if bucket key `key` is an upstream key of exactly_once.h's records (a mirror of the
  // whole database, or of a prefix of kReservedPrefix): its writes are refused UNSUPPORTED.
  bool Reserved(std::string_view key) const;
  // The bucket key of an upstream key, or false if it is not mirrored here.
  bool BucketKey(std::string_view upstream_key, std::string_view* key) const;
  void CountSkipped(std::string_view key, const std::string& why);

  BucketStore* store_;
  shm::UpstreamSpec spec_;
  shm::UpstreamAddress address_;
  int epoll_fd_;
  int events_ = -1;       // epoll set over the nodes' subscriber connections
  bool cluster_ = false;  // nodes_ are a cluster's masters, routed by slot_owner_
  std::vector<std::unique_ptr<Node>> nodes_;  // empty while disconnected
  std::vector<std::uint16_t> slot_owner_;     // cluster: index in nodes_ of each slot's master
  std::vector<std::string> known_masters_;    // HOST:PORT of the masters last seen (seeds too)
  bool topology_changed_ = false;             // a MOVED named an unknown master: re-discover
  std::string redirected_to_;                 // that master (HOST:PORT), asked first by Discover
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
