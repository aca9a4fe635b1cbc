#include "daemon/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <memory>

namespace kv::daemon {
namespace {

std::string g_role;  // the process's role; see SetLogRole for who may change it

// The pattern flag %* : the process's role.
class RoleFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    dest.append(g_role.data(), g_role.data() + g_role.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<RoleFlag>();
  }
};

// The pattern flag %~ : the line's syslog priority as journald's stream prefix, "<3>" for an
// error (sd-daemon(3)).
class SyslogPriorityFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    char prefix[] = "<0>";
    prefix[1] = static_cast<char>('0' + SyslogPriority(msg.level));
    dest.append(prefix, prefix + 3);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<SyslogPriorityFlag>();
  }
};

}  // namespace

int SyslogPriority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::critical:
      return 2;  // LOG_CRIT
    case spdlog::level::err:
      return 3;  // LOG_ERR
    case spdlog::level::warn:
      return 4;  // LOG_WARNING
    case spdlog::level::info:
      return 6;  // LOG_INFO
    default:
      return 7;  // LOG_DEBUG: debug and trace
  }
}

bool StderrIsJournal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  std::uintmax_t dev = 0;
  std::uintmax_t ino = 0;
  char end = 0;
  if (std::sscanf(stream, "%ju:%ju%c", &dev, &ino, &end) != 2) return false;
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return static_cast<std::uintmax_t>(st.st_dev) == dev &&
         static_cast<std::uintmax_t>(st.st_ino) == ino;
}

const char* StderrErrorPrefix() { return StderrIsJournal() ? "<3>" : ""; }

void SetUpLogging(const std::string& role, const std::string& level) {
  g_role = role;
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<RoleFlag>('*').add_flag<SyslogPriorityFlag>('~').set_pattern(
      StderrIsJournal() ? "%~%l [%P %*] %v" : "%Y-%m-%d %H:%M:%S.%e %^%l%$ [%P %*] %v");
  auto logger = spdlog::stderr_logger_st("kv");
  logger->set_formatter(std::move(formatter));
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

void SetLogRole(const std::string& role) { g_role = role; }

}  // namespace kv::daemon
