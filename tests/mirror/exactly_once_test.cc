// A mirror's worker killed after the upstream executed a write and before the worker applied it
// (crash point mirror-upstream-replied): the client's request stays in its ring, the next worker
// sends it again, and the upstream must not execute it twice (daemon/mirror/exactly_once.h).
// Each case checks both the client's answer and Redis's value against one execution.
#include <gtest/gtest.h>
#include <unistd.h>

#include <optional>
#include <string>

#include "kv/kv.h"
#include "tests/mirror/mirror_status.h"
#include "tests/mirror/redis_process.h"
#include "tests/supervisor/supervisor_test_util.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using testing::InState;
using testing::KvdInstance;
using testing::RedisConn;
using testing::RedisProcess;
using testing::ScopedEnv;
using testing::ScopedPath;
using testing::WaitFor;

constexpr auto kPatience = std::chrono::seconds(20);

class MirrorExactlyOnceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis_.ok()) << "redis-server did not start (scripts/install-deps.sh)";
    ASSERT_TRUE(conn_.ok());
    // A client's timeout outlasts a worker restart and its resync.
    client_ = kvd_.NewClient(kPatience);
    kv::Upstream upstream;
    upstream.url = redis_.url();
    ASSERT_TRUE(client_->CreateBucket("m", upstream).ok());
    ASSERT_TRUE(WaitFor([&] { return InState(*client_, "m", "live"); }, kPatience));
    Result<Bucket> bucket = client_->OpenBucket("m");
    ASSERT_TRUE(bucket.ok()) << bucket.status().ToString();
    bucket_.emplace(*bucket);
  }

  // Arms the crash point: the next write the worker gets a reply to kills it, once.
  pid_t Arm() {
    pid_t worker = kvd_.WorkerPid("m");
    EXPECT_GT(worker, 0);
    gate_.Write("on");
    return worker;
  }
  // The armed write killed the worker that was serving, and its successor is live.
  void ExpectRestarted(pid_t before) {
    EXPECT_NE(::access(gate_.path().c_str(), F_OK), 0) << "the crash point did not fire";
    EXPECT_TRUE(WaitFor([&] { return InState(*client_, "m", "live"); }, kPatience));
    EXPECT_NE(kvd_.WorkerPid("m"), before);
  }
  std::string UpstreamValue(const std::string& key) {
    auto r = conn_.Command({"GET", "m:" + key});
    if (!r || r->type != REDIS_REPLY_STRING) return "(absent)";
    return std::string(r->str, r->len);
  }

  RedisProcess redis_;
  RedisConn conn_{redis_.socket()};
  ScopedPath gate_{"kv-mirror-gate"};
  ScopedEnv point_{"KV_CRASH_POINT", "mirror-upstream-replied:once"};
  ScopedEnv gate_env_{"KV_CRASH_POINT_GATE", gate_.path()};
  KvdInstance kvd_{{"--max-restarts", "1000"}};
  std::shared_ptr<Client> client_;
  std::optional<Bucket> bucket_;
};

TEST_F(MirrorExactlyOnceTest, AnIncrementCountsOnce) {
  ASSERT_TRUE(bucket_->Put("n", "10").ok());
  pid_t worker = Arm();
  Result<std::int64_t> n = bucket_->Increment("n", 5);
  ExpectRestarted(worker);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 15);
  EXPECT_EQ(UpstreamValue("n"), "15");
  EXPECT_TRUE(WaitFor(
      [&] {
        std::string v;
        return bucket_->Get("n", &v).ok() && v == "15";
      },
      kPatience));
  // Later increments are new requests: executed, not answered from the record.
  Result<std::int64_t> again = bucket_->Increment("n", 1);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 16);
}

TEST_F(MirrorExactlyOnceTest, ADeleteAnswersWithTheValueItDeleted) {
  ASSERT_TRUE(bucket_->Put("d", "old").ok());
  pid_t worker = Arm();
  std::string old;
  Status s = bucket_->Delete("d", &old);
  ExpectRestarted(worker);
  ASSERT_TRUE(s.ok()) << s.ToString();  // a second execution would answer NOT_FOUND
  EXPECT_EQ(old, "old");
  EXPECT_EQ(UpstreamValue("d"), "(absent)");
}

TEST_F(MirrorExactlyOnceTest, ASuccessfulCasIsNotReportedAsAMismatch) {
  std::uint64_t version = 0;
  ASSERT_TRUE(bucket_->Put("c", "before", &version).ok());
  pid_t worker = Arm();
  std::uint64_t after = 0;
  Status s = bucket_->CompareAndSet("c", version, "after", &after);
  ExpectRestarted(worker);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(UpstreamValue("c"), "after");
  std::string v;
  std::uint64_t now = 0;
  ASSERT_TRUE(bucket_->Get("c", &v, &now).ok());
  EXPECT_EQ(v, "after");
  EXPECT_EQ(after, now);  // the version a next cas needs
  EXPECT_TRUE(bucket_->CompareAndSet("c", after, "next").ok());
  EXPECT_EQ(UpstreamValue("c"), "next");
}

// The records live beside the data in Redis; a mirror of the whole database neither mirrors
// them nor lets a client write one.
TEST_F(MirrorExactlyOnceTest, RecordsAreNotMirrored) {
  ASSERT_TRUE(bucket_->Increment("n", 1).ok());  // leaves a record
  auto records = conn_.Command({"KEYS", "kv-once:*"});
  ASSERT_TRUE(records && records->type == REDIS_REPLY_ARRAY && records->elements == 1);
  kv::Upstream whole;
  whole.url = redis_.url();
  whole.prefix = "";
  ASSERT_TRUE(client_->CreateBucket("all", whole).ok());
  ASSERT_TRUE(WaitFor([&] { return InState(*client_, "all", "live"); }, kPatience));
  Result<Bucket> all = client_->OpenBucket("all");
  ASSERT_TRUE(all.ok());
  std::string v;
  EXPECT_TRUE(all->Get("m:n", &v).ok());
  Status scan = all->Scan("kv-once:", [&](std::string_view k, std::string_view) {
    ADD_FAILURE() << "mirrored a record: " << k;
    return true;
  });
  EXPECT_TRUE(scan.ok()) << scan.ToString();
  Status reserved = all->Put("kv-once:x", "1");
  EXPECT_EQ(reserved.code(), Code::kFailed) << reserved.ToString();
  auto reserved_key = conn_.Command({"EXISTS", "kv-once:x"});
  ASSERT_TRUE(reserved_key && reserved_key->type == REDIS_REPLY_INTEGER);
  EXPECT_EQ(reserved_key->integer, 0);
}

}  // namespace
}  // namespace kv
