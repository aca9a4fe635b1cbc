#include "daemon/mirror/mirror.h"

#include <poll.h>
#include <sys/epoll.h>

#include <algorithm>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "daemon/process_info.h"
#include "shm/layout.h"

namespace kv::daemon::mirror {
namespace {

constexpr auto kTimeout = std::chrono::milliseconds(1000);  // any upstream call (kvd: 3 s beat)
constexpr auto kMaxBackoff = std::chrono::milliseconds(2000);
constexpr auto kPingEvery = std::chrono::milliseconds(1000);
constexpr std::size_t kScanCount = 1000;  // keys per SCAN step and per MGET
constexpr std::size_t kMaxPipeline = 256;
// How long the worker polls for a reply from Redis before it sleeps in recv (RedisLink::SetSpin).
constexpr auto kReplySpin = std::chrono::microseconds(50);

// cas: ARGV[1] "0" = the key must be absent, else ARGV[2] is the value the mirror holds at the
// expected version; ARGV[3] the new value. {1}: set; {0, current} or {0}: the upstream differs.
constexpr std::string_view kCasScript = R"(local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '0' then
  if cur then return {0, cur} end
elseif cur ~= ARGV[2] then
  if cur then return {0, cur} end
  return {0}
end
redis.call('SET', KEYS[1], ARGV[3])
return {1})";

// clear: UNLINK every key matching ARGV[1]; returns how many.
constexpr std::string_view kClearScript = R"(local c = '0'
local n = 0
repeat
  local r = redis.call('SCAN', c, 'MATCH', ARGV[1], 'COUNT', 1000)
  c = r[1]
  for _, k in ipairs(r[2]) do redis.call('UNLINK', k) n = n + 1 end
until c == '0'
return n)";

std::string GlobEscape(std::string_view s) {
  std::string out;
  for (char ch : s) {
    if (ch == '*' || ch == '?' || ch == '[' || ch == ']' || ch == '\\') out.push_back('\\');
    out.push_back(ch);
  }
  return out;
}

bool IsError(const redisReply* r) { return r == nullptr || r->type == REDIS_REPLY_ERROR; }

std::string_view Str(const redisReply* r) { return {r->str, r->len}; }

}  // namespace

Mirror::Mirror(BucketStore* store, shm::UpstreamSpec spec, int epoll_fd)
    : store_(store), spec_(std::move(spec)), epoll_fd_(epoll_fd) {
  last_error_ = shm::ParseUpstreamUrl(spec_.url, &address_);
  SetState(shm::kMirrorSyncing);
  store_->anchor()->mirror_live_once.store(0, std::memory_order_relaxed);
}

Mirror::~Mirror() {
  if (sub_.fd() >= 0) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, sub_.fd(), nullptr);
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
  if (sub_.fd() >= 0) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, sub_.fd(), nullptr);
  sub_ = RedisLink();
  data_ = RedisLink();
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
  if (!data_.ok()) {
    if (now >= next_attempt_) Connect(now);
    return;
  }
  if (now - last_ping_ >= kPingEvery) {
    last_ping_ = now;
    Reply r = data_.Command({"PING"});
    if (IsError(r.get())) Down(r ? "PING: " + ReplyText(r.get()) : data_.error());
  }
}

void Mirror::Connect(Clock::time_point now) {
  if (address_.path.empty() && address_.host.empty()) return Down(last_error_);
  if (state_ != shm::kMirrorStale) SetState(shm::kMirrorSyncing);
  sub_ = RedisLink::Connect(address_, spec_.password_file, kTimeout);
  if (!sub_.ok()) return Down(sub_.error());
  Reply id = sub_.Command({"CLIENT", "ID"});
  if (!id || id->type != REDIS_REPLY_INTEGER) {
    return Down("CLIENT ID: " + (id ? ReplyText(id.get()) : sub_.error()));
  }
  Reply subscribed = sub_.Command({"SUBSCRIBE", "__redis__:invalidate"});
  if (!subscribed || subscribed->type != REDIS_REPLY_ARRAY) {
    return Down("SUBSCRIBE: " + (subscribed ? ReplyText(subscribed.get()) : sub_.error()));
  }
  data_ = RedisLink::Connect(address_, spec_.password_file, kTimeout);
  if (!data_.ok()) return Down(data_.error());
  std::atomic<std::uint32_t>* pulse = store_->pulse_word();
  data_.SetSpin(kReplySpin, [pulse] {
    pulse->store(pulse->load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  });
  std::string redirect = std::to_string(id->integer);
  std::vector<std::string_view> tracking = {"CLIENT", "TRACKING", "on",    "REDIRECT",
                                            redirect, "BCAST",    "NOLOOP"};
  if (!spec_.prefix.empty()) {
    tracking.push_back("PREFIX");
    tracking.push_back(spec_.prefix);
  }
  Reply on = data_.Command(tracking);
  if (IsError(on.get())) {
    return Down("CLIENT TRACKING: " + (on ? ReplyText(on.get()) : data_.error()));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = sub_.fd();
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, sub_.fd(), &ev);
  last_ping_ = now;
  SetState(shm::kMirrorSyncing);
  if (!Resync()) return;
  backoff_ = std::chrono::milliseconds(50);
  last_error_.clear();
  SetState(shm::kMirrorLive);
  store_->anchor()->mirror_live_once.store(1, std::memory_order_relaxed);
  spdlog::info("upstream {} prefix '{}': live", spec_.url, spec_.prefix);
  OnEvent();  // announcements that arrived during the load
}

bool Mirror::Resync() {
  auto start = Clock::now();
  std::vector<std::string> seen;
  std::string pattern = GlobEscape(spec_.prefix) + "*";
  std::string count = std::to_string(kScanCount);
  std::string cursor = "0";
  // One round trip per step: the keys of step i are fetched (MGET) in the same pipeline as the
  // SCAN of step i + 1.
  Reply scan = data_.Command({"SCAN", cursor, "MATCH", pattern, "COUNT", count});
  for (;;) {
    if (!scan || scan->type != REDIS_REPLY_ARRAY || scan->elements != 2 ||
        scan->element[0]->type != REDIS_REPLY_STRING ||
        scan->element[1]->type != REDIS_REPLY_ARRAY) {
      Down("SCAN: " + (scan ? ReplyText(scan.get()) : data_.error()));
      return false;
    }
    cursor.assign(scan->element[0]->str, scan->element[0]->len);
    std::vector<std::string> keys;
    const redisReply* list = scan->element[1];
    for (std::size_t i = 0; i < list->elements; ++i) {
      if (list->element[i]->type == REDIS_REPLY_STRING) keys.emplace_back(Str(list->element[i]));
    }
    bool more = cursor != "0";
    if (!keys.empty()) {
      std::vector<std::string_view> mget = {"MGET"};
      for (const std::string& k : keys) mget.push_back(k);
      data_.Append(mget);
    }
    if (more) data_.Append({"SCAN", cursor, "MATCH", pattern, "COUNT", count});
    if (!keys.empty()) {
      Reply values = data_.Read();
      if (!values || values->type != REDIS_REPLY_ARRAY || values->elements != keys.size()) {
        Down("MGET: " + (values ? ReplyText(values.get()) : data_.error()));
        return false;
      }
      for (std::size_t i = 0; i < keys.size(); ++i) {
        std::string_view key;
        if (!BucketKey(keys[i], &key)) continue;
        ApplyUpstream(key, values->element[i]);
        seen.emplace_back(key);
      }
    }
    store_->Heartbeat();
    if (!more) break;
    scan = data_.Read();
  }
  // Keys the upstream no longer has (deleted during the gap) disappear.
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
  spdlog::info("upstream {}: loaded {} keys, removed {} in {} ms", spec_.url, seen.size(),
               gone.size(), ms);
  return true;
}

bool Mirror::BucketKey(std::string_view upstream_key, std::string_view* key) const {
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
  if (!sub_.ok()) return;
  pollfd p{sub_.fd(), POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0) return;  // nothing to read (the socket blocks, with a timeout)
  auto received = Clock::now();
  if (!sub_.Receive()) return Down("invalidation connection: " + sub_.error());
  std::vector<std::string> keys;
  bool flush = false;
  while (Reply m = sub_.Buffered()) {
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
  if (!sub_.ok()) return Down("invalidation connection: " + sub_.error());
  if (!data_.ok() || state_ != shm::kMirrorLive) return;  // the load in progress reads them
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

bool Mirror::Fetch(const std::vector<std::string>& upstream_keys, std::vector<std::string>* seen) {
  for (std::size_t begin = 0; begin < upstream_keys.size(); begin += kScanCount) {
    std::size_t end = std::min(upstream_keys.size(), begin + kScanCount);
    std::vector<std::string_view> mget = {"MGET"};
    for (std::size_t i = begin; i < end; ++i) mget.push_back(upstream_keys[i]);
    Reply values = data_.Command(mget);
    if (!values || values->type != REDIS_REPLY_ARRAY || values->elements != end - begin) {
      Down("MGET: " + (values ? ReplyText(values.get()) : data_.error()));
      return false;
    }
    for (std::size_t i = begin; i < end; ++i) {
      std::string_view key;
      if (!BucketKey(upstream_keys[i], &key)) continue;
      ApplyUpstream(key, values->element[i - begin]);
      if (seen != nullptr) seen->emplace_back(key);
    }
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

void Mirror::Prepare(int channel_fd, const shm::RingReader& ring, const shm::Request& current,
                     std::uint64_t skip_until) {
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
  add(current, cursor);
  while (batch.size() < kMaxPipeline) {
    std::uint32_t size = 0;
    const char* frame = ring.Peek(&cursor, &size);
    if (frame == nullptr || cursor <= skip_until) break;
    shm::Request request;
    if (shm::DecodeRequest(frame, size, &request) != shm::WireStatus::kOk) break;
    if (!Pipelines(request)) break;
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
  if (!live()) {
    out.status = shm::WireStatus::kUnavailable;
  } else if (op == shm::Op::kCas) {
    out = Cas(request);
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
  std::vector<std::string> keys;
  keys.reserve(batch.size());
  for (Pending& p : batch) {
    keys.push_back(spec_.prefix + p.key);
    const std::string& k = keys.back();
    std::string delta;
    switch (static_cast<shm::Op>(p.request.header.op)) {
      case shm::Op::kPut:
        data_.Append({"SET", k, p.value});
        break;
      case shm::Op::kDelete:
        data_.Append({"GETDEL", k});
        break;
      case shm::Op::kIncr:
        delta = std::to_string(p.request.header.arg);
        data_.Append({"INCRBY", k, delta});
        break;
      default:
        break;
    }
  }
  for (Pending& p : batch) {
    Outcome out;
    Reply r = data_.Read();
    auto op = static_cast<shm::Op>(p.request.header.op);
    if (!r) {
      out.status = shm::WireStatus::kUnavailable;
    } else if (op == shm::Op::kPut) {
      out.status = IsError(r.get()) ? shm::WireStatus::kUnavailable
                                    : ApplyLocal(shm::Op::kPut, p.key, p.value, &out.number);
    } else if (op == shm::Op::kDelete) {
      if (r->type == REDIS_REPLY_STRING) {
        out.value.assign(r->str, r->len);
        std::int64_t n = 0;
        ApplyLocal(shm::Op::kDelete, p.key, {}, &n);  // NOT_FOUND here is fine: it was stale
      } else if (r->type == REDIS_REPLY_NIL ||
                 (r->type == REDIS_REPLY_ERROR && Str(r.get()).substr(0, 9) == "WRONGTYPE")) {
        out.status = shm::WireStatus::kNotFound;
        ApplyUpstream(p.key, nullptr);  // if the mirror still had it, it goes
      } else {
        out.status = shm::WireStatus::kUnavailable;
      }
    } else if (op == shm::Op::kIncr) {
      if (r->type == REDIS_REPLY_INTEGER) {
        std::int64_t version = 0;
        out.status = ApplyLocal(shm::Op::kPut, p.key, std::to_string(r->integer), &version);
        out.number = r->integer;
      } else if (r->type == REDIS_REPLY_ERROR &&
                 (Str(r.get()).find("not an integer") != std::string_view::npos ||
                  Str(r.get()).find("overflow") != std::string_view::npos ||
                  Str(r.get()).substr(0, 9) == "WRONGTYPE")) {
        out.status = shm::WireStatus::kNotAnInteger;
      } else {
        out.status = shm::WireStatus::kUnavailable;
      }
    }
    if (r && r->type == REDIS_REPLY_ERROR && out.status == shm::WireStatus::kUnavailable) {
      spdlog::warn("upstream {} refused a write: {}", spec_.url, ReplyText(r.get()));
    }
    channel.outcomes.emplace_back(p.index, std::move(out));
  }
  if (!data_.ok()) Down(data_.error());
}

Outcome Mirror::Cas(const shm::Request& request) {
  Outcome out;
  std::string current;
  std::uint64_t version = 0;
  bool found =
      store_->table().view().Get(request.key, &current, &version) == shm::ReadResult::kFound;
  auto expected = static_cast<std::uint64_t>(request.header.arg);
  if ((expected == 0 && found) || (expected != 0 && (!found || version != expected))) {
    out.status = shm::WireStatus::kVersionMismatch;
    out.number = found ? static_cast<std::int64_t>(version) : 0;
    return out;
  }
  std::string key = spec_.prefix + std::string(request.key);
  Reply r = data_.Command(
      {"EVAL", kCasScript, "1", key, expected == 0 ? "0" : "1", current, request.value});
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
      r->element[0]->type != REDIS_REPLY_INTEGER) {
    if (r) spdlog::warn("upstream {} refused a cas: {}", spec_.url, ReplyText(r.get()));
    out.status = shm::WireStatus::kUnavailable;
    if (!data_.ok()) Down(data_.error());
    return out;
  }
  if (r->element[0]->integer == 1) {
    out.status = ApplyLocal(shm::Op::kPut, request.key, request.value, &out.number);
    return out;
  }
  // The upstream holds another value than the mirror (its change is on its way): take it now,
  // so that the version returned is the one a retry needs.
  out.status = shm::WireStatus::kVersionMismatch;
  out.number = ApplyUpstream(request.key, r->elements > 1 ? r->element[1] : nullptr);
  return out;
}

Outcome Mirror::Clear() {
  Outcome out;
  std::string pattern = GlobEscape(spec_.prefix) + "*";
  Reply r = data_.Command({"EVAL", kClearScript, "0", pattern});
  if (IsError(r.get())) {
    if (r) spdlog::warn("upstream {} refused a clear: {}", spec_.url, ReplyText(r.get()));
    out.status = shm::WireStatus::kUnavailable;
    if (!data_.ok()) Down(data_.error());
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
