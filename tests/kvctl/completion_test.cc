// `kvctl completion bash|zsh`: the generated scripts load in their shell, and bash completes
// command names, a command's options, nothing after an option that takes a value, and bucket
// names of the namespace given on the line (read from a live kvd).
#include <gtest/gtest.h>

#include <sstream>

#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::testing::CommandResult;
using kv::testing::KvctlPath;
using kv::testing::KvdInstance;
using kv::testing::RunCommand;

// What bash offers for the command line `words` (the last one being completed).
std::vector<std::string> BashComplete(const std::vector<std::string>& words) {
  std::string array = "'" + KvctlPath() + "'";
  for (const std::string& w : words) array += " '" + w + "'";
  std::string script = "source <('" + KvctlPath() +
                       "' completion bash) || exit 3\n"
                       "COMP_WORDS=(" +
                       array + ")\nCOMP_CWORD=" + std::to_string(words.size()) +
                       "\n_kvctl\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n";
  CommandResult r = RunCommand({"/bin/bash", "-c", script});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  std::vector<std::string> out;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

using Words = std::vector<std::string>;

TEST(CompletionTest, BashCompletesCommandsOptionsAndBucketNames) {
  EXPECT_EQ(BashComplete({"cr"}), Words{"create"});
  EXPECT_EQ(BashComplete({"com"}), Words{"completion"});
  EXPECT_EQ(BashComplete({"--namespace", "x", "wa"}), Words{"watch"});
  Words all = BashComplete({""});
  for (const char* command : {"create", "get", "put", "dump", "load", "bench", "top", "watch"}) {
    EXPECT_NE(std::find(all.begin(), all.end(), command), all.end()) << command;
  }
  EXPECT_EQ(BashComplete({"--names"}), Words{"--namespace"});
  EXPECT_EQ(BashComplete({"kill", "--w"}), Words{"--wait"});
  EXPECT_EQ(BashComplete({"bench", "--work"}), Words{"--workloads"});
  // Global options are accepted after the command too.
  EXPECT_EQ(BashComplete({"get", "--js"}), Words{"--json"});
  // An option's value is not completed from the command's words.
  EXPECT_TRUE(BashComplete({"--namespace", ""}).empty());
  EXPECT_TRUE(BashComplete({"get", "--timeout-ms", ""}).empty());

  KvdInstance kvd;
  ASSERT_EQ(RunCommand({KvctlPath(), "-n", kvd.ns(), "create", "alpha"}).exit_code, 0);
  ASSERT_EQ(RunCommand({KvctlPath(), "-n", kvd.ns(), "create", "albatross"}).exit_code, 0);
  ASSERT_EQ(RunCommand({KvctlPath(), "-n", kvd.ns(), "create", "beta"}).exit_code, 0);
  EXPECT_EQ(BashComplete({"-n", kvd.ns(), "get", "al"}), (Words{"albatross", "alpha"}));
  EXPECT_EQ(BashComplete({"get", "b", "--namespace", kvd.ns()}).size(), 0u);  // ns after the word
  EXPECT_EQ(BashComplete({"--namespace", kvd.ns(), "drop", "b"}), Words{"beta"});
  // The second positional of get is a key, not a bucket.
  EXPECT_TRUE(BashComplete({"-n", kvd.ns(), "get", "alpha", "a"}).empty());
}

TEST(CompletionTest, ZshScriptLoadsAndDefinesEveryCommand) {
  CommandResult script = RunCommand({KvctlPath(), "completion", "zsh"});
  ASSERT_EQ(script.exit_code, 0) << script.err;
  EXPECT_EQ(script.out.rfind("#compdef kvctl\n", 0), 0u);
  // Loaded as `source <(kvctl completion zsh)` after compinit: registers _kvctl for kvctl.
  CommandResult r =
      RunCommand({"/usr/bin/zsh", "-f", "-c",
                  "autoload -Uz compinit && compinit -u -D && source <('" + KvctlPath() +
                      "' completion zsh) && print -r -- ${_comps[kvctl]}"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "_kvctl\n") << r.err;
  for (const char* command : {"'create:", "'get:", "'completion:", "        watch)"}) {
    EXPECT_NE(script.out.find(command), std::string::npos) << command;
  }
}

TEST(CompletionTest, UnknownShellAndUnknownCommandNameTheWord) {
  CommandResult r = RunCommand({KvctlPath(), "completion", "fish"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("fish"), std::string::npos) << r.err;
  r = RunCommand({KvctlPath(), "--namespace", "x", "frobnicate", "a"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "kvctl: unknown command 'frobnicate'; run 'kvctl --help' for the list\n");
}

}  // namespace
}  // namespace kv
