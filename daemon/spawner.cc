#include "daemon/spawner.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "shm/unix_socket.h"

namespace kv::daemon {
namespace {

constexpr std::size_t kMaxAssignment = 8192;
constexpr int kSpareHelloTimeoutMs = 5000;

void Reply(const std::string& text) {
  if (::send(kSpawnerFd, text.data(), text.size(), MSG_NOSIGNAL) < 0) {
    spdlog::debug("spawner: cannot reply to kvd: {}", std::strerror(errno));
  }
}

struct Spare {
  pid_t pid = 0;
  int fd = -1;  // the other end of the spare's socket
};

// In a spare: says hello (its pid) to the spawner, then waits for its assignment from kvd, which
// holds the other end of its socket by then. Exits if that end closes first. Returns the worker's
// arguments with fd 1 = the readiness pipe.
std::vector<std::string> AwaitAssignment(int sock) {
  pid_t self = ::getpid();
  if (::send(sock, &self, sizeof self, MSG_NOSIGNAL) != sizeof self) ::_exit(0);
  char buf[kMaxAssignment];
  int ready_fd = -1;
  ssize_t n = shm::ReceivePacket(sock, buf, sizeof buf, &ready_fd);
  if (n <= 0 || ready_fd < 0) ::_exit(0);
  ::close(sock);
  if (::dup2(ready_fd, STDOUT_FILENO) < 0) ::_exit(1);
  ::close(ready_fd);
  std::vector<std::string> args;
  const char* p = buf;
  const char* end = buf + n;
  while (p < end) {
    const char* nul = static_cast<const char*>(std::memchr(p, '\0', end - p));
    if (nul == nullptr) nul = end;
    args.emplace_back(p, nul);
    p = nul + 1;
  }
  return args;
}

// Forks the next spare (double fork: the spare ends up a child of kvd). In the spawner returns the
// spare, or std::nullopt if it could not be made. In the spare itself, *assignment is set once it
// is assigned (and the return value is meaningless).
std::optional<Spare> MakeSpare(std::optional<std::vector<std::string>>* assignment) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    spdlog::warn("spawner: socketpair: {}", std::strerror(errno));
    return std::nullopt;
  }
  pid_t first = ::fork();
  if (first < 0) {
    spdlog::warn("spawner: fork: {}", std::strerror(errno));
    ::close(sv[0]);
    ::close(sv[1]);
    return std::nullopt;
  }
  if (first == 0) {
    pid_t spare = ::fork();
    if (spare != 0) ::_exit(spare > 0 ? 0 : 1);
    // The spare keeps stdin, stderr and its socket; fd 1 becomes the readiness pipe.
    int keep = sv[1];
    ::close_range(STDERR_FILENO + 1, static_cast<unsigned>(keep) - 1, 0);
    ::close_range(static_cast<unsigned>(keep) + 1, ~0u, 0);
    *assignment = AwaitAssignment(keep);
    return std::nullopt;
  }
  ::close(sv[1]);
  int status = 0;
  while (::waitpid(first, &status, 0) < 0 && errno == EINTR) {
  }
  Spare spare;
  spare.fd = sv[0];
  pollfd p{spare.fd, POLLIN, 0};
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && ::poll(&p, 1, kSpareHelloTimeoutMs) == 1 &&
      ::recv(spare.fd, &spare.pid, sizeof spare.pid, 0) == sizeof spare.pid && spare.pid > 0) {
    return spare;
  }
  spdlog::warn("spawner: the spare did not start");
  ::close(spare.fd);
  return std::nullopt;
}

}  // namespace

std::optional<std::vector<std::string>> RunSpawner() {
  for (;;) {
    char request = 0;
    int stray_fd = -1;
    ssize_t n = shm::ReceivePacket(kSpawnerFd, &request, sizeof request, &stray_fd);
    if (stray_fd >= 0) ::close(stray_fd);
    if (n == 0 || (n < 0 && errno != EMSGSIZE)) return std::nullopt;  // kvd is gone
    if (n < 0 || request != 'N') {
      Reply("Emalformed request");
      continue;
    }
    std::optional<std::vector<std::string>> assignment;
    std::optional<Spare> spare = MakeSpare(&assignment);
    if (assignment) return assignment;  // this process is the spare, now assigned
    if (!spare) {
      Reply("Eno spare process could be forked");
      continue;
    }
    std::string offer = "S" + std::to_string(spare->pid);
    if (!shm::SendPacket(kSpawnerFd, offer.data(), offer.size(), spare->fd)) {
      spdlog::debug("spawner: cannot hand a spare to kvd: {}", std::strerror(errno));
    }
    ::close(spare->fd);  // kvd holds the spare's socket now (or nobody, and the spare exits)
  }
}

}  // namespace kv::daemon
