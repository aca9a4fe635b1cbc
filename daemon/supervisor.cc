#include "daemon/supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/prctl.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <vector>

#include <spdlog/spdlog.h>

#include "daemon/persistence/bucket_dir.h"
#include "daemon/persistence/file_util.h"
#include "daemon/persistence/persistence.h"
#include "daemon/pidfd.h"
#include "daemon/process_info.h"
#include "daemon/systemd_notify.h"
#include "daemon/worker_launcher.h"
#include "kv/client.h"
#include "metrics/openmetrics.h"
#include "shm/anchor.h"
#include "shm/control_message.h"
#include "shm/names.h"
#include "shm/registry.h"
#include "shm/segment.h"
#include "shm/unix_socket.h"

namespace kv::daemon {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto kStartTimeout = std::chrono::seconds(10);
constexpr int kFailedDrainMs = 20;

struct WorkerSlot {
  std::uint32_t index = 0;
  std::uint64_t id = 0;
  std::string name;
  pid_t pid = 0;
  int pidfd = -1;      // set whenever pid is (Spawn, Adopt): the only way kvd signals the worker
  int ready_fd = -1;   // set while the worker starts; closed when it says READY (or dies)
  int failed_fd = -1;  // listener on the bucket's socket while the bucket is failed
  bool own_child = false;
  bool dropping = false;
  bool restart_requested = false;  // an exit we asked for: not counted as a crash
  bool killed_unresponsive = false;
  bool stale = false;   // heartbeat older than kHeartbeatFreshMs
  std::string refused;  // the worker refused the bucket's data on disk (REFUSED line)
  std::optional<Clock::time_point> restart_at;
  Clock::time_point start_deadline;
  std::deque<Clock::time_point> exits;  // crash times within the intensity window
  std::vector<int> waiting;             // control connections answered when this settles
  shm::Segment anchor;                  // PROT_READ: the worker's heartbeat
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
  // Sends `sig` to w's worker through its pidfd (daemon/pidfd.h), so never to another process
  // that has its pid now. A worker that already exited is not signalled (its exit is, or soon
  // will be, reported on the pidfd). REQUIRES: w.pid != 0.
  void SignalWorker(const WorkerSlot& w, int sig);
  // SignalWorker(sig), then SIGCONT: a request the worker must act on (drop, restart, stop),
  // which a stopped worker would otherwise never see.
  void TellWorker(const WorkerSlot& w, int sig);
  void CountCrash(WorkerSlot& w, pid_t pid, const std::string& how, bool spawn_failed);
  void MarkFailed(WorkerSlot& w, const std::string& reason);
  void OpenFailedListener(WorkerSlot& w);
  void CloseFailedListener(WorkerSlot& w);
  void OnFailedConnection(WorkerSlot& w);
  void MapAnchor(WorkerSlot& w);
  // Removes the bucket's objects; `remove_files`: its data directory too (a real drop).
  void FinishDrop(WorkerSlot& w, bool remove_files = true);
  // Data directory: recreates the registry entries of every stored bucket (a fresh registry).
  bool RestoreFromDisk();
  // Writes the bucket's meta file if it has none (a bucket older than the data directory).
  std::string EnsureMeta(const WorkerSlot& w);
  std::string BucketDir(std::uint64_t id) const {
    return persistence::BucketDir(options_.persistence.data_dir, options_.ns, id);
  }
  void Settle(WorkerSlot& w, shm::ControlStatus status, const std::string& message);
  void HandleControl(int conn);
  void Answer(int conn, shm::ControlStatus status, const std::string& message);
  void Watch(int fd, std::uint64_t tag);
  void Unwatch(int fd);
  void CloseWatched(int* fd);
  void RunTimers();
  bool CheckLiveness();
  void Notify(const std::string& message);
  void UpdateStatus();
  // The flags every worker is started with (daemon/worker_launcher.h).
  std::vector<std::string> WorkerFlags() const;
  void Reload();
  void ApplyReload(const SupervisorOptions& fresh);
  int NextTimeoutMs() const;
  void BeginShutdown(const char* why);
  void FinishShutdown();
  WorkerSlot* FindByName(std::string_view name);
  std::uint32_t StateOf(const WorkerSlot& w) const;

  SupervisorOptions options_;
  std::optional<shm::RegistryWriter> registry_;
  std::optional<WorkerLauncher> launcher_;
  int epoll_fd_ = -1;
  int control_fd_ = -1;
  int signal_fd_ = -1;
  bool stopping_ = false;
  Clock::time_point stop_deadline_;
  std::map<std::uint64_t, WorkerSlot> workers_;  // by bucket id
  std::map<int, std::uint64_t> fd_owner_;        // pidfd / ready fd / failed fd -> bucket id
  // systemd: notifications are sent only when NOTIFY_SOCKET is set; the watchdog only when
  // WATCHDOG_USEC is set (for this pid).
  bool notify_ = false;
  bool status_dirty_ = true;
  std::string last_status_;
  std::chrono::microseconds watchdog_interval_{0};  // half of WATCHDOG_USEC; 0 = off
  Clock::time_point next_watchdog_;
  Clock::time_point next_liveness_check_;
  // metrics-file: a client of our own instance (opened on first use), and when to write next.
  void WriteMetrics();
  std::shared_ptr<Client> metrics_client_;
  Clock::time_point next_metrics_;
  bool metrics_failing_ = false;  // the last write failed (logged once until it works again)
  // Tags for epoll data: the top bits say what the fd is; 0 means "look it up in fd_owner_".
  static constexpr std::uint64_t kTagControl = 1ull << 62;
  static constexpr std::uint64_t kTagConnection = 2ull << 62;
};

Supervisor::~Supervisor() {
  for (auto& [id, w] : workers_) {
    for (int fd : {w.pidfd, w.ready_fd, w.failed_fd}) {
      if (fd >= 0) ::close(fd);
    }
  }
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

void Supervisor::CloseWatched(int* fd) {
  if (*fd < 0) return;
  fd_owner_.erase(*fd);
  Unwatch(*fd);
  ::close(*fd);
  *fd = -1;
}

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

void Supervisor::Notify(const std::string& message) {
  if (notify_) daemon::Notify(message);
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
  const persistence::PersistenceOptions& p = options_.persistence;
  std::uint32_t persist_mode = 0;
  if (p.enabled()) {
    std::string ns_dir = persistence::NamespaceDir(p.data_dir, options_.ns);
    if (std::string e = persistence::MakeDirs(ns_dir, 0750); !e.empty()) {
      spdlog::error("data directory: {}", e);
      return false;
    }
    persist_mode = shm::kPersistSnapshots;
    if (p.appendonly) {
      persist_mode |= shm::kPersistLog | ((static_cast<std::uint32_t>(p.appendfsync) + 1) << 4);
    }
    spdlog::info("data directory {} (save \"{}\", appendonly {}, appendfsync {})", ns_dir,
                 persistence::FormatSaveRules(p.save_rules), p.appendonly ? "yes" : "no",
                 persistence::AppendFsyncName(p.appendfsync));
    // Shared memory is the truth while it exists; only a new registry is filled from disk.
    if (created && !RestoreFromDisk()) return false;
  }
  registry_->SetPersistMode(persist_mode);

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
  // Workers forked by the spawner are reparented to kvd, which reaps them (daemon/spawner.h).
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    spdlog::warn("cannot become a child subreaper ({}): workers will be exec'd",
                 std::strerror(errno));
  }
  bool subreaper = false;
  {
    int flag = 0;
    subreaper = ::prctl(PR_GET_CHILD_SUBREAPER, &flag) == 0 && flag == 1;
  }
  launcher_.emplace(options_.worker_executable, WorkerFlags(), subreaper && !options_.exec_workers);
  registry_->SetKvd(::getpid(), ProcessStartTicks(::getpid()), UnixMillisNow());

  notify_ = NotifySocketSet();
  if (std::uint64_t watchdog_usec = WatchdogUsec(); watchdog_usec > 0) {
    watchdog_interval_ = std::chrono::microseconds(watchdog_usec / 2);
    next_watchdog_ = Clock::now();
    spdlog::info("systemd watchdog every {} ms while every worker's heartbeat is fresh",
                 watchdog_usec / 2000);
  }
  return true;
}

bool Supervisor::RestoreFromDisk() {
  std::string ns_dir = persistence::NamespaceDir(options_.persistence.data_dir, options_.ns);
  std::uint64_t next = 0;
  if (std::string e = persistence::ReadNextId(ns_dir, &next); !e.empty()) {
    spdlog::error("data directory: {}; refusing to start (bucket ids could be reused)", e);
    return false;
  }
  std::vector<std::string> skipped;
  std::vector<persistence::StoredBucket> stored = persistence::ListStoredBuckets(ns_dir, &skipped);
  for (const std::string& why : skipped) spdlog::error("data directory: {}; not restored", why);
  for (const persistence::StoredBucket& b : stored) {
    next = std::max(next, b.id + 1);
    std::optional<std::uint32_t> index = registry_->Insert(b.name, b.id);
    if (!index) {
      spdlog::error("bucket '{}' (id {}) cannot be restored: the registry is full ({} slots)",
                    b.name, b.id, registry_->reader().capacity());
      continue;
    }
    spdlog::info("restoring bucket '{}' (id {}) from the data directory", b.name, b.id);
  }
  if (next != 0) registry_->EnsureNextBucketId(next);
  return true;
}

std::string Supervisor::EnsureMeta(const WorkerSlot& w) {
  if (!options_.persistence.enabled()) return {};
  std::string dir = BucketDir(w.id);
  if (::access((dir + "/" + persistence::kMetaFileName).c_str(), F_OK) == 0) return {};
  return persistence::WriteBucketMeta(dir, w.id, w.name);
}

void Supervisor::MapAnchor(WorkerSlot& w) {
  if (w.anchor.valid()) return;
  shm::ShmError error;
  w.anchor = shm::Segment::OpenReadOnly(shm::AnchorObjectName(options_.ns, w.id), &error);
  if (w.anchor.valid() && w.anchor.size() < sizeof(shm::AnchorHeader)) w.anchor = shm::Segment();
}

void Supervisor::Adopt() {
  for (const shm::BucketRecord& r : registry_->reader().List()) {
    WorkerSlot& w = workers_[r.bucket_id];
    w.index = r.index;
    w.id = r.bucket_id;
    w.name = r.name;
    MapAnchor(w);
    pid_t pid = 0;
    if (ProcessMatches(r.worker_pid, r.worker_start_ticks)) {
      pid = r.worker_pid;
    } else if (w.anchor.valid()) {
      // A kvd killed between spawning a worker and recording it: the worker stamped its pid in
      // the anchor and still holds the bucket's socket. Adopt it rather than fight it.
      const auto* a = reinterpret_cast<const shm::AnchorHeader*>(w.anchor.data());
      pid_t stamped = a->worker_pid.load(std::memory_order_acquire);
      std::uint64_t ticks = a->worker_start_ticks.load(std::memory_order_relaxed);
      if (ProcessMatches(stamped, ticks)) {
        pid = stamped;
        registry_->SetWorker(w.index, pid, ticks, UnixMillisNow(), r.state, r.reason);
      }
    }
    if (pid != 0) {
      w.pidfd = PidfdOpen(pid);
      if (w.pidfd >= 0) {
        w.pid = pid;
        fd_owner_[w.pidfd] = w.id;
        Watch(w.pidfd, 0);
      }
    }
    if (r.state == shm::kBucketDropping) {
      w.dropping = true;
      if (w.pid != 0) {
        TellWorker(w, SIGUSR1);
      } else {
        FinishDrop(w);
      }
      continue;
    }
    if (w.pid != 0) {
      spdlog::info("adopted worker {} of bucket '{}'", w.pid, w.name);
      if (r.state != shm::kBucketRunning) registry_->SetState(w.index, shm::kBucketRunning);
    } else if (r.state == shm::kBucketFailed) {
      spdlog::info("bucket '{}' stays failed: {}", w.name, r.reason);
      OpenFailedListener(w);
    } else {
      spdlog::info("bucket '{}' has no running worker; starting one", w.name);
      Spawn(w);
    }
  }
}

std::vector<std::string> Supervisor::WorkerFlags() const {
  std::vector<std::string> flags = {"--namespace",
                                    options_.ns,
                                    "--max-bucket-bytes",
                                    std::to_string(options_.limits.max_bytes),
                                    "--feed-changes",
                                    std::to_string(options_.limits.feed_changes),
                                    "--spin-us",
                                    std::to_string(options_.worker_spin_us),
                                    "--worker-nice",
                                    std::to_string(options_.worker_nice),
                                    "--worker-busy-nice",
                                    std::to_string(options_.worker_busy_nice),
                                    "--wait",
                                    options_.wait_policy,
                                    "--log-level",
                                    options_.log_level};
  const persistence::PersistenceOptions& p = options_.persistence;
  if (p.enabled()) {
    flags.insert(flags.end(),
                 {"--data-dir", p.data_dir, "--save", persistence::FormatSaveRules(p.save_rules),
                  "--appendonly", p.appendonly ? "yes" : "no", "--appendfsync",
                  persistence::AppendFsyncName(p.appendfsync), "--stop-writes-on-save-error",
                  p.stop_writes_on_save_error ? "yes" : "no"});
  }
  return flags;
}

void Supervisor::Spawn(WorkerSlot& w) {
  w.restart_at.reset();
  w.killed_unresponsive = false;
  w.stale = false;
  w.refused.clear();
  if (std::string e = EnsureMeta(w); !e.empty()) {
    spdlog::error("bucket '{}': {}", w.name, e);
    CountCrash(w, 0, "could not be started: " + e, true);
    return;
  }
  CloseFailedListener(w);  // the worker binds the bucket's socket itself
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    spdlog::error("cannot create a pipe for bucket '{}': {}", w.name, std::strerror(errno));
    w.restart_at = Clock::now() + milliseconds(options_.max_backoff_ms);
    return;
  }
  std::string error;
  pid_t pid = launcher_->Launch(w.id, pipe_fds[1], &error);
  ::close(pipe_fds[1]);
  if (pid <= 0) {
    ::close(pipe_fds[0]);
    spdlog::error("cannot start a worker for bucket '{}': {}", w.name, error);
    CountCrash(w, 0, "could not be started: " + error, true);
    return;
  }
  int pidfd = PidfdOpen(pid);
  if (pidfd < 0) {
    // Without its pidfd kvd could neither learn of its exit nor signal it safely.
    std::string why = std::string("cannot be watched: pidfd_open: ") + std::strerror(errno);
    SignalProcess(-1, pid, SIGKILL);  // our child, not reaped yet: the pid is still its own
    ::waitpid(pid, nullptr, 0);
    ::close(pipe_fds[0]);
    spdlog::error("worker {} of bucket '{}' {}", pid, w.name, why);
    CountCrash(w, 0, why, true);
    return;
  }
  w.pid = pid;
  w.own_child = true;  // forked by us or reparented to us before Launch returned
  w.pidfd = pidfd;
  w.ready_fd = pipe_fds[0];
  w.start_deadline = Clock::now() + kStartTimeout;
  fd_owner_[w.pidfd] = w.id;
  fd_owner_[w.ready_fd] = w.id;
  Watch(w.pidfd, 0);
  Watch(w.ready_fd, 0);
  // A restart stays "restarting", with its reason, until the worker is ready.
  std::optional<shm::BucketRecord> r = registry_->reader().Read(w.index);
  bool restarting = r && r->state == shm::kBucketRestarting;
  registry_->SetWorker(w.index, w.pid, ProcessStartTicks(w.pid), UnixMillisNow(),
                       restarting ? shm::kBucketRestarting : shm::kBucketStarting,
                       restarting ? r->reason : std::string());
  status_dirty_ = true;
  spdlog::info("started worker {} for bucket '{}' (id {})", w.pid, w.name, w.id);
}

void Supervisor::OnReadable(WorkerSlot& w) {
  char buf[512];
  ssize_t n = ::read(w.ready_fd, buf, sizeof buf);
  if (n < 0 && errno == EAGAIN) return;
  CloseWatched(&w.ready_fd);
  if (n > 8 && std::memcmp(buf, "REFUSED ", 8) == 0) {
    w.refused.assign(buf + 8, static_cast<std::size_t>(n) - 8);
    while (!w.refused.empty() && w.refused.back() == '\n') w.refused.pop_back();
  }
  if (n >= 5 && std::memcmp(buf, "READY", 5) == 0) {
    registry_->SetState(w.index, shm::kBucketRunning);
    MapAnchor(w);
    status_dirty_ = true;
    Settle(w, shm::ControlStatus::kOk, {});
    launcher_->Replenish();
  }
  // Otherwise the worker closed its pipe without being ready: its exit follows on the pidfd.
}

void Supervisor::SignalWorker(const WorkerSlot& w, int sig) {
  // Spawn and Adopt give every worker a pidfd; were one missing, kill() by pid is safe only for
  // a child not reaped yet (kvd reaps a worker only in OnExit, which clears w.pid).
  int error = SignalProcess(w.pidfd, w.own_child ? w.pid : 0, sig);
  if (error != 0 && error != ESRCH) {
    spdlog::warn("cannot send {} to worker {} of bucket '{}': {}", ::strsignal(sig), w.pid, w.name,
                 std::strerror(error));
  }
}

void Supervisor::TellWorker(const WorkerSlot& w, int sig) {
  SignalWorker(w, sig);
  SignalWorker(w, SIGCONT);
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
  if (w.killed_unresponsive) how = "was unresponsive (heartbeat older than the liveness timeout)";
  w.killed_unresponsive = false;
  w.stale = false;
  CloseWatched(&w.pidfd);
  CloseWatched(&w.ready_fd);
  pid_t pid = w.pid;
  w.pid = 0;
  w.own_child = false;
  // The worker leaves the registry together with the state that follows (R4): "restarting"
  // after a crash until CountCrash decides (restart or failed), and after a clean stop of kvd,
  // whose next start starts a worker again.
  std::uint32_t state = shm::kBucketRestarting;
  std::string reason = stopping_ ? "stopped with kvd" : "worker " + how;
  if (w.dropping) {
    state = shm::kBucketDropping;
    reason.clear();
  } else if (w.restart_requested && !stopping_) {
    state = shm::kBucketStarting;
    reason.clear();
  }
  registry_->SetWorker(w.index, 0, 0, 0, state, reason);
  status_dirty_ = true;
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
  if (!w.refused.empty()) {
    // Restarting cannot help: the data on disk stays as it is until an operator acts.
    MarkFailed(w, "data refused: " + w.refused);
    return;
  }
  CountCrash(w, pid, how, false);
}

// A worker that ended without being asked to (pid: 0 if it could not even be started) counts
// toward the restart intensity: past max_restarts within max_seconds the bucket is failed, else
// a worker is started again, at once after the first crash in the window and with exponential
// backoff after that. A failed start is never retried at once: the cause is most likely still
// there (e.g. the executable being replaced), so it waits at least backoff_ms (and 1 ms).
void Supervisor::CountCrash(WorkerSlot& w, pid_t pid, const std::string& how, bool spawn_failed) {
  auto now = Clock::now();
  w.exits.push_back(now);
  while (!w.exits.empty() && now - w.exits.front() > std::chrono::seconds(options_.max_seconds)) {
    w.exits.pop_front();
  }
  std::optional<shm::BucketRecord> record = registry_->reader().Read(w.index);
  registry_->SetRestarts(w.index, (record ? record->restarts : 0) + 1);
  if (w.exits.size() > options_.max_restarts) {
    MarkFailed(w, "worker " + how + "; " + std::to_string(w.exits.size()) + " exits within " +
                      std::to_string(options_.max_seconds) + " s");
    return;
  }
  std::uint64_t delay_ms = 0;
  if (w.exits.size() > 1) {
    // Doubling from backoff_ms; the shift is capped (max_restarts may allow 64 and more exits).
    std::size_t doublings = std::min<std::size_t>(w.exits.size() - 2, 32);
    delay_ms = std::min<std::uint64_t>(options_.max_backoff_ms,
                                       std::uint64_t{options_.backoff_ms} << doublings);
  }
  if (spawn_failed) delay_ms = std::max<std::uint64_t>({delay_ms, options_.backoff_ms, 1});
  std::string who = pid != 0 ? "worker " + std::to_string(pid) : std::string("worker");
  spdlog::warn("{} of bucket '{}' {}; restarting in {} ms", who, w.name, how, delay_ms);
  registry_->SetState(w.index, shm::kBucketRestarting, "worker " + how);
  status_dirty_ = true;
  if (delay_ms == 0) {
    Spawn(w);
  } else {
    w.restart_at = now + milliseconds(delay_ms);
  }
}

void Supervisor::MarkFailed(WorkerSlot& w, const std::string& reason) {
  spdlog::error(
      "bucket '{}' failed: {} (reads are still served; writes refused until `kvctl "
      "restart {}`)",
      w.name, reason, w.name);
  OpenFailedListener(w);  // before the state: a writer that sees "failed" finds the listener
  registry_->SetState(w.index, shm::kBucketFailed, reason);
  status_dirty_ = true;
  Settle(w, shm::ControlStatus::kFailed, "bucket '" + w.name + "' failed: " + reason);
}

void Supervisor::OpenFailedListener(WorkerSlot& w) {
  if (w.failed_fd >= 0) return;
  w.failed_fd = shm::ListenSeqpacket(shm::BucketSocketAddress(options_.ns, w.id));
  if (w.failed_fd < 0) {
    // Without it a writer gets UNAVAILABLE instead of FAILED: worse words, same effect.
    spdlog::warn("cannot listen on the socket of failed bucket '{}': {}", w.name,
                 std::strerror(errno));
    return;
  }
  fd_owner_[w.failed_fd] = w.id;
  Watch(w.failed_fd, 0);
}

void Supervisor::CloseFailedListener(WorkerSlot& w) { CloseWatched(&w.failed_fd); }

void Supervisor::OnFailedConnection(WorkerSlot& w) {
  std::optional<shm::BucketRecord> r = registry_->reader().Read(w.index);
  std::string message = "bucket '" + w.name + "' failed (" + (r ? r->reason : std::string()) +
                        "); writes are refused until `kvctl restart " + w.name + "`";
  int conn;
  while ((conn = ::accept4(w.failed_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
    std::string reply =
        shm::PeerMayAccess(conn)
            ? shm::EncodeControlReply(shm::ControlStatus::kFailed, message)
            : shm::EncodeControlReply(shm::ControlStatus::kDenied,
                                      "PERMISSION: not a member of the instance's group");
    shm::SendPacket(conn, reply.data(), reply.size());
    // Close only once the peer's registration is read: closing a socket with a packet unread
    // resets the peer, which may then never see the reply. A client sends it right after
    // connecting; a peer that sends nothing costs at most kFailedDrainMs.
    if (shm::WaitReadable(conn, kFailedDrainMs)) {
      char request[512];
      int fd = -1;
      shm::ReceivePacket(conn, request, sizeof request, &fd);
      if (fd >= 0) ::close(fd);
    }
    ::close(conn);
  }
}

void Supervisor::FinishDrop(WorkerSlot& w, bool remove_files) {
  if (remove_files && options_.persistence.enabled()) {
    // The id is recorded as used before the directory that proves it goes (R2 across reboots).
    std::string ns_dir = persistence::NamespaceDir(options_.persistence.data_dir, options_.ns);
    std::string e = persistence::WriteNextId(ns_dir, w.id + 1);
    if (e.empty()) e = persistence::RemoveBucketDir(BucketDir(w.id));
    if (!e.empty()) spdlog::error("dropped bucket '{}': {}", w.name, e);
  }
  // The worker is gone, so nothing writes the bucket's objects now. If it died before marking the
  // bucket dropped (SIGKILL), do it for it so readers with stale handles learn it.
  CloseFailedListener(w);
  w.anchor = shm::Segment();
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
  shm::Segment::Remove(shm::FeedObjectName(options_.ns, w.id));  // subscribers keep their mapping
  shm::Segment::Remove(shm::DedupObjectName(options_.ns, w.id));
  shm::Segment::Remove(shm::HistoryObjectName(options_.ns, w.id));  // snapshots keep theirs
  shm::Segment::Remove(anchor_name);
  registry_->Free(w.index);
  status_dirty_ = true;
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
  // Refuse only after reading the request: closing a socket whose peer's packet is still unread
  // makes the peer's recv fail with ECONNRESET, and it would never see the refusal.
  if (n > 0 && !shm::PeerMayAccess(conn)) {
    return Answer(conn, shm::ControlStatus::kDenied, "not a member of the instance's group");
  }
  shm::ControlOp op;
  std::string_view name;
  if (n <= 0 || !shm::DecodeControlRequest(buf, static_cast<std::size_t>(n), &op, &name)) {
    if (n > 0) {
      Answer(conn, shm::ControlStatus::kInvalid, "malformed control request");
    } else {
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
  // A create with an upstream (docs/mirror.md) is a create whose entry records the upstream.
  std::string mirrored_name;
  shm::UpstreamSpec upstream;
  if (op == shm::ControlOp::kCreateMirrored) {
    if (!shm::DecodeMirroredCreate(name, &mirrored_name, &upstream)) {
      return Answer(conn, shm::ControlStatus::kInvalid, "malformed create request");
    }
    if (std::string why = shm::ValidateUpstream(upstream); !why.empty()) {
      return Answer(conn, shm::ControlStatus::kInvalid, why);
    }
#ifndef KV_HAVE_MIRROR
    return Answer(conn, shm::ControlStatus::kFailed,
                  "this kvd was built without hiredis: buckets cannot mirror an upstream");
#endif
    if (options_.persistence.enabled()) {
      return Answer(conn, shm::ControlStatus::kFailed,
                    "a mirrored bucket keeps nothing on disk (its upstream holds the truth), and "
                    "this kvd has a data directory: run the mirror in an instance without one");
    }
    name = mirrored_name;
    op = shm::ControlOp::kCreate;
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
        std::optional<shm::BucketRecord> existing = registry_->reader().Read(w->index);
        if (existing && existing->upstream != upstream) {
          return Answer(
              conn, shm::ControlStatus::kInvalid,
              quoted + " exists " +
                  (existing->upstream.empty() ? std::string("without an upstream")
                                              : "with upstream " + existing->upstream.url +
                                                    " prefix '" + existing->upstream.prefix + "'"));
        }
        return Answer(conn, shm::ControlStatus::kOk, {});  // exists: nothing changes
      }
      if (workers_.size() >= registry_->reader().capacity()) {
        return Answer(
            conn, shm::ControlStatus::kFull,
            "maximum number of buckets (" + std::to_string(workers_.size()) + ") reached");
      }
      std::uint64_t id = registry_->AllocateBucketId();
      if (options_.persistence.enabled()) {
        if (std::string e = persistence::WriteBucketMeta(BucketDir(id), id, std::string(name));
            !e.empty()) {
          spdlog::error("cannot create {}: {}", quoted, e);
          return Answer(conn, shm::ControlStatus::kFailed, "data directory: " + e);
        }
      }
      std::optional<std::uint32_t> index = registry_->Insert(name, id, upstream);
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
      w->restart_at.reset();
      registry_->SetState(w->index, shm::kBucketDropping);
      if (w->pid != 0) {
        TellWorker(*w, SIGUSR1);  // the worker marks the bucket dropped for readers, then exits
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
      spdlog::info("restart of {} requested", quoted);
      if (w->pid != 0) {
        w->restart_requested = true;
        TellWorker(*w, SIGTERM);
      } else {
        registry_->SetState(w->index, shm::kBucketStarting);
        Spawn(*w);
      }
      return;
    }
    case shm::ControlOp::kSave: {
      if (w == nullptr)
        return Answer(conn, shm::ControlStatus::kNotFound, quoted + " does not exist");
      if (!options_.persistence.enabled()) {
        return Answer(conn, shm::ControlStatus::kFailed,
                      "kvd has no data directory (memory only): nothing to save to");
      }
      if (w->pid == 0 || w->ready_fd >= 0 || w->dropping) {
        return Answer(conn, shm::ControlStatus::kFailed, quoted + " has no running worker");
      }
      TellWorker(*w, SIGUSR2);
      return Answer(conn, shm::ControlStatus::kOk, {});
    }
    default:
      return Answer(conn, shm::ControlStatus::kInvalid, "unsupported control request");
  }
}

// Returns true if every running worker's heartbeat is fresh. Kills wedged workers.
bool Supervisor::CheckLiveness() {
  bool all_fresh = true;
  std::uint64_t now_ns = MonotonicNanosNow();
  for (auto& [id, w] : workers_) {
    if (w.pid == 0 || w.ready_fd >= 0 || w.dropping || !w.anchor.valid()) continue;
    const auto* a = reinterpret_cast<const shm::AnchorHeader*>(w.anchor.data());
    std::uint64_t beat = a->heartbeat_ns.load(std::memory_order_relaxed);
    std::uint64_t age_ms = now_ns > beat ? (now_ns - beat) / 1'000'000 : 0;
    bool stale = age_ms > kHeartbeatFreshMs;
    if (stale != w.stale) {
      w.stale = stale;
      status_dirty_ = true;
      if (stale) {
        spdlog::warn("worker {} of bucket '{}' has not beaten for {} ms", w.pid, w.name, age_ms);
      } else {
        spdlog::info("worker {} of bucket '{}' beats again", w.pid, w.name);
      }
    }
    all_fresh &= !stale;
    if (options_.liveness_timeout_ms != 0 && age_ms > options_.liveness_timeout_ms &&
        !w.killed_unresponsive) {
      spdlog::error(
          "worker {} of bucket '{}' unresponsive for {} ms (liveness timeout {} ms); "
          "killing it",
          w.pid, w.name, age_ms, options_.liveness_timeout_ms);
      w.killed_unresponsive = true;
      SignalWorker(w, SIGKILL);
    }
  }
  return all_fresh;
}

void Supervisor::UpdateStatus() {
  if (!notify_ || !status_dirty_) return;
  status_dirty_ = false;
  std::size_t running = 0, failed = 0, other = 0;
  std::string stale;
  for (const auto& [id, w] : workers_) {
    std::uint32_t state = StateOf(w);
    if (state == shm::kBucketRunning) {
      ++running;
    } else if (state == shm::kBucketFailed) {
      ++failed;
    } else {
      ++other;
    }
    if (w.stale) stale += (stale.empty() ? "" : ", ") + w.name;
  }
  std::string status = "serving " + std::to_string(workers_.size()) +
                       " buckets: " + std::to_string(running) + " running, " +
                       std::to_string(failed) + " failed, " + std::to_string(other) + " starting";
  if (!stale.empty()) status += "; unresponsive: " + stale;
  if (stopping_) status = "stopping workers";
  if (status == last_status_) return;
  last_status_ = status;
  Notify("STATUS=" + status);
}

void Supervisor::RunTimers() {
  auto now = Clock::now();
  for (auto& [id, w] : workers_) {
    if (w.restart_at && *w.restart_at <= now && !stopping_) Spawn(w);
    if (w.ready_fd >= 0 && w.start_deadline <= now && w.pid != 0) {
      spdlog::error("worker {} of bucket '{}' did not become ready in time; killing it", w.pid,
                    w.name);
      SignalWorker(w, SIGKILL);
      w.start_deadline = now + kStartTimeout;
    }
  }
  if (now >= next_liveness_check_ || (watchdog_interval_.count() != 0 && now >= next_watchdog_)) {
    next_liveness_check_ = now + milliseconds(250);
    bool all_fresh = CheckLiveness();
    if (watchdog_interval_.count() != 0 && now >= next_watchdog_) {
      // Withheld while a worker is stale: systemd then restarts kvd (and its workers) if it stays
      // so for WatchdogSec -- the liveness timeout normally resolves it first.
      UpdateStatus();  // a recovery is reported before the ping that follows it
      if (all_fresh && !stopping_) Notify("WATCHDOG=1");
      next_watchdog_ = now + watchdog_interval_;
    }
  }
  if (!options_.metrics_file.empty() && now >= next_metrics_) {
    next_metrics_ = now + milliseconds(options_.metrics_interval_ms);
    WriteMetrics();
  }
  if (stopping_ && now >= stop_deadline_) {
    for (auto& [id, w] : workers_) {
      if (w.pid != 0) {
        spdlog::warn("worker {} of bucket '{}' ignored SIGTERM; killing it", w.pid, w.name);
        SignalWorker(w, SIGKILL);
      }
    }
    stop_deadline_ = now + std::chrono::hours(1);
  }
  UpdateStatus();
}

void Supervisor::WriteMetrics() {
  std::string error;
  if (!metrics_client_) {
    ClientOptions o;
    o.ns = options_.ns;
    Result<std::shared_ptr<Client>> client = Client::Open(o);
    if (client.ok()) {
      metrics_client_ = std::move(client).value();
    } else {
      error = client.status().ToString();
    }
  }
  if (metrics_client_) {
    Result<metrics::InstanceMetrics> m = metrics::Collect(*metrics_client_);
    if (!m.ok()) {
      error = m.status().ToString();
    } else {
      metrics::WriteFileAtomically(options_.metrics_file, metrics::Format(*m), &error);
    }
  }
  if (!error.empty() && !metrics_failing_) {
    spdlog::error("cannot write metrics-file {}: {}", options_.metrics_file, error);
  } else if (error.empty() && metrics_failing_) {
    spdlog::info("metrics-file {} written again", options_.metrics_file);
  }
  metrics_failing_ = !error.empty();
}

int Supervisor::NextTimeoutMs() const {
  auto now = Clock::now();
  auto next = std::min(now + std::chrono::seconds(1), next_liveness_check_);
  if (watchdog_interval_.count() != 0) next = std::min(next, next_watchdog_);
  for (const auto& [id, w] : workers_) {
    if (w.restart_at) next = std::min(next, *w.restart_at);
    if (w.ready_fd >= 0) next = std::min(next, w.start_deadline);
  }
  if (stopping_) next = std::min(next, stop_deadline_);
  if (!options_.metrics_file.empty()) next = std::min(next, next_metrics_);
  auto ms = std::chrono::duration_cast<milliseconds>(next - now).count();
  return static_cast<int>(std::max<long>(0, ms));
}

void Supervisor::Reload() {
  Notify("RELOADING=1\nSTATUS=reloading the configuration");
  bool applied = true;
  if (!options_.reload) {
    spdlog::info("SIGHUP: no configuration to reload");
  } else {
    SupervisorOptions fresh;
    std::string error;
    applied = options_.reload(&fresh, &error);
    if (applied) {
      ApplyReload(fresh);
    } else {
      spdlog::error("SIGHUP: configuration refused, the running one stays: {}", error);
    }
  }
  registry_->RecordReload(applied);
  last_status_.clear();
  status_dirty_ = true;
  Notify("READY=1");
  UpdateStatus();
}

void Supervisor::ApplyReload(const SupervisorOptions& fresh) {
  std::string changes;
  auto note = [&](const char* key, const auto& before, const auto& after) {
    if (before == after) return;
    changes += std::string(changes.empty() ? "" : ", ") + key + " " + fmt::format("{}", before) +
               " -> " + fmt::format("{}", after);
  };
  note("log-level", options_.log_level, fresh.log_level);
  note("max-restarts", options_.max_restarts, fresh.max_restarts);
  note("max-seconds", options_.max_seconds, fresh.max_seconds);
  note("backoff-ms", options_.backoff_ms, fresh.backoff_ms);
  note("max-backoff-ms", options_.max_backoff_ms, fresh.max_backoff_ms);
  note("liveness-timeout-ms", options_.liveness_timeout_ms, fresh.liveness_timeout_ms);
  note("stop-timeout-ms", options_.stop_timeout_ms, fresh.stop_timeout_ms);
  note("ephemeral", options_.ephemeral, fresh.ephemeral);
  note("metrics-file", options_.metrics_file, fresh.metrics_file);
  note("metrics-interval-ms", options_.metrics_interval_ms, fresh.metrics_interval_ms);
  std::string fixed;
  auto keep = [&](const char* key, bool same) {
    if (!same) fixed += std::string(fixed.empty() ? "" : ", ") + key;
  };
  keep("namespace", options_.ns == fresh.ns);
  keep("group", options_.group == fresh.group);
  keep("max-buckets", options_.max_buckets == fresh.max_buckets);
  keep("max-bucket-bytes", options_.limits.max_bytes == fresh.limits.max_bytes);
  keep("feed-changes", options_.limits.feed_changes == fresh.limits.feed_changes);
  keep("spin-us", options_.worker_spin_us == fresh.worker_spin_us);
  keep("worker-nice", options_.worker_nice == fresh.worker_nice);
  keep("worker-busy-nice", options_.worker_busy_nice == fresh.worker_busy_nice);
  keep("wait", options_.wait_policy == fresh.wait_policy);
  keep("exec-workers", options_.exec_workers == fresh.exec_workers);
  const persistence::PersistenceOptions& a = options_.persistence;
  const persistence::PersistenceOptions& b = fresh.persistence;
  keep("data-dir", a.data_dir == b.data_dir);
  keep("save", a.save_rules == b.save_rules);
  keep("appendonly", a.appendonly == b.appendonly);
  keep("appendfsync", a.appendfsync == b.appendfsync);
  keep("stop-writes-on-save-error", a.stop_writes_on_save_error == b.stop_writes_on_save_error);
  options_.log_level = fresh.log_level;
  options_.max_restarts = fresh.max_restarts;
  options_.max_seconds = fresh.max_seconds;
  options_.backoff_ms = fresh.backoff_ms;
  options_.max_backoff_ms = fresh.max_backoff_ms;
  options_.liveness_timeout_ms = fresh.liveness_timeout_ms;
  options_.stop_timeout_ms = fresh.stop_timeout_ms;
  options_.ephemeral = fresh.ephemeral;
  if (options_.metrics_file != fresh.metrics_file ||
      options_.metrics_interval_ms != fresh.metrics_interval_ms) {
    next_metrics_ = Clock::now();  // write the new file (or at the new pace) at once
    metrics_failing_ = false;
  }
  options_.metrics_file = fresh.metrics_file;
  options_.metrics_interval_ms = fresh.metrics_interval_ms;
  spdlog::default_logger()->set_level(spdlog::level::from_str(options_.log_level));
  launcher_->SetWorkerFlags(WorkerFlags());
  // Logged at warn so that it shows even at a quiet log level.
  spdlog::warn("SIGHUP: configuration reloaded: {}", changes.empty() ? "no change" : changes);
  if (!fixed.empty()) spdlog::warn("SIGHUP: changes to {} need a restart of kvd", fixed);
}

void Supervisor::BeginShutdown(const char* why) {
  if (stopping_) return;
  stopping_ = true;
  stop_deadline_ = Clock::now() + milliseconds(options_.stop_timeout_ms);
  spdlog::info("stopping ({}): stopping {} workers", why, workers_.size());
  Notify("STOPPING=1\nSTATUS=stopping workers");
  for (auto& [id, w] : workers_) {
    Settle(w, shm::ControlStatus::kFailed, "kvd is shutting down");
    if (w.pid != 0) TellWorker(w, SIGTERM);
  }
}

void Supervisor::FinishShutdown() {
  launcher_->Shutdown();
  registry_->SetKvd(0, 0, 0);
  for (auto& [id, w] : workers_) CloseFailedListener(w);
  if (options_.ephemeral) {
    std::vector<std::uint64_t> ids;
    for (const auto& [id, w] : workers_) ids.push_back(id);
    for (std::uint64_t id : ids) FinishDrop(workers_.at(id), false);
    shm::Segment::Remove(shm::RegistryObjectName(options_.ns));
    spdlog::info("stopped; removed every shared object of namespace '{}' (--ephemeral)",
                 options_.ns);
  } else {
    spdlog::info("stopped; the buckets' shared memory persists for the next start");
  }
}

int Supervisor::Run() {
  if (!SetUp()) return 1;
  Adopt();
  Notify("READY=1\nSTATUS=serving " + std::to_string(workers_.size()) +
         " buckets\nMAINPID=" + std::to_string(::getpid()));
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
          if (info.ssi_signo == SIGHUP) Reload();
          if (info.ssi_signo == SIGCHLD) {
            launcher_->ReapStrays([this](pid_t pid) {
              for (const auto& [id, w] : workers_) {
                if (w.pid == pid) return true;
              }
              return false;
            });
          }
        }
      } else if (fd == control_fd_) {
        int conn;
        while ((conn = ::accept4(control_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK)) >=
               0) {
          Watch(conn, kTagConnection);  // the peer is checked once its request is read
        }
      } else if (tag == kTagConnection) {
        HandleControl(fd);
      } else if (auto it = fd_owner_.find(fd); it != fd_owner_.end()) {
        WorkerSlot& w = workers_.at(it->second);
        if (fd == w.ready_fd) {
          OnReadable(w);
        } else if (fd == w.pidfd) {
          OnExit(w);
        } else if (fd == w.failed_fd) {
          OnFailedConnection(w);
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
