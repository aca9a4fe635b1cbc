#include "daemon/spawner.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include <spdlog/spdlog.h>

#include "daemon/sibling_fork.h"
#include "shm/unix_socket.h"

namespace kv::daemon {
namespace {

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

// In a spare: says hello (its pid) to the spawner if it does not know it, then waits for its
// assignment from kvd, which holds the other end of its socket by then. Exits if that end closes
// first or the assignment is malformed. Returns the bucket id with fd 1 = the readiness pipe.
std::uint64_t AwaitAssignment(int sock, bool say_hello) {
  pid_t self = ::getpid();
  if (say_hello && ::send(sock, &self, sizeof self, MSG_NOSIGNAL) != sizeof self) ::_exit(0);
  char buf[32];
  int ready_fd = -1;
  ssize_t n = shm::ReceivePacket(sock, buf, sizeof buf, &ready_fd);
  if (n <= 0 || ready_fd < 0) ::_exit(0);
  ::close(sock);
  std::uint64_t bucket_id = 0;
  auto [end, ec] = std::from_chars(buf, buf + n, bucket_id);
  if (ec != std::errc() || end != buf + n || bucket_id == 0) ::_exit(2);
  if (::dup2(ready_fd, STDOUT_FILENO) < 0) ::_exit(1);
  ::close(ready_fd);
  return bucket_id;
}

// One fork whose child ends up a child of kvd: ForkSibling, else a double fork (the middle
// process exits at once; the spawner reaps it). Returns as fork() does, -1 with errno; *direct
// says whether the returned pid is the spare's (else it is the middle process's).
pid_t ForkSpare(bool* direct) {
  pid_t pid = ForkSibling();
  *direct = pid >= 0 || errno != ENOSYS;
  if (*direct) return pid;
  pid_t middle = ::fork();
  if (middle <= 0) {
    if (middle < 0) return -1;
    pid_t spare = ::fork();
    if (spare != 0) ::_exit(spare > 0 ? 0 : 1);
    return 0;
  }
  int status = 0;
  while (::waitpid(middle, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return middle;  // the spare says its own pid
  errno = EAGAIN;
  return -1;
}

// Forks the next spare. In the spawner returns the spare, or std::nullopt if it could not be
// made. In the spare itself, *assignment is set once it is assigned (and the return value is
// meaningless).
std::optional<Spare> MakeSpare(std::optional<std::uint64_t>* assignment) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    spdlog::warn("spawner: socketpair: {}", std::strerror(errno));
    return std::nullopt;
  }
  bool direct = false;
  pid_t pid = ForkSpare(&direct);
  if (pid < 0) {
    spdlog::warn("spawner: fork: {}", std::strerror(errno));
    ::close(sv[0]);
    ::close(sv[1]);
    return std::nullopt;
  }
  if (pid == 0) {
    // The spare keeps stdin, stderr and its socket; fd 1 becomes the readiness pipe.
    int keep = sv[1];
    ::close_range(STDERR_FILENO + 1, static_cast<unsigned>(keep) - 1, 0);
    ::close_range(static_cast<unsigned>(keep) + 1, ~0u, 0);
    *assignment = AwaitAssignment(keep, !direct);
    return std::nullopt;
  }
  ::close(sv[1]);
  Spare spare;
  spare.fd = sv[0];
  if (direct) {  // kvd can have it now: it reads its socket once it runs
    spare.pid = pid;
    return spare;
  }
  pollfd p{spare.fd, POLLIN, 0};
  if (::poll(&p, 1, kSpareHelloTimeoutMs) == 1 &&
      ::recv(spare.fd, &spare.pid, sizeof spare.pid, 0) == sizeof spare.pid && spare.pid > 0) {
    return spare;
  }
  spdlog::warn("spawner: the spare did not start");
  ::close(spare.fd);
  return std::nullopt;
}

}  // namespace

std::optional<std::uint64_t> RunSpawner() {
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
    std::optional<std::uint64_t> assignment;
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
