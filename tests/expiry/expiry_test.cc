// Key expiry end to end: a real kvd and worker, readers in other processes. Every wait is for a
// condition with a generous deadline; no check depends on how long something took, except that
// a key is never gone before its expiry time.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <string>

#include "kv/kv.h"
#include "kvctl/text_protocol.h"
#include "tests/testing/bucket_fixture.h"
#include "tests/testing/child_process.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using namespace std::chrono_literals;
using kv::testing::WaitFor;

std::int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int ExitCode(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

class ExpiryTest : public kv::testing::BucketFixture {
 protected:
  std::string Get(std::string_view key) {
    std::string value;
    Status s = bucket_->Get(key, &value);
    if (s.IsNotFound()) return "NOT_FOUND";
    return s.ok() ? value : s.ToString();
  }
  std::uint64_t Keys() {
    Result<BucketStats> st = bucket_->Stats();
    return st.ok() ? st->keys : ~std::uint64_t{0};
  }
};

TEST_F(ExpiryTest, KeyExpiresOnTimeForAReaderInAnotherProcess) {
  std::int64_t before_put = UnixMs();
  ASSERT_TRUE(bucket_->Put("session", "alice", 400ms).ok());
  std::string ns = kvd_.ns();
  // The reader: sees the value, then (polling, within 20 s) its absence, never before the
  // expiry time.
  pid_t reader = kv::testing::ForkChild([&] {
    ClientOptions options;
    options.ns = ns;
    auto client = Client::Open(options);
    if (!client.ok()) return 10;
    auto b = (*client)->OpenBucket("b");
    if (!b.ok()) return 11;
    std::string value;
    bool seen = false;
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      Status s = b->Get("session", &value);
      if (s.ok()) {
        if (value != "alice") return 12;
        seen = true;
      } else if (s.IsNotFound()) {
        if (UnixMs() < before_put + 400) return 13;  // gone early
        return seen ? 0 : 14;
      } else {
        return 15;
      }
      ::usleep(1000);
    }
    return 16;  // never expired
  });
  ASSERT_GT(reader, 0);
  EXPECT_EQ(ExitCode(reader), 0);
  EXPECT_EQ(Get("session"), "NOT_FOUND");
}

TEST_F(ExpiryTest, MemoryIsReclaimedWithoutAnyReader) {
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(bucket_->Put("keep" + std::to_string(i), "v").ok());
  Result<BucketStats> base = bucket_->Stats();
  ASSERT_TRUE(base.ok());
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE(bucket_->PutAsync("tmp" + std::to_string(i), std::string(50, 'x'), 300ms).ok());
  }
  ASSERT_TRUE(bucket_->Flush().ok());
  Result<BucketStats> full = bucket_->Stats();
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->keys, 2010u);
  // Nobody reads: the worker's active expiry alone removes the keys.
  EXPECT_TRUE(WaitFor([&] { return Keys() == 10; }, 20s)) << Keys();
  Result<BucketStats> after = bucket_->Stats();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->live_bytes, base->live_bytes);
  EXPECT_LT(after->live_bytes, full->live_bytes);
}

TEST_F(ExpiryTest, ExpirySurvivesAWorkerSigkill) {
  ASSERT_TRUE(bucket_->Put("short", "1", 1500ms).ok());
  ASSERT_TRUE(bucket_->Put("long", "2", 1h).ok());
  ASSERT_TRUE(bucket_->Put("plain", "3").ok());
  pid_t worker = kvd_.WorkerPid("b");
  ASSERT_GT(worker, 0);
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        pid_t now = kvd_.WorkerPid("b");
        return now > 0 && now != worker;
      },
      20s));
  // The restarted worker rebuilt its expiry queue from the records: "short" is removed by it.
  EXPECT_TRUE(WaitFor([&] { return Keys() == 2; }, 20s)) << Keys();
  EXPECT_EQ(Get("short"), "NOT_FOUND");
  Result<std::optional<std::chrono::milliseconds>> ttl = bucket_->Ttl("long");
  ASSERT_TRUE(ttl.ok()) << ttl.status().ToString();
  ASSERT_TRUE(ttl->has_value());
  EXPECT_GT(**ttl, 50min);
  EXPECT_LE(**ttl, 1h);
  ttl = bucket_->Ttl("plain");
  ASSERT_TRUE(ttl.ok());
  EXPECT_FALSE(ttl->has_value());
  // Writes still work and new expiries are honoured by the new worker.
  ASSERT_TRUE(bucket_->Put("again", "4", 200ms).ok());
  EXPECT_TRUE(WaitFor([&] { return Keys() == 2 && Get("again") == "NOT_FOUND"; }, 20s));
}

TEST_F(ExpiryTest, TheFeedShowsExpired) {
  Result<Subscription> sub = bucket_->Subscribe();
  ASSERT_TRUE(sub.ok());
  ASSERT_TRUE(bucket_->Put("token", "t", 100ms).ok());
  Change change;
  ASSERT_TRUE(sub->Next(&change, 10s).ok());
  EXPECT_EQ(change.kind, Change::Kind::kPut);
  ASSERT_TRUE(sub->Next(&change, 20s).ok());
  EXPECT_EQ(change.kind, Change::Kind::kExpired);
  EXPECT_EQ(change.key, "token");
  EXPECT_TRUE(change.value.empty());
}

TEST_F(ExpiryTest, ExpirePersistAndTtlFollowRedis) {
  ASSERT_TRUE(bucket_->Put("k", "1").ok());
  auto ttl = bucket_->Ttl("k");
  ASSERT_TRUE(ttl.ok());
  EXPECT_FALSE(ttl->has_value());
  ASSERT_TRUE(bucket_->Expire("k", 1h).ok());
  ttl = bucket_->Ttl("k");
  ASSERT_TRUE(ttl.ok() && ttl->has_value());
  EXPECT_LE(**ttl, 1h);
  // Increment and CompareAndSet keep the expiry; Put removes it.
  ASSERT_TRUE(bucket_->Increment("k", 2).ok());
  EXPECT_TRUE(bucket_->Ttl("k")->has_value());
  std::uint64_t version = 0;
  std::string value;
  ASSERT_TRUE(bucket_->Get("k", &value, &version).ok());
  EXPECT_EQ(value, "3");
  ASSERT_TRUE(bucket_->CompareAndSet("k", version, "4").ok());
  EXPECT_TRUE(bucket_->Ttl("k")->has_value());
  Result<bool> removed = bucket_->Persist("k");
  ASSERT_TRUE(removed.ok());
  EXPECT_TRUE(*removed);
  EXPECT_FALSE(bucket_->Ttl("k")->has_value());
  removed = bucket_->Persist("k");
  ASSERT_TRUE(removed.ok());
  EXPECT_FALSE(*removed);
  ASSERT_TRUE(bucket_->Put("k", "5", 1h).ok());
  ASSERT_TRUE(bucket_->Put("k", "6").ok());
  EXPECT_FALSE(bucket_->Ttl("k")->has_value());
  // Absent keys.
  EXPECT_EQ(bucket_->Expire("nope", 1s).code(), Code::kNotFound);
  EXPECT_EQ(bucket_->Persist("nope").status().code(), Code::kNotFound);
  EXPECT_EQ(bucket_->Ttl("nope").status().code(), Code::kNotFound);
  // An expired key is absent for every operation, before the worker removed it too.
  ASSERT_TRUE(bucket_->Put("gone", "x", 1ms).ok());
  ASSERT_TRUE(WaitFor([&] { return Get("gone") == "NOT_FOUND"; }, 10s));
  EXPECT_EQ(bucket_->Expire("gone", 1h).code(), Code::kNotFound);
  EXPECT_EQ(bucket_->CompareAndSet("gone", 0, "new").code(), Code::kOk);
  EXPECT_FALSE(bucket_->Ttl("gone")->has_value());
}

// Put with an absolute time (SET PXAT): kept to the millisecond, even past 2262; a time already
// past stores a key that is absent at once; times outside 1970 .. 2^46 ms are refused.
TEST_F(ExpiryTest, PutWithAnAbsoluteExpiryTime) {
  using Ms = std::chrono::milliseconds;
  using At = ExpiryTime;
  At in_an_hour = std::chrono::ceil<Ms>(std::chrono::system_clock::now()) + 1h;
  ASSERT_TRUE(bucket_->Put("hour", "1", in_an_hour).ok());
  auto ttl = bucket_->Ttl("hour");
  ASSERT_TRUE(ttl.ok() && ttl->has_value());
  EXPECT_GT(**ttl, 50min);
  EXPECT_LE(**ttl, 1h + 1ms);  // the hour counted from `now` rounded up
  ASSERT_TRUE(bucket_->PutAsync("far", "2", At(Ms(40'000'000'000'000))).ok());  // year 3237
  ASSERT_TRUE(bucket_->Flush().ok());
  ttl = bucket_->Ttl("far");
  ASSERT_TRUE(ttl.ok() && ttl->has_value());
  EXPECT_GT(**ttl, std::chrono::hours(24 * 365 * 1000));
  ASSERT_TRUE(bucket_->Put("far", "old").ok());
  ASSERT_TRUE(bucket_->Put("far", "3", At(Ms(UnixMs() - 1000))).ok());
  EXPECT_EQ(Get("far"), "NOT_FOUND");  // expired at once, the older value with it
  for (At bad : {At(Ms(0)), At(Ms(-5)), At(Ms(std::int64_t{1} << 47))}) {
    EXPECT_EQ(bucket_->Put("k", "v", bad).code(), Code::kInvalidArgument);
    EXPECT_EQ(bucket_->PutAsync("k", "v", bad).code(), Code::kInvalidArgument);
  }
  EXPECT_TRUE(WaitFor([&] { return Keys() == 1; }, 20s)) << Keys();  // the worker removed "far"
}

TEST_F(ExpiryTest, BadTtlsAreRefusedInEveryApi) {
  ASSERT_TRUE(bucket_->Put("k", "v").ok());
  for (std::chrono::milliseconds bad : {0ms, -1ms, -std::chrono::milliseconds::max(), kMaxTtl + 1ms,
                                        std::chrono::milliseconds::max()}) {
    EXPECT_EQ(bucket_->Put("k", "v", bad).code(), Code::kInvalidArgument) << bad.count();
    EXPECT_EQ(bucket_->PutAsync("k", "v", bad).code(), Code::kInvalidArgument) << bad.count();
    EXPECT_EQ(bucket_->Expire("k", bad).code(), Code::kInvalidArgument) << bad.count();
  }
  EXPECT_TRUE(bucket_->Put("k", "v", kMaxTtl).ok());
  // C ABI.
  kv_client* c = nullptr;
  ASSERT_EQ(kv_client_open(kvd_.ns().c_str(), 0, &c), KV_OK);
  kv_bucket* b = nullptr;
  ASSERT_EQ(kv_bucket_open(c, "b", &b), KV_OK);
  for (std::int64_t bad :
       {std::int64_t{0}, std::int64_t{-1}, std::numeric_limits<std::int64_t>::max(),
        std::numeric_limits<std::int64_t>::min()}) {
    EXPECT_EQ(kv_put_ttl(b, "k", 1, "v", 1, bad), KV_INVALID) << bad;
    EXPECT_EQ(kv_expire(b, "k", 1, bad), KV_INVALID) << bad;
    EXPECT_NE(std::string(kv_last_error()).find("ttl"), std::string::npos) << kv_last_error();
  }
  std::int64_t left = 0;
  EXPECT_EQ(kv_ttl(b, "k", 1, nullptr), KV_INVALID);
  EXPECT_EQ(kv_ttl(b, "k", 1, &left), KV_OK);
  EXPECT_GT(left, 0);
  kv_bucket_close(b);
  kv_client_close(c);
  // The text protocol.
  for (const char* line :
       {"EXPIRE b k -1", "EXPIRE b k 0", "PUT b k v EX 0", "PUT b k v PX -5",
        "PEXPIRE b k 99999999999999999999", "EXPIRE b k 1e3", "PUT b k v EX 9223372036854775807"}) {
    std::vector<std::string> reply = ctl::RunTextCommand(*client_, line);
    ASSERT_FALSE(reply.empty()) << line;
    EXPECT_EQ(reply[0].rfind("ERROR INVALID", 0), 0u) << line << ": " << reply[0];
  }
  // kvctl.
  kv::testing::CommandResult r = kv::testing::RunCommand(
      {kv::testing::KvctlPath(), "--namespace", kvd_.ns(), "put", "b", "k", "v", "--ttl=-3s"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("INVALID"), std::string::npos) << r.err;
  r = kv::testing::RunCommand(
      {kv::testing::KvctlPath(), "--namespace", kvd_.ns(), "expire", "b", "k", "0"});
  EXPECT_NE(r.exit_code, 0);
  // Nothing bad reached the key: it still has the expiry of the last good Put.
  EXPECT_TRUE(bucket_->Ttl("k")->has_value());
}

TEST_F(ExpiryTest, TextProtocolAndKvctlSpeakExpiry) {
  using ctl::RunTextCommand;
  using V = std::vector<std::string>;
  EXPECT_EQ(RunTextCommand(*client_, "PUT b k v EX 100"), V{"OK"});
  V ttl = RunTextCommand(*client_, "TTL b k");
  ASSERT_EQ(ttl.size(), 2u);
  EXPECT_TRUE(ttl[0] == "100" || ttl[0] == "99") << ttl[0];
  EXPECT_EQ(RunTextCommand(*client_, "PERSIST b k"), (V{"1", "OK"}));
  EXPECT_EQ(RunTextCommand(*client_, "TTL b k"), (V{"-1", "OK"}));
  EXPECT_EQ(RunTextCommand(*client_, "TTL b missing"), (V{"-2", "OK"}));
  EXPECT_EQ(RunTextCommand(*client_, "PEXPIRE b k 5000"), (V{"1", "OK"}));
  EXPECT_EQ(RunTextCommand(*client_, "EXPIRE b missing 5"), (V{"0", "OK"}));
  V pttl = RunTextCommand(*client_, "PTTL b k");
  ASSERT_EQ(pttl.size(), 2u);
  EXPECT_GT(std::stoll(pttl[0]), 0);
  EXPECT_LE(std::stoll(pttl[0]), 5000);
  EXPECT_EQ(RunTextCommand(*client_, "PUT b k2 v PX 1"), V{"OK"});
  EXPECT_TRUE(WaitFor([&] { return RunTextCommand(*client_, "GET b k2") == V{"", "OK"}; }, 10s));

  std::string kvctl = kv::testing::KvctlPath();
  kv::testing::CommandResult r = kv::testing::RunCommand(
      {kvctl, "--namespace", kvd_.ns(), "put", "b", "c", "v", "--ttl", "1h"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = kv::testing::RunCommand({kvctl, "--namespace", kvd_.ns(), "ttl", "b", "c"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GT(std::stoll(r.out), 3'500'000);
  r = kv::testing::RunCommand({kvctl, "--namespace", kvd_.ns(), "persist", "b", "c"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = kv::testing::RunCommand({kvctl, "--namespace", kvd_.ns(), "ttl", "b", "c"});
  EXPECT_EQ(r.out, "-1\n");
  r = kv::testing::RunCommand({kvctl, "--namespace", kvd_.ns(), "expire", "b", "c", "250ms"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(WaitFor([&] { return Get("c") == "NOT_FOUND"; }, 10s));
  r = kv::testing::RunCommand({kvctl, "--namespace", kvd_.ns(), "ttl", "b", "c"});
  EXPECT_EQ(r.exit_code, 1);
}

}  // namespace
}  // namespace kv
