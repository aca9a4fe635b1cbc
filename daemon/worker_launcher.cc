#include "daemon/worker_launcher.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/env.hpp>
#include <boost/process/extend.hpp>
#include <boost/process/posix.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <system_error>

#include <spdlog/spdlog.h>

#include "daemon/pidfd.h"
#include "daemon/spawner.h"
#include "shm/unix_socket.h"

namespace kv::daemon {
namespace {

namespace bp = boost::process;

// A fork is a few ms at most; a spawner silent this long is wedged and gets replaced.
constexpr int kSpawnerReplyTimeoutMs = 2000;

// kvd blocks its signals for its signalfd; every child starts with none blocked.
auto UnblockSignalsInChild() {
  return bp::extend::on_exec_setup([](auto&) {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
  });
}

// kvd may have been started with descriptors open that are not close-on-exec; a child gets none
// of them. In the child, marks every descriptor from `first` up close-on-exec, so the program
// exec'd has 0, 1, 2 and, below `first`, what other handlers bind for it (bp::posix::fd.bind).
// Marking rather than closing keeps Boost.Process's exec-error pipe usable until exec, and
// leaves the order among handlers free: a bind (dup2) onto a descriptor below `first` makes one
// without close-on-exec whether it runs before or after this.
auto InheritOnlyBelow(int first) {
  return bp::extend::on_exec_setup([first](auto& exec) {
    if (::close_range(static_cast<unsigned>(first), ~0u, CLOSE_RANGE_CLOEXEC) == 0) return;
    // Kernels before 5.11: one by one. kvd is single-threaded, so the child may allocate.
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr) {
      exec.set_error(std::error_code(errno, std::system_category()), "opendir(/proc/self/fd)");
      return;
    }
    while (dirent* e = ::readdir(dir)) {
      int fd = std::atoi(e->d_name);
      if (fd >= first && fd != ::dirfd(dir)) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    ::closedir(dir);
  });
}

}  // namespace

// The spawner gets room after its own arguments to show a spawned worker's command line
// (RetitleCommandLine): at least as long as the "--bucket-id N" it adds.
constexpr std::size_t kCommandLineRoom = 64;

WorkerLauncher::WorkerLauncher(std::string executable, std::vector<std::string> worker_flags,
                               bool use_spawner)
    : executable_(std::move(executable)),
      worker_flags_(std::move(worker_flags)),
      use_spawner_(use_spawner) {
  if (use_spawner_) StartSpawner();
}

void WorkerLauncher::SetWorkerFlags(std::vector<std::string> worker_flags) {
  if (worker_flags == worker_flags_) return;
  worker_flags_ = std::move(worker_flags);
  StopSpawner();  // the next Launch starts one with the new flags
}

WorkerLauncher::~WorkerLauncher() { StopSpawner(); }

bool WorkerLauncher::StartSpawner() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    spdlog::warn("cannot start the spawner: socketpair: {}", std::strerror(errno));
    return false;
  }
  if (sv[1] == kSpawnerFd) {  // dup2 onto itself would keep FD_CLOEXEC
    int moved = ::fcntl(sv[1], F_DUPFD_CLOEXEC, kSpawnerFd + 1);
    ::close(sv[1]);
    sv[1] = moved;
  }
  std::vector<std::string> args = {"--spawner"};
  args.insert(args.end(), worker_flags_.begin(), worker_flags_.end());
  args.insert(args.end(), {"--cmdline-room", std::string(kCommandLineRoom, ' ')});
  std::error_code ec;
  // LD_BIND_NOW: the spawner resolves every library symbol once, at its start. Its children
  // share that work: lazily bound, each worker would look up dozens of symbols itself, every
  // lookup reading symbol tables that a forked child maps anew page by page (~25 page faults on
  // the bucket-create path).
  bp::child child(executable_, bp::args(args), bp::env["LD_BIND_NOW"] = "1",
                  bp::posix::fd.bind(kSpawnerFd, sv[1]), InheritOnlyBelow(kSpawnerFd + 1),
                  UnblockSignalsInChild(), ec);
  ::close(sv[1]);
  if (ec || !child.valid()) {
    spdlog::warn("cannot start the spawner ({}): workers will be exec'd", ec.message());
    ::close(sv[0]);
    return false;
  }
  spawner_pid_ = child.id();
  child.detach();
  spawner_fd_ = sv[0];
  spdlog::debug("spawner {} started", spawner_pid_);
  return RequestSpare();
}

bool WorkerLauncher::RequestSpare() {
  spare_requested_ = shm::SendPacket(spawner_fd_, "N", 1);
  return spare_requested_;
}

void WorkerLauncher::Replenish() {
  if (spawner_fd_ >= 0 && spare_fd_ < 0 && !spare_requested_) RequestSpare();
}

bool WorkerLauncher::TakeSpare(std::string* error) {
  if (spare_fd_ >= 0) return true;
  if (!spare_requested_ && !RequestSpare()) {
    *error = std::string("send: ") + std::strerror(errno);
    return false;
  }
  if (!shm::WaitReadable(spawner_fd_, kSpawnerReplyTimeoutMs)) {
    *error = "no spare in time";
    return false;
  }
  char reply[256];
  int fd = -1;
  ssize_t n = shm::ReceivePacket(spawner_fd_, reply, sizeof reply - 1, &fd);
  spare_requested_ = false;
  if (n <= 0) {
    if (fd >= 0) ::close(fd);
    *error = n == 0 ? "it exited" : std::string("receive: ") + std::strerror(errno);
    return false;
  }
  reply[n] = '\0';
  pid_t pid = reply[0] == 'S' ? static_cast<pid_t>(std::strtol(reply + 1, nullptr, 10)) : 0;
  if (pid <= 0 || fd < 0) {
    if (fd >= 0) ::close(fd);
    *error = reply[0] == 'E' ? std::string(reply + 1) : "malformed reply";
    return false;
  }
  spare_pid_ = pid;
  spare_fd_ = fd;
  return true;
}

void WorkerLauncher::StopSpawner() {
  if (spare_fd_ >= 0) ::close(spare_fd_);  // the spare exits when it reads EOF (reaped as a stray)
  spare_fd_ = -1;
  spare_pid_ = 0;
  spare_requested_ = false;
  if (spawner_fd_ >= 0) ::close(spawner_fd_);  // the spawner exits when it reads EOF
  spawner_fd_ = -1;
  if (spawner_pid_ == 0) return;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (::waitpid(spawner_pid_, nullptr, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      SignalProcess(-1, spawner_pid_, SIGKILL);  // not reaped yet: the pid is still its own
      ::waitpid(spawner_pid_, nullptr, 0);
      break;
    }
    ::usleep(1000);
  }
  spawner_pid_ = 0;
}

pid_t WorkerLauncher::Launch(std::uint64_t bucket_id, int ready_fd, std::string* error) {
  for (int attempt = 0; attempt < 2 && use_spawner_; ++attempt) {
    if (spawner_pid_ == 0 && !StartSpawner()) break;
    if (pid_t pid = LaunchThroughSpawner(bucket_id, ready_fd, error); pid > 0) return pid;
    spdlog::warn("the spawner failed ({}); replacing it", *error);
    StopSpawner();
  }
  return LaunchByExec(bucket_id, ready_fd, error);
}

pid_t WorkerLauncher::LaunchThroughSpawner(std::uint64_t bucket_id, int ready_fd,
                                           std::string* error) {
  if (!TakeSpare(error)) return 0;
  std::string assignment = std::to_string(bucket_id);
  bool sent = shm::SendPacket(spare_fd_, assignment.data(), assignment.size(), ready_fd);
  if (!sent) *error = std::string("the spare did not take its assignment: ") + std::strerror(errno);
  pid_t pid = sent ? spare_pid_ : 0;
  ::close(spare_fd_);
  spare_fd_ = -1;
  spare_pid_ = 0;
  return pid;
}

pid_t WorkerLauncher::LaunchByExec(std::uint64_t bucket_id, int ready_fd, std::string* error) {
  std::vector<std::string> args = {"--worker", "--bucket-id", std::to_string(bucket_id)};
  args.insert(args.end(), worker_flags_.begin(), worker_flags_.end());
  std::error_code ec;
  bp::child child(executable_, bp::args(args), bp::posix::fd.bind(STDOUT_FILENO, ready_fd),
                  InheritOnlyBelow(STDERR_FILENO + 1), UnblockSignalsInChild(), ec);
  if (ec || !child.valid()) {
    *error = ec ? ec.message() : "not started";
    return 0;
  }
  pid_t pid = child.id();
  child.detach();  // the supervisor reaps it through its pidfd
  return pid;
}

void WorkerLauncher::Shutdown() {
  StopSpawner();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  for (;;) {
    pid_t pid = ::waitpid(-1, nullptr, WNOHANG);
    if (pid < 0) return;  // ECHILD: no child left
    if (pid == 0) {
      if (std::chrono::steady_clock::now() > deadline) return;
      ::usleep(1000);
    }
  }
}

void WorkerLauncher::ReapStrays(const std::function<bool(pid_t)>& is_worker) {
  for (;;) {
    siginfo_t info{};
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) return;
    if (is_worker(info.si_pid)) return;  // its supervisor reaps it (and the rest on a later call)
    if (info.si_pid == spawner_pid_) {
      spdlog::warn("the spawner {} exited; the next worker start replaces it", spawner_pid_);
      StopSpawner();  // reaps it
      continue;
    }
    ::waitpid(info.si_pid, nullptr, WNOHANG);
  }
}

}  // namespace kv::daemon
