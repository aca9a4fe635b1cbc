// The kvctl command line: builds the CLI11 application with every subcommand and runs one
// command. main() runs it once with argv; `kvctl shell` runs it for each lowercase line.
#pragma once

#include <string>
#include <vector>

#include "kvctl/context.h"

namespace CLI {
class App;
}

namespace kv::ctl {

// Parses `args` (without the program name) and runs the chosen command. Returns the exit code:
// kExitOk, kExitFailed, or kExitUsage for a parse error (the error and usage are printed).
int RunKvctl(const std::vector<std::string>& args, Context& ctx);
// Same, for one line split like a POSIX shell would (quotes, backslash escapes).
int RunKvctlLine(const std::string& line, Context& ctx);

// Each adds its subcommands to `app`; their callbacks set ctx.action.
void AddAdminCommands(CLI::App& app, Context& ctx);   // create drop restart kill buckets shutdown
void AddStatusCommands(CLI::App& app, Context& ctx);  // status stats
void AddDataCommands(CLI::App& app, Context& ctx);    // put get del cas incr keys
void AddDumpCommands(CLI::App& app, Context& ctx);    // dump load
void AddBatchCommand(CLI::App& app, Context& ctx);    // batch
void AddShellCommand(CLI::App& app, Context& ctx);    // shell
void AddTopCommand(CLI::App& app, Context& ctx);      // top
void AddBenchCommand(CLI::App& app, Context& ctx);    // bench
void AddWatchCommand(CLI::App& app, Context& ctx);    // watch
void AddServeCommand(CLI::App& app, Context& ctx);    // serve
void AddMetricsCommand(CLI::App& app, Context& ctx);  // metrics
void AddCompletionCommand(CLI::App& app, Context& ctx);  // completion (kvctl/completion.h)

// True if `word` names a kvctl subcommand (the shell's test for "run this as kvctl").
bool IsKvctlCommand(const std::string& word);

}  // namespace kv::ctl
