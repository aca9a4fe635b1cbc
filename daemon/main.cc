// kvd: the kv supervisor daemon, and (with --worker, started by kvd itself) a bucket worker.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>

#include "daemon/logging.h"
#include "daemon/supervisor.h"
#include "daemon/worker.h"
#include "shm/names.h"

int main(int argc, char** argv) {
  CLI::App app{"kvd: the kv supervisor daemon (forks one worker per bucket)", "kvd"};
  kv::daemon::SupervisorOptions options;
  options.ns = kv::shm::DefaultNamespace();
  bool worker = false;
  std::uint64_t bucket_id = 0;
  app.add_option("-n,--namespace", options.ns, "instance namespace (env KV_NAMESPACE, default kv)");
  app.add_option("--max-buckets", options.max_buckets, "registry capacity")
      ->check(CLI::Range(1u, 1u << 20));
  app.add_option("--max-bucket-bytes", options.limits.max_bytes,
                 "largest shared-memory segment of one bucket")
      ->check(CLI::Range(std::uint64_t{1} << 16, std::uint64_t{1} << 40));
  app.add_option("--max-restarts", options.max_restarts,
                 "restarts allowed within --max-seconds before a bucket is marked failed");
  app.add_option("--max-seconds", options.max_seconds, "restart intensity window")
      ->check(CLI::Range(1u, 86400u));
  app.add_option("--spin-us", options.worker_spin_us,
                 "how long an idle worker spins before it sleeps (microseconds)")
      ->check(CLI::Range(0u, 10000u));
  app.add_flag("--ephemeral", options.ephemeral,
               "remove all shared memory of the namespace on a clean stop");
  app.add_option("--log-level", options.log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_flag("--worker", worker, "run as a bucket worker (used by kvd)")->group("");
  app.add_option("--bucket-id", bucket_id, "bucket to serve (with --worker)")->group("");
  CLI11_PARSE(app, argc, argv);

  if (std::string why = kv::shm::ValidateNamespace(options.ns); !why.empty()) {
    std::cerr << "kvd: invalid namespace '" << options.ns << "': " << why << "\n";
    return 2;
  }
  if (worker) {
    if (bucket_id == 0) {
      std::cerr << "kvd: --worker needs --bucket-id\n";
      return 2;
    }
    kv::daemon::SetUpLogging("worker b" + std::to_string(bucket_id), options.log_level);
    kv::daemon::WorkerOptions w;
    w.ns = options.ns;
    w.bucket_id = bucket_id;
    w.limits = options.limits;
    w.spin_us = options.worker_spin_us;
    return kv::daemon::RunWorker(w);
  }
  kv::daemon::SetUpLogging("kvd", options.log_level);
  return kv::daemon::RunSupervisor(options);
}
