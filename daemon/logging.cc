#include "daemon/logging.h"

#include <spdlog/sinks/stdout_sinks.h>

namespace kv::daemon {

void SetUpLogging(const std::string& role, const std::string& level) {
  auto logger = spdlog::stderr_logger_st(role);
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ [%P %n] %v");
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace kv::daemon
