// spdlog setup for kvd and its workers: one stderr logger per process (journald under systemd),
// every line stamped with the pid and the process's role ("kvd", "worker b3").
// Not a file sink: several processes appending to one file is unsupported by spdlog 1.10.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace kv::daemon {

// Installs the default logger. REQUIRES: called once, before any thread starts.
void SetUpLogging(const std::string& role, const std::string& level);

}  // namespace kv::daemon
