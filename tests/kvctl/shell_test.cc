// `kvctl shell` speaks the Elixir guide's KV text protocol exactly.
#include <gtest/gtest.h>

#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::testing::KvctlPath;
using kv::testing::KvdInstance;
using kv::testing::RunCommand;

TEST(ShellTest, GuideSessionAnswersExactly) {
  KvdInstance kvd;
  std::string session =
      "CREATE shopping\n"
      "PUT shopping milk 1\n"
      "GET shopping milk\n"
      "GET shopping eggs\n"
      "DELETE shopping milk\n"
      "GET shopping milk\n"
      "GET nothere milk\n"
      "PUT nothere milk 1\n"
      "DELETE nothere milk\n"
      "FROBNICATE shopping\n"
      "GET shopping\n"
      "\n";
  auto r = RunCommand({KvctlPath(), "--namespace", kvd.ns(), "shell"}, session);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "OK\n"
            "OK\n"
            "1\nOK\n"
            "\nOK\n"
            "OK\n"
            "\nOK\n"
            "NOT FOUND\n"
            "NOT FOUND\n"
            "NOT FOUND\n"
            "UNKNOWN COMMAND\n"
            "UNKNOWN COMMAND\n"
            "UNKNOWN COMMAND\n");
}

TEST(ShellTest, CrLfLinesGetCrLfAnswers) {
  KvdInstance kvd;
  auto r = RunCommand({KvctlPath(), "--namespace", kvd.ns(), "shell"},
                      "CREATE shopping\r\nPUT shopping milk 1\r\nGET shopping milk\r\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "OK\r\nOK\r\n1\r\nOK\r\n");
}

}  // namespace
}  // namespace kv
