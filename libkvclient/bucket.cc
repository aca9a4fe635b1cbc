#include <sched.h>

#include <cstring>
#include <thread>
#include <unordered_set>

#include "client_impl.h"
#include "shm/names.h"

namespace kv {
namespace {

// A reader retries when a generation moves under it or a check fails; each retry re-reads the
// anchor. Past this many, the failure is reported instead of looping.
constexpr int kMaxReadAttempts = 64;

Status KeyError(std::string_view key) {
  if (key.empty()) return Status(Code::kInvalidArgument, "key is empty");
  if (key.size() > kMaxKeySize) {
    return Status(Code::kTooLarge, "key is " + std::to_string(key.size()) +
                                       " bytes, the limit is " + std::to_string(kMaxKeySize));
  }
  return Status();
}

Status WriteError(std::string_view key, std::string_view value) {
  if (Status s = KeyError(key); !s.ok()) return s;
  if (value.size() > kMaxValueSize) {
    return Status(Code::kTooLarge, "value is " + std::to_string(value.size()) +
                                       " bytes, the limit is " + std::to_string(kMaxValueSize));
  }
  return Status();
}

std::uint64_t UnixMillisNow() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// A TTL's absolute expiry time (Unix ms), or why it is refused.
Status ExpiryOf(std::chrono::milliseconds ttl, std::int64_t* expiry) {
  if (ttl.count() <= 0) {
    return Status(Code::kInvalidArgument,
                  "ttl is " + std::to_string(ttl.count()) + " ms; it must be at least 1 ms");
  }
  if (ttl > kMaxTtl) {
    return Status(Code::kInvalidArgument, "ttl is " + std::to_string(ttl.count()) +
                                              " ms; the limit is " +
                                              std::to_string(kMaxTtl.count()) + " ms (1000 years)");
  }
  // The coarse clock may lag the precise one by a tick: the expiry counts from the precise time,
  // so that a key never expires early.
  std::uint64_t now = UnixMillisNow();
  std::uint64_t at = now + static_cast<std::uint64_t>(ttl.count());
  if (at > shm::kMaxExpiryUnixMs) {
    return Status(Code::kInvalidArgument, "ttl ends past the latest expiry time kv stores");
  }
  *expiry = static_cast<std::int64_t>(at);
  return Status();
}

// An absolute expiry time as Unix ms, or why it is refused.
Status ExpiryAt(ExpiryTime at, std::int64_t* expiry) {
  std::int64_t ms = at.time_since_epoch().count();
  if (ms <= 0 || static_cast<std::uint64_t>(ms) > shm::kMaxExpiryUnixMs) {
    return Status(Code::kInvalidArgument, "expiry time " + std::to_string(ms) +
                                              " (Unix ms) is not between 1970 and the latest "
                                              "expiry time kv stores (" +
                                              std::to_string(shm::kMaxExpiryUnixMs) + ")");
  }
  *expiry = ms;
  return Status();
}

}  // namespace

Status FromWireStatus(shm::WireStatus status, const std::string& bucket, std::string_view key) {
  using shm::WireStatus;
  if (status == WireStatus::kOk) return Status();
  std::string where = "bucket '" + bucket + "'";
  switch (status) {
    case WireStatus::kNotFound:
      return Status(Code::kNotFound,
                    "key of " + std::to_string(key.size()) + " bytes not in " + where);
    case WireStatus::kVersionMismatch:
      return Status(Code::kVersionMismatch, "version changed in " + where);
    case WireStatus::kNotAnInteger:
      return Status(Code::kNotAnInteger,
                    "value is not a decimal 64-bit integer (or the sum overflows) in " + where);
    case WireStatus::kBucketFull:
      return Status(Code::kBucketFull, where + " is full (maximum size, or /dev/shm is full)");
    case WireStatus::kTooLarge:
      return Status(Code::kTooLarge, "request too large for " + where);
    case WireStatus::kWritesRefused:
      return Status(Code::kFailed, where + " refuses writes (failed or being dropped)");
    case WireStatus::kPersistence:
      return Status(Code::kPersistence,
                    where +
                        " could not make the write durable, or refuses writes after a failed "
                        "save (see `kvctl status` and the worker's log)");
    case WireStatus::kUnavailable:
      return Status(Code::kUnavailable,
                    where +
                        " mirrors an upstream that is unreachable or refused the write; "
                        "nothing was written (see `kvctl status` and the worker's log)");
    case WireStatus::kUnsupported:
      return Status(Code::kFailed, where +
                                       " mirrors an upstream Redis and does not support this "
                                       "request (expiry, or a key kv reserves upstream); see "
                                       "docs/mirror.md");
    default:
      return Status(Code::kInternal, where + " answered " + shm::WireStatusName(status));
  }
}

Bucket::Shared::Shared(std::string ns_in, std::uint64_t id_in, std::string name_in,
                       shm::Segment anchor, std::chrono::milliseconds timeout)
    : ns(std::move(ns_in)),
      id(id_in),
      name(std::move(name_in)),
      anchor_segment_(std::move(anchor)),
      anchor_(reinterpret_cast<const shm::AnchorHeader*>(anchor_segment_.data())),
      timeout_(timeout),
      channel_(ns, id, name, anchor_) {}

Result<std::shared_ptr<const Bucket::View>> Bucket::Shared::CurrentView() const {
  std::string last_error = "no attempt";
  for (int attempt = 0; attempt < kMaxReadAttempts; ++attempt) {
    if (anchor_->state.load(std::memory_order_acquire) == shm::kAnchorDropped) {
      return Status(Code::kBucketNotFound, "bucket '" + name + "' was dropped");
    }
    std::uint64_t generation = anchor_->generation.load(std::memory_order_acquire);
    if (generation == 0) {
      last_error = "bucket has no generation yet";
      sched_yield();
      continue;
    }
    auto view = std::make_shared<View>();
    shm::ShmError error;
    view->segment =
        shm::Segment::OpenReadOnly(shm::GenerationObjectName(ns, id, generation), &error);
    if (!view->segment.valid()) {
      // The generation may have been replaced and unlinked since we read the anchor: re-read it.
      if (error.kind == shm::ShmError::kPermission) return FromShmError(error);
      last_error = error.message;
      continue;
    }
    std::string why = view->table.Attach(view->segment.data(), view->segment.size());
    if (!why.empty()) {
      last_error = why;
      sched_yield();
      continue;
    }
    return std::shared_ptr<const View>(std::move(view));
  }
  return Status(Code::kCorrupt,
                "bucket '" + name + "': cannot map its current table: " + last_error);
}

Status Bucket::Shared::Write(shm::Op op, std::string_view key, std::string_view value,
                             std::int64_t arg, WriteReply* reply) {
  std::lock_guard<std::mutex> lock(mu_);
  // The channel rides out worker restarts itself (write_channel.h).
  return channel_.Call(op, key, value, arg, timeout_, reply);
}

Status Bucket::Shared::Put(std::string_view key, std::string_view value, std::int64_t expiry,
                           std::uint64_t* version) {
  WriteReply reply;
  Status s = Write(shm::Op::kPut, key, value, expiry, &reply);
  if (!s.ok()) return s;
  if (version != nullptr) *version = static_cast<std::uint64_t>(reply.number);
  return FromWireStatus(reply.status, name, key);
}

Status Bucket::Shared::Cast(shm::Op op, std::string_view key, std::string_view value,
                            std::int64_t arg) {
  std::lock_guard<std::mutex> lock(mu_);
  return channel_.Cast(op, key, value, timeout_, arg);
}

Status Bucket::Shared::Flush() {
  WriteReply reply;
  Status s = Write(shm::Op::kFlush, {}, {}, 0, &reply);
  if (!s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  shm::WireStatus last = shm::WireStatus::kOk;
  std::uint64_t failures = channel_.TakeAsyncFailures(&last);
  if (failures != 0) {
    return Status(Code::kFailed, std::to_string(failures) + " async writes to bucket '" + name +
                                     "' failed; the last with " + shm::WireStatusName(last));
  }
  return Status();
}

Bucket::Bucket(std::shared_ptr<Shared> shared, std::shared_ptr<const View> view)
    : shared_(std::move(shared)), view_(std::move(view)) {}

Bucket::~Bucket() = default;

const std::string& Bucket::name() const { return shared_->name; }
std::uint64_t Bucket::id() const { return shared_->id; }

Status Bucket::Refresh() {
  Result<std::shared_ptr<const View>> view = shared_->CurrentView();
  if (!view.ok()) return view.status();
  view_ = std::move(view).value();
  return Status();
}

void Bucket::FollowGeneration() {
  if (view_->table.moved_to() != 0) (void)Refresh();  // a dropped bucket: the write says so
}

Status Bucket::Locate(std::string_view key, std::string_view* value, std::uint64_t* version,
                      std::uint64_t* expiry) {
  if (key.empty() || key.size() > kMaxKeySize) return KeyError(key);
  int corrupt = 0;
  for (int attempt = 0; attempt < kMaxReadAttempts; ++attempt) {
    shm::RecordRef record;
    switch (view_->table.Find(key, &record)) {
      case shm::ReadResult::kFound:
        *value = record.value;
        if (version != nullptr) *version = record.version;
        if (expiry != nullptr) *expiry = record.expires_unix_ms;
        return Status();
      case shm::ReadResult::kNotFound:
        return Status(Code::kNotFound, {});
      case shm::ReadResult::kDropped:
        return Status(Code::kBucketNotFound, "bucket '" + shared_->name + "' was dropped");
      case shm::ReadResult::kCorrupt:
        // Damage within a generation is permanent (records are immutable, slot stores atomic):
        // re-map once in case the generation was replaced meanwhile, then report it.
        if (++corrupt > 1) {
          return Status(Code::kCorrupt, "bucket '" + shared_->name +
                                            "': the table entry of a key of " +
                                            std::to_string(key.size()) +
                                            " bytes fails validation (damaged segment)");
        }
        if (Status s = Refresh(); !s.ok()) return s;
        break;
      case shm::ReadResult::kMoved:
        if (Status s = Refresh(); !s.ok()) return s;
        break;
    }
  }
  return Status(Code::kCorrupt, "bucket '" + shared_->name + "': lookups keep failing validation");
}

Status Bucket::Get(std::string_view key, std::string* value, std::uint64_t* version) {
  std::string_view found;
  Status s = Locate(key, &found, version);
  if (s.ok()) value->assign(found.data(), found.size());
  return s;
}

Status Bucket::Get(std::string_view key, char* buffer, std::size_t capacity, std::size_t* size) {
  std::string_view found;
  Status s = Locate(key, &found, nullptr);
  if (!s.ok()) return s;
  *size = found.size();
  if (found.size() > capacity) {
    return Status(Code::kTooLarge, "value is " + std::to_string(found.size()) +
                                       " bytes, the buffer holds " + std::to_string(capacity));
  }
  if (!found.empty()) std::memcpy(buffer, found.data(), found.size());
  return Status();
}

std::vector<Status> Bucket::MultiGet(const std::vector<std::string_view>& keys,
                                     std::vector<std::string>* values) {
  std::vector<Status> out;
  out.reserve(keys.size());
  values->resize(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) out.push_back(Get(keys[i], &(*values)[i]));
  return out;
}

Status Bucket::Scan(std::string_view prefix,
                    const std::function<bool(std::string_view, std::string_view)>& fn) {
  // Within one generation each live key occupies one slot for as long as it is present, so a
  // pass over the slots sees it once. When the generation moves mid-scan, the scan continues in
  // the new one from the start, skipping the keys it already emitted.
  std::unordered_set<std::string> emitted;
  bool moved = false;
  for (int attempt = 0; attempt < kMaxReadAttempts; ++attempt) {
    std::shared_ptr<const View> view = view_;
    bool restart = false;
    for (std::uint64_t i = 0; i < view->table.slot_count(); ++i) {
      if ((i & 1023) == 0 && view->table.moved_to() != 0) {
        restart = true;
        break;
      }
      shm::RecordRef record;
      shm::ReadResult r = view->table.SlotAt(i, &record);
      if (r == shm::ReadResult::kCorrupt) {
        restart = true;
        break;
      }
      if (r != shm::ReadResult::kFound || record.key.substr(0, prefix.size()) != prefix) continue;
      if (moved && emitted.count(std::string(record.key)) != 0) continue;
      emitted.emplace(record.key);
      if (!fn(record.key, record.value)) return Status();
    }
    if (!restart && view->table.moved_to() == 0) return Status();
    if (view->table.moved_to() == shm::kMovedDropped) {
      return Status(Code::kBucketNotFound, "bucket '" + shared_->name + "' was dropped");
    }
    moved = true;
    if (Status s = Refresh(); !s.ok()) return s;
  }
  return Status(Code::kCorrupt, "bucket '" + shared_->name + "': scan keeps failing validation");
}

Result<BucketStats> Bucket::Stats() {
  if (view_->table.moved_to() != 0) {
    if (Status s = Refresh(); !s.ok()) return s;
  }
  shm::TableStats t = view_->table.Stats();
  BucketStats s;
  s.keys = t.key_count;
  s.generation = t.generation;
  s.memory_bytes = t.segment_size;
  s.used_bytes = t.heap_used;
  s.live_bytes = t.live_bytes;
  s.writes = t.writes_applied;
  s.queue_depth = t.queue_depth;
  return s;
}

Status Bucket::Put(std::string_view key, std::string_view value, std::uint64_t* version) {
  FollowGeneration();
  if (Status s = WriteError(key, value); !s.ok()) return s;
  return shared_->Put(key, value, 0, version);
}

Status Bucket::Delete(std::string_view key, std::string* old_value) {
  FollowGeneration();
  if (Status s = KeyError(key); !s.ok()) return s;
  WriteReply reply;
  Status s = shared_->Write(shm::Op::kDelete, key, {}, 0, &reply);
  if (!s.ok()) return s;
  if (reply.status == shm::WireStatus::kOk && old_value != nullptr) {
    *old_value = std::move(reply.value);
  }
  return FromWireStatus(reply.status, shared_->name, key);
}

Status Bucket::CompareAndSet(std::string_view key, std::uint64_t expected_version,
                             std::string_view value, std::uint64_t* version) {
  FollowGeneration();
  if (Status s = WriteError(key, value); !s.ok()) return s;
  WriteReply reply;
  Status s = shared_->Write(shm::Op::kCas, key, value, static_cast<std::int64_t>(expected_version),
                            &reply);
  if (!s.ok()) return s;
  if (version != nullptr) *version = static_cast<std::uint64_t>(reply.number);
  return FromWireStatus(reply.status, shared_->name, key);
}

Result<std::int64_t> Bucket::Increment(std::string_view key, std::int64_t delta) {
  FollowGeneration();
  if (Status s = KeyError(key); !s.ok()) return s;
  WriteReply reply;
  Status s = shared_->Write(shm::Op::kIncr, key, {}, delta, &reply);
  if (!s.ok()) return s;
  if (reply.status != shm::WireStatus::kOk) return FromWireStatus(reply.status, shared_->name, key);
  return reply.number;
}

Status Bucket::Clear() {
  FollowGeneration();
  WriteReply reply;
  Status s = shared_->Write(shm::Op::kClear, {}, {}, 0, &reply);
  if (!s.ok()) return s;
  return FromWireStatus(reply.status, shared_->name, {});
}

Status Bucket::PutAsync(std::string_view key, std::string_view value) {
  FollowGeneration();
  if (Status s = WriteError(key, value); !s.ok()) return s;
  return shared_->Cast(shm::Op::kPut, key, value);
}

Status Bucket::Put(std::string_view key, std::string_view value, std::chrono::milliseconds ttl,
                   std::uint64_t* version) {
  FollowGeneration();
  if (Status s = WriteError(key, value); !s.ok()) return s;
  std::int64_t expiry = 0;
  if (Status s = ExpiryOf(ttl, &expiry); !s.ok()) return s;
  return shared_->Put(key, value, expiry, version);
}

Status Bucket::PutAsync(std::string_view key, std::string_view value,
                        std::chrono::milliseconds ttl) {
  FollowGeneration();
  if (Status s = WriteError(key, value); !s.ok()) return s;
  std::int64_t expiry = 0;
  if (Status s = ExpiryOf(ttl, &expiry); !s.ok()) return s;
  return shared_->Cast(shm::Op::kPut, key, value, expiry);
}

Status Bucket::Put(std::string_view key, std::string_view value, ExpiryTime expires_at,
                   std::uint64_t* version) {
  FollowGeneration();
  if (Status s = WriteError(key, value); !s.ok()) return s;
  std::int64_t expiry = 0;
  if (Status s = ExpiryAt(expires_at, &expiry); !s.ok()) return s;
  return shared_->Put(key, value, expiry, version);
}

Status Bucket::PutAsync(std::string_view key, std::string_view value, ExpiryTime expires_at) {
  FollowGeneration();
  if (Status s = WriteError(key, value); !s.ok()) return s;
  std::int64_t expiry = 0;
  if (Status s = ExpiryAt(expires_at, &expiry); !s.ok()) return s;
  return shared_->Cast(shm::Op::kPut, key, value, expiry);
}

Status Bucket::Expire(std::string_view key, std::chrono::milliseconds ttl) {
  FollowGeneration();
  if (Status s = KeyError(key); !s.ok()) return s;
  std::int64_t expiry = 0;
  if (Status s = ExpiryOf(ttl, &expiry); !s.ok()) return s;
  WriteReply reply;
  Status s = shared_->Write(shm::Op::kExpire, key, {}, expiry, &reply);
  if (!s.ok()) return s;
  return FromWireStatus(reply.status, shared_->name, key);
}

Result<bool> Bucket::Persist(std::string_view key) {
  FollowGeneration();
  if (Status s = KeyError(key); !s.ok()) return s;
  WriteReply reply;
  Status s = shared_->Write(shm::Op::kPersist, key, {}, 0, &reply);
  if (!s.ok()) return s;
  if (reply.status != shm::WireStatus::kOk) return FromWireStatus(reply.status, shared_->name, key);
  return reply.number != 0;
}

Result<std::optional<std::chrono::milliseconds>> Bucket::Ttl(std::string_view key) {
  std::string_view value;
  std::uint64_t expiry = 0;
  if (Status s = Locate(key, &value, nullptr, &expiry); !s.ok()) return s;
  if (expiry == 0) return std::optional<std::chrono::milliseconds>();
  // The precise clock, which expiry times are computed from (the coarse one, which the lookup
  // compared with, lags it by up to a tick: it would report more time than the TTL given).
  std::uint64_t now = UnixMillisNow();
  auto left = std::chrono::milliseconds(expiry > now ? static_cast<std::int64_t>(expiry - now) : 0);
  return std::optional<std::chrono::milliseconds>(left);
}

Status Bucket::DeleteAsync(std::string_view key) {
  FollowGeneration();
  if (Status s = KeyError(key); !s.ok()) return s;
  return shared_->Cast(shm::Op::kDelete, key, {});
}

Status Bucket::Flush() { return shared_->Flush(); }

}  // namespace kv
