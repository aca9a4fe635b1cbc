#include "daemon/crash_point.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace kv::daemon {

bool g_crash_points_armed = false;

namespace {
std::string g_name;
long g_countdown = 1;
}  // namespace

void ArmCrashPoints() {
  const char* env = std::getenv("KV_CRASH_POINT");
  if (env == nullptr || *env == '\0') return;
  std::string spec(env);
  auto colon = spec.find(':');
  g_name = spec.substr(0, colon);
  if (colon != std::string::npos) g_countdown = std::max(1L, std::atol(spec.c_str() + colon + 1));
  g_crash_points_armed = true;
}

void CrashPointSlow(std::string_view name) {
  if (name != g_name) return;
  if (--g_countdown > 0) return;
  ::kill(::getpid(), SIGKILL);
}

}  // namespace kv::daemon
