// kvd: the kv supervisor daemon, and (with --worker, started by kvd itself) a bucket worker.
// `kvd --reload` asks the running kvd to re-read its configuration (systemd's ExecReload=).
// `kvd --check-config [FILE]` validates a configuration without starting anything.
// Exit codes: 0 clean stop, 1 failure, 2 invalid configuration (nothing was created);
// --check-config: 0 valid, 1 invalid.
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/config.h"
#include "daemon/logging.h"
#include "daemon/process_info.h"
#include "daemon/spawner.h"
#include "daemon/supervisor.h"
#include "daemon/worker.h"

namespace {

int RunWorkerProcess(const kv::daemon::KvdCommandLine& cl) {
  kv::daemon::WorkerOptions w;
  w.ns = cl.options.ns;
  w.bucket_id = cl.bucket_id;
  w.limits = cl.options.limits;
  w.spin_us = cl.options.worker_spin_us;
  w.nice = cl.options.worker_nice;
  w.busy_nice = cl.options.worker_busy_nice;
  w.wait_policy =
      cl.options.wait_policy == "dedicated" ? kv::shm::kWaitDedicated : kv::shm::kWaitAdaptive;
  w.persistence = cl.options.persistence;
  return kv::daemon::RunWorker(w);
}

std::string WorkerRole(std::uint64_t bucket_id) { return "worker b" + std::to_string(bucket_id); }

// `kvd --spawner ...`: returns in the spawner when kvd goes away, and in each of its children once
// it is told which bucket to serve. The spawner's command line carries the flags of every worker
// (kvd starts it with them), parsed once here, so a spawned worker and an exec'd one
// (`kvd --worker --bucket-id N ...`) are configured the same way.
int RunSpawnerProcess(kv::daemon::KvdCommandLine cl, int argc, char** argv) {
  kv::daemon::SetUpLogging("spawner", cl.options.log_level);
  // The command line of the same worker if it were exec'd, but for the bucket id (title[2], with
  // room for any id). Built once here: a spare only reads it until it is assigned, and the id
  // then fits without an allocation, so no spare pays for building it.
  std::vector<std::string> title = {"--worker", "--bucket-id", std::string(20, '0')};
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--cmdline-room") {
      ++i;  // and its value
    } else if (a != "--spawner") {
      title.emplace_back(a);
    }
  }
  std::optional<std::uint64_t> bucket_id = kv::daemon::RunSpawner();
  if (!bucket_id) return 0;
  cl.spawner = false;
  cl.worker = true;
  cl.bucket_id = *bucket_id;
  title[2] = std::to_string(cl.bucket_id);
  kv::daemon::RetitleCommandLine(argc, argv, title);
  kv::daemon::SetLogRole(WorkerRole(cl.bucket_id));
  return RunWorkerProcess(cl);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  kv::daemon::KvdCommandLine cl;
  std::string message;
  switch (kv::daemon::ParseCommandLine(args, &cl, &message)) {
    case kv::daemon::ParseOutcome::kOk:
      break;
    case kv::daemon::ParseOutcome::kExit:
      std::cout << message;
      return 0;
    case kv::daemon::ParseOutcome::kError:
      std::cerr << kv::daemon::StderrErrorPrefix() << "kvd: invalid configuration: " << message
                << "\n";
      return kv::daemon::WantsCheckConfig(args) ? 1 : 2;
  }
  if (cl.check_config) {
    std::cout << "kvd: configuration OK (" << cl.config_path << ")\n";
    return 0;
  }
  if (cl.worker) {
    kv::daemon::SetUpLogging(WorkerRole(cl.bucket_id), cl.options.log_level);
    return RunWorkerProcess(cl);
  }
  if (cl.spawner) return RunSpawnerProcess(cl, argc, argv);
  if (cl.reload) return kv::daemon::RequestReload(cl.options.ns, 10000);

  kv::daemon::SetUpLogging("kvd", cl.options.log_level);
  if (std::string error; !kv::daemon::AdoptGroup(cl.options.group, &error)) {
    std::cerr << kv::daemon::StderrErrorPrefix() << "kvd: invalid configuration: " << error << "\n";
    return 2;
  }
  if (!cl.config_path.empty()) spdlog::info("configuration read from {}", cl.config_path);
  // SIGHUP: parse the same command line again (it re-reads the file); flags still win.
  cl.options.reload = [args](kv::daemon::SupervisorOptions* fresh, std::string* error) {
    kv::daemon::KvdCommandLine again;
    if (kv::daemon::ParseCommandLine(args, &again, error) != kv::daemon::ParseOutcome::kOk) {
      return false;
    }
    *fresh = again.options;
    return true;
  };
  return kv::daemon::RunSupervisor(cl.options);
}
