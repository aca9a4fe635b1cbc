#include "daemon/process_info.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace kv::daemon {

std::uint64_t ProcessStartTicks(pid_t pid) {
  std::string line = ReadProcFile("/proc/" + std::to_string(pid) + "/stat");
  // Field 2 (comm) may contain spaces and parentheses: the fields after it start past the last
  // ')', single-space separated and numbered from 3 (state) as in proc(5); 22 is starttime.
  // Parsed by hand: a stream's locale set-up costs a fresh worker ~10 page faults.
  auto close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::string_view rest = std::string_view(line).substr(close + 1);
  std::uint64_t ticks = 0;
  for (int field = 3; field <= 22; ++field) {
    std::size_t start = rest.find_first_not_of(' ');
    if (start == std::string_view::npos) return 0;
    rest.remove_prefix(start);
    std::string_view token = rest.substr(0, rest.find(' '));
    if (field == 3 && (token == "Z" || token == "X")) return 0;  // a zombie has exited
    if (field == 22) {
      auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), ticks);
      if (ec != std::errc() || end != token.data() + token.size()) return 0;
    }
    rest.remove_prefix(token.size());
  }
  return ticks;
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
