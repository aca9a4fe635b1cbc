#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "client_impl.h"
#include "shm/control_message.h"
#include "shm/names.h"
#include "shm/unix_socket.h"
#include "shm/upstream.h"

namespace kv {

Status FromShmError(const shm::ShmError& error) {
  switch (error.kind) {
    case shm::ShmError::kNone:
      return Status();
    case shm::ShmError::kNotFound:
      return Status(Code::kUnavailable, error.message);
    case shm::ShmError::kPermission:
      return Status(Code::kPermissionDenied, error.message);
    case shm::ShmError::kNoSpace:
      return Status(Code::kBucketFull, error.message);
    case shm::ShmError::kCorrupt:
      return Status(Code::kCorrupt, error.message);
    case shm::ShmError::kNotReady:  // its creator has not finished it: try again later
      return Status(Code::kUnavailable, error.message);
    default:
      return Status(Code::kInternal, error.message);
  }
}

Result<std::shared_ptr<Client>> Client::Open(const ClientOptions& options) {
  auto impl = std::make_unique<Impl>();
  if (options.timeout.count() < 0) {
    return Status(Code::kInvalidArgument,
                  "timeout is " + std::to_string(options.timeout.count()) + " ms (negative)");
  }
  impl->options = options;
  // Deadlines are now + timeout: keep that far from overflowing (and within poll()'s int).
  impl->options.timeout =
      std::min<std::chrono::milliseconds>(options.timeout, std::chrono::milliseconds(INT_MAX));
  impl->ns = options.ns.empty() ? shm::DefaultNamespace() : options.ns;
  if (std::string why = shm::ValidateNamespace(impl->ns); !why.empty()) {
    return Status(Code::kInvalidArgument, why);
  }
  shm::ShmError error;
  std::optional<shm::RegistryReader> registry = shm::RegistryReader::Open(impl->ns, &error);
  if (!registry) {
    if (error.kind == shm::ShmError::kNotFound) {
      return Status(Code::kUnavailable,
                    "kv instance '" + impl->ns + "' is not running (no registry; start kvd first)");
    }
    return FromShmError(error);
  }
  impl->registry = std::move(*registry);
  return std::shared_ptr<Client>(new Client(std::move(impl)));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

const std::string& Client::ns() const { return impl_->ns; }

Status Client::Impl::Control(shm::ControlOp op, std::string_view name) {
  int sock = shm::ConnectSeqpacket(shm::ControlSocketAddress(ns));
  if (sock < 0) {
    return Status(Code::kUnavailable,
                  "kvd of instance '" + ns + "' is not running (" + std::strerror(errno) + ")");
  }
  std::string request = shm::EncodeControlRequest(op, name);
  char buf[shm::kMaxControlPacket];
  ssize_t n = -1;
  int fd = -1;
  bool readable = false;
  if (shm::SendPacket(sock, request.data(), request.size())) {
    readable = shm::WaitReadable(sock, static_cast<int>(options.timeout.count()));
    if (readable) n = shm::ReceivePacket(sock, buf, sizeof buf, &fd);
  }
  ::close(sock);
  if (fd >= 0) ::close(fd);
  if (!readable) return Status(Code::kTimeout, "kvd did not answer in time");
  shm::ControlStatus status;
  std::string_view message;
  if (n <= 0 || !shm::DecodeControlReply(buf, static_cast<std::size_t>(n), &status, &message)) {
    return Status(Code::kUnavailable, "kvd closed the connection without a reply");
  }
  switch (status) {
    case shm::ControlStatus::kOk:
      return Status();
    case shm::ControlStatus::kNotFound:
      return Status(Code::kBucketNotFound, std::string(message));
    case shm::ControlStatus::kInvalid:
      return Status(Code::kInvalidArgument, std::string(message));
    case shm::ControlStatus::kDenied:
      return Status(Code::kPermissionDenied, std::string(message));
    default:
      return Status(Code::kFailed, std::string(message));
  }
}

Status Client::CreateBucket(std::string_view name) {
  if (std::string why = shm::ValidateBucketName(name); !why.empty()) {
    return Status(Code::kInvalidArgument, why);
  }
  return impl_->Control(shm::ControlOp::kCreate, name);
}

Status Client::CreateBucket(std::string_view name, const Upstream& upstream) {
  if (std::string why = shm::ValidateBucketName(name); !why.empty()) {
    return Status(Code::kInvalidArgument, why);
  }
  shm::UpstreamSpec spec{upstream.url, upstream.prefix.value_or(shm::DefaultUpstreamPrefix(name)),
                         upstream.password_file};
  if (std::string why = shm::ValidateUpstream(spec); !why.empty()) {
    return Status(Code::kInvalidArgument, why);
  }
  return impl_->Control(shm::ControlOp::kCreateMirrored, shm::EncodeMirroredCreate(name, spec));
}

Status Client::DropBucket(std::string_view name) {
  if (std::string why = shm::ValidateBucketName(name); !why.empty()) {
    return Status(Code::kInvalidArgument, why);
  }
  return impl_->Control(shm::ControlOp::kDrop, name);
}

Status Client::RestartBucket(std::string_view name) {
  if (std::string why = shm::ValidateBucketName(name); !why.empty()) {
    return Status(Code::kInvalidArgument, why);
  }
  return impl_->Control(shm::ControlOp::kRestart, name);
}

Status Client::Shutdown() { return impl_->Control(shm::ControlOp::kShutdown, {}); }

Result<Bucket> Client::OpenBucket(std::string_view name) {
  if (std::string why = shm::ValidateBucketName(name); !why.empty()) {
    return Status(Code::kInvalidArgument, why);
  }
  std::optional<shm::BucketRecord> record = impl_->registry.Find(name);
  if (!record)
    return Status(Code::kBucketNotFound, "bucket '" + std::string(name) + "' does not exist");
  shm::ShmError error;
  shm::Segment anchor =
      shm::Segment::OpenReadOnly(shm::AnchorObjectName(impl_->ns, record->bucket_id), &error);
  if (!anchor.valid()) {
    if (error.kind == shm::ShmError::kNotFound) {
      return Status(Code::kUnavailable, "bucket '" + std::string(name) + "' is " +
                                            shm::BucketStateName(record->state) +
                                            " and has no data yet");
    }
    return FromShmError(error);
  }
  const auto* a = reinterpret_cast<const shm::AnchorHeader*>(anchor.data());
  if (anchor.size() >= sizeof(shm::AnchorHeader) && a->magic == 0) {
    // Its worker is creating it (the magic is stored last): as with no anchor at all.
    return Status(Code::kUnavailable, "bucket '" + std::string(name) + "' is " +
                                          shm::BucketStateName(record->state) +
                                          " and its worker is still creating its data");
  }
  std::atomic_thread_fence(std::memory_order_acquire);  // pairs with the creator's release
  if (anchor.size() < sizeof(shm::AnchorHeader) || a->magic != shm::kAnchorMagic ||
      a->format_version != shm::kFormatVersion || a->layout_word != shm::kAnchorLayout ||
      a->bucket_id != record->bucket_id) {
    return Status(Code::kCorrupt, "anchor of bucket '" + std::string(name) + "' is not valid");
  }
  auto shared = std::make_shared<Bucket::Shared>(impl_->ns, record->bucket_id, std::string(name),
                                                 std::move(anchor), impl_->options.timeout);
  Result<std::shared_ptr<const Bucket::View>> view = shared->CurrentView();
  if (!view.ok()) return view.status();
  return Bucket(std::move(shared), std::move(view).value());
}

namespace {

std::string PersistModeName(std::uint32_t mode) {
  if ((mode & shm::kPersistSnapshots) == 0) return "memory only";
  if ((mode & shm::kPersistLog) == 0) return "snapshots";
  static const char* const kFsync[] = {"?", "always", "everysec", "no"};
  return std::string("snapshots+log (") + kFsync[(mode >> 4) & 3] + ")";
}

std::string PersistErrorText(const shm::AnchorHeader* a) {
  std::uint32_t err = a->persist_error.load(std::memory_order_relaxed);
  if (err == 0) return {};
  static const char* const kWhat[] = {"", "snapshot", "log write", "log sync"};
  std::uint32_t what = a->persist_error_what.load(std::memory_order_relaxed);
  return std::string(what < 4 ? kWhat[what] : "save") + " failed: " + std::strerror(err);
}

}  // namespace

Status Client::SaveBucket(std::string_view name) {
  Result<Bucket> bucket = OpenBucket(name);
  if (!bucket.ok()) return bucket.status();
  const shm::AnchorHeader* a = bucket->shared_->anchor();
  std::uint64_t before = a->saves.load(std::memory_order_acquire);
  pid_t worker = a->worker_pid.load(std::memory_order_acquire);
  if (Status s = impl_->Control(shm::ControlOp::kSave, name); !s.ok()) return s;
  auto timeout =
      std::max<std::chrono::milliseconds>(impl_->options.timeout, std::chrono::seconds(60));
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto worker_gone = [&] {
    return Status(Code::kUnavailable, "the worker of bucket '" + std::string(name) +
                                          "' exited before the snapshot finished");
  };
  while (a->saves.load(std::memory_order_acquire) == before) {
    if (std::chrono::steady_clock::now() > deadline) {
      return Status(Code::kTimeout, "snapshot of bucket '" + std::string(name) +
                                        "' not finished in " + std::to_string(timeout.count()) +
                                        " ms");
    }
    if (worker > 0 && ::kill(worker, 0) != 0 && errno == ESRCH) return worker_gone();
    ::usleep(1000);
  }
  // A worker started in the meantime counts its own catch-up snapshot in `saves` (it publishes
  // its pid first): that one is not the answer to this request.
  if (worker > 0 && a->worker_pid.load(std::memory_order_acquire) != worker) return worker_gone();
  if (a->last_save_ok.load(std::memory_order_relaxed) == 0) {
    std::string why = PersistErrorText(a);
    return Status(Code::kPersistence, "snapshot of bucket '" + std::string(name) + "' failed" +
                                          (why.empty() ? "" : ": " + why));
  }
  return Status();
}

Result<InstanceStatus> Client::GetStatus() {
  InstanceStatus out;
  out.ns = impl_->ns;
  shm::KvdRecord kvd = impl_->registry.Kvd();
  out.kvd_pid = kvd.pid;
  out.kvd_started_unix_ms = kvd.started_unix_ms;
  out.persistence = PersistModeName(kvd.persist_mode);
  if (out.kvd_pid != 0 && ::kill(out.kvd_pid, 0) != 0 && errno == ESRCH) out.kvd_pid = 0;
  for (const shm::BucketRecord& r : impl_->registry.List()) {
    BucketInfo info;
    info.name = r.name;
    info.id = r.bucket_id;
    info.state = shm::BucketStateName(r.state);
    info.worker_pid = r.worker_pid;
    info.restarts = r.restarts;
    info.started_unix_ms = r.started_unix_ms;
    info.reason = r.reason;
    Result<Bucket> bucket = OpenBucket(r.name);
    if (bucket.ok()) {
      shm::TableStats stats = bucket->view_->table.Stats();
      info.keys = stats.key_count;
      info.generation = stats.generation;
      info.memory_bytes = stats.segment_size;
      info.writes = stats.writes_applied;
      info.queue_depth = stats.queue_depth;
      const shm::AnchorHeader* a = bucket->shared_->anchor();
      info.subscribers = a->subscribers.load(std::memory_order_relaxed);
      info.persistence = PersistModeName(a->persist_mode.load(std::memory_order_relaxed));
      info.last_save_unix_ms = a->last_save_unix_ms.load(std::memory_order_relaxed);
      info.log_bytes = a->log_bytes.load(std::memory_order_relaxed);
      info.changes_since_save = a->changes_since_save.load(std::memory_order_relaxed);
      info.last_save_ok = a->last_save_ok.load(std::memory_order_relaxed) != 0 ||
                          a->saves.load(std::memory_order_relaxed) == 0;
      info.writes_refused = a->writes_refused.load(std::memory_order_relaxed) != 0;
      info.persistence_error = PersistErrorText(a);
      if (!r.upstream.empty()) {
        info.upstream_state = shm::MirrorStateName(a->mirror_state.load(std::memory_order_relaxed));
        if (info.upstream_state.empty()) info.upstream_state = "syncing";  // worker starting
        info.upstream_since_unix_ms = a->mirror_since_unix_ms.load(std::memory_order_relaxed);
        info.upstream_lag_us = a->mirror_lag_us.load(std::memory_order_relaxed);
        info.upstream_resyncs = a->mirror_resyncs.load(std::memory_order_relaxed);
        info.upstream_resync_ms = a->mirror_resync_ms.load(std::memory_order_relaxed);
        info.upstream_skipped = a->mirror_skipped.load(std::memory_order_relaxed);
      }
    }
    info.upstream = r.upstream.url;
    info.upstream_prefix = r.upstream.prefix;
    out.buckets.push_back(std::move(info));
  }
  return out;
}

}  // namespace kv
