// Named crash points for fault-injection tests (leveldb's fault env, redis's DEBUG SEGFAULT): a
// process started with KV_CRASH_POINT=<name> SIGKILLs itself when it reaches that point, so a
// test can kill a worker exactly "after the table write, before the reply".
// KV_CRASH_POINT=<name>:<n> crashes on the n-th time the point is reached (1-based);
// <name>:r<N> crashes with probability 1/N each time it is reached (a restarted worker inherits
// the variable, so this keeps crashing it while still letting it make progress). Several points:
// a comma-separated list, e.g. KV_CRASH_POINT=after-apply:r50,generation-built:r2.
// KV_CRASH_POINT_GATE=<path> (optional): the point fires only while the file <path> exists, so a
// test can remove the cause of a crash loop without restarting the process that spawns workers
// (kvd passes its environment to every worker it starts). <name>:once (with a gate) fires the
// first time any process reaches the point while the gate exists, and removes the gate as it
// fires: a worker killed there once, whose successor must then get past the same point.
// Costs one predictable branch per point when unset.
#pragma once

#include <string_view>

namespace kv::daemon {

void CrashPointSlow(std::string_view name);

extern bool g_crash_points_armed;

inline void CrashPoint(std::string_view name) {
  if (__builtin_expect(g_crash_points_armed, 0)) CrashPointSlow(name);
}

// Reads KV_CRASH_POINT. Call once at process start.
void ArmCrashPoints();

}  // namespace kv::daemon
