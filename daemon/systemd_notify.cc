#include "daemon/systemd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace kv::daemon {

bool NotifySocketSet() {
  const char* path = std::getenv("NOTIFY_SOCKET");
  return path != nullptr && *path != '\0';
}

bool Notify(const std::string& state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || (path[0] != '/' && path[0] != '@')) return false;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::size_t len = std::strlen(path);
  if (len >= sizeof sa.sun_path) return false;
  std::memcpy(sa.sun_path, path, len);
  if (path[0] == '@') sa.sun_path[0] = '\0';  // abstract: not NUL-terminated
  socklen_t sa_len =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len + (path[0] == '@' ? 0 : 1));
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ssize_t n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                       reinterpret_cast<const sockaddr*>(&sa), sa_len);
  ::close(fd);
  return n == static_cast<ssize_t>(state.size());
}

std::uint64_t WatchdogUsec() {
  const char* usec = std::getenv("WATCHDOG_USEC");
  if (usec == nullptr || *usec == '\0') return 0;
  if (const char* pid = std::getenv("WATCHDOG_PID"); pid != nullptr && *pid != '\0') {
    if (std::strtol(pid, nullptr, 10) != ::getpid()) return 0;
  }
  return std::strtoull(usec, nullptr, 10);
}

}  // namespace kv::daemon
