// `kvctl metrics`: the instance's metrics in the Prometheus text format (metrics/openmetrics.h),
// for a scrape by hand or a cron job; kvd writes the same to its metrics-file.
#include <iostream>

#include "kvctl/app.h"
#include "kvctl/command_util.h"
#include "metrics/openmetrics.h"

namespace kv::ctl {

void AddMetricsCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand(
      "metrics", "print the instance's metrics (Prometheus text format; docs/operations.md)");
  OnRun(cmd, ctx, [&ctx] {
    Client* client = ctx.OpenClient();
    if (client == nullptr) return kExitFailed;
    Result<metrics::InstanceMetrics> m = metrics::Collect(*client);
    if (!m.ok()) return Fail(ctx, m.status());
    std::cout << metrics::Format(*m);
    return kExitOk;
  });
}

}  // namespace kv::ctl
