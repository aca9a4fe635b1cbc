// kvd's configuration: command-line flags, the config file, and the checks that refuse bad values
// before anything is created.
//
// Sources, strongest first: flags > config file > $KV_NAMESPACE (namespace only) > defaults.
// The config file (default /etc/kv/kvd.conf; --config PATH picks another; a missing default file
// is not an error, a missing explicit one is) holds `key = value` lines whose keys are the long
// flag names without the dashes (`max-restarts = 5`, `log-level = debug`); `#` starts a comment.
// An unknown key or a bad value refuses the whole file with a one-line reason.
//
// Reload (SIGHUP): the same command line is parsed again -- which re-reads the file -- and only
// the reloadable fields (log level, restart policy, liveness timeout, stop timeout, ephemeral) are
// applied; a change to any other field is logged as needing a restart. docs/operations.md lists
// every key.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "daemon/supervisor.h"

namespace kv::daemon {

inline constexpr char kDefaultConfigPath[] = "/etc/kv/kvd.conf";

struct KvdCommandLine {
  SupervisorOptions options;
  std::string config_path;  // the file that was read; empty if none
  bool worker = false;      // `kvd --worker`: run one bucket worker (started by kvd only)
  bool spawner = false;     // `kvd --spawner`: fork workers for kvd (daemon/spawner.h)
  std::uint64_t bucket_id = 0;
  bool reload = false;  // `kvd --reload`: ask the running kvd to reload and wait for the result
  // `kvd --check-config [FILE]`: validate FILE (else --config's, else kDefaultConfigPath, which
  // must then exist) with the flags given, print the verdict and exit 0 (valid) or 1.
  bool check_config = false;
};

enum class ParseOutcome {
  kOk,
  kExit,   // help or version to print (*message): exit 0
  kError,  // *message says why: exit 2
};

// True if `args` ask for --check-config (then a configuration error exits 1, not 2).
bool WantsCheckConfig(const std::vector<std::string>& args);

// Parses `args` (argv without argv[0]) and the config file into *out and validates the result.
// Workers (--worker) and the spawner (--spawner) read no config file: kvd passes them every value
// they need as flags. Thread-compatible; touches no global state.
ParseOutcome ParseCommandLine(const std::vector<std::string>& args, KvdCommandLine* out,
                              std::string* message);

// Makes `group` the effective group of this process (and so of every object it and its workers
// create), so that members of the group -- and nobody else -- may use the instance.
// Empty `group`: keep the current group. Fails (with *error) if the group does not exist, or if
// the process runs with another group and lacks the privilege to switch (run it as root, or
// with systemd's Group=). REQUIRES: called before any thread starts.
bool AdoptGroup(const std::string& group, std::string* error);

// `kvd --reload`: sends SIGHUP to the namespace's running kvd and waits (up to `timeout_ms`) until
// it reports the reload finished. Returns the exit code (0 applied, 1 refused/failed) and prints a
// line. Used by the systemd unit's ExecReload=, so `systemctl reload kvd` waits for the reload.
int RequestReload(const std::string& ns, int timeout_ms);

}  // namespace kv::daemon
