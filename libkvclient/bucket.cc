#include <sched.h>

#include <thread>

#include "client_impl.h"
#include "shm/names.h"

namespace kv {
namespace {

// A reader retries when a generation moves under it or a check fails; each retry re-reads the
// anchor. Past this many, the failure is reported instead of looping.
constexpr int kMaxReadAttempts = 64;
// How long a write waits for a restarting worker to accept connections again.
constexpr std::chrono::milliseconds kRestartWait{1000};

Status KeyError(std::string_view key) {
  if (key.empty()) return Status(Code::kInvalidArgument, "key is empty");
  if (key.size() > kMaxKeySize) {
    return Status(Code::kTooLarge, "key is " + std::to_string(key.size()) +
                                       " bytes, the limit is " + std::to_string(kMaxKeySize));
  }
  return Status();
}

}  // namespace

Status FromWireStatus(shm::WireStatus status, const std::string& bucket, std::string_view key) {
  using shm::WireStatus;
  std::string where = "bucket '" + bucket + "'";
  switch (status) {
    case WireStatus::kOk:
      return Status();
    case WireStatus::kNotFound:
      return Status(Code::kNotFound,
                    "key of " + std::to_string(key.size()) + " bytes not in " + where);
    case WireStatus::kVersionMismatch:
      return Status(Code::kVersionMismatch, "version changed in " + where);
    case WireStatus::kNotAnInteger:
      return Status(Code::kNotAnInteger, "value is not a decimal 64-bit integer in " + where);
    case WireStatus::kBucketFull:
      return Status(Code::kBucketFull, where + " is full");
    case WireStatus::kTooLarge:
      return Status(Code::kTooLarge, "request too large for " + where);
    case WireStatus::kWritesRefused:
      return Status(Code::kFailed, where + " refuses writes (failed or being dropped)");
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
      channel_(ns, id, name) {}

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
  bool sent = false;
  Status s = channel_.Call(op, key, value, arg, timeout_, reply, &sent);
  // A worker that is restarting refuses connections for a few milliseconds: keep trying for a
  // bounded time. (A request that reached a worker which then died is not resent: it may have been
  // applied; the caller gets kUnavailable and decides.)
  auto give_up = std::chrono::steady_clock::now() +
                 std::min<std::chrono::milliseconds>(timeout_, kRestartWait);
  while (s.code() == Code::kUnavailable && !sent &&
         anchor_->state.load(std::memory_order_acquire) != shm::kAnchorDropped &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    s = channel_.Call(op, key, value, arg, timeout_, reply, &sent);
  }
  return s;
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

Status Bucket::Get(std::string_view key, std::string* value) {
  if (key.empty() || key.size() > kMaxKeySize) return KeyError(key);
  for (int attempt = 0; attempt < kMaxReadAttempts; ++attempt) {
    switch (view_->table.Get(key, value, nullptr)) {
      case shm::ReadResult::kFound:
        return Status();
      case shm::ReadResult::kNotFound:
        return Status(Code::kNotFound, {});
      case shm::ReadResult::kDropped:
        return Status(Code::kBucketNotFound, "bucket '" + shared_->name + "' was dropped");
      case shm::ReadResult::kMoved:
      case shm::ReadResult::kCorrupt:
        if (Status s = Refresh(); !s.ok()) return s;
        break;
    }
  }
  return Status(Code::kCorrupt, "bucket '" + shared_->name + "': lookups keep failing validation");
}

Status Bucket::Put(std::string_view key, std::string_view value) {
  if (Status s = KeyError(key); !s.ok()) return s;
  if (value.size() > kMaxValueSize) {
    return Status(Code::kTooLarge, "value is " + std::to_string(value.size()) +
                                       " bytes, the limit is " + std::to_string(kMaxValueSize));
  }
  WriteReply reply;
  Status s = shared_->Write(shm::Op::kPut, key, value, 0, &reply);
  if (!s.ok()) return s;
  return FromWireStatus(reply.status, shared_->name, key);
}

Status Bucket::Delete(std::string_view key, std::string* old_value) {
  if (Status s = KeyError(key); !s.ok()) return s;
  WriteReply reply;
  Status s = shared_->Write(shm::Op::kDelete, key, {}, 0, &reply);
  if (!s.ok()) return s;
  if (reply.status == shm::WireStatus::kOk && old_value != nullptr)
    *old_value = std::move(reply.value);
  return FromWireStatus(reply.status, shared_->name, key);
}

}  // namespace kv
