// A bucket whose upstream is a Redis Cluster (docs/mirror.md, "Redis Cluster"), acceptance 3 of
// issue 17: three redis-server masters started by the test (cluster mode, TCP on free ports, each
// in a directory of its own), slots assigned with CLUSTER ADDSLOTSRANGE and joined with CLUSTER
// MEET. Keys across all slots mirror into two kvd namespaces; writes through kv and directly on
// the cluster appear in both; slots resharded (SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT
// NODE) while writers go on lose nothing, and the mirrors equal the cluster's content afterwards.
// A master with a replica fails over (CLUSTER FAILOVER, then the new master killed and CLUSTER
// FAILOVER TAKEOVER) while writers go on: the mirrors re-discover the masters and lose nothing.
//
// The test's own cluster client (ClusterClient) follows MOVED and ASK itself: it does not use the
// worker's slot code, which it checks against the servers' CLUSTER KEYSLOT.
#include <gtest/gtest.h>

#include <signal.h>

#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "daemon/mirror/cluster.h"
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

constexpr auto kPatience = std::chrono::seconds(30);
using ReplyPtr = std::unique_ptr<redisReply, void (*)(void*)>;

std::string Text(const ReplyPtr& r) {
  return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
               r->type == REDIS_REPLY_ERROR)
             ? std::string(r->str, r->len)
             : std::string();
}

// Three masters; commands follow MOVED and ASK (by port, to the node's unix socket).
class ClusterClient {
 public:
  explicit ClusterClient(const std::vector<std::unique_ptr<RedisProcess>>& nodes) {
    for (const auto& n : nodes) {
      conns_.push_back(std::make_unique<RedisConn>(n->socket()));
      ports_.push_back(n->port());
    }
  }
  RedisConn& node(std::size_t i) { return *conns_[i]; }
  // A new connection to node `i` (after it restarted).
  void Reopen(std::size_t i, const std::string& socket) {
    conns_[i] = std::make_unique<RedisConn>(socket);
  }

  // One single-key command, wherever the key is.
  ReplyPtr Command(const std::vector<std::string>& args) {
    std::size_t at = 0;
    bool asking = false;
    for (int hop = 0; hop < 10; ++hop) {
      if (asking) conns_[at]->Command({"ASKING"});
      ReplyPtr r = conns_[at]->Command(args);
      std::string e = r && r->type == REDIS_REPLY_ERROR ? Text(r) : std::string();
      bool moved = e.rfind("MOVED ", 0) == 0;
      asking = e.rfind("ASK ", 0) == 0;
      if (e.rfind("TRYAGAIN", 0) == 0) {
        std::this_thread::yield();
        continue;
      }
      if (!moved && !asking) return r;
      int port = std::stoi(e.substr(e.rfind(':') + 1));
      for (std::size_t i = 0; i < ports_.size(); ++i) {
        if (ports_[i] == port) at = i;
      }
    }
    return {nullptr, freeReplyObject};
  }
  bool Set(const std::string& key, const std::string& value) {
    ReplyPtr r = Command({"SET", key, value});
    return r && r->type == REDIS_REPLY_STATUS;
  }
  // Every string key under `prefix` on every master (replicas and dead nodes are left out),
  // without the prefix.
  std::map<std::string, std::string> Dump(const std::string& prefix) {
    std::map<std::string, std::string> out;
    for (auto& c : conns_) {
      if (!IsMaster(*c)) continue;
      for (auto& [k, v] : c->Dump(prefix + "*")) out[k.substr(prefix.size())] = v;
    }
    return out;
  }
  static bool IsMaster(RedisConn& c) {
    ReplyPtr role = c.Command({"ROLE"});
    return role && role->type == REDIS_REPLY_ARRAY && role->elements > 0 &&
           role->element[0]->type == REDIS_REPLY_STRING &&
           std::string(role->element[0]->str, role->element[0]->len) == "master";
  }

 private:
  std::vector<std::unique_ptr<RedisConn>> conns_;
  std::vector<int> ports_;
};

std::map<std::string, std::string> Dump(Bucket& bucket) {
  std::map<std::string, std::string> out;
  Status s = bucket.Scan("", [&](std::string_view k, std::string_view v) {
    out[std::string(k)] = std::string(v);
    return true;
  });
  if (!s.ok()) out["<scan failed>"] = s.ToString();
  return out;
}

// The first differences between a mirror's dump and the cluster's, for failure messages.
std::string Diff(const std::map<std::string, std::string>& mirror,
                 const std::map<std::string, std::string>& cluster) {
  std::string out;
  int shown = 0;
  for (const auto& [k, v] : mirror) {
    auto it = cluster.find(k);
    if ((it == cluster.end() || it->second != v) && shown++ < 10) {
      out += " mirror[" + k + "]=" + v.substr(0, 20) +
             (it == cluster.end() ? " (absent upstream)" : " upstream=" + it->second.substr(0, 20));
    }
  }
  for (const auto& [k, v] : cluster) {
    if (mirror.count(k) == 0 && shown++ < 10) out += " missing[" + k + "]";
  }
  return out;
}

bool Holds(Bucket& bucket, const std::string& key, const std::string& value) {
  std::string v;
  return bucket.Get(key, &v).ok() && v == value;
}

class ClusterMirrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::signal(SIGPIPE, SIG_IGN);  // a write to a killed node's connection is an error, not death
    for (int i = 0; i < 3; ++i) ASSERT_NO_FATAL_FAILURE(StartNode());
    cluster_ = std::make_unique<ClusterClient>(nodes_);
    const int ranges[3][2] = {{0, 5460}, {5461, 10922}, {10923, 16383}};
    for (std::size_t i = 0; i < 3; ++i) {
      auto r = cluster_->node(i).Command(
          {"CLUSTER", "ADDSLOTSRANGE", std::to_string(ranges[i][0]), std::to_string(ranges[i][1])});
      ASSERT_EQ(Text(r), "OK");
    }
    for (std::size_t i = 1; i < 3; ++i) ASSERT_NO_FATAL_FAILURE(Meet(i));
    ASSERT_TRUE(WaitFor([&] { return AllSeeEveryNode(); }, kPatience))
        << "the three masters did not form a cluster";
  }

  // Starts one more cluster node (TCP on a free port, the bus on port + 10000, a directory of its
  // own), not yet part of the cluster; its id goes to ids_.
  void StartNode() {
    int port = testing::FreeClusterPort();
    ASSERT_NE(port, 0);
    nodes_.push_back(std::make_unique<RedisProcess>(
        std::string(),
        std::vector<std::string>{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                 "--cluster-node-timeout", "5000",
                                 "--cluster-require-full-coverage", "no",
                                 // a replica's first sync at once, not after 5 s
                                 "--repl-diskless-sync-delay", "0"},
        port));
    ASSERT_TRUE(nodes_.back()->ok())
        << "redis-server (cluster node, port " << port << ") did not start";
    RedisConn conn(nodes_.back()->socket());
    ids_.push_back(Text(conn.Command({"CLUSTER", "MYID"})));
  }

  // Node `i` joins the cluster (CLUSTER MEET sent to node 0).
  void Meet(std::size_t i) {
    ASSERT_EQ(Text(cluster_->node(0).Command(
                  {"CLUSTER", "MEET", "127.0.0.1", std::to_string(nodes_[i]->port())})),
              "OK");
  }

  // Every node knows every other one, all slots are assigned, and the cluster state is ok.
  bool AllSeeEveryNode() {
    std::string known = "cluster_known_nodes:" + std::to_string(nodes_.size()) + "\r";
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      std::string info = Text(cluster_->node(i).Command({"CLUSTER", "INFO"}));
      if (info.find(known) == std::string::npos ||
          info.find("cluster_state:ok") == std::string::npos ||
          info.find("cluster_slots_assigned:16384") == std::string::npos) {
        return false;
      }
    }
    return true;
  }

  std::string Url() const {
    return "redis-cluster://127.0.0.1:" + std::to_string(nodes_[0]->port()) +
           ",127.0.0.1:" + std::to_string(nodes_[1]->port());
  }

  Bucket Mirror(KvdInstance& kvd, std::shared_ptr<Client>* client_out) {
    std::shared_ptr<Client> client = kvd.NewClient();
    Upstream upstream;
    upstream.url = Url();
    Status s = client->CreateBucket("m", upstream);
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_TRUE(WaitFor([&] { return InState(*client, "m", "live"); }, kPatience));
    Result<Bucket> bucket = client->OpenBucket("m");
    EXPECT_TRUE(bucket.ok()) << bucket.status().ToString();
    *client_out = client;
    return *bucket;
  }

  // The master that serves `key` (the one that answers without a redirection).
  std::size_t OwnerOf(const std::string& key) {
    for (std::size_t i = 0; i < 3; ++i) {
      auto r = cluster_->node(i).Command({"EXISTS", key});
      if (r && r->type == REDIS_REPLY_INTEGER) return i;
    }
    ADD_FAILURE() << "no master serves the key";
    return 0;
  }

  bool ClusterOk() {
    for (std::size_t i = 0; i < 3; ++i) {
      if (Text(cluster_->node(i).Command({"CLUSTER", "INFO"})).find("cluster_state:ok") ==
          std::string::npos) {
        return false;
      }
    }
    return true;
  }

  // Moves every key of `slot` (a slot the caller set MIGRATING on `from`, IMPORTING on `to`)
  // from master `from` to master `to`, 100 at a time (MIGRATE ... KEYS).
  void MigrateSlotKeys(const std::string& slot, std::size_t from, std::size_t to) {
    for (;;) {
      auto keys = cluster_->node(from).Command({"CLUSTER", "GETKEYSINSLOT", slot, "100"});
      ASSERT_TRUE(keys && keys->type == REDIS_REPLY_ARRAY);
      if (keys->elements == 0) break;
      std::vector<std::string> migrate = {
          "MIGRATE", "127.0.0.1", std::to_string(nodes_[to]->port()), "", "0", "5000", "KEYS"};
      for (std::size_t i = 0; i < keys->elements; ++i) {
        migrate.emplace_back(keys->element[i]->str, keys->element[i]->len);
      }
      ASSERT_EQ(Text(cluster_->node(from).Command(migrate)), "OK");
    }
  }

  // Moves slots [first, last] from master `from` to master `to`, key by key (MIGRATE), as
  // redis-cli --cluster reshard does.
  void Reshard(int first, int last, std::size_t from, std::size_t to) {
    RedisConn& src = cluster_->node(from);
    RedisConn& dst = cluster_->node(to);
    for (int slot = first; slot <= last; ++slot) {
      std::string s = std::to_string(slot);
      ASSERT_EQ(Text(dst.Command({"CLUSTER", "SETSLOT", s, "IMPORTING", ids_[from]})), "OK");
      ASSERT_EQ(Text(src.Command({"CLUSTER", "SETSLOT", s, "MIGRATING", ids_[to]})), "OK");
      ASSERT_NO_FATAL_FAILURE(MigrateSlotKeys(s, from, to));
      // The target first, then the source, then the others.
      std::vector<std::size_t> order = {to, from};
      for (std::size_t n = 0; n < nodes_.size(); ++n) {
        if (n != to && n != from) order.push_back(n);
      }
      for (std::size_t n : order) {
        ASSERT_EQ(Text(cluster_->node(n).Command({"CLUSTER", "SETSLOT", s, "NODE", ids_[to]})),
                  "OK");
      }
    }
  }

  // Every live node but `master` redirects `key` to `master`, which serves it: the cluster
  // agrees that `master` serves the key's slot.
  bool EveryNodeRoutes(const std::string& key, std::size_t master) {
    std::string moved = ":" + std::to_string(nodes_[master]->port());
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i]->pid() <= 0) continue;  // killed
      ReplyPtr r = cluster_->node(i).Command({"EXISTS", key});
      std::string e = Text(r);
      bool to_master = e.rfind("MOVED ", 0) == 0 && e.size() > moved.size() &&
                       e.compare(e.size() - moved.size(), moved.size(), moved) == 0;
      if (i == master ? !(r && r->type == REDIS_REPLY_INTEGER) : !to_master) {
        return false;
      }
    }
    return true;
  }

  // Every node's view of the cluster (CLUSTER NODES) has node `replica` as a replica of node
  // `master` (a master takes a manual failover request only from a node it sees so).
  bool AllSeeReplica(std::size_t replica, std::size_t master) {
    std::string line = ids_[replica] + " ";
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      std::string view = Text(cluster_->node(i).Command({"CLUSTER", "NODES"}));
      std::size_t at = view.find(line);
      std::size_t end = view.find('\n', at);
      if (at == std::string::npos ||
          view.substr(at, end - at).find("slave " + ids_[master]) == std::string::npos) {
        return false;
      }
    }
    return true;
  }

  // What every live node says of `key` and of the cluster, for failure messages.
  std::string Routes(const std::string& key) {
    std::string out;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i]->pid() <= 0) continue;
      ReplyPtr r = cluster_->node(i).Command({"EXISTS", key});
      out += "\nnode " + std::to_string(i) + " (port " + std::to_string(nodes_[i]->port()) +
             "): " + (r && r->type == REDIS_REPLY_INTEGER ? "serves it" : Text(r)) + "\n" +
             Text(cluster_->node(i).Command({"CLUSTER", "NODES"}));
      std::ifstream log(nodes_[i]->dir() + "/redis.log");
      std::string line;
      std::vector<std::string> lines;
      while (std::getline(log, line)) lines.push_back(line);
      for (std::size_t l = lines.size() > 15 ? lines.size() - 15 : 0; l < lines.size(); ++l) {
        out += "  log: " + lines[l] + "\n";
      }
    }
    return out;
  }

  // A replication field of node `i` (INFO replication), -1 if absent.
  long long ReplicationField(std::size_t i, const std::string& field) {
    std::string info = Text(cluster_->node(i).Command({"INFO", "replication"}));
    std::size_t at = info.find(field + ":");
    return at == std::string::npos ? -1 : std::atoll(info.c_str() + at + field.size() + 1);
  }

  std::vector<std::unique_ptr<RedisProcess>> nodes_;  // killed by their destructors, always
  std::unique_ptr<ClusterClient> cluster_;
  std::vector<std::string> ids_;
  KvdInstance a_;
  KvdInstance b_;
};

TEST_F(ClusterMirrorTest, KeySlotIsTheServersHashSlot) {
  std::mt19937 rng(17);
  std::vector<std::string> keys = {"foo",
                                   "{user1000}.following",
                                   "{user1000}.followers",
                                   "foo{}{bar}",
                                   "foo{{bar}}zap",
                                   "{}",
                                   "a{b",
                                   "x}y{z}",
                                   std::string("\0\xff{\0}", 5)};
  for (int i = 0; i < 300; ++i) {
    std::string k(1 + rng() % 20, '\0');
    for (char& ch : k) ch = static_cast<char>(rng() % 256);
    keys.push_back(k);
  }
  for (const std::string& k : keys) {
    auto r = cluster_->node(0).Command({"CLUSTER", "KEYSLOT", k});
    ASSERT_TRUE(r && r->type == REDIS_REPLY_INTEGER);
    EXPECT_EQ(daemon::mirror::KeySlot(k), r->integer) << "key of " << k.size() << " bytes";
  }
}

TEST_F(ClusterMirrorTest, BadClusterUrlsAreRefused) {
  std::shared_ptr<Client> client = a_.NewClient();
  for (const char* url :
       {"redis-cluster://", "redis-cluster://127.0.0.1:1/0", "redis-cluster://127.0.0.1:1,",
        "redis-cluster://h:0", "redis-cluster://:pw@h:1", "redis-cluster://h:1,,h:2"}) {
    Upstream u;
    u.url = url;
    EXPECT_EQ(client->CreateBucket("m", u).code(), Code::kInvalidArgument) << url;
  }
}

TEST_F(ClusterMirrorTest, KeysAcrossAllSlotsMirrorAndReshardingLosesNothing) {
  // Thousands of keys before the mirrors exist (some binary, some sharing a hash tag), on every
  // master; one outside the prefix.
  const std::string binary("\0\xff\r\n\0bin", 8);
  for (int i = 0; i < 3000; ++i) {
    ASSERT_TRUE(cluster_->Set("m:k" + std::to_string(i), "v" + std::to_string(i)));
  }
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(cluster_->Set("m:{tag}" + std::to_string(i), binary + std::to_string(i)));
  }
  ASSERT_TRUE(cluster_->Set("other:key", "not mirrored"));
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_GT(cluster_->node(i).Dump("m:*").size(), 500u) << "master " << i << " holds few keys";
  }
  std::shared_ptr<Client> ca, cb;
  Bucket a = Mirror(a_, &ca);
  Bucket b = Mirror(b_, &cb);
  auto expected = cluster_->Dump("m:");
  ASSERT_EQ(expected.size(), 3020u);
  EXPECT_EQ(Dump(a), expected);
  EXPECT_EQ(Dump(b), expected);

  // Writes through kv (each to its slot's master) and directly on the cluster appear in both.
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(a.Put("a" + std::to_string(i), "from-a").ok());
  }
  EXPECT_EQ(Text(cluster_->Command({"GET", "m:a123"})), "from-a");
  ASSERT_TRUE(b.Put("b", binary).ok());
  ASSERT_TRUE(cluster_->Set("m:direct", "on the cluster"));
  testing::CommandResult cli =
      testing::RunCommand({"/usr/bin/redis-cli", "-c", "-p", std::to_string(nodes_[2]->port()),
                           "SET", "m:cli", "from redis-cli"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  std::string old;
  ASSERT_TRUE(a.Delete("k7", &old).ok());
  EXPECT_EQ(old, "v7");
  Result<std::int64_t> n = b.Increment("counter", 5);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  std::uint64_t v = 0;
  ASSERT_TRUE(a.Get("k8", &old, &v).ok());
  ASSERT_TRUE(a.CompareAndSet("k8", v, "cas").ok());
  for (Bucket* m : {&a, &b}) {
    EXPECT_TRUE(WaitFor(
        [&] {
          return Holds(*m, "a299", "from-a") && Holds(*m, "b", binary) &&
                 Holds(*m, "direct", "on the cluster") && Holds(*m, "cli", "from redis-cli") &&
                 Holds(*m, "counter", "5") && Holds(*m, "k8", "cas");
        },
        kPatience));
  }
  expected = cluster_->Dump("m:");
  EXPECT_TRUE(WaitFor([&] { return Dump(a) == expected && Dump(b) == expected; }, kPatience))
      << "A:" << Diff(Dump(a), expected) << " B:" << Diff(Dump(b), expected);

  // Resharding while two writers go on: one through kv (A), one directly on the cluster.
  std::atomic<bool> stop{false};
  std::map<std::string, std::string> kv_acked;  // last value each kv write was acknowledged with
  std::map<std::string, std::string> direct_acked;
  std::string writer_error;
  std::thread kv_writer([&] {
    for (int i = 0; !stop.load(); ++i) {
      std::string key = "w" + std::to_string(i % 1000);
      std::string value = "kv" + std::to_string(i);
      Status s = a.Put(key, value);
      if (!s.ok()) {
        writer_error = s.ToString();
        return;
      }
      kv_acked[key] = value;
    }
  });
  std::thread direct_writer([&] {
    ClusterClient own(nodes_);
    for (int i = 0; !stop.load(); ++i) {
      std::string key = "d" + std::to_string(i % 1000);
      std::string value = "direct" + std::to_string(i);
      if (!own.Set("m:" + key, value)) continue;
      direct_acked[key] = value;
    }
  });
  Reshard(0, 1499, 0, 1);       // a range of master 0 to master 1
  Reshard(16000, 16383, 2, 0);  // and one of master 2 to master 0
  stop = true;
  kv_writer.join();
  direct_writer.join();
  EXPECT_EQ(writer_error, "") << "a kv write failed during the resharding";
  EXPECT_GT(kv_acked.size(), 100u);
  auto moved = cluster_->node(1).Command({"CLUSTER", "COUNTKEYSINSLOT", "0"});
  ASSERT_TRUE(moved && moved->type == REDIS_REPLY_INTEGER);

  // Nothing lost: every acknowledged write is on the cluster, and both mirrors equal it.
  expected = cluster_->Dump("m:");
  for (const auto& [k, value] : kv_acked) EXPECT_EQ(expected[k], value) << k;
  for (const auto& [k, value] : direct_acked) EXPECT_EQ(expected[k], value) << k;
  EXPECT_TRUE(WaitFor([&] { return Dump(a) == expected && Dump(b) == expected; }, kPatience))
      << "A:" << Diff(Dump(a), expected) << " B:" << Diff(Dump(b), expected);
  EXPECT_EQ(Dump(a), expected);
  EXPECT_EQ(Dump(b), expected);

  // After the move: kv writes to moved slots (MOVED updates the worker's map) and direct ones.
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(a.Put("after" + std::to_string(i), "x").ok());
    ASSERT_TRUE(cluster_->Set("m:direct-after" + std::to_string(i), "y"));
  }
  expected = cluster_->Dump("m:");
  EXPECT_TRUE(WaitFor([&] { return Dump(a) == expected && Dump(b) == expected; }, kPatience))
      << "A:" << Diff(Dump(a), expected) << " B:" << Diff(Dump(b), expected);

  // ASK, deterministically: a slot in mid-migration, one of its keys already on the target.
  const std::string k1 = "m:{ask}1", k2 = "m:{ask}2";
  ASSERT_TRUE(cluster_->Set(k1, "one") && cluster_->Set(k2, "two"));
  std::size_t from = OwnerOf(k1);
  std::size_t to = (from + 1) % 3;
  std::string slot = std::to_string(daemon::mirror::KeySlot(k1));
  ASSERT_EQ(Text(cluster_->node(to).Command({"CLUSTER", "SETSLOT", slot, "IMPORTING", ids_[from]})),
            "OK");
  ASSERT_EQ(Text(cluster_->node(from).Command({"CLUSTER", "SETSLOT", slot, "MIGRATING", ids_[to]})),
            "OK");
  ASSERT_EQ(Text(cluster_->node(from).Command(
                {"MIGRATE", "127.0.0.1", std::to_string(nodes_[to]->port()), k1, "0", "5000"})),
            "OK");
  ASSERT_TRUE(a.Put("{ask}1", "moved, via ASK").ok());  // on the target, after ASKING
  ASSERT_TRUE(a.Put("{ask}3", "new, via ASK").ok());    // absent on the source: the target
  ASSERT_TRUE(a.Put("{ask}2", "still on the source").ok());
  std::uint64_t version = 0;
  std::string value;
  ASSERT_TRUE(a.Get("{ask}1", &value, &version).ok());
  ASSERT_TRUE(a.CompareAndSet("{ask}1", version, "cas via ASK").ok());
  cluster_->node(to).Command({"ASKING"});
  EXPECT_EQ(Text(cluster_->node(to).Command({"GET", k1})), "cas via ASK");
  EXPECT_EQ(Text(cluster_->node(from).Command({"GET", k2})), "still on the source");
  for (Bucket* m : {&a, &b}) {
    EXPECT_TRUE(WaitFor(
        [&] {
          return Holds(*m, "{ask}1", "cas via ASK") && Holds(*m, "{ask}3", "new, via ASK") &&
                 Holds(*m, "{ask}2", "still on the source");
        },
        kPatience));
  }
  // The rest of the slot (k2, and any other key that hashes there), then the slot itself.
  ASSERT_NO_FATAL_FAILURE(MigrateSlotKeys(slot, from, to));
  for (std::size_t n : {to, from, 3 - from - to}) {
    ASSERT_EQ(Text(cluster_->node(n).Command({"CLUSTER", "SETSLOT", slot, "NODE", ids_[to]})),
              "OK");
  }
  ASSERT_TRUE(b.Put("{ask}2", "after, via MOVED").ok());
  EXPECT_EQ(Text(cluster_->node(to).Command({"GET", k2})), "after, via MOVED");
  expected = cluster_->Dump("m:");
  EXPECT_TRUE(WaitFor([&] { return Dump(a) == expected && Dump(b) == expected; }, kPatience))
      << "A:" << Diff(Dump(a), expected) << " B:" << Diff(Dump(b), expected);

  // clear removes the prefix's keys on every master.
  ASSERT_TRUE(b.Clear().ok());
  EXPECT_TRUE(cluster_->Dump("m:").empty());
  EXPECT_TRUE(WaitFor([&] { return Dump(a).empty() && Dump(b).empty(); }, kPatience))
      << "A:" << Diff(Dump(a), {}) << " B:" << Diff(Dump(b), {});
  EXPECT_EQ(Text(cluster_->Command({"GET", "other:key"})), "not mirrored");

  // A master lost: both mirrors are stale, reads go on, writes fail UNAVAILABLE (even to keys
  // of the masters still up).
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(a.Put("r" + std::to_string(i), "before").ok());
  }
  EXPECT_TRUE(WaitFor([&] { return Holds(b, "r299", "before"); }, kPatience));
  std::string on_0, on_1;  // keys served by master 0 and by master 1
  for (int i = 0; i < 300 && (on_0.empty() || on_1.empty()); ++i) {
    std::string k = "r" + std::to_string(i);
    std::size_t owner = OwnerOf("m:" + k);
    if (owner < 2) (owner == 0 ? on_0 : on_1) = k;
  }
  ASSERT_FALSE(on_0.empty() || on_1.empty());
  nodes_[1]->Kill();
  EXPECT_TRUE(
      WaitFor([&] { return InState(*ca, "m", "stale") && InState(*cb, "m", "stale"); }, kPatience));
  EXPECT_TRUE(Holds(a, on_1, "before"));
  EXPECT_EQ(a.Put(on_1, "lost").code(), Code::kUnavailable);
  EXPECT_EQ(a.Put(on_0, "lost").code(), Code::kUnavailable);
  EXPECT_TRUE(Holds(a, on_0, "before"));
  // Meanwhile a change on a master still up; the lost master comes back empty (no persistence):
  // both mirrors re-discover, resync, and equal the cluster again (master 1's keys gone).
  ASSERT_TRUE(cluster_->Set("m:" + on_0, "changed while stale"));
  ASSERT_TRUE(nodes_[1]->Restart());
  cluster_->Reopen(1, nodes_[1]->socket());
  ASSERT_TRUE(WaitFor([&] { return ClusterOk(); }, kPatience));
  EXPECT_TRUE(
      WaitFor([&] { return InState(*ca, "m", "live") && InState(*cb, "m", "live"); }, kPatience));
  expected = cluster_->Dump("m:");
  EXPECT_EQ(expected.count(on_1), 0u);
  EXPECT_EQ(expected[on_0], "changed while stale");
  EXPECT_TRUE(WaitFor([&] { return Dump(a) == expected && Dump(b) == expected; }, kPatience))
      << "A:" << Diff(Dump(a), expected) << " B:" << Diff(Dump(b), expected);
  EXPECT_EQ(Dump(a), expected);
  ASSERT_TRUE(a.Put(on_1, "back").ok());
  EXPECT_TRUE(WaitFor([&] { return Holds(b, on_1, "back"); }, kPatience));
}

TEST_F(ClusterMirrorTest, SlotsMovedToANewMasterAreFollowed) {
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(cluster_->Set("m:k" + std::to_string(i), "v" + std::to_string(i)));
  }
  std::shared_ptr<Client> ca;
  Bucket a = Mirror(a_, &ca);
  // A fourth master joins (the mirror's seeds and masters do not include it) and takes slots
  // 0-999 from master 0, while the mirror is live.
  ASSERT_NO_FATAL_FAILURE(StartNode());
  cluster_ = std::make_unique<ClusterClient>(nodes_);
  ASSERT_NO_FATAL_FAILURE(Meet(3));
  ASSERT_TRUE(WaitFor([&] { return AllSeeEveryNode(); }, kPatience));
  Reshard(0, 999, 0, 3);
  // A write through the mirror to a moved slot: MOVED names the new master, the worker
  // re-discovers, resyncs and sends the write there; the write succeeds.
  std::string moved_key;
  for (int i = 0; i < 1000 && moved_key.empty(); ++i) {
    std::string k = "k" + std::to_string(i);
    if (daemon::mirror::KeySlot("m:" + k) <= 999) moved_key = k;
  }
  ASSERT_FALSE(moved_key.empty());
  Status s = a.Put(moved_key, "on the new master");
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Text(cluster_->node(3).Command({"GET", "m:" + moved_key})), "on the new master");
  // Changes made directly on the new master reach the mirror (tracking on it now).
  ASSERT_TRUE(cluster_->Set("m:" + moved_key, "direct on the new master"));
  EXPECT_TRUE(WaitFor([&] { return Holds(a, moved_key, "direct on the new master"); }, kPatience));
  auto expected = cluster_->Dump("m:");
  EXPECT_TRUE(WaitFor([&] { return Dump(a) == expected; }, kPatience)) << Diff(Dump(a), expected);
  EXPECT_TRUE(InState(*ca, "m", "live"));
}

// Issue 17, "re-discovers on failover": master 1 has a replica (node 3). A graceful failover
// (CLUSTER FAILOVER on the replica) while one writer puts through kv and another writes on the
// cluster, then the new master killed and its replica (the old master) promoted with CLUSTER
// FAILOVER TAKEOVER: writes through kv and directly on the new masters keep mirroring, no
// acknowledged write is lost, and both mirrors end equal to the cluster's dump.
TEST_F(ClusterMirrorTest, FailoverIsFollowed) {
  ASSERT_NO_FATAL_FAILURE(StartNode());
  cluster_ = std::make_unique<ClusterClient>(nodes_);
  ASSERT_NO_FATAL_FAILURE(Meet(3));
  ASSERT_TRUE(WaitFor([&] { return AllSeeEveryNode(); }, kPatience));
  ASSERT_EQ(Text(cluster_->node(3).Command({"CLUSTER", "REPLICATE", ids_[1]})), "OK");
  ASSERT_TRUE(WaitFor(
      [&] {
        return Text(cluster_->node(3).Command({"INFO", "replication"}))
                       .find("master_link_status:up") != std::string::npos &&
               ReplicationField(1, "connected_slaves") == 1 && AllSeeReplica(3, 1);
      },
      kPatience))
      << "node 3 did not become master 1's replica";
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(cluster_->Set("m:k" + std::to_string(i), "v" + std::to_string(i)));
  }
  // A key of master 1's slots (5461-10922), to see who serves them.
  std::string probe;
  for (int i = 0; probe.empty(); ++i) {
    int slot = daemon::mirror::KeySlot("m:k" + std::to_string(i));
    if (slot >= 5461 && slot <= 10922) probe = "m:k" + std::to_string(i);
  }
  std::shared_ptr<Client> ca, cb;
  Bucket a = Mirror(a_, &ca);
  Bucket b = Mirror(b_, &cb);
  auto expected = cluster_->Dump("m:");
  ASSERT_EQ(expected.size(), 1000u);
  EXPECT_EQ(Dump(a), expected);
  EXPECT_EQ(Dump(b), expected);

  // Two writers, each key written once: one through kv (A), one directly on the cluster.
  // A kv write may fail UNAVAILABLE while the mirror re-discovers; one acknowledged must be on
  // the cluster afterwards.
  std::atomic<bool> stop{false};
  std::atomic<int> kv_count{0}, direct_count{0};
  std::vector<std::pair<std::string, std::string>> kv_acked, direct_acked;
  std::string kv_error;  // a failure other than UNAVAILABLE
  std::thread kv_writer([&] {
    for (int i = 0; !stop.load(); ++i) {
      std::string key = "w" + std::to_string(i);
      std::string value = "kv" + std::to_string(i);
      Status s = a.Put(key, value);
      if (s.code() == Code::kUnavailable) continue;
      if (!s.ok()) {
        kv_error = s.ToString();
        return;
      }
      kv_acked.emplace_back(key, value);
      kv_count.store(static_cast<int>(kv_acked.size()));
    }
  });
  std::thread direct_writer([&] {
    ClusterClient own(nodes_);
    for (int i = 0; !stop.load(); ++i) {
      std::string key = "d" + std::to_string(i);
      std::string value = "direct" + std::to_string(i);
      if (!own.Set("m:" + key, value)) continue;
      direct_acked.emplace_back(key, value);
      direct_count.store(static_cast<int>(direct_acked.size()));
    }
  });
  struct Joiner {  // the writers stop also when an assertion returns early
    std::atomic<bool>& stop;
    std::thread& one;
    std::thread& two;
    void operator()() {
      stop = true;
      if (one.joinable()) one.join();
      if (two.joinable()) two.join();
    }
    ~Joiner() { (*this)(); }
  } writers_stop{stop, kv_writer, direct_writer};
  auto progress = [&](int kv_at_least, int direct_at_least) {
    return WaitFor([&] { return kv_count >= kv_at_least && direct_count >= direct_at_least; },
                   kPatience);
  };
  EXPECT_TRUE(progress(100, 100));

  // 1. Graceful failover: node 3 takes over master 1's slots, master 1 becomes its replica.
  ASSERT_EQ(Text(cluster_->node(3).Command({"CLUSTER", "FAILOVER"})), "OK");
  EXPECT_TRUE(WaitFor([&] { return EveryNodeRoutes(probe, 3); }, kPatience))
      << "the failover did not complete" << Routes(probe);
  EXPECT_TRUE(progress(kv_count + 300, direct_count + 300))
      << "the writers did not go on after the failover";
  writers_stop();
  EXPECT_EQ(kv_error, "");
  ASSERT_TRUE(EveryNodeRoutes(probe, 3));
  expected = cluster_->Dump("m:");
  for (const auto& [k, value] : kv_acked) ASSERT_EQ(expected[k], value) << k << " lost";
  for (const auto& [k, value] : direct_acked) ASSERT_EQ(expected[k], value) << k << " lost";
  EXPECT_TRUE(WaitFor([&] { return Dump(a) == expected && Dump(b) == expected; }, kPatience))
      << "A:" << Diff(Dump(a), expected) << " B:" << Diff(Dump(b), expected);
  // Through kv and directly on the new master: both reach both mirrors.
  ASSERT_TRUE(a.Put(probe.substr(2), "through kv after the failover").ok());
  EXPECT_EQ(Text(cluster_->node(3).Command({"GET", probe})), "through kv after the failover");
  EXPECT_TRUE(WaitFor([&] { return Holds(b, probe.substr(2), "through kv after the failover"); },
                      kPatience));
  ASSERT_EQ(Text(cluster_->node(3).Command({"SET", probe, "on the new master"})), "OK");
  for (Bucket* m : {&a, &b}) {
    EXPECT_TRUE(
        WaitFor([&] { return Holds(*m, probe.substr(2), "on the new master"); }, kPatience));
  }

  // 2. The new master killed once its replica has every write, and the replica (node 1)
  // promoted without the others' agreement (TAKEOVER).
  ASSERT_TRUE(WaitFor(
      [&] {
        long long master = ReplicationField(3, "master_repl_offset");
        return master > 0 && ReplicationField(1, "master_repl_offset") >= master;
      },
      kPatience));
  nodes_[3]->Kill();
  ASSERT_EQ(Text(cluster_->node(1).Command({"CLUSTER", "FAILOVER", "TAKEOVER"})), "OK");
  EXPECT_TRUE(WaitFor([&] { return EveryNodeRoutes(probe, 1); }, kPatience))
      << "the takeover did not complete" << Routes(probe);
  // The mirror follows: a write through kv to the promoted master's slots succeeds once it has
  // re-discovered the masters.
  EXPECT_TRUE(
      WaitFor([&] { return a.Put(probe.substr(2), "after the takeover").ok(); }, kPatience));
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(a.Put("t" + std::to_string(i), "through kv").ok()) << i;
    ASSERT_TRUE(cluster_->Set("m:u" + std::to_string(i), "direct"));
  }
  expected = cluster_->Dump("m:");
  for (const auto& [k, value] : kv_acked) ASSERT_EQ(expected[k], value) << k << " lost";
  for (const auto& [k, value] : direct_acked) ASSERT_EQ(expected[k], value) << k << " lost";
  EXPECT_EQ(expected[probe.substr(2)], "after the takeover");
  EXPECT_TRUE(WaitFor([&] { return Dump(a) == expected && Dump(b) == expected; }, kPatience))
      << "A:" << Diff(Dump(a), expected) << " B:" << Diff(Dump(b), expected);
  EXPECT_TRUE(InState(*ca, "m", "live"));
  EXPECT_TRUE(InState(*cb, "m", "live"));
}

}  // namespace
}  // namespace kv
