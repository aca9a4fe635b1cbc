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
#include "kv/version.h"
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
  if (!o.metrics_file.empty()) {
    std::string dir = o.metrics_file.substr(0, o.metrics_file.rfind('/') + 1);
    if (o.metrics_file.front() != '/' || o.metrics_file.back() == '/') {
      return "metrics-file '" + o.metrics_file + "' must be an absolute path to a file";
    }
    if (::access(dir.c_str(), W_OK) != 0) {
      return "metrics-file '" + o.metrics_file + "': cannot write to directory " + dir + ": " +
             std::strerror(errno);
    }
  }
  if (!o.group.empty() && ::getgrnam(o.group.c_str()) == nullptr) {
    return "group '" + o.group + "' does not exist (create it: groupadd --system " + o.group + ")";
  }
  return {};
}

constexpr char kCheckConfig[] = "--check-config";

// `--check-config FILE` (or `--check-config=FILE`) becomes `--check-config --config FILE`; a bare
// `--check-config` without --config checks the default file, which must then exist.
std::vector<std::string> ExpandCheckConfig(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  bool checking = false;
  bool has_config = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-c" || a == "--config" || a.rfind("--config=", 0) == 0) has_config = true;
    if (a.rfind(std::string(kCheckConfig) + "=", 0) == 0) {
      checking = has_config = true;
      out.insert(out.end(), {kCheckConfig, "--config", a.substr(sizeof kCheckConfig)});
    } else if (a == kCheckConfig) {
      checking = true;
      out.push_back(a);
      if (i + 1 < args.size() && !args[i + 1].empty() && args[i + 1][0] != '-') {
        has_config = true;
        out.insert(out.end(), {"--config", args[++i]});
      }
    } else {
      out.push_back(a);
    }
  }
  if (checking && !has_config) out.insert(out.end(), {"--config", kDefaultConfigPath});
  return out;
}

}  // namespace

bool WantsCheckConfig(const std::vector<std::string>& args) {
  return std::any_of(args.begin(), args.end(), [](const std::string& a) {
    return a == kCheckConfig || a.rfind(std::string(kCheckConfig) + "=", 0) == 0;
  });
}

ParseOutcome ParseCommandLine(const std::vector<std::string>& given_args, KvdCommandLine* out,
                              std::string* message) {
  const std::vector<std::string> args = ExpandCheckConfig(given_args);
  CLI::App app{"kvd: the kv supervisor daemon (one worker process per bucket)", "kvd"};
  app.set_version_flag("--version", "kvd " KV_VERSION_STRING);
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
  app.add_option(
         "--worker-nice", o.worker_nice,
         "the nice value workers run at (e.g. -10: above their clients, which they all serve)")
      ->check(CLI::Range(-20, 19));
  app.add_option("--worker-busy-nice", o.worker_busy_nice,
                 "a worker's nice value while two or more clients write to its bucket at once "
                 "(equal to --worker-nice: off)")
      ->check(CLI::Range(-20, 19));
  app.add_option("--wait", o.wait_policy,
                 "adaptive: spin only while the peer runs (shared machines); dedicated: always "
                 "spin up to --spin-us (kv pinned to CPUs of its own)")
      ->check(CLI::IsMember({"adaptive", "dedicated"}));
  app.add_flag("--exec-workers", o.exec_workers,
               "start each worker by fork+exec of kvd instead of forking it from the spawner");
  app.add_flag("--ephemeral,!--persistent", o.ephemeral,
               "remove every shared object of the namespace on a clean stop (default: persist)");
  app.add_option("--metrics-file", o.metrics_file,
                 "write metrics (Prometheus text) to this file every --metrics-interval-ms");
  app.add_option("--metrics-interval-ms", o.metrics_interval_ms,
                 "how often to write --metrics-file")
      ->check(CLI::Range(100u, 3600000u));
  app.add_option(
      "--data-dir", o.persistence.data_dir,
      "keep buckets on disk here (snapshots and an append-only log); unset: memory only");
  std::string save = persistence::FormatSaveRules(o.persistence.save_rules);
  app.add_option("--save", save,
                 "snapshot rules: pairs of SECONDS CHANGES (\"3600 1 300 100\"); \"\": none");
  std::string appendonly = "yes";
  app.add_option("--appendonly", appendonly,
                 "keep an append-only log of every write (with a data-dir)")
      ->check(CLI::IsMember({"yes", "no"}));
  std::string appendfsync = "everysec";
  app.add_option("--appendfsync", appendfsync,
                 "when the log reaches the disk: always, everysec, no")
      ->check(CLI::IsMember({"always", "everysec", "no"}));
  std::string stop_writes = "yes";
  app.add_option("--stop-writes-on-save-error", stop_writes,
                 "refuse writes while saving to the data directory fails")
      ->check(CLI::IsMember({"yes", "no"}));
  app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error, critical, off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_flag("--reload", cl.reload,
               "ask the running kvd of the namespace to reload its config file, and wait");
  app.add_flag(kCheckConfig, cl.check_config,
               "--check-config [FILE]: validate FILE (default: --config's file, else " +
                   std::string(kDefaultConfigPath) +
                   ") with these flags; exit 0 if valid, 1 if not");
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
  } catch (const CLI::CallForVersion& e) {
    *message = std::string(e.what()) + "\n";
    return ParseOutcome::kExit;
  } catch (const CLI::ParseError& e) {
    *message = e.what();
    return ParseOutcome::kError;
  }
  if (config != nullptr && config->count() > 0) cl.config_path = config->as<std::string>();
  if (std::string why = persistence::ParseSaveRules(save, &o.persistence.save_rules);
      !why.empty()) {
    *message = why;
    return ParseOutcome::kError;
  }
  o.persistence.appendonly = appendonly == "yes";
  (void)persistence::ParseAppendFsync(appendfsync, &o.persistence.appendfsync);
  o.persistence.stop_writes_on_save_error = stop_writes == "yes";
  if (!o.persistence.data_dir.empty() && o.persistence.data_dir[0] != '/') {
    *message = "data-dir must be an absolute path, not '" + o.persistence.data_dir + "'";
    return ParseOutcome::kError;
  }
  while (o.persistence.data_dir.size() > 1 && o.persistence.data_dir.back() == '/') {
    o.persistence.data_dir.pop_back();
  }
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
