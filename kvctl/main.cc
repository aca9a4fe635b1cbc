// kvctl: the kv operator's tool (docs/kvctl.md). Exit codes: 0 success, 1 not found / operation
// failed, 2 usage. Every subcommand lives in its own file; app.cc assembles them.
#include <string>
#include <vector>

#include "kvctl/app.h"

int main(int argc, char** argv) {
  kv::ctl::Context ctx;
  std::vector<std::string> args(argv + 1, argv + argc);
  return kv::ctl::RunKvctl(args, ctx);
}
