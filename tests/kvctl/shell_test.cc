// `kvctl shell` speaks the Elixir guide's KV text protocol exactly, and runs kvctl commands.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/kvctl/live_process.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::testing::KvctlPath;
using kv::testing::KvdInstance;
using kv::testing::RunCommand;

// Makes `bucket` in the running shell `a` and subscribes it, with lines ending in `eol`; returns
// once the shell is subscribed (it then starts the thread that drains its ignored input).
void CreateAndSubscribe(kv::testing::LiveProcess& a, const std::string& bucket,
                        const std::string& eol) {
  ASSERT_TRUE(a.Write("CREATE " + bucket + eol));
  ASSERT_EQ(a.ReadLine(10000) + "\n", "OK" + eol);
  const int threads = a.ThreadCount();
  ASSERT_TRUE(a.Write("SUBSCRIBE " + bucket + eol));
  ASSERT_TRUE(
      kv::testing::WaitFor([&] { return a.ThreadCount() > threads; }, std::chrono::seconds(10)));
}

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

// The guide's PubSub scenario: shell A subscribes (no acknowledgement); another process puts
// milk 3, then deletes milk; A prints each change within 1 s of that process's reply, ignores
// further input, and exits 0 when its input closes.
TEST(ShellTest, SubscribePrintsEveryChangeUntilInputCloses) {
  KvdInstance kvd;
  kv::testing::LiveProcess a({KvctlPath(), "--namespace", kvd.ns(), "shell"});
  ASSERT_NO_FATAL_FAILURE(CreateAndSubscribe(a, "shopping", "\n"));
  auto b = RunCommand({KvctlPath(), "--namespace", kvd.ns(), "shell"}, "PUT shopping milk 3\n");
  ASSERT_EQ(b.out, "OK\n") << b.err;
  EXPECT_EQ(a.ReadLine(1000), "milk SET TO 3");
  ASSERT_TRUE(a.Write("GET shopping milk\nPUT shopping eggs 1\n"));  // ignored
  b = RunCommand({KvctlPath(), "--namespace", kvd.ns(), "shell"}, "DELETE shopping milk\n");
  ASSERT_EQ(b.out, "OK\n") << b.err;
  EXPECT_EQ(a.ReadLine(1000), "milk DELETED");
  a.CloseStdin();
  EXPECT_EQ(a.Wait(), 0);
  EXPECT_EQ(a.RestOfStdout(), "");
  std::string eggs;
  EXPECT_TRUE(kvd.NewClient()->OpenBucket("shopping")->Get("eggs", &eggs).IsNotFound());
}

TEST(ShellTest, SubscribeToMissingBucketIsNotFoundAndTheSessionGoesOn) {
  KvdInstance kvd;
  auto r = RunCommand({KvctlPath(), "--namespace", kvd.ns(), "shell"},
                      "SUBSCRIBE nothere\nCREATE shopping\nSUBSCRIBE\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "NOT FOUND\nOK\nUNKNOWN COMMAND\n");
}

TEST(ShellTest, SubscribedShellReportsADrop) {
  KvdInstance kvd;
  kv::testing::LiveProcess a({KvctlPath(), "--namespace", kvd.ns(), "shell"});
  ASSERT_NO_FATAL_FAILURE(CreateAndSubscribe(a, "shopping", "\r\n"));
  auto client = kvd.NewClient();
  ASSERT_TRUE(client->OpenBucket("shopping")->Put("k", "v").ok());
  EXPECT_EQ(a.ReadLine(10000), "k SET TO v\r");  // CRLF session, CRLF lines
  ASSERT_TRUE(client->DropBucket("shopping").ok());
  EXPECT_EQ(a.ReadLine(10000), "NOT FOUND\r");
  a.CloseStdin();
  EXPECT_EQ(a.Wait(), 0);
}

TEST(ShellTest, CrLfLinesGetCrLfAnswers) {
  KvdInstance kvd;
  auto r = RunCommand({KvctlPath(), "--namespace", kvd.ns(), "shell"},
                      "CREATE shopping\r\nPUT shopping milk 1\r\nGET shopping milk\r\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "OK\r\nOK\r\n1\r\nOK\r\n");
}

TEST(ShellTest, OverlongLineIsAnErrorEndingTheShell) {
  KvdInstance kvd;
  auto r = RunCommand({KvctlPath(), "--namespace", kvd.ns(), "shell", "--max-line", "100"},
                      "CREATE b\nPUT b k " + std::string(92, 'v') + "\nPUT b k " +
                          std::string(93, 'v') + "\nGET b k\n");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.out, "OK\nOK\nERROR TOO_LARGE: line longer than 100 bytes; closing\n");
}

TEST(ShellTest, LastLineWithoutNewlineIsAnswered) {
  KvdInstance kvd;
  auto r = RunCommand({KvctlPath(), "--namespace", kvd.ns(), "shell"}, "CREATE b\nGET b k");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "OK\n\nOK\n");
}

TEST(ShellTest, KvctlCommandsRunInsideTheShell) {
  KvdInstance kvd;
  auto r = RunCommand({KvctlPath(), "--namespace", kvd.ns(), "shell"},
                      "CREATE shopping\n"
                      "put shopping eggs 12\n"
                      "incr shopping eggs\n"
                      "keys shopping\n"
                      "get shopping eggs --json\n"
                      "GET shopping eggs\n"
                      "get nothere x\n"
                      "put onlybucket\n"
                      "put shopping 'a key' 'a value'\n"
                      "GET shopping eggs\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::string json_line = "{\"bucket\":\"shopping\",\"key\":\"eggs\",\"value\":\"13\",\"version\":";
  std::size_t at = r.out.find(json_line);
  ASSERT_NE(at, std::string::npos) << r.out;
  std::size_t end = r.out.find("}\n", at);
  ASSERT_NE(end, std::string::npos) << r.out;
  EXPECT_EQ(r.out.substr(0, at), "OK\n13\neggs\n");
  EXPECT_EQ(r.out.substr(end), "}\n13\nOK\n13\nOK\n");
  EXPECT_NE(r.err.find("NO_BUCKET"), std::string::npos) << r.err;  // from "get nothere x"
  EXPECT_NE(r.err.find("key"), std::string::npos) << r.err;        // from "put onlybucket"
  auto b = kvd.NewClient()->OpenBucket("shopping");
  ASSERT_TRUE(b.ok());
  std::string value;
  EXPECT_TRUE(b->Get("a key", &value).ok());
  EXPECT_EQ(value, "a value");
}

TEST(ShellTest, StatusAndHelpAndQuit) {
  KvdInstance kvd;
  auto r = RunCommand({KvctlPath(), "--namespace", kvd.ns(), "shell"},
                      "status --json\nhelp\nshell\nquit\nCREATE never\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::string first = r.out.substr(0, r.out.find('\n'));
  auto j = nlohmann::json::parse(first, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["kvd"]["pid"], kvd.pid());
  EXPECT_NE(r.out.find("Text protocol"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("cannot run inside the shell"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("OK"), std::string::npos) << "quit did not stop the shell: " << r.out;
  EXPECT_TRUE(kvd.NewClient()->OpenBucket("never").status().code() == Code::kBucketNotFound);
}

}  // namespace
}  // namespace kv
