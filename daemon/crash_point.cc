#include "daemon/crash_point.h"

#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace kv::daemon {

bool g_crash_points_armed = false;

namespace {

struct Armed {
  std::string name;
  long countdown = 1;        // "name:n": crash on the n-th time
  std::uint64_t one_in = 0;  // "name:rN": crash with probability 1/N each time
  bool once = false;         // "name:once": crash if this process removes the gate
};

std::vector<Armed> g_points;
std::string g_gate;  // KV_CRASH_POINT_GATE: fire only while this file exists
std::uint64_t g_rng = 0;

std::uint64_t NextRandom() {  // xorshift64*: no shared state, no allocation
  g_rng ^= g_rng >> 12;
  g_rng ^= g_rng << 25;
  g_rng ^= g_rng >> 27;
  return g_rng * 0x2545F4914F6CDD1DULL;
}

}  // namespace

void ArmCrashPoints() {
  const char* env = std::getenv("KV_CRASH_POINT");
  if (env == nullptr || *env == '\0') return;
  if (const char* gate = std::getenv("KV_CRASH_POINT_GATE")) g_gate = gate;
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  g_rng = (static_cast<std::uint64_t>(ts.tv_nsec) << 20) ^ static_cast<std::uint64_t>(::getpid()) ^
          0x9E3779B97F4A7C15ULL;
  std::string spec(env);
  std::size_t start = 0;
  while (start < spec.size()) {
    std::size_t comma = spec.find(',', start);
    std::string item = spec.substr(start, comma == std::string::npos ? comma : comma - start);
    start = comma == std::string::npos ? spec.size() : comma + 1;
    Armed a;
    auto colon = item.find(':');
    a.name = item.substr(0, colon);
    if (colon != std::string::npos && item.compare(colon + 1, std::string::npos, "once") == 0) {
      a.once = true;
    } else if (colon != std::string::npos && colon + 1 < item.size() && item[colon + 1] == 'r') {
      a.one_in = std::max(1L, std::atol(item.c_str() + colon + 2));
    } else if (colon != std::string::npos) {
      a.countdown = std::max(1L, std::atol(item.c_str() + colon + 1));
    }
    if (!a.name.empty()) g_points.push_back(a);
  }
  g_crash_points_armed = !g_points.empty();
}

void CrashPointSlow(std::string_view name) {
  for (Armed& a : g_points) {
    if (name != a.name) continue;
    if (a.once) {
      // unlink is atomic: of several processes reaching the point, one removes the gate.
      if (!g_gate.empty() && ::unlink(g_gate.c_str()) == 0) ::kill(::getpid(), SIGKILL);
      continue;
    }
    bool crash = a.one_in != 0 ? NextRandom() % a.one_in == 0 : --a.countdown <= 0;
    if (crash && !g_gate.empty() && ::access(g_gate.c_str(), F_OK) != 0) crash = false;
    if (crash) ::kill(::getpid(), SIGKILL);
  }
}

}  // namespace kv::daemon
