#include "daemon/process_info.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <chrono>
#include <cstdlib>
#include <sstream>

namespace kv::daemon {

std::uint64_t ProcessStartTicks(pid_t pid) {
  std::string line = ReadProcFile("/proc/" + std::to_string(pid) + "/stat");
  if (line.empty()) return 0;
  // Field 2 (comm) may contain spaces and parentheses: skip to the last ')'.
  auto close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  char state = 0;
  rest >> state;
  if (state == 'Z' || state == 'X') return 0;  // a zombie has exited
  for (int i = 4; i <= 22; ++i) {
    if (!(rest >> field)) return 0;
  }
  return std::strtoull(field.c_str(), nullptr, 10);
}

bool ProcessMatches(pid_t pid, std::uint64_t start_ticks) {
  return pid > 0 && start_ticks != 0 && ProcessStartTicks(pid) == start_ticks;
}

std::uint64_t UnixMillisNow() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

std::uint64_t MonotonicNanosNow() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

std::string ReadProcFile(const std::string& path) {
  std::string out;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

bool IsWorkerOf(pid_t pid, const std::string& ns, std::uint64_t bucket_id) {
  if (pid <= 0) return false;
  std::string cmdline = ReadProcFile("/proc/" + std::to_string(pid) + "/cmdline");
  std::string args = '\0' + cmdline;  // every argument is now preceded by a NUL
  auto has = [&](const std::string& seq) {
    return args.find('\0' + seq + '\0') != std::string::npos;
  };
  return has("--worker") && has(std::string("--namespace") + '\0' + ns) &&
         has(std::string("--bucket-id") + '\0' + std::to_string(bucket_id));
}

std::string SelfExecutable() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return {};
  return std::string(buf, static_cast<std::size_t>(n));
}

}  // namespace kv::daemon
