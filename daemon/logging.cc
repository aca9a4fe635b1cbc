#include "daemon/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

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

}  // namespace

void SetUpLogging(const std::string& role, const std::string& level) {
  g_role = role;
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<RoleFlag>('*').set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ [%P %*] %v");
  auto logger = spdlog::stderr_logger_st("kv");
  logger->set_formatter(std::move(formatter));
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

void SetLogRole(const std::string& role) { g_role = role; }

}  // namespace kv::daemon
