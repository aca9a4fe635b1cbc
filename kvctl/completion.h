// `kvctl completion bash|zsh`: shell completion scripts generated from the CLI11 application
// itself (its subcommands, their options and positionals), so they never drift from the command
// line. CLI11 2.1 has no generator of its own. Completes command names, options (and which of
// them take a value), and bucket names where a command's first positional is a bucket (read with
// `kvctl buckets` in the namespace given by -n/--namespace, if any).
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace kv::ctl {

// The scripts for `app` (kvctl's root App). Bash: defines _kvctl and registers it with
// `complete`; load with `source <(kvctl completion bash)`. Zsh: a #compdef file (_kvctl) for a
// directory on $fpath, or `source <(kvctl completion zsh)` after compinit.
std::string BashCompletion(const CLI::App& app);
std::string ZshCompletion(const CLI::App& app);

}  // namespace kv::ctl
