#include "daemon/mirror/mirror.h"

#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "daemon/crash_point.h"
#include "daemon/mirror/exactly_once.h"
#include "daemon/process_info.h"
#include "shm/layout.h"

namespace kv::daemon::mirror {
namespace {

constexpr auto kMaxBackoff = std::chrono::milliseconds(2000);
constexpr auto kPingEvery = std::chrono::milliseconds(1000);
constexpr std::size_t kScanCount = 1000;  // keys per SCAN step and per MGET
constexpr std::size_t kMaxPipeline = 256;

// clear: UNLINK every key matching ARGV[1]; returns how many.
constexpr std::string_view kClearScript = R"(local c = '0'
local n = 0
repeat
  local r = redis.call('SCAN', c, 'MATCH', ARGV[1], 'COUNT', 1000)
  c = r[1]
  for _, k in ipairs(r[2]) do redis.call('UNLINK', k) n = n + 1 end
until c == '0'
return n)";

bool Contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

// The answer of a script of exactly_once.h: flag 0 if it is not {1|2, outcome}.
struct ScriptAnswer {
  long long flag = 0;
  std::string_view outcome;
};
ScriptAnswer ReadScriptAnswer(const redisReply* r) {
  ScriptAnswer answer;
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
      r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_STRING) {
    return answer;
  }
  if (r->element[0]->integer != 1 && r->element[0]->integer != 2) return answer;
  answer.flag = r->element[0]->integer;
  answer.outcome = std::string_view(r->element[1]->str, r->element[1]->len);
  return answer;
}

std::string GlobEscape(std::string_view s) {
  std::string out;
  for (char ch : s) {
    if (ch == '*' || ch == '?' || ch == '[' || ch == ']' || ch == '\\') out.push_back('\\');
    out.push_back(ch);
  }
  return out;
}

}  // namespace

Mirror::Mirror(BucketStore* store, shm::UpstreamSpec spec, int epoll_fd)
    : store_(store), spec_(std::move(spec)), epoll_fd_(epoll_fd) {
  last_error_ = shm::ParseUpstreamUrl(spec_.url, &address_);
  for (const auto& [host, port] : address_.seeds) {
    known_masters_.push_back(host + ":" + std::to_string(port));
  }
  SetState(shm::kMirrorSyncing);
  store_->anchor()->mirror_live_once.store(0, std::memory_order_relaxed);
  events_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (events_ < 0) {
    last_error_ = "epoll_create1 failed";
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = events_;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, events_, &ev);
}

Mirror::~Mirror() {
  nodes_.clear();
  if (events_ >= 0) {
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, events_, nullptr);
    ::close(events_);
  }
}

void Mirror::SetState(shm::MirrorState state) {
  shm::AnchorHeader* a = store_->anchor();
  if (state == shm::kMirrorStale) {
    // "stale since T": the values are those the upstream had at T, when the mirror was last live.
    if (state_ == shm::kMirrorLive) {
      a->mirror_since_unix_ms.store(UnixMillisNow(), std::memory_order_relaxed);
    }
  } else if (state != state_ || state == shm::kMirrorLive) {
    a->mirror_since_unix_ms.store(UnixMillisNow(), std::memory_order_relaxed);
  }
  state_ = state;
  a->mirror_state.store(state, std::memory_order_release);
}

void Mirror::Down(std::string why) {  // by value: `why` may be a link's own error
  for (auto& node : nodes_) {
    if (node->sub.fd() >= 0) ::epoll_ctl(events_, EPOLL_CTL_DEL, node->sub.fd(), nullptr);
  }
  nodes_.clear();
  topology_changed_ = false;
  if (why != last_error_ || state_ == shm::kMirrorLive) {
    spdlog::warn("upstream {}: {}; reads serve the last values, writes fail until it is back",
                 spec_.url, why);
  }
  last_error_ = why;
  SetState(shm::kMirrorStale);
  next_attempt_ = Clock::now() + backoff_;
  backoff_ = std::min(backoff_ * 2, kMaxBackoff);
}

void Mirror::Tick(Clock::time_point now) {
  if (topology_changed_) {
    Down("a MOVED named a master this mirror does not know: re-discovering the cluster");
    next_attempt_ = now;  // at once: the cluster answered, it only changed
  }
  if (!connected()) {
    if (now >= next_attempt_) Connect(now);
    return;
  }
  if (now - last_ping_ >= kPingEvery) {
    last_ping_ = now;
    for (auto& node : nodes_) node->data.Append({"PING"});
    for (auto& node : nodes_) {
      Reply r = node->data.Read();
      if (IsError(r.get())) {
        return Down(node->name + " PING: " + (r ? ReplyText(r.get()) : node->data.error()));
      }
    }
  }
}

bool Mirror::Resync() {
  auto start = Clock::now();
  std::vector<std::string> seen;
  for (auto& node : nodes_) {
    if (!ScanNode(*node, &seen)) return false;
  }
  // Keys the upstream no longer has (deleted during the gap) disappear. In a cluster, a key that
  // moved between two masters while they were scanned is missed by both: its move announced it
  // on both (tracking was on first), so it is fetched again once live.
  std::unordered_set<std::string_view> present(seen.begin(), seen.end());
  std::vector<std::string> gone;
  const shm::TableView& view = store_->table().view();
  for (std::uint64_t i = 0; i < view.slot_count(); ++i) {
    shm::RecordRef record;
    if (view.SlotAt(i, &record) == shm::ReadResult::kFound && present.count(record.key) == 0) {
      gone.emplace_back(record.key);
    }
  }
  for (const std::string& key : gone) ApplyUpstream(key, nullptr);
  store_->PublishChanges();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  shm::AnchorHeader* a = store_->anchor();
  a->mirror_resync_ms.store(static_cast<std::uint64_t>(ms), std::memory_order_relaxed);
  a->mirror_resyncs.fetch_add(1, std::memory_order_relaxed);
  spdlog::info("upstream {}: loaded {} keys from {} server(s), removed {} in {} ms", spec_.url,
               seen.size(), nodes_.size(), gone.size(), ms);
  return true;
}

bool Mirror::ScanNode(Node& node, std::vector<std::string>* seen) {
  std::string pattern = GlobEscape(spec_.prefix) + "*";
  std::string count = std::to_string(kScanCount);
  std::string cursor = "0";
  // One round trip per step: the keys of step i are fetched (MGET) in the same pipeline as the
  // SCAN of step i + 1.
  Reply scan = node.data.Command({"SCAN", cursor, "MATCH", pattern, "COUNT", count});
  for (;;) {
    if (!scan || scan->type != REDIS_REPLY_ARRAY || scan->elements != 2 ||
        scan->element[0]->type != REDIS_REPLY_STRING ||
        scan->element[1]->type != REDIS_REPLY_ARRAY) {
      Down(node.name + " SCAN: " + (scan ? ReplyText(scan.get()) : node.data.error()));
      return false;
    }
    cursor.assign(scan->element[0]->str, scan->element[0]->len);
    std::vector<std::string> keys;
    const redisReply* list = scan->element[1];
    for (std::size_t i = 0; i < list->elements; ++i) {
      if (list->element[i]->type == REDIS_REPLY_STRING) keys.emplace_back(Str(list->element[i]));
    }
    bool more = cursor != "0";
    std::vector<FetchGroup> groups = SendFetch(keys, &node);
    if (more) node.data.Append({"SCAN", cursor, "MATCH", pattern, "COUNT", count});
    std::vector<std::string> retry;
    if (!ReadFetch(keys, groups, seen, &retry)) return false;
    if (more) scan = node.data.Read();
    if (!FetchEach(retry, seen)) return false;
    store_->Heartbeat();
    if (!more) break;
  }
  return true;
}

bool Mirror::Reserved(std::string_view key) const {
  std::string_view prefix = spec_.prefix;
  std::size_t n = std::min(prefix.size(), kReservedPrefix.size());
  return prefix.substr(0, n) == kReservedPrefix.substr(0, n) &&
         key.substr(0, kReservedPrefix.size() - n) == kReservedPrefix.substr(n);
}

bool Mirror::BucketKey(std::string_view upstream_key, std::string_view* key) const {
  if (upstream_key.substr(0, kReservedPrefix.size()) == kReservedPrefix) return false;
  if (upstream_key.size() < spec_.prefix.size() ||
      upstream_key.substr(0, spec_.prefix.size()) != spec_.prefix) {
    return false;
  }
  *key = upstream_key.substr(spec_.prefix.size());
  if (key->empty() || key->size() > shm::kMaxKeySize) {
    const_cast<Mirror*>(this)->CountSkipped(upstream_key, "its bucket key is empty or too long");
    return false;
  }
  return true;
}

void Mirror::CountSkipped(std::string_view key, const std::string& why) {
  store_->anchor()->mirror_skipped.fetch_add(1, std::memory_order_relaxed);
  spdlog::warn("upstream key of {} bytes ('{}...') not mirrored: {}", key.size(), key.substr(0, 40),
               why);
}

std::int64_t Mirror::ApplyUpstream(std::string_view key, const redisReply* value) {
  std::string current;
  std::uint64_t version = 0;
  bool found = store_->table().view().Get(key, &current, &version) == shm::ReadResult::kFound;
  std::int64_t number = 0;
  if (value != nullptr && value->type == REDIS_REPLY_STRING) {
    if (value->len > shm::kMaxValueSize) {
      CountSkipped(key, "its value is " + std::to_string(value->len) + " bytes, the limit is " +
                            std::to_string(shm::kMaxValueSize));
    } else {
      if (found && Str(value) == current) return static_cast<std::int64_t>(version);
      if (ApplyLocal(shm::Op::kPut, key, Str(value), &number) != shm::WireStatus::kOk) {
        spdlog::warn("upstream change of a {}-byte key not applied: the bucket is full",
                     key.size());
      }
      store_->anchor()->mirror_changes.fetch_add(1, std::memory_order_relaxed);
      return number;
    }
  }
  // Absent upstream (or not a string, or too large): absent here.
  if (found) {
    ApplyLocal(shm::Op::kDelete, key, {}, &number);
    store_->anchor()->mirror_changes.fetch_add(1, std::memory_order_relaxed);
  }
  return 0;
}

shm::WireStatus Mirror::ApplyLocal(shm::Op op, std::string_view key, std::string_view value,
                                   std::int64_t* number) {
  shm::Request local{};
  local.header.version = shm::kProtocolVersion;
  local.header.op = static_cast<std::uint8_t>(op);
  local.header.key_len = static_cast<std::uint32_t>(key.size());
  local.header.value_len = static_cast<std::uint32_t>(value.size());
  local.key = key;
  local.value = value;
  std::string old;
  shm::WireStatus s = store_->Apply(local, number, &old);
  store_->RecordChange(local, s, *number);
  return s;
}

void Mirror::OnEvent() {
  if (!connected()) return;
  epoll_event ready[16];
  int n = ::epoll_wait(events_, ready, 16, 0);
  if (n <= 0) return;
  auto received = Clock::now();
  std::vector<std::string> keys;
  bool flush = false;
  for (int e = 0; e < n; ++e) {
    Node* node = nullptr;
    for (auto& candidate : nodes_) {
      if (candidate->sub.fd() == ready[e].data.fd) node = candidate.get();
    }
    if (node == nullptr) continue;
    pollfd p{node->sub.fd(), POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) continue;  // nothing to read (the socket blocks, with a timeout)
    if (!node->sub.Receive()) return Down(node->name + " invalidations: " + node->sub.error());
    while (Reply m = node->sub.Buffered()) {
      // ["message", "__redis__:invalidate", [keys...] or nil (a flush)]
      if (m->type != REDIS_REPLY_ARRAY || m->elements != 3) continue;
      const redisReply* payload = m->element[2];
      if (payload->type == REDIS_REPLY_NIL) {
        flush = true;
      } else if (payload->type == REDIS_REPLY_ARRAY) {
        for (std::size_t i = 0; i < payload->elements; ++i) {
          if (payload->element[i]->type == REDIS_REPLY_STRING) {
            keys.emplace_back(Str(payload->element[i]));
          }
        }
      }
    }
    if (!node->sub.ok()) return Down(node->name + " invalidations: " + node->sub.error());
  }
  if (state_ != shm::kMirrorLive) return;  // the load in progress reads them
  if (flush) {
    SetState(shm::kMirrorSyncing);
    if (!Resync()) return;
    SetState(shm::kMirrorLive);
    return;
  }
  if (keys.empty()) return;
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  if (!Fetch(keys, nullptr)) return;
  store_->PublishChanges();
  auto lag = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - received);
  store_->anchor()->mirror_lag_us.store(static_cast<std::uint64_t>(lag.count()),
                                        std::memory_order_relaxed);
}

std::vector<Mirror::FetchGroup> Mirror::SendFetch(const std::vector<std::string>& keys, Node* via) {
  std::vector<FetchGroup> groups;
  if (keys.empty()) return groups;
  if (!cluster_) {
    groups.push_back({nodes_[0].get(), {}});
    for (std::size_t i = 0; i < keys.size(); ++i) groups[0].keys.push_back(i);
  } else {
    std::unordered_map<int, std::size_t> by_slot;  // slot -> index in groups
    for (std::size_t i = 0; i < keys.size(); ++i) {
      int slot = KeySlot(keys[i]);
      auto [it, fresh] = by_slot.try_emplace(slot, groups.size());
      if (fresh) {
        Node* node = via;
        if (node == nullptr) {
          std::uint16_t owner = slot_owner_[static_cast<std::size_t>(slot)];
          node = owner < nodes_.size() ? nodes_[owner].get() : nodes_[0].get();
        }
        groups.push_back({node, {}});
      }
      groups[it->second].keys.push_back(i);
    }
  }
  std::vector<std::string_view> mget;
  for (const FetchGroup& g : groups) {
    mget.assign(1, "MGET");
    for (std::size_t i : g.keys) mget.push_back(keys[i]);
    g.node->data.Append(mget);
  }
  return groups;
}

bool Mirror::ReadFetch(const std::vector<std::string>& keys, const std::vector<FetchGroup>& groups,
                       std::vector<std::string>* seen, std::vector<std::string>* retry) {
  for (const FetchGroup& g : groups) {
    Reply values = g.node->data.Read();
    if (IsRedirect(values.get())) {  // a slot moving, moved, or a key in mid-migration
      for (std::size_t i : g.keys) retry->push_back(keys[i]);
      continue;
    }
    if (!values || values->type != REDIS_REPLY_ARRAY || values->elements != g.keys.size()) {
      Down(g.node->name + " MGET: " + (values ? ReplyText(values.get()) : g.node->data.error()));
      return false;
    }
    for (std::size_t j = 0; j < g.keys.size(); ++j) {
      std::string_view key;
      if (!BucketKey(keys[g.keys[j]], &key)) continue;
      ApplyUpstream(key, values->element[j]);
      if (seen != nullptr) seen->emplace_back(key);
    }
  }
  return true;
}

bool Mirror::FetchEach(const std::vector<std::string>& keys, std::vector<std::string>* seen) {
  for (const std::string& k : keys) {
    Reply value = Routed(k, {"GET", k});
    if (!value || (value->type != REDIS_REPLY_STRING && value->type != REDIS_REPLY_NIL &&
                   Str(value.get()).substr(0, 9) != "WRONGTYPE")) {
      if (!CheckLinks()) return false;
      if (topology_changed_) {  // a key moved to a master this mirror does not know
        Down("a redirection named a master this mirror does not know (" + ReplyText(value.get()) +
             "): re-discovering the cluster");
        next_attempt_ = Clock::now();
        return false;
      }
      Down("GET after a redirection: " + (value ? ReplyText(value.get()) : "no master"));
      return false;
    }
    std::string_view key;
    if (!BucketKey(k, &key)) continue;
    ApplyUpstream(key, value.get());
    if (seen != nullptr && value->type == REDIS_REPLY_STRING) seen->emplace_back(key);
  }
  return true;
}

bool Mirror::Fetch(const std::vector<std::string>& upstream_keys, std::vector<std::string>* seen) {
  for (std::size_t begin = 0; begin < upstream_keys.size(); begin += kScanCount) {
    std::size_t end = std::min(upstream_keys.size(), begin + kScanCount);
    std::vector<std::string> chunk(upstream_keys.begin() + static_cast<std::ptrdiff_t>(begin),
                                   upstream_keys.begin() + static_cast<std::ptrdiff_t>(end));
    std::vector<std::string> retry;
    if (!ReadFetch(chunk, SendFetch(chunk, nullptr), seen, &retry)) return false;
    if (!FetchEach(retry, seen)) return false;
  }
  return true;
}

bool Mirror::Handles(const shm::Request& request) {
  switch (static_cast<shm::Op>(request.header.op)) {
    case shm::Op::kPut:
    case shm::Op::kDelete:
    case shm::Op::kCas:
    case shm::Op::kIncr:
    case shm::Op::kClear:
      return true;
    default:
      return false;
  }
}

bool Mirror::Pipelines(const shm::Request& request) {
  auto op = static_cast<shm::Op>(request.header.op);
  return (op == shm::Op::kPut || op == shm::Op::kDelete || op == shm::Op::kIncr) &&
         !request.staged();
}

void Mirror::Attach(int channel_fd, std::uint64_t channel_id, std::uint64_t sent_until) {
  Channel& channel = channels_[channel_fd];
  channel = Channel{};
  channel.id = channel_id;
  channel.sent_until = sent_until;
}

void Mirror::Prepare(int channel_fd, const shm::RingReader& ring, const shm::Request& current) {
  Channel& channel = channels_[channel_fd];
  std::uint64_t cursor = ring.after_current();
  if (cursor <= channel.executed_until || !Pipelines(current)) return;
  std::deque<Pending> batch;
  auto add = [&](const shm::Request& request, std::uint64_t index) {
    Pending p;
    p.request = request;
    p.key.assign(request.key);
    p.value.assign(request.value);
    p.index = index;
    batch.push_back(std::move(p));
  };
  if (Reserved(current.key)) return;  // Take refuses it
  add(current, cursor);
  while (batch.size() < kMaxPipeline) {
    std::uint32_t size = 0;
    const char* frame = ring.Peek(&cursor, &size);
    if (frame == nullptr || cursor <= channel.sent_until) break;
    shm::Request request;
    if (shm::DecodeRequest(frame, size, &request) != shm::WireStatus::kOk) break;
    if (!Pipelines(request) || Reserved(request.key)) break;
    add(request, cursor);
  }
  Execute(channel, batch);
}

const Outcome& Mirror::Take(int channel_fd, std::uint64_t index, const shm::Request& request) {
  Channel& channel = channels_[channel_fd];
  while (!channel.outcomes.empty() && channel.outcomes.front().first < index) {
    channel.outcomes.pop_front();
  }
  if (!channel.outcomes.empty() && channel.outcomes.front().first == index) {
    return channel.outcomes.front().second;
  }
  auto op = static_cast<shm::Op>(request.header.op);
  Outcome out;
  if (Reserved(request.key)) {
    out.status = shm::WireStatus::kUnsupported;
  } else if (!live()) {
    out.status = shm::WireStatus::kUnavailable;
  } else if (op == shm::Op::kCas) {
    out = Cas(channel, request, index <= channel.sent_until);
  } else if (op == shm::Op::kClear) {
    out = Clear();
  } else {
    std::deque<Pending> one(1);
    one[0].request = request;
    one[0].key.assign(request.key);
    one[0].value.assign(request.value);
    one[0].index = index;
    Execute(channel, one);
    if (!channel.outcomes.empty() && channel.outcomes.back().first == index) {
      return channel.outcomes.back().second;
    }
    out.status = shm::WireStatus::kUnavailable;
  }
  channel.executed_until = std::max(channel.executed_until, index);
  channel.outcomes.emplace_back(index, std::move(out));
  return channel.outcomes.back().second;
}

void Mirror::Execute(Channel& channel, std::deque<Pending>& batch) {
  for (Pending& p : batch) channel.executed_until = std::max(channel.executed_until, p.index);
  if (!live()) {
    for (Pending& p : batch) {
      Outcome out;
      out.status = shm::WireStatus::kUnavailable;
      channel.outcomes.emplace_back(p.index, std::move(out));
    }
    return;
  }
  // Every command goes to its key's server (the only one, or its slot's master), all queued
  // before any reply is read; then the replies are read in order, and a redirected command is
  // sent again where the redirection says (after every reply of the batch was read, so that no
  // reply of the pipeline is mistaken for another's).
  // Deletes and incrs run as scripts that execute each request once (exactly_once.h): a
  // successor of a worker killed before it applied their replies sends them again.
  std::vector<std::string> keys;
  std::vector<std::string> records;
  std::vector<std::string> numbers;  // request ids and increments, as text
  std::vector<std::vector<std::string_view>> commands;
  std::vector<Node*> nodes;
  keys.reserve(batch.size());  // no reallocation: commands hold views of these strings
  records.reserve(batch.size());
  numbers.reserve(2 * batch.size() + 2);
  const std::string& floor =
      numbers.emplace_back(std::to_string(batch.front().request.header.request_id));
  const std::string& ttl = numbers.emplace_back(std::to_string(kRecordTtlMs));
  for (Pending& p : batch) {
    keys.push_back(spec_.prefix + p.key);
    const std::string& k = keys.back();
    auto op = static_cast<shm::Op>(p.request.header.op);
    if (op == shm::Op::kPut) {
      commands.push_back({"SET", k, p.value});
    } else {
      const std::string& record = records.emplace_back(RecordKey(k, channel.id, cluster_));
      const std::string& rid = numbers.emplace_back(std::to_string(p.request.header.request_id));
      if (op == shm::Op::kDelete) {
        commands.push_back({"EVAL", kDeleteOnceScript, "2", k, record, rid, floor, ttl});
      } else {  // kIncr (Pipelines admits nothing else)
        const std::string& delta = numbers.emplace_back(std::to_string(p.request.header.arg));
        commands.push_back({"EVAL", kIncrOnceScript, "2", k, record, rid, floor, ttl, delta});
      }
    }
    nodes.push_back(Owner(k));
    if (nodes.back() != nullptr) nodes.back()->data.Append(commands.back());
  }
  std::vector<Reply> replies(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (nodes[i] != nullptr) replies[i] = nodes[i]->data.Read();
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (IsRedirect(replies[i].get())) {
      replies[i] =
          Rediscovered(Follow(std::move(replies[i]), keys[i], commands[i]), keys[i], commands[i]);
      replies[i] = WithoutRecord(std::move(replies[i]), keys[i], commands[i]);
    }
  }
  CrashPoint("mirror-upstream-replied");  // tests: applied upstream, not yet in the table
  std::size_t item = 0;
  for (Pending& p : batch) {
    Outcome out;
    Reply r = std::move(replies[item++]);
    auto op = static_cast<shm::Op>(p.request.header.op);
    if (!r) {
      out.status = shm::WireStatus::kUnavailable;
    } else if (op == shm::Op::kPut) {
      out.status = IsError(r.get()) ? shm::WireStatus::kUnavailable
                                    : ApplyLocal(shm::Op::kPut, p.key, p.value, &out.number);
    } else if (IsError(r.get())) {
      std::string_view error = Str(r.get());
      bool wrong_type = error.substr(0, 9) == "WRONGTYPE";
      if (op == shm::Op::kDelete && wrong_type) {
        out.status = shm::WireStatus::kNotFound;  // not a string: absent for kv, as a GET says
        ApplyUpstream(p.key, nullptr);
      } else if (op == shm::Op::kIncr &&
                 (wrong_type || Contains(error, "not an integer") || Contains(error, "overflow"))) {
        out.status = shm::WireStatus::kNotAnInteger;
      } else {
        out.status = shm::WireStatus::kUnavailable;
      }
    } else if (ScriptAnswer answer = ReadScriptAnswer(r.get()); answer.flag == 0) {
      out.status = shm::WireStatus::kUnavailable;
      spdlog::warn("upstream {} answered a write with {}", spec_.url, ReplyText(r.get()));
    } else if (op == shm::Op::kDelete) {
      // Replayed (flag 2): Redis deleted it before this worker's predecessor died, and this
      // worker's resync since made the table agree with Redis: nothing to apply.
      if (answer.outcome.substr(0, 1) == "1") {
        out.value.assign(answer.outcome.substr(1));
        std::int64_t n = 0;
        if (answer.flag == 1) ApplyLocal(shm::Op::kDelete, p.key, {}, &n);  // NOT_FOUND: stale
      } else {
        out.status = shm::WireStatus::kNotFound;
        if (answer.flag == 1) ApplyUpstream(p.key, nullptr);  // if the mirror still had it
      }
    } else {  // kIncr
      std::string_view text = answer.outcome;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out.number);
      if (ec != std::errc() || end != text.data() + text.size()) {
        out.status = shm::WireStatus::kUnavailable;
        spdlog::warn("upstream {} holds a counter that is not an int64 after INCRBY: '{}'",
                     spec_.url, text.substr(0, 40));
      } else if (answer.flag == 1) {
        std::int64_t version = 0;
        out.status = ApplyLocal(shm::Op::kPut, p.key, text, &version);
      }
    }
    if (r && r->type == REDIS_REPLY_ERROR && out.status == shm::WireStatus::kUnavailable) {
      spdlog::warn("upstream {} refused a write: {}", spec_.url, ReplyText(r.get()));
    }
    channel.outcomes.emplace_back(p.index, std::move(out));
  }
  CheckLinks();
}

Outcome Mirror::Cas(const Channel& channel, const shm::Request& request, bool maybe_sent) {
  Outcome out;
  std::string current;
  std::uint64_t version = 0;
  bool found =
      store_->table().view().Get(request.key, &current, &version) == shm::ReadResult::kFound;
  auto expected = static_cast<std::uint64_t>(request.header.arg);
  bool mismatch = (expected == 0 && found) || (expected != 0 && (!found || version != expected));
  // A mismatch is the mirror's to answer, without a round trip, unless a predecessor may have
  // executed the cas: then the table (resynced since) holds its value, and the record says.
  auto answer_mismatch = [&] {
    out.status = shm::WireStatus::kVersionMismatch;
    out.number = found ? static_cast<std::int64_t>(version) : 0;
    return out;
  };
  if (mismatch && !maybe_sent) return answer_mismatch();
  std::string key = spec_.prefix + std::string(request.key);
  std::string record = RecordKey(key, channel.id, cluster_);
  std::string rid = std::to_string(request.header.request_id);
  std::string ttl = std::to_string(kRecordTtlMs);
  std::string_view mode = mismatch ? "?" : expected == 0 ? "0" : "1";
  std::vector<std::string_view> eval = {
      "EVAL", kCasOnceScript, "2", key, record, rid, rid, ttl, mode, current, request.value};
  Reply r = WithoutRecord(Rediscovered(Routed(key, eval), key, eval), key, eval);
  CrashPoint("mirror-upstream-replied");
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
      r->element[0]->type != REDIS_REPLY_INTEGER) {
    if (r) spdlog::warn("upstream {} refused a cas: {}", spec_.url, ReplyText(r.get()));
    out.status = shm::WireStatus::kUnavailable;
    CheckLinks();
    return out;
  }
  switch (r->element[0]->integer) {
    case 1:
      out.status = ApplyLocal(shm::Op::kPut, request.key, request.value, &out.number);
      return out;
    case 2:  // executed by a predecessor: its value's version, if no write replaced it since
      out.number = found && current == request.value ? static_cast<std::int64_t>(version) : 0;
      return out;
    default:
      break;
  }
  if (mismatch) return answer_mismatch();  // looked up only, not found: not executed
  // The upstream holds another value than the mirror (its change is on its way): take it now,
  // so that the version returned is the one a retry needs.
  out.status = shm::WireStatus::kVersionMismatch;
  out.number = ApplyUpstream(request.key, r->elements > 1 ? r->element[1] : nullptr);
  return out;
}

Outcome Mirror::Clear() {
  Outcome out;
  std::string pattern = GlobEscape(spec_.prefix) + "*";
  // On every server (each master of a cluster removes the keys it holds).
  for (auto& node : nodes_) node->data.Append({"EVAL", kClearScript, "0", pattern});
  bool refused = false;
  for (auto& node : nodes_) {
    Reply r = node->data.Read();
    if (IsError(r.get())) {
      if (r) spdlog::warn("upstream {} refused a clear: {}", node->name, ReplyText(r.get()));
      refused = true;
    }
  }
  if (refused || nodes_.empty()) {
    out.status = shm::WireStatus::kUnavailable;
    CheckLinks();
    return out;
  }
  shm::Request local{};
  local.header.version = shm::kProtocolVersion;
  local.header.op = static_cast<std::uint8_t>(shm::Op::kClear);
  std::string old;
  out.status = store_->Apply(local, &out.number, &old);
  store_->RecordChange(local, out.status, out.number);
  return out;
}

}  // namespace kv::daemon::mirror
