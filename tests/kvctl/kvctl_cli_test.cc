// kvctl subcommands: output, --json documents and exit codes (0 ok, 1 not found / failed,
// 2 usage), each against a real kvd.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::testing::CommandResult;
using kv::testing::KvctlPath;
using kv::testing::KvdInstance;
using kv::testing::RunCommand;
using nlohmann::json;

class KvctlCliTest : public ::testing::Test {
 protected:
  CommandResult Kvctl(std::vector<std::string> args, const std::string& input = {}) {
    args.insert(args.begin(), {KvctlPath(), "--namespace", kvd_.ns()});
    return RunCommand(args, input);
  }
  // Runs a command with --json, expects `exit_code`, and returns its stdout parsed.
  json Json(std::vector<std::string> args, int exit_code = 0) {
    args.push_back("--json");
    CommandResult r = Kvctl(args);
    EXPECT_EQ(r.exit_code, exit_code) << r.err;
    json doc = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(doc.is_discarded()) << "not JSON: " << r.out;
    return doc;
  }
  KvdInstance kvd_;
};

TEST_F(KvctlCliTest, CreatePutGetDelRoundTrip) {
  EXPECT_EQ(Kvctl({"create", "shopping"}).exit_code, 0);
  EXPECT_EQ(Kvctl({"put", "shopping", "milk", "1"}).exit_code, 0);
  auto get = Kvctl({"get", "shopping", "milk"});
  EXPECT_EQ(get.exit_code, 0);
  EXPECT_EQ(get.out, "1");  // raw bytes, no newline when stdout is not a terminal
  EXPECT_EQ(Kvctl({"del", "shopping", "milk"}).exit_code, 0);
  auto missing = Kvctl({"get", "shopping", "milk"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("NOT_FOUND"), std::string::npos) << missing.err;
  EXPECT_EQ(Kvctl({"del", "shopping", "milk"}).exit_code, 1);
}

TEST_F(KvctlCliTest, PutFromStdinIsBinarySafe) {
  ASSERT_EQ(Kvctl({"create", "bin"}).exit_code, 0);
  std::string value("a\0b\xff\n\r\x01z", 8);
  value += std::string(70000, '\xff');  // larger than a pipe buffer
  auto put = Kvctl({"put", "bin", "blob", "-"}, value);
  ASSERT_EQ(put.exit_code, 0) << put.err;
  auto get = Kvctl({"get", "bin", "blob"});
  EXPECT_EQ(get.exit_code, 0);
  EXPECT_EQ(get.out, value);
  json j = Json({"get", "bin", "blob"});
  EXPECT_EQ(j["value_encoding"], "base64");
  EXPECT_EQ(j["key"], "blob");
  EXPECT_GT(j["version"].get<std::uint64_t>(), 0u);
}

TEST_F(KvctlCliTest, JsonOfDataCommands) {
  ASSERT_EQ(Kvctl({"create", "shop"}).exit_code, 0);
  json put = Json({"put", "shop", "milk", "1"});
  EXPECT_EQ(put["ok"], true);
  EXPECT_EQ(put["bucket"], "shop");
  EXPECT_EQ(put["key"], "milk");
  std::uint64_t v1 = put["version"];
  json get = Json({"get", "shop", "milk"});
  EXPECT_EQ(get["value"], "1");
  EXPECT_EQ(get["version"], v1);
  EXPECT_FALSE(get.contains("value_encoding"));
  json del = Json({"del", "shop", "milk"});
  EXPECT_EQ(del["ok"], true);
  EXPECT_EQ(del["old_value"], "1");
  json missing = Json({"get", "shop", "milk"}, 1);
  EXPECT_EQ(missing["ok"], false);
  EXPECT_EQ(missing["error"], "NOT_FOUND");
  json nobucket = Json({"get", "nothere", "milk"}, 1);
  EXPECT_EQ(nobucket["error"], "NO_BUCKET");
}

TEST_F(KvctlCliTest, CasChecksTheVersion) {
  ASSERT_EQ(Kvctl({"create", "c"}).exit_code, 0);
  auto first = Kvctl({"cas", "c", "k", "0", "a"});  // 0: only if absent
  ASSERT_EQ(first.exit_code, 0) << first.err;
  std::uint64_t v1 = std::stoull(first.out);
  auto lost = Kvctl({"cas", "c", "k", "0", "b"});
  EXPECT_EQ(lost.exit_code, 1);
  EXPECT_NE(lost.err.find("VERSION_MISMATCH"), std::string::npos) << lost.err;
  json lost_json = Json({"cas", "c", "k", std::to_string(v1 + 100), "b"}, 1);
  EXPECT_EQ(lost_json["error"], "VERSION_MISMATCH");
  EXPECT_EQ(lost_json["version"], v1);
  json won = Json({"cas", "c", "k", std::to_string(v1), "b"});
  EXPECT_EQ(won["ok"], true);
  EXPECT_GT(won["version"].get<std::uint64_t>(), v1);
  EXPECT_EQ(Kvctl({"get", "c", "k"}).out, "b");
  EXPECT_EQ(Kvctl({"cas", "c", "k", "notanumber", "x"}).exit_code, 2);
}

TEST_F(KvctlCliTest, IncrAddsAndRejectsNonIntegers) {
  ASSERT_EQ(Kvctl({"create", "n"}).exit_code, 0);
  EXPECT_EQ(Kvctl({"incr", "n", "hits"}).out, "1\n");
  EXPECT_EQ(Kvctl({"incr", "n", "hits", "41"}).out, "42\n");
  EXPECT_EQ(Kvctl({"incr", "n", "hits", "-50"}).out, "-8\n");
  json j = Json({"incr", "n", "hits", "10"});
  EXPECT_EQ(j["value"], 2);
  ASSERT_EQ(Kvctl({"put", "n", "word", "abc"}).exit_code, 0);
  auto bad = Kvctl({"incr", "n", "word"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("NOT_AN_INTEGER"), std::string::npos) << bad.err;
}

TEST_F(KvctlCliTest, KeysListsSortedWithPrefix) {
  ASSERT_EQ(Kvctl({"create", "k"}).exit_code, 0);
  for (const char* key : {"user:2", "user:1", "order:9", "user:10"}) {
    ASSERT_EQ(Kvctl({"put", "k", key, "v"}).exit_code, 0);
  }
  EXPECT_EQ(Kvctl({"keys", "k"}).out, "order:9\nuser:1\nuser:10\nuser:2\n");
  EXPECT_EQ(Kvctl({"keys", "k", "--prefix", "user:1"}).out, "user:1\nuser:10\n");
  json j = Json({"keys", "k", "--prefix", "user:"});
  EXPECT_EQ(j["count"], 3);
  ASSERT_EQ(j["keys"].size(), 3u);
  EXPECT_EQ(j["keys"][0]["key"], "user:1");
  EXPECT_EQ(j["keys"][0]["value_bytes"], 1);
  EXPECT_EQ(Kvctl({"keys", "k", "--prefix", "none"}).out, "");
  EXPECT_EQ(Kvctl({"keys", "nothere"}).exit_code, 1);
}

TEST_F(KvctlCliTest, MissingBucketIsExitOneWithMessage) {
  auto r = Kvctl({"get", "nothere", "k"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("NO_BUCKET"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nothere"), std::string::npos) << r.err;
  for (std::vector<std::string> args : {std::vector<std::string>{"put", "nothere", "k", "v"},
                                        {"del", "nothere", "k"},
                                        {"cas", "nothere", "k", "0", "v"},
                                        {"incr", "nothere", "k"},
                                        {"drop", "nothere"},
                                        {"restart", "nothere"},
                                        {"kill", "nothere"},
                                        {"stats", "nothere"},
                                        {"dump", "nothere", "/dev/null"}}) {
    auto m = Kvctl(args);
    EXPECT_EQ(m.exit_code, 1) << args[0];
    EXPECT_NE(m.err.find("NO_BUCKET"), std::string::npos) << args[0] << ": " << m.err;
  }
}

TEST_F(KvctlCliTest, MisuseIsExitTwoWithUsage) {
  auto r = Kvctl({"put", "onlybucket"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("key"), std::string::npos) << r.err;
  EXPECT_EQ(Kvctl({"frobnicate"}).exit_code, 2);
  EXPECT_EQ(RunCommand({KvctlPath()}).exit_code, 2);
  EXPECT_EQ(Kvctl({"get", "a", "b", "c"}).exit_code, 2);
  EXPECT_EQ(Kvctl({"top", "--sort", "nonsense", "--batch"}).exit_code, 2);
  EXPECT_EQ(Kvctl({"bench", "--workloads", "nonsense"}).exit_code, 2);
  EXPECT_EQ(Kvctl({"bench", "--clients", "0"}).exit_code, 2);
  auto bad_name = Kvctl({"create", "has space"});
  EXPECT_EQ(bad_name.exit_code, 1);
  EXPECT_NE(bad_name.err.find("INVALID"), std::string::npos) << bad_name.err;
}

TEST_F(KvctlCliTest, EverySubcommandHasHelp) {
  for (const char* cmd :
       {"create", "drop",  "buckets",  "put",     "get",  "del",    "cas",    "incr",
        "keys",   "stats", "status",   "restart", "kill", "dump",   "load",   "shell",
        "top",    "bench", "shutdown", "watch",   "ttl",  "expire", "persist"}) {
    auto r = RunCommand({KvctlPath(), cmd, "--help"});
    EXPECT_EQ(r.exit_code, 0) << cmd;
    EXPECT_NE(r.out.find("Usage: kvctl " + std::string(cmd)), std::string::npos)
        << cmd << ": " << r.out;
  }
  auto top = RunCommand({KvctlPath(), "--help"});
  EXPECT_EQ(top.exit_code, 0);
  EXPECT_NE(top.out.find("Exit codes"), std::string::npos);
}

TEST_F(KvctlCliTest, StatusShowsKvdAndEachWorker) {
  auto empty = Kvctl({"status"});
  EXPECT_EQ(empty.exit_code, 0) << empty.err;
  EXPECT_NE(empty.out.find("no buckets"), std::string::npos) << empty.out;
  json none = Json({"status"});
  EXPECT_TRUE(none["buckets"].empty());
  EXPECT_EQ(none["kvd"]["pid"], kvd_.pid());
  EXPECT_EQ(Kvctl({"create", "shopping"}).exit_code, 0);
  EXPECT_EQ(Kvctl({"put", "shopping", "milk", "1"}).exit_code, 0);
  EXPECT_EQ(Kvctl({"put", "shopping", "eggs", "2"}).exit_code, 0);
  auto r = Kvctl({"status"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("pid " + std::to_string(kvd_.pid())), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("shopping"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("running"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(std::to_string(kvd_.WorkerPid("shopping"))), std::string::npos) << r.out;
  json j = Json({"status"});
  EXPECT_EQ(j["namespace"], kvd_.ns());
  EXPECT_EQ(j["kvd"]["running"], true);
  ASSERT_EQ(j["buckets"].size(), 1u);
  json b = j["buckets"][0];
  EXPECT_EQ(b["name"], "shopping");
  EXPECT_EQ(b["state"], "running");
  EXPECT_EQ(b["pid"], kvd_.WorkerPid("shopping"));
  EXPECT_EQ(b["restarts"], 0);
  EXPECT_EQ(b["keys"], 2);
  EXPECT_GT(b["memory_bytes"].get<std::uint64_t>(), 0u);
  EXPECT_TRUE(b["queue_depth"].is_number_unsigned());
  EXPECT_TRUE(b.contains("uptime_s"));
  auto buckets = Kvctl({"buckets"});
  EXPECT_EQ(buckets.out, "shopping\n");
  json list = Json({"buckets"});
  ASSERT_EQ(list["buckets"].size(), 1u);
  EXPECT_EQ(list["buckets"][0]["name"], "shopping");
}

TEST_F(KvctlCliTest, StatsOfOneAndEveryBucket) {
  EXPECT_NE(Kvctl({"stats"}).out.find("no buckets"), std::string::npos);
  ASSERT_EQ(Kvctl({"create", "a"}).exit_code, 0);
  ASSERT_EQ(Kvctl({"create", "b"}).exit_code, 0);
  ASSERT_EQ(Kvctl({"put", "a", "k1", "v"}).exit_code, 0);
  ASSERT_EQ(Kvctl({"put", "a", "k2", "v"}).exit_code, 0);
  ASSERT_EQ(Kvctl({"put", "b", "k1", "v"}).exit_code, 0);
  json one = Json({"stats", "a"});
  EXPECT_EQ(one["bucket"], "a");
  EXPECT_EQ(one["keys"], 2);
  EXPECT_GE(one["writes"].get<std::uint64_t>(), 2u);
  EXPECT_GT(one["memory_bytes"].get<std::uint64_t>(), 0u);
  EXPECT_TRUE(one.contains("live_bytes"));
  json all = Json({"stats"});
  EXPECT_EQ(all["buckets"].size(), 2u);
  EXPECT_EQ(all["total"]["keys"], 3);
  auto human = Kvctl({"stats"});
  EXPECT_EQ(human.exit_code, 0);
  EXPECT_NE(human.out.find("(total)"), std::string::npos) << human.out;
}

TEST_F(KvctlCliTest, DropRemovesTheBucket) {
  ASSERT_EQ(Kvctl({"create", "gone"}).exit_code, 0);
  json j = Json({"drop", "gone"});
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(Kvctl({"buckets"}).out, "");
  EXPECT_EQ(Kvctl({"drop", "gone"}).exit_code, 1);
}

TEST_F(KvctlCliTest, KillIsRestartedBySupervisionAndDataSurvives) {
  ASSERT_EQ(Kvctl({"create", "s"}).exit_code, 0);
  ASSERT_EQ(Kvctl({"put", "s", "k", "before"}).exit_code, 0);
  pid_t old_pid = kvd_.WorkerPid("s");
  json j = Json({"kill", "s", "--wait"});
  EXPECT_EQ(j["killed_pid"], old_pid);
  EXPECT_NE(j["new_pid"], old_pid);
  EXPECT_GE(j["restarts"].get<int>(), 1);
  EXPECT_EQ(Kvctl({"get", "s", "k"}).out, "before");
  EXPECT_EQ(Kvctl({"put", "s", "k", "after"}).exit_code, 0);
  auto human = Kvctl({"kill", "s"});
  EXPECT_EQ(human.exit_code, 0) << human.err;
  EXPECT_NE(human.out.find("killed worker"), std::string::npos) << human.out;
}

TEST_F(KvctlCliTest, RestartStartsANewWorker) {
  ASSERT_EQ(Kvctl({"create", "r"}).exit_code, 0);
  ASSERT_EQ(Kvctl({"put", "r", "k", "v"}).exit_code, 0);
  auto r = Kvctl({"restart", "r"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(
      kv::testing::WaitFor([&] { return kvd_.WorkerPid("r") != 0; }, std::chrono::seconds(10)));
  EXPECT_EQ(Kvctl({"put", "r", "k", "w"}).exit_code, 0);
  EXPECT_EQ(Kvctl({"get", "r", "k"}).out, "w");
}

TEST_F(KvctlCliTest, JsonOfControlCommands) {
  json created = Json({"create", "ctl"});
  EXPECT_EQ(created, (json{{"ok", true}, {"bucket", "ctl"}}));
  EXPECT_EQ(Json({"create", "ctl"}), created);  // creating an existing bucket is OK
  json bad = Json({"create", "has space"}, 1);
  EXPECT_EQ(bad["ok"], false);
  EXPECT_EQ(bad["error"], "INVALID");
  EXPECT_TRUE(bad["message"].is_string());

  pid_t before = kvd_.WorkerPid("ctl");
  json restarted = Json({"restart", "ctl"});
  EXPECT_EQ(restarted, (json{{"ok", true}, {"bucket", "ctl"}}));
  EXPECT_TRUE(kv::testing::WaitFor(
      [&] {
        pid_t now = kvd_.WorkerPid("ctl");
        return now != 0 && now != before;
      },
      std::chrono::seconds(10)));
  json missing = Json({"restart", "nothere"}, 1);
  EXPECT_EQ(missing["ok"], false);
  EXPECT_EQ(missing["error"], "NO_BUCKET");

  EXPECT_EQ(Json({"shutdown"}), (json{{"ok", true}}));
  kvd_.Stop();  // reaps kvd (already exiting)
  json down = Json({"shutdown"}, 1);
  EXPECT_EQ(down["ok"], false);
  EXPECT_EQ(down["error"], "UNAVAILABLE");
}

TEST_F(KvctlCliTest, ShutdownStopsKvd) {
  EXPECT_EQ(Kvctl({"shutdown"}).exit_code, 0);
  EXPECT_EQ(kvd_.Stop() >= -1, true);  // reaps kvd (already exiting)
  auto status = Kvctl({"status"});
  EXPECT_EQ(status.exit_code, 1);
}

TEST(KvctlNoKvdTest, StoppedInstanceIsExitOne) {
  auto r = RunCommand({KvctlPath(), "--namespace", kv::testing::UniqueNamespace(), "status"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("UNAVAILABLE"), std::string::npos) << r.err;
  auto j =
      RunCommand({KvctlPath(), "--namespace", kv::testing::UniqueNamespace(), "status", "--json"});
  EXPECT_EQ(j.exit_code, 1);
  json doc = json::parse(j.out, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << j.out;
  EXPECT_EQ(doc["error"], "UNAVAILABLE");
}

}  // namespace
}  // namespace kv
