#include "daemon/config.h"

#include <grp.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <thread>

#include "daemon/pidfd.h"
#include "daemon/process_info.h"
#include "shm/names.h"
#include "shm/registry.h"

namespace kv::daemon {
namespace {

// Cross-field checks CLI11 cannot express. Returns the reason a configuration is refused.
std::string Validate(const SupervisorOptions& o) {
  if (std::string why = shm::ValidateNamespace(o.ns); !why.empty()) {
    return "namespace '" + o.ns + "': " + why;
  }
  if (o.backoff_ms > o.max_backoff_ms) {
    return "backoff-ms (" + std::to_string(o.backoff_ms) + ") exceeds max-backoff-ms (" +
           std::to_string(o.max_backoff_ms) + ")";
  }
  if (o.liveness_timeout_ms != 0 && o.liveness_timeout_ms < kHeartbeatFreshMs) {
    return "liveness-timeout-ms must be 0 (off) or at least " + std::to_string(kHeartbeatFreshMs) +
           " (workers beat once a second), not " + std::to_string(o.liveness_timeout_ms);
  }
  if (!o.group.empty() && ::getgrnam(o.group.c_str()) == nullptr) {
    return "group '" + o.group + "' does not exist (create it: groupadd --system " + o.group + ")";
  }
  return {};
}

}  // namespace

ParseOutcome ParseCommandLine(const std::vector<std::string>& args, KvdCommandLine* out,
                              std::string* message) {
  CLI::App app{"kvd: the kv supervisor daemon (one worker process per bucket)", "kvd"};
  KvdCommandLine cl;
  SupervisorOptions& o = cl.options;
  o.ns = "kv";
  auto has = [&](const char* flag) {
    return std::find(args.begin(), args.end(), flag) != args.end();
  };
  CLI::Option* config = nullptr;
  if (!has("--worker") && !has("--spawner")) {
    config = app.set_config("-c,--config", kDefaultConfigPath,
                            "config file of `key = value` lines (keys: the long flag names)");
    app.allow_config_extras(CLI::config_extras_mode::error);
  }
  app.add_option("-n,--namespace", o.ns, "instance namespace")->envname("KV_NAMESPACE");
  app.add_option("--group", o.group,
                 "group whose members may use the instance (default: kvd's own group)");
  app.add_option("--max-buckets", o.max_buckets, "registry capacity (fixed when it is created)")
      ->check(CLI::Range(1u, 1u << 20));
  app.add_option("--max-bucket-bytes", o.limits.max_bytes,
                 "largest shared-memory table of one bucket, in bytes")
      ->check(CLI::Range(std::uint64_t{1} << 16, std::uint64_t{1} << 40));
  app.add_option("--feed-changes", o.limits.feed_changes,
                 "changes a bucket's feed keeps for subscribers (a power of two; sizes new feeds)")
      ->check(CLI::Range(std::uint64_t{1} << 10, std::uint64_t{1} << 20))
      ->check(CLI::Validator(
          [](const std::string& text) -> std::string {
            std::uint64_t n = std::strtoull(text.c_str(), nullptr, 10);
            return (n & (n - 1)) == 0 ? std::string() : "must be a power of two";
          },
          "POWER OF TWO"));
  app.add_option("--max-restarts", o.max_restarts,
                 "crashes allowed within --max-seconds before a bucket is marked failed")
      ->check(CLI::Range(0u, 1000u));
  app.add_option("--max-seconds", o.max_seconds, "restart intensity window, in seconds")
      ->check(CLI::Range(1u, 86400u));
  app.add_option("--backoff-ms", o.backoff_ms, "delay before the 2nd restart in the window")
      ->check(CLI::Range(0u, 600000u));
  app.add_option("--max-backoff-ms", o.max_backoff_ms, "ceiling of the doubling restart delay")
      ->check(CLI::Range(0u, 600000u));
  app.add_option("--liveness-timeout-ms", o.liveness_timeout_ms,
                 "kill and restart a worker whose heartbeat is older than this (0: never)")
      ->check(CLI::Range(0u, 3600000u));
  app.add_option("--stop-timeout-ms", o.stop_timeout_ms, "SIGTERM to SIGKILL delay on shutdown")
      ->check(CLI::Range(10u, 600000u));
  app.add_option("--spin-us", o.worker_spin_us, "how long an idle worker spins before it sleeps")
      ->check(CLI::Range(0u, 10000u));
  app.add_option("--wait", o.wait_policy,
                 "adaptive: spin only while the peer runs (shared machines); dedicated: always "
                 "spin up to --spin-us (kv pinned to CPUs of its own)")
      ->check(CLI::IsMember({"adaptive", "dedicated"}));
  app.add_flag("--exec-workers", o.exec_workers,
               "start each worker by fork+exec of kvd instead of forking it from the spawner");
  app.add_flag("--ephemeral,!--persistent", o.ephemeral,
               "remove every shared object of the namespace on a clean stop (default: persist)");
  app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error, critical, off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_flag("--reload", cl.reload,
               "ask the running kvd of the namespace to reload its config file, and wait");
  app.add_flag("--worker", cl.worker, "run as a bucket worker (started by kvd)")->group("");
  app.add_option("--bucket-id", cl.bucket_id, "bucket to serve (with --worker)")->group("");
  app.add_flag("--spawner", cl.spawner, "fork workers for kvd (started by kvd)")->group("");
  std::string room;  // space for a spawned worker's own command line (RetitleCommandLine)
  app.add_option("--cmdline-room", room, "(with --spawner)")->group("");

  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 parses a reversed list
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    *message = app.help();
    return ParseOutcome::kExit;
  } catch (const CLI::CallForAllHelp&) {
    *message = app.help("", CLI::AppFormatMode::All);
    return ParseOutcome::kExit;
  } catch (const CLI::ParseError& e) {
    *message = e.what();
    return ParseOutcome::kError;
  }
  if (config != nullptr && config->count() > 0) cl.config_path = config->as<std::string>();
  if (cl.worker && cl.bucket_id == 0) {
    *message = "--worker needs --bucket-id";
    return ParseOutcome::kError;
  }
  if (std::string why = Validate(o); !why.empty()) {
    *message = why;
    if (!cl.config_path.empty()) *message += " (config file " + cl.config_path + ")";
    return ParseOutcome::kError;
  }
  *out = std::move(cl);
  return ParseOutcome::kOk;
}

bool AdoptGroup(const std::string& group, std::string* error) {
  if (group.empty()) return true;
  const struct group* g = ::getgrnam(group.c_str());
  if (g == nullptr) {
    *error = "group '" + group + "' does not exist";
    return false;
  }
  gid_t gid = g->gr_gid;
  if (::getegid() == gid && ::getgid() == gid) return true;
  if (::geteuid() != 0) {
    *error = "kvd runs with group " + std::to_string(::getegid()) + ", not '" + group +
             "'; start it with that group (systemd: Group=" + group + ") or as root";
    return false;
  }
  // Root: switch the group only (the user stays). Supplementary groups go too, so that nothing
  // but `group` decides who may use what kvd and its workers create.
  if (::setgroups(1, &gid) != 0 || ::setgid(gid) != 0) {
    *error = "cannot switch to group '" + group + "': " + std::strerror(errno);
    return false;
  }
  return true;
}

int RequestReload(const std::string& ns, int timeout_ms) {
  shm::ShmError error;
  std::optional<shm::RegistryReader> registry = shm::RegistryReader::Open(ns, &error);
  if (!registry) {
    std::cerr << "kvd: cannot reload namespace '" << ns << "': " << error.message << "\n";
    return 1;
  }
  shm::KvdRecord before = registry->Kvd();
  // The pidfd is opened before the identity check, so it names the process that was checked.
  int pidfd = before.pid > 0 ? PidfdOpen(before.pid) : -1;
  if (pidfd < 0 || !ProcessMatches(before.pid, before.start_ticks)) {
    if (pidfd >= 0) ::close(pidfd);
    std::cerr << "kvd: no kvd is running for namespace '" << ns << "'\n";
    return 1;
  }
  int signal_error = SignalProcess(pidfd, before.pid, SIGHUP);
  ::close(pidfd);
  if (signal_error != 0) {
    std::cerr << "kvd: cannot signal kvd " << before.pid << ": " << std::strerror(signal_error)
              << "\n";
    return 1;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    shm::KvdRecord now = registry->Kvd();
    if (now.reloads != before.reloads) {
      if (now.last_reload_ok) {
        std::cout << "kvd " << before.pid << " reloaded its configuration\n";
        return 0;
      }
      std::cerr << "kvd " << before.pid
                << " refused the new configuration and kept the old one (see its log)\n";
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::cerr << "kvd: kvd " << before.pid << " did not finish reloading in " << timeout_ms
            << " ms\n";
  return 1;
}

}  // namespace kv::daemon
