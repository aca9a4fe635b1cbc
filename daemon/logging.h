// spdlog setup for kvd and its workers: one stderr logger per process (journald under systemd),
// every line stamped with the pid and the process's role ("kvd", "worker b3").
// Not a file sink: several processes appending to one file is unsupported by spdlog 1.10.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace kv::daemon {

// Installs the default logger. REQUIRES: called once, before any thread starts.
void SetUpLogging(const std::string& role, const std::string& level);

// Changes the role stamped on later lines: a forked spare becomes "worker b3" without building a
// logger of its own. REQUIRES: SetUpLogging was called; no other thread logs meanwhile.
void SetLogRole(const std::string& role);

}  // namespace kv::daemon
