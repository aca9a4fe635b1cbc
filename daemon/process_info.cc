#include "daemon/process_info.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <chrono>
#include <cstdlib>
#include <cstring>
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

void RetitleCommandLine(int argc, char** argv, const std::vector<std::string>& args) {
  if (argc < 1) return;
  char* begin = argv[0] + std::strlen(argv[0]) + 1;  // argv[0] stays
  char* end = argv[argc - 1] + std::strlen(argv[argc - 1]) + 1;
  if (end <= begin) return;
  std::memset(begin, 0, static_cast<std::size_t>(end - begin));
  char* p = begin;
  for (const std::string& a : args) {
    if (a.size() + 1 > static_cast<std::size_t>(end - p)) break;
    std::memcpy(p, a.c_str(), a.size() + 1);
    p += a.size() + 1;
  }
}

std::string SelfExecutable() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return {};
  return std::string(buf, static_cast<std::size_t>(n));
}

}  // namespace kv::daemon
