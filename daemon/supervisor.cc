#include "daemon/supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/extend.hpp>
#include <boost/process/posix.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <vector>

#include <spdlog/spdlog.h>

#include "daemon/process_info.h"
#include "shm/anchor.h"
#include "shm/control_message.h"
#include "shm/names.h"
#include "shm/registry.h"
#include "shm/unix_socket.h"

namespace kv::daemon {
namespace {

namespace bp = boost::process;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto kStartTimeout = std::chrono::seconds(10);

int PidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

struct WorkerSlot {
  std::uint32_t index = 0;
  std::uint64_t id = 0;
  std::string name;
  pid_t pid = 0;
  int pidfd = -1;
  int ready_fd = -1;
  bool own_child = false;
  bool dropping = false;
  bool restart_requested = false;  // an exit we asked for: not counted as a crash
  std::optional<Clock::time_point> restart_at;
  Clock::time_point start_deadline;
  std::deque<Clock::time_point> exits;  // crash times within the intensity window
  std::vector<int> waiting;             // control connections answered when this settles
};

class Supervisor {
 public:
  explicit Supervisor(SupervisorOptions options) : options_(std::move(options)) {}
  ~Supervisor();
  int Run();

 private:
  bool SetUp();
  void Adopt();
  void Spawn(WorkerSlot& w);
  void OnReadable(WorkerSlot& w);
  void OnExit(WorkerSlot& w);
  void FinishDrop(WorkerSlot& w);
  void Settle(WorkerSlot& w, shm::ControlStatus status, const std::string& message);
  void HandleControl(int conn);
  void Answer(int conn, shm::ControlStatus status, const std::string& message);
  void Watch(int fd, std::uint64_t tag);
  void Unwatch(int fd);
  void RunTimers();
  int NextTimeoutMs() const;
  void BeginShutdown(const char* why);
  void FinishShutdown();
  WorkerSlot* FindByName(std::string_view name);
  std::uint32_t StateOf(const WorkerSlot& w) const;

  SupervisorOptions options_;
  std::optional<shm::RegistryWriter> registry_;
  int epoll_fd_ = -1;
  int control_fd_ = -1;
  int signal_fd_ = -1;
  bool stopping_ = false;
  Clock::time_point stop_deadline_;
  std::map<std::uint64_t, WorkerSlot> workers_;  // by bucket id
  std::map<int, std::uint64_t> fd_owner_;        // pidfd / ready fd -> bucket id
  // Tags for epoll data: small values are fixed fds, the rest encode (kind, fd).
  static constexpr std::uint64_t kTagControl = 1ull << 62;
  static constexpr std::uint64_t kTagConnection = 2ull << 62;
};

Supervisor::~Supervisor() {
  if (control_fd_ >= 0) ::close(control_fd_);
  if (signal_fd_ >= 0) ::close(signal_fd_);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

void Supervisor::Watch(int fd, std::uint64_t tag) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = tag | static_cast<std::uint32_t>(fd);
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
}

void Supervisor::Unwatch(int fd) { ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr); }

std::uint32_t Supervisor::StateOf(const WorkerSlot& w) const {
  std::optional<shm::BucketRecord> r = registry_->reader().Read(w.index);
  return r ? r->state : shm::kBucketFree;
}

WorkerSlot* Supervisor::FindByName(std::string_view name) {
  for (auto& [id, w] : workers_) {
    if (w.name == name) return &w;
  }
  return nullptr;
}

bool Supervisor::SetUp() {
  // The control socket address is the instance lock: taken before the registry is touched.
  control_fd_ = shm::ListenSeqpacket(shm::ControlSocketAddress(options_.ns));
  if (control_fd_ < 0) {
    if (errno == EADDRINUSE) {
      spdlog::error("another kvd is already running for namespace '{}'", options_.ns);
    } else {
      spdlog::error("cannot listen on the control socket: {}", std::strerror(errno));
    }
    return false;
  }
  bool created = false;
  shm::ShmError error;
  registry_ = shm::RegistryWriter::OpenOrCreate(options_.ns, options_.max_buckets,
                                                options_.limits.mode, &created, &error);
  if (!registry_) {
    spdlog::error("cannot open the registry: {}", error.message);
    return false;
  }
  spdlog::info("{} registry of namespace '{}' ({} bucket slots)",
               created ? "created the" : "re-opened the", options_.ns,
               registry_->reader().capacity());

  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&mask, sig);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  signal_fd_ = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (signal_fd_ < 0 || epoll_fd_ < 0) {
    spdlog::error("cannot set up the event loop: {}", std::strerror(errno));
    return false;
  }
  Watch(control_fd_, kTagControl);
  Watch(signal_fd_, kTagControl);
  registry_->SetKvd(::getpid(), ProcessStartTicks(::getpid()), UnixMillisNow());
  return true;
}

void Supervisor::Adopt() {
  for (const shm::BucketRecord& r : registry_->reader().List()) {
    WorkerSlot& w = workers_[r.bucket_id];
    w.index = r.index;
    w.id = r.bucket_id;
    w.name = r.name;
    bool alive = ProcessMatches(r.worker_pid, r.worker_start_ticks);
    if (alive) {
      w.pidfd = PidfdOpen(r.worker_pid);
      if (w.pidfd >= 0) {
        w.pid = r.worker_pid;
        fd_owner_[w.pidfd] = w.id;
        Watch(w.pidfd, 0);
      }
    }
    if (r.state == shm::kBucketDropping) {
      w.dropping = true;
      if (w.pid != 0) {
        ::kill(w.pid, SIGUSR1);
      } else {
        FinishDrop(w);
      }
      continue;
    }
    if (w.pid != 0) {
      spdlog::info("adopted worker {} of bucket '{}'", w.pid, w.name);
      if (r.state != shm::kBucketRunning && r.state != shm::kBucketFailed) {
        registry_->SetState(w.index, shm::kBucketRunning);
      }
    } else if (r.state == shm::kBucketFailed) {
      spdlog::info("bucket '{}' stays failed: {}", w.name, r.reason);
    } else {
      spdlog::info("bucket '{}' has no running worker; starting one", w.name);
      Spawn(w);
    }
  }
}

void Supervisor::Spawn(WorkerSlot& w) {
  w.restart_at.reset();
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    spdlog::error("cannot create a pipe for bucket '{}': {}", w.name, std::strerror(errno));
    w.restart_at = Clock::now() + milliseconds(options_.max_backoff_ms);
    return;
  }
  std::vector<std::string> args = {"--worker",
                                   "--namespace",
                                   options_.ns,
                                   "--bucket-id",
                                   std::to_string(w.id),
                                   "--max-bucket-bytes",
                                   std::to_string(options_.limits.max_bytes),
                                   "--spin-us",
                                   std::to_string(options_.worker_spin_us),
                                   "--log-level",
                                   options_.log_level};
  std::error_code ec;
  bp::child child(
      options_.worker_executable, bp::args(args), bp::posix::fd.bind(STDOUT_FILENO, pipe_fds[1]),
      bp::extend::on_exec_setup([](auto&) {
        sigset_t none;  // kvd blocks its signals for signalfd; a worker starts with none blocked
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
      }),
      ec);
  ::close(pipe_fds[1]);
  if (ec || !child.valid()) {
    ::close(pipe_fds[0]);
    spdlog::error("cannot start a worker for bucket '{}': {}", w.name, ec.message());
    registry_->SetState(w.index, shm::kBucketFailed, "cannot start worker: " + ec.message());
    Settle(w, shm::ControlStatus::kFailed, "cannot start worker: " + ec.message());
    return;
  }
  w.pid = child.id();
  child.detach();  // our pidfd reaps it; the handle must not kill it on destruction
  w.own_child = true;
  w.pidfd = PidfdOpen(w.pid);
  w.ready_fd = pipe_fds[0];
  w.start_deadline = Clock::now() + kStartTimeout;
  fd_owner_[w.pidfd] = w.id;
  fd_owner_[w.ready_fd] = w.id;
  Watch(w.pidfd, 0);
  Watch(w.ready_fd, 0);
  registry_->SetWorker(w.index, w.pid, ProcessStartTicks(w.pid), UnixMillisNow());
  if (StateOf(w) != shm::kBucketRestarting) registry_->SetState(w.index, shm::kBucketStarting);
  spdlog::info("started worker {} for bucket '{}' (id {})", w.pid, w.name, w.id);
}

void Supervisor::OnReadable(WorkerSlot& w) {
  char buf[16];
  ssize_t n = ::read(w.ready_fd, buf, sizeof buf);
  if (n < 0 && errno == EAGAIN) return;
  fd_owner_.erase(w.ready_fd);
  Unwatch(w.ready_fd);
  ::close(w.ready_fd);
  w.ready_fd = -1;
  if (n >= 5 && std::memcmp(buf, "READY", 5) == 0) {
    registry_->SetState(w.index, shm::kBucketRunning);
    Settle(w, shm::ControlStatus::kOk, {});
  }
  // Otherwise the worker closed its pipe without being ready: its exit follows on the pidfd.
}

void Supervisor::OnExit(WorkerSlot& w) {
  std::string how = "exited";
  if (w.own_child) {
    siginfo_t info{};
    if (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(w.pidfd), &info,
                 WEXITED | WNOHANG) == 0 &&
        info.si_pid != 0) {
      how = info.si_code == CLD_EXITED
                ? "exited with status " + std::to_string(info.si_status)
                : std::string("killed by signal ") + ::strsignal(info.si_status);
    }
  }
  fd_owner_.erase(w.pidfd);
  Unwatch(w.pidfd);
  ::close(w.pidfd);
  w.pidfd = -1;
  if (w.ready_fd >= 0) {
    fd_owner_.erase(w.ready_fd);
    Unwatch(w.ready_fd);
    ::close(w.ready_fd);
    w.ready_fd = -1;
  }
  pid_t pid = w.pid;
  w.pid = 0;
  registry_->SetWorker(w.index, 0, 0, 0);
  if (stopping_) return;
  if (w.dropping) {
    FinishDrop(w);
    return;
  }
  if (w.restart_requested) {
    w.restart_requested = false;
    spdlog::info("worker {} of bucket '{}' stopped for a restart", pid, w.name);
    Spawn(w);
    return;
  }
  auto now = Clock::now();
  w.exits.push_back(now);
  while (!w.exits.empty() && now - w.exits.front() > std::chrono::seconds(options_.max_seconds)) {
    w.exits.pop_front();
  }
  std::uint32_t restarts = registry_->reader().Read(w.index)->restarts + 1;
  registry_->SetRestarts(w.index, restarts);
  if (w.exits.size() > options_.max_restarts) {
    std::string reason = "worker " + how + "; " + std::to_string(w.exits.size()) +
                         " exits within " + std::to_string(options_.max_seconds) + " s";
    spdlog::error("bucket '{}' failed: {} (reads are still served; writes refused)", w.name,
                  reason);
    registry_->SetState(w.index, shm::kBucketFailed, reason);
    Settle(w, shm::ControlStatus::kFailed, "bucket '" + w.name + "' failed: " + reason);
    return;
  }
  std::uint64_t delay_ms = 0;
  if (w.exits.size() > 1) {
    delay_ms = std::min<std::uint64_t>(options_.max_backoff_ms,
                                       std::uint64_t{options_.backoff_ms} << (w.exits.size() - 2));
  }
  spdlog::warn("worker {} of bucket '{}' {}; restarting in {} ms", pid, w.name, how, delay_ms);
  registry_->SetState(w.index, shm::kBucketRestarting, "worker " + how);
  if (delay_ms == 0) {
    Spawn(w);
  } else {
    w.restart_at = now + milliseconds(delay_ms);
  }
}

void Supervisor::FinishDrop(WorkerSlot& w) {
  // The worker is gone, so nothing writes the bucket's objects now. If it died before marking the
  // bucket dropped (SIGKILL), do it for it so readers with stale handles learn it.
  std::string anchor_name = shm::AnchorObjectName(options_.ns, w.id);
  shm::ShmError error;
  shm::Segment anchor = shm::Segment::OpenReadWrite(anchor_name, &error);
  if (anchor.valid() && anchor.size() >= sizeof(shm::AnchorHeader)) {
    auto* a = reinterpret_cast<shm::AnchorHeader*>(anchor.data());
    std::uint64_t generation = a->generation.load(std::memory_order_acquire);
    a->state.store(shm::kAnchorDropped, std::memory_order_release);
    for (std::uint64_t g = generation > 0 ? generation - 1 : 0; g <= generation + 1; ++g) {
      shm::Segment::Remove(shm::GenerationObjectName(options_.ns, w.id, g));
    }
  }
  shm::Segment::Remove(anchor_name);
  registry_->Free(w.index);
  spdlog::info("dropped bucket '{}' (id {})", w.name, w.id);
  std::vector<int> waiting = std::move(w.waiting);
  workers_.erase(w.id);
  for (int conn : waiting) Answer(conn, shm::ControlStatus::kOk, {});
}

void Supervisor::Settle(WorkerSlot& w, shm::ControlStatus status, const std::string& message) {
  std::vector<int> waiting = std::move(w.waiting);
  w.waiting.clear();
  for (int conn : waiting) Answer(conn, status, message);
}

void Supervisor::Answer(int conn, shm::ControlStatus status, const std::string& message) {
  std::string reply = shm::EncodeControlReply(status, message);
  shm::SendPacket(conn, reply.data(), reply.size());
  Unwatch(conn);
  ::close(conn);
}

void Supervisor::HandleControl(int conn) {
  char buf[shm::kMaxControlPacket];
  int fd = -1;
  ssize_t n = shm::ReceivePacket(conn, buf, sizeof buf, &fd);
  if (fd >= 0) ::close(fd);
  if (n < 0 && errno == EAGAIN) return;
  shm::ControlOp op;
  std::string_view name;
  if (n <= 0 || !shm::DecodeControlRequest(buf, static_cast<std::size_t>(n), &op, &name)) {
    if (n > 0)
      Answer(conn, shm::ControlStatus::kInvalid, "malformed control request");
    else {
      Unwatch(conn);
      ::close(conn);
    }
    return;
  }
  if (stopping_) return Answer(conn, shm::ControlStatus::kFailed, "kvd is shutting down");
  if (op == shm::ControlOp::kPing) return Answer(conn, shm::ControlStatus::kOk, {});
  if (op == shm::ControlOp::kShutdown) {
    Answer(conn, shm::ControlStatus::kOk, {});
    return BeginShutdown("shutdown requested");
  }
  if (std::string why = shm::ValidateBucketName(name); !why.empty()) {
    return Answer(conn, shm::ControlStatus::kInvalid, why);
  }
  WorkerSlot* w = FindByName(name);
  std::string quoted = "bucket '" + std::string(name) + "'";
  switch (op) {
    case shm::ControlOp::kCreate: {
      if (w != nullptr) {
        if (w->dropping)
          return Answer(conn, shm::ControlStatus::kBusy, quoted + " is being dropped");
        if (StateOf(*w) == shm::kBucketStarting) {
          w->waiting.push_back(conn);
          return;
        }
        return Answer(conn, shm::ControlStatus::kOk, {});  // exists: nothing changes
      }
      if (workers_.size() >= registry_->reader().capacity()) {
        return Answer(
            conn, shm::ControlStatus::kFull,
            "maximum number of buckets (" + std::to_string(workers_.size()) + ") reached");
      }
      std::uint64_t id = registry_->AllocateBucketId();
      std::optional<std::uint32_t> index = registry_->Insert(name, id);
      if (!index) return Answer(conn, shm::ControlStatus::kFull, "registry is full");
      WorkerSlot& slot = workers_[id];
      slot.index = *index;
      slot.id = id;
      slot.name = std::string(name);
      slot.waiting.push_back(conn);
      spdlog::info("creating {} (id {})", quoted, id);
      Spawn(slot);
      return;
    }
    case shm::ControlOp::kDrop: {
      if (w == nullptr)
        return Answer(conn, shm::ControlStatus::kNotFound, quoted + " does not exist");
      w->waiting.push_back(conn);
      if (w->dropping) return;
      w->dropping = true;
      registry_->SetState(w->index, shm::kBucketDropping);
      if (w->pid != 0) {
        ::kill(w->pid, SIGUSR1);  // the worker marks the bucket dropped for readers, then exits
      } else {
        FinishDrop(*w);
      }
      return;
    }
    case shm::ControlOp::kRestart: {
      if (w == nullptr)
        return Answer(conn, shm::ControlStatus::kNotFound, quoted + " does not exist");
      if (w->dropping) return Answer(conn, shm::ControlStatus::kBusy, quoted + " is being dropped");
      w->exits.clear();
      registry_->SetRestarts(w->index, 0);
      w->waiting.push_back(conn);
      if (w->pid != 0) {
        w->restart_requested = true;
        ::kill(w->pid, SIGTERM);
      } else {
        registry_->SetState(w->index, shm::kBucketStarting);
        Spawn(*w);
      }
      return;
    }
    default:
      return Answer(conn, shm::ControlStatus::kInvalid, "unsupported control request");
  }
}

void Supervisor::RunTimers() {
  auto now = Clock::now();
  for (auto& [id, w] : workers_) {
    if (w.restart_at && *w.restart_at <= now && !stopping_) Spawn(w);
    if (w.ready_fd >= 0 && w.start_deadline <= now && w.pid != 0) {
      spdlog::error("worker {} of bucket '{}' did not become ready in time; killing it", w.pid,
                    w.name);
      ::kill(w.pid, SIGKILL);
      w.start_deadline = now + kStartTimeout;
    }
  }
  if (stopping_ && now >= stop_deadline_) {
    for (auto& [id, w] : workers_) {
      if (w.pid != 0) {
        spdlog::warn("worker {} of bucket '{}' ignored SIGTERM; killing it", w.pid, w.name);
        ::kill(w.pid, SIGKILL);
      }
    }
    stop_deadline_ = now + std::chrono::hours(1);
  }
}

int Supervisor::NextTimeoutMs() const {
  auto now = Clock::now();
  auto next = now + std::chrono::seconds(1);
  for (const auto& [id, w] : workers_) {
    if (w.restart_at) next = std::min(next, *w.restart_at);
    if (w.ready_fd >= 0) next = std::min(next, w.start_deadline);
  }
  if (stopping_) next = std::min(next, stop_deadline_);
  auto ms = std::chrono::duration_cast<milliseconds>(next - now).count();
  return static_cast<int>(std::max<long>(0, ms));
}

void Supervisor::BeginShutdown(const char* why) {
  if (stopping_) return;
  stopping_ = true;
  stop_deadline_ = Clock::now() + milliseconds(options_.stop_timeout_ms);
  spdlog::info("stopping ({}): stopping {} workers", why, workers_.size());
  sd_notify(0, "STOPPING=1\nSTATUS=stopping workers");
  for (auto& [id, w] : workers_) {
    Settle(w, shm::ControlStatus::kFailed, "kvd is shutting down");
    if (w.pid != 0) ::kill(w.pid, SIGTERM);
  }
}

void Supervisor::FinishShutdown() {
  registry_->SetKvd(0, 0, 0);
  if (options_.ephemeral) {
    std::vector<std::uint64_t> ids;
    for (const auto& [id, w] : workers_) ids.push_back(id);
    for (std::uint64_t id : ids) FinishDrop(workers_.at(id));
    shm::Segment::Remove(shm::RegistryObjectName(options_.ns));
  }
  spdlog::info("stopped");
}

int Supervisor::Run() {
  if (!SetUp()) return 1;
  Adopt();
  sd_notifyf(0, "READY=1\nSTATUS=serving %zu buckets\nMAINPID=%d", workers_.size(), ::getpid());
  spdlog::info("ready: namespace '{}', {} buckets", options_.ns, workers_.size());
  while (true) {
    if (stopping_) {
      bool any = false;
      for (auto& [id, w] : workers_) any |= w.pid != 0;
      if (!any) break;
    }
    epoll_event events[64];
    int n = ::epoll_wait(epoll_fd_, events, 64, NextTimeoutMs());
    for (int i = 0; i < n; ++i) {
      std::uint64_t tag = events[i].data.u64 & (3ull << 62);
      int fd = static_cast<int>(events[i].data.u64 & 0xffffffffu);
      if (fd == signal_fd_) {
        signalfd_siginfo info;
        while (::read(signal_fd_, &info, sizeof info) == sizeof info) {
          if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT)
            BeginShutdown(strsignal(info.ssi_signo));
          if (info.ssi_signo == SIGHUP) spdlog::info("SIGHUP: nothing to reload");
        }
      } else if (fd == control_fd_) {
        int conn;
        while ((conn = ::accept4(control_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK)) >=
               0) {
          if (!shm::PeerMayAccess(conn)) {
            Answer(conn, shm::ControlStatus::kDenied, "not a member of the instance's group");
            continue;
          }
          Watch(conn, kTagConnection);
        }
      } else if (tag == kTagConnection) {
        HandleControl(fd);
      } else if (auto it = fd_owner_.find(fd); it != fd_owner_.end()) {
        WorkerSlot& w = workers_.at(it->second);
        if (fd == w.ready_fd) {
          OnReadable(w);
        } else if (fd == w.pidfd) {
          OnExit(w);
        }
      }
    }
    RunTimers();
  }
  FinishShutdown();
  return 0;
}

}  // namespace

int RunSupervisor(const SupervisorOptions& options) {
  SupervisorOptions resolved = options;
  if (resolved.worker_executable.empty()) resolved.worker_executable = SelfExecutable();
  Supervisor supervisor(std::move(resolved));
  return supervisor.Run();
}

}  // namespace kv::daemon
