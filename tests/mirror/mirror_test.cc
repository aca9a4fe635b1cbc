// Buckets that mirror an upstream Redis (docs/mirror.md), against real redis-server processes:
// two kvd namespaces stand for two hosts mirroring one Redis.
//
// Acceptance 1: writes through either namespace, and writes made directly on Redis (hiredis and
// redis-cli), appear in both; deletes too; values are binary-safe; cas and incr keep kv's
// results. Acceptance 2: the upstream killed: reads go on, writes fail UNAVAILABLE and change
// nothing, status says stale; a restarted upstream holding other data (changes made meanwhile):
// both mirrors converge to exactly its keys (SCAN dumps compared).
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <string>

#include "kv/kv.h"
#include "tests/mirror/mirror_status.h"
#include "tests/mirror/redis_process.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using testing::InState;
using testing::KvdInstance;
using testing::MirrorInfo;
using testing::RedisConn;
using testing::RedisProcess;
using testing::WaitFor;

constexpr auto kPatience = std::chrono::seconds(20);

std::map<std::string, std::string> Dump(Bucket& bucket) {
  std::map<std::string, std::string> out;
  Status s = bucket.Scan("", [&](std::string_view k, std::string_view v) {
    out[std::string(k)] = std::string(v);
    return true;
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

// The upstream's keys under `prefix`, without the prefix (what a mirror must hold).
std::map<std::string, std::string> UpstreamDump(RedisConn& redis, const std::string& prefix) {
  std::map<std::string, std::string> out;
  for (auto& [k, v] : redis.Dump(prefix + "*")) out[k.substr(prefix.size())] = v;
  return out;
}

bool Holds(Bucket& bucket, const std::string& key, const std::string& value) {
  std::string v;
  return bucket.Get(key, &v).ok() && v == value;
}

bool Lacks(Bucket& bucket, const std::string& key) {
  std::string v;
  return bucket.Get(key, &v).code() == Code::kNotFound;
}

class MirrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis_.ok()) << "redis-server did not start (scripts/install-deps.sh)";
    conn_ = std::make_unique<RedisConn>(redis_.socket());
    ASSERT_TRUE(conn_->ok());
  }

  // Creates bucket "m" mirroring redis_ in `kvd` and waits until it is live.
  Bucket Mirror(KvdInstance& kvd, std::shared_ptr<Client>* client_out) {
    std::shared_ptr<Client> client = kvd.NewClient();
    Upstream upstream;
    upstream.url = redis_.url();
    Status s = client->CreateBucket("m", upstream);
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_TRUE(WaitFor([&] { return InState(*client, "m", "live"); }, kPatience));
    Result<Bucket> bucket = client->OpenBucket("m");
    EXPECT_TRUE(bucket.ok()) << bucket.status().ToString();
    *client_out = client;
    return *bucket;
  }

  void Set(const std::string& key, const std::string& value) {
    auto r = conn_->Command({"SET", key, value});
    ASSERT_TRUE(r && r->type == REDIS_REPLY_STATUS);
  }

  RedisProcess redis_;
  std::unique_ptr<RedisConn> conn_;
  KvdInstance a_;
  KvdInstance b_;
};

TEST_F(MirrorTest, CreateValidatesTheUpstreamAndRecordsIt) {
  std::shared_ptr<Client> client = a_.NewClient();
  Upstream bad;
  bad.url = "http://localhost:6379";
  EXPECT_EQ(client->CreateBucket("m", bad).code(), Code::kInvalidArgument);
  bad.url = "redis://:secret@localhost:6379";
  EXPECT_EQ(client->CreateBucket("m", bad).code(), Code::kInvalidArgument);
  bad.url = "redis://localhost:0";
  EXPECT_EQ(client->CreateBucket("m", bad).code(), Code::kInvalidArgument);
  bad.url = "unix://relative/path";
  EXPECT_EQ(client->CreateBucket("m", bad).code(), Code::kInvalidArgument);
  bad.url = redis_.url();
  bad.password_file = "relative";
  EXPECT_EQ(client->CreateBucket("m", bad).code(), Code::kInvalidArgument);

  std::shared_ptr<Client> unused;
  Bucket m = Mirror(a_, &unused);
  std::optional<BucketInfo> info = MirrorInfo(*client, "m");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->upstream, redis_.url());
  EXPECT_EQ(info->upstream_prefix, "m:");
  EXPECT_GE(info->upstream_resyncs, 1u);
  // The same upstream again is OK; another one, or none, is refused.
  Upstream same;
  same.url = redis_.url();
  EXPECT_TRUE(client->CreateBucket("m", same).ok());
  Upstream other = same;
  other.prefix = "x:";
  EXPECT_EQ(client->CreateBucket("m", other).code(), Code::kInvalidArgument);
  EXPECT_EQ(client->CreateBucket("m").code(), Code::kInvalidArgument);
  // kvctl creates one too (its prefix given), and the C ABI (default prefix).
  testing::CommandResult r =
      testing::RunCommand({testing::KvctlPath(), "--namespace", a_.ns(), "create", "k",
                           "--upstream", redis_.url(), "--prefix", "kk/"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = testing::RunCommand(
      {testing::KvctlPath(), "--namespace", a_.ns(), "create", "k2", "--prefix", "x"});
  EXPECT_NE(r.exit_code, 0) << "--prefix without --upstream must be refused";
  kv_client* c = nullptr;
  ASSERT_EQ(kv_client_open(a_.ns().c_str(), 5000, &c), KV_OK);
  EXPECT_EQ(kv_bucket_create_mirror(c, "c", redis_.url().c_str(), nullptr, nullptr), KV_OK);
  EXPECT_EQ(kv_bucket_create_mirror(c, "c2", "redis://nohost", nullptr, nullptr), KV_INVALID);
  kv_client_close(c);
  Set("kk/x", "for k");
  Set("c:y", "for c");
  Result<Bucket> k = client->OpenBucket("k");
  Result<Bucket> cb = client->OpenBucket("c");
  ASSERT_TRUE(k.ok() && cb.ok());
  EXPECT_TRUE(
      WaitFor([&] { return Holds(*k, "x", "for k") && Holds(*cb, "y", "for c"); }, kPatience));
  EXPECT_TRUE(Lacks(*k, "y"));
  EXPECT_EQ(MirrorInfo(*client, "c")->upstream_prefix, "c:");
  // kvctl status shows the upstreams and their state.
  r = testing::RunCommand({testing::KvctlPath(), "--namespace", a_.ns(), "status"});
  EXPECT_NE(r.out.find(redis_.url()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("live"), std::string::npos) << r.out;
  r = testing::RunCommand({testing::KvctlPath(), "--namespace", a_.ns(), "--json", "status"});
  EXPECT_NE(r.out.find("\"upstream\":{"), std::string::npos) << r.out;
}

TEST_F(MirrorTest, BatchesAreRefusedAndSnapshotsWork) {
  std::shared_ptr<Client> client;
  Set("m:a", "1");
  Bucket m = Mirror(a_, &client);
  ASSERT_TRUE(WaitFor([&] { return Holds(m, "a", "1"); }, kPatience));
  WriteBatch batch;
  batch.Put("a", "2");
  batch.Put("b", "3");
  Status s = m.Write(batch);
  EXPECT_EQ(s.code(), Code::kFailed) << s.ToString();
  EXPECT_NE(s.message().find("mirrors an upstream"), std::string::npos) << s.message();
  EXPECT_TRUE(Holds(m, "a", "1"));
  EXPECT_TRUE(Lacks(m, "b"));
  auto r = conn_->Command({"GET", "m:b"});
  EXPECT_TRUE(r && r->type == REDIS_REPLY_NIL) << "nothing reached the upstream";
  Result<Snapshot> snap = m.Snapshot();
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  std::string value;
  EXPECT_TRUE(snap->Get("a", &value).ok());
  EXPECT_EQ(value, "1");
}

TEST_F(MirrorTest, TwoHostsMirrorOneRedis) {
  // Keys present before the mirrors exist are loaded; keys outside the prefix are not.
  for (int i = 0; i < 300; ++i) Set("m:pre" + std::to_string(i), "v" + std::to_string(i));
  Set("other:key", "not mirrored");
  std::shared_ptr<Client> ca, cb;
  Bucket a = Mirror(a_, &ca);
  Bucket b = Mirror(b_, &cb);
  EXPECT_EQ(Dump(a), UpstreamDump(*conn_, "m:"));
  EXPECT_EQ(Dump(b), UpstreamDump(*conn_, "m:"));
  EXPECT_EQ(Dump(a).size(), 300u);

  // A write through A: A reads it at once, Redis has it, B follows.
  std::uint64_t version = 0;
  ASSERT_TRUE(a.Put("k1", "from-a", &version).ok());
  EXPECT_TRUE(Holds(a, "k1", "from-a"));
  auto r = conn_->Command({"GET", "m:k1"});
  ASSERT_TRUE(r && r->type == REDIS_REPLY_STRING);
  EXPECT_EQ(std::string(r->str, r->len), "from-a");
  EXPECT_TRUE(WaitFor([&] { return Holds(b, "k1", "from-a"); }, kPatience));
  // Through B: A follows.
  ASSERT_TRUE(b.Put("k2", "from-b").ok());
  EXPECT_TRUE(WaitFor([&] { return Holds(a, "k2", "from-b"); }, kPatience));
  // Directly on Redis, with redis-cli and (binary values) with hiredis.
  testing::CommandResult cli = testing::RunCommand(
      {"/usr/bin/redis-cli", "-s", redis_.socket(), "SET", "m:cli", "from redis-cli"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  const std::string binary("\0\xff\r\n\0bin", 8);
  Set("m:bin", binary);
  EXPECT_TRUE(WaitFor([&] { return Holds(a, "cli", "from redis-cli"); }, kPatience));
  EXPECT_TRUE(WaitFor([&] { return Holds(b, "cli", "from redis-cli"); }, kPatience));
  EXPECT_TRUE(WaitFor([&] { return Holds(a, "bin", binary); }, kPatience));
  EXPECT_TRUE(WaitFor([&] { return Holds(b, "bin", binary); }, kPatience));
  // Binary keys and values through a mirror.
  const std::string bkey("k\0\xff", 3);
  ASSERT_TRUE(b.Put(bkey, binary).ok());
  EXPECT_TRUE(WaitFor([&] { return Holds(a, bkey, binary); }, kPatience));
  r = conn_->Command({"GET", "m:" + bkey});
  ASSERT_TRUE(r && r->type == REDIS_REPLY_STRING);
  EXPECT_EQ(std::string(r->str, r->len), binary);

  // Deletes: through A (the old value is Redis's), and directly on Redis.
  std::string old;
  ASSERT_TRUE(a.Delete("k2", &old).ok());
  EXPECT_EQ(old, "from-b");
  EXPECT_TRUE(Lacks(a, "k2"));
  EXPECT_TRUE(WaitFor([&] { return Lacks(b, "k2"); }, kPatience));
  EXPECT_EQ(a.Delete("k2").code(), Code::kNotFound);
  cli = testing::RunCommand({"/usr/bin/redis-cli", "-s", redis_.socket(), "DEL", "m:cli"});
  ASSERT_EQ(cli.exit_code, 0);
  EXPECT_TRUE(WaitFor([&] { return Lacks(a, "cli") && Lacks(b, "cli"); }, kPatience));

  // incr: INCRBY's result, and NOT_AN_INTEGER as kv's incr.
  Result<std::int64_t> n = a.Increment("counter", 5);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 5);
  n = b.Increment("counter", -2);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 3);
  EXPECT_TRUE(Holds(b, "counter", "3"));
  EXPECT_TRUE(WaitFor([&] { return Holds(a, "counter", "3"); }, kPatience));
  EXPECT_EQ(a.Increment("k1", 1).status().code(), Code::kNotAnInteger);
  Set("m:big", "9223372036854775807");
  EXPECT_TRUE(WaitFor([&] { return Holds(a, "big", "9223372036854775807"); }, kPatience));
  EXPECT_EQ(a.Increment("big", 1).status().code(), Code::kNotAnInteger);

  // cas: on the mirror's version, as kv's cas.
  std::uint64_t v = 0;
  std::string value;
  ASSERT_TRUE(a.Get("k1", &value, &v).ok());
  std::uint64_t stale = v;
  ASSERT_TRUE(a.CompareAndSet("k1", v, "cas-1", &v).ok());
  EXPECT_TRUE(Holds(a, "k1", "cas-1"));
  std::uint64_t current = 0;
  EXPECT_EQ(a.CompareAndSet("k1", stale, "lost", &current).code(), Code::kVersionMismatch);
  EXPECT_EQ(current, v);
  EXPECT_EQ(a.CompareAndSet("k1", 0, "absent only").code(), Code::kVersionMismatch);
  ASSERT_TRUE(a.CompareAndSet("fresh", 0, "created").ok());
  EXPECT_TRUE(WaitFor([&] { return Holds(b, "fresh", "created"); }, kPatience));
  // B's version of k1, once B has the value; a change on Redis that B has not applied yet makes
  // B's cas fail (the upstream value differs), and B then holds the upstream's value.
  EXPECT_TRUE(WaitFor([&] { return Holds(b, "k1", "cas-1"); }, kPatience));
  ASSERT_TRUE(b.Get("k1", &value, &v).ok());
  Set("m:k1", "changed on redis");
  Status cas = b.CompareAndSet("k1", v, "from b", &current);
  if (cas.ok()) {
    // B's worker applied the change before the cas (allowed): then it was a fresh version.
    FAIL() << "cas on a version older than the upstream's value succeeded";
  }
  EXPECT_EQ(cas.code(), Code::kVersionMismatch);
  EXPECT_TRUE(WaitFor([&] { return Holds(b, "k1", "changed on redis"); }, kPatience));

  // Async writes pipeline, and Flush makes them visible.
  for (int i = 0; i < 500; ++i) {
    ASSERT_TRUE(a.PutAsync("async" + std::to_string(i), std::to_string(i)).ok());
  }
  ASSERT_TRUE(a.Flush().ok());
  EXPECT_TRUE(Holds(a, "async499", "499"));

  // Both converge exactly to Redis.
  auto expected = UpstreamDump(*conn_, "m:");
  EXPECT_TRUE(WaitFor([&] { return Dump(a) == expected && Dump(b) == expected; }, kPatience));
  EXPECT_EQ(Dump(a), expected);
  EXPECT_EQ(Dump(b), expected);
  EXPECT_EQ(expected.count("other:key"), 0u);

  // clear: every key under the prefix, upstream and in both mirrors.
  ASSERT_TRUE(a.Clear().ok());
  EXPECT_TRUE(UpstreamDump(*conn_, "m:").empty());
  EXPECT_TRUE(Dump(a).empty());
  EXPECT_TRUE(WaitFor([&] { return Dump(b).empty(); }, kPatience));
  r = conn_->Command({"GET", "other:key"});
  ASSERT_TRUE(r && r->type == REDIS_REPLY_STRING);
}

TEST_F(MirrorTest, UpstreamKilledAndRestartedWithOtherDataConverges) {
  for (int i = 0; i < 200; ++i) Set("m:k" + std::to_string(i), "v" + std::to_string(i));
  std::shared_ptr<Client> ca, cb;
  Bucket a = Mirror(a_, &ca);
  Bucket b = Mirror(b_, &cb);
  ASSERT_TRUE(a.Put("written", "before").ok());
  EXPECT_TRUE(WaitFor([&] { return Holds(b, "written", "before"); }, kPatience));

  redis_.Kill();
  // Reads go on; writes fail clearly and change nothing; status says stale.
  EXPECT_TRUE(
      WaitFor([&] { return InState(*ca, "m", "stale") && InState(*cb, "m", "stale"); }, kPatience));
  std::optional<BucketInfo> info = MirrorInfo(*ca, "m");
  ASSERT_TRUE(info);
  EXPECT_GT(info->upstream_since_unix_ms, 0u);
  EXPECT_TRUE(Holds(a, "k7", "v7"));
  EXPECT_TRUE(Holds(b, "written", "before"));
  Status s = a.Put("k7", "lost");
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.ToString();
  EXPECT_TRUE(Holds(a, "k7", "v7"));
  EXPECT_EQ(a.Delete("k8").code(), Code::kUnavailable);
  EXPECT_TRUE(Holds(a, "k8", "v8"));
  EXPECT_EQ(a.Increment("n").status().code(), Code::kUnavailable);
  ASSERT_TRUE(a.PutAsync("async-lost", "x").ok());
  EXPECT_FALSE(a.Flush().ok());
  EXPECT_TRUE(Lacks(a, "async-lost"));
  testing::CommandResult st =
      testing::RunCommand({testing::KvctlPath(), "--namespace", a_.ns(), "status"});
  EXPECT_NE(st.out.find("stale since"), std::string::npos) << st.out;

  // Meanwhile the data changed: a new server, prepared on another socket, takes the upstream's
  // path (rename is atomic): some keys deleted, some changed, some new.
  RedisProcess next(redis_.dir() + "/next.sock");
  ASSERT_TRUE(next.ok());
  {
    RedisConn prepare(next.socket());
    for (int i = 0; i < 200; i += 2) {
      auto r = prepare.Command({"SET", "m:k" + std::to_string(i), "new" + std::to_string(i)});
      ASSERT_TRUE(r);
    }
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(prepare.Command({"SET", "m:added" + std::to_string(i), "a"}));
    }
  }
  ASSERT_EQ(std::rename(next.socket().c_str(), redis_.socket().c_str()), 0);
  RedisConn upstream(redis_.socket());
  ASSERT_TRUE(upstream.ok());
  EXPECT_TRUE(
      WaitFor([&] { return InState(*ca, "m", "live") && InState(*cb, "m", "live"); }, kPatience));
  auto expected = UpstreamDump(upstream, "m:");
  ASSERT_EQ(expected.size(), 150u);
  EXPECT_EQ(Dump(a), expected);
  EXPECT_EQ(Dump(b), expected);
  EXPECT_TRUE(Lacks(a, "written"));
  EXPECT_TRUE(Lacks(b, "k1"));
  // Writes work again and follow as before.
  ASSERT_TRUE(a.Put("after", "restart").ok());
  EXPECT_TRUE(WaitFor([&] { return Holds(b, "after", "restart"); }, kPatience));
  info = MirrorInfo(*ca, "m");
  ASSERT_TRUE(info);
  EXPECT_GE(info->upstream_resyncs, 2u);
}

TEST_F(MirrorTest, ExpiryIsRefusedAndChangesNothing) {
  using namespace std::chrono_literals;
  std::shared_ptr<Client> ca;
  Bucket a = Mirror(a_, &ca);
  ASSERT_TRUE(a.Put("x", "1").ok());
  Status s = a.Put("x", "2", 1h);
  EXPECT_EQ(s.code(), Code::kFailed) << s.ToString();
  EXPECT_NE(s.message().find("mirror.md"), std::string::npos) << s.ToString();
  EXPECT_EQ(a.Expire("x", 1h).code(), Code::kFailed);
  EXPECT_EQ(a.Persist("x").status().code(), Code::kFailed);
  EXPECT_TRUE(a.PutAsync("y", "3", 1h).ok());  // refused by the worker: reported by Flush
  EXPECT_EQ(a.Flush().code(), Code::kFailed);
  EXPECT_TRUE(Holds(a, "x", "1"));
  EXPECT_TRUE(Lacks(a, "y"));
  auto ttl = a.Ttl("x");
  ASSERT_TRUE(ttl.ok());
  EXPECT_FALSE(ttl->has_value());
  EXPECT_EQ(Dump(a), UpstreamDump(*conn_, "m:"));
}

TEST_F(MirrorTest, WorkerRestartResyncs) {
  std::shared_ptr<Client> ca;
  Bucket a = Mirror(a_, &ca);
  ASSERT_TRUE(a.Put("x", "1").ok());
  pid_t worker = a_.WorkerPid("m");
  ASSERT_GT(worker, 0);
  ::kill(worker, SIGSTOP);  // changes it cannot see
  Set("m:x", "2");
  Set("m:y", "3");
  ASSERT_TRUE(conn_->Command({"DEL", "m:x"}));
  ::kill(worker, SIGKILL);
  EXPECT_TRUE(WaitFor(
      [&] {
        pid_t now = a_.WorkerPid("m");
        return now > 0 && now != worker && InState(*ca, "m", "live");
      },
      kPatience));
  EXPECT_TRUE(WaitFor([&] { return Lacks(a, "x") && Holds(a, "y", "3"); }, kPatience));
  EXPECT_EQ(Dump(a), UpstreamDump(*conn_, "m:"));
}

TEST_F(MirrorTest, OversizedUpstreamValuesAreReportedNotTruncated) {
  std::shared_ptr<Client> ca;
  Bucket a = Mirror(a_, &ca);
  Set("m:small", "ok");
  Set("m:huge", std::string((16u << 20) + 1, 'h'));
  EXPECT_TRUE(WaitFor([&] { return Holds(a, "small", "ok"); }, kPatience));
  EXPECT_TRUE(WaitFor(
      [&] {
        std::optional<BucketInfo> b = MirrorInfo(*ca, "m");
        return b && b->upstream_skipped >= 1;
      },
      kPatience));
  EXPECT_TRUE(Lacks(a, "huge"));
}

}  // namespace
}  // namespace kv
