// Concurrent client processes doing incr, cas, put/delete and put/get on shared keys; the test
// then checks the history they report against what a linearizable single-writer bucket allows:
//   - incr: the values returned are exactly 1..N (no increment lost, none applied twice), and the
//     counter reads N;
//   - cas: every successful read-modify-write returned a distinct new value, the final value is
//     the number of successes (no lost update), and versions only grew;
//   - delete returns the old value: every token put into the slot (put only when absent, by
//     cas 0) is taken by exactly one delete, or is still there at the end;
//   - read-your-writes: each process reads back its own last put at once.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>

#include "tests/testing/child_process.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

constexpr int kProcesses = 4;
constexpr int kRounds = 250;

void Fail(int report, const std::string& why) {
  testing::Report(report, "FAIL " + why);
  ::_exit(9);
}

void Worker(const std::string& ns, int id, int report) {
  ClientOptions options;
  options.ns = ns;
  Result<std::shared_ptr<Client>> client = Client::Open(options);
  if (!client.ok()) Fail(report, client.status().ToString());
  Result<Bucket> opened = (*client)->OpenBucket("shared");
  if (!opened.ok()) Fail(report, opened.status().ToString());
  Bucket& b = opened.value();
  std::uint64_t last_cas_version = 0;
  for (int r = 0; r < kRounds; ++r) {
    // incr
    Result<std::int64_t> n = b.Increment("ctr");
    if (!n.ok()) Fail(report, "incr: " + n.status().ToString());
    testing::Report(report, "I " + std::to_string(*n));
    // cas read-modify-write, retried until it succeeds
    for (int attempt = 0;; ++attempt) {
      std::string value;
      std::uint64_t version = 0;
      Status s = b.Get("cas", &value, &version);
      std::int64_t current = 0;
      if (s.ok()) {
        current = std::stoll(value);
      } else if (s.code() != Code::kNotFound) {
        Fail(report, "get: " + s.ToString());
      }
      std::uint64_t new_version = 0;
      s = b.CompareAndSet("cas", s.ok() ? version : 0, std::to_string(current + 1), &new_version);
      if (s.ok()) {
        if (new_version <= last_cas_version) Fail(report, "cas version went backwards");
        last_cas_version = new_version;
        testing::Report(report, "C " + std::to_string(current + 1));
        break;
      }
      if (s.code() != Code::kVersionMismatch) Fail(report, "cas: " + s.ToString());
      if (attempt > 100000) Fail(report, "cas starved");
    }
    // put a token into the slot only if it is empty; take whatever is there with delete
    std::string token = std::to_string(id) + ":" + std::to_string(r);
    Status s = b.CompareAndSet("slot", 0, token);
    if (s.ok()) {
      testing::Report(report, "P " + token);
    } else if (s.code() != Code::kVersionMismatch) {
      Fail(report, "slot cas: " + s.ToString());
    }
    std::string old;
    s = b.Delete("slot", &old);
    if (s.ok()) {
      testing::Report(report, "T " + old);
    } else if (s.code() != Code::kNotFound) {
      Fail(report, "delete: " + s.ToString());
    }
    // read-your-writes on a key of its own
    std::string mine = "own" + std::to_string(id);
    if (!b.Put(mine, std::to_string(r)).ok()) Fail(report, "put");
    std::string back;
    if (!b.Get(mine, &back).ok() || back != std::to_string(r)) {
      Fail(report, "read-your-writes: wrote " + std::to_string(r) + ", read " + back);
    }
  }
}

TEST(LinearizabilityTest, ConcurrentProcessesProduceALinearizableHistory) {
  testing::KvdInstance kvd;
  auto client = kvd.NewClient();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->CreateBucket("shared").ok());
  std::vector<testing::Child> children;
  for (int i = 0; i < kProcesses; ++i) {
    children.push_back(testing::StartChild([&](int report) { Worker(kvd.ns(), i, report); }));
    ASSERT_GT(children.back().pid, 0);
  }
  std::vector<int> statuses = testing::CollectChildren(&children);
  std::set<std::int64_t> incr_results, cas_results;
  std::multiset<std::string> put_tokens, taken_tokens;
  for (std::size_t i = 0; i < children.size(); ++i) {
    for (const std::string& line : testing::Lines(children[i].report)) {
      ASSERT_NE(line.rfind("FAIL", 0), 0u) << "process " << i << ": " << line;
      std::string arg = line.substr(2);
      switch (line[0]) {
        case 'I':
          EXPECT_TRUE(incr_results.insert(std::stoll(arg)).second)
              << "incr returned twice: " << arg;
          break;
        case 'C':
          EXPECT_TRUE(cas_results.insert(std::stoll(arg)).second) << "lost cas update: " << arg;
          break;
        case 'P':
          put_tokens.insert(arg);
          break;
        case 'T':
          taken_tokens.insert(arg);
          break;
      }
    }
    ASSERT_TRUE(WIFEXITED(statuses[i]) && WEXITSTATUS(statuses[i]) == 0)
        << "process " << i << " status " << statuses[i];
  }
  const std::int64_t n = kProcesses * kRounds;
  ASSERT_EQ(static_cast<std::int64_t>(incr_results.size()), n);
  EXPECT_EQ(*incr_results.begin(), 1);
  EXPECT_EQ(*incr_results.rbegin(), n);
  ASSERT_EQ(static_cast<std::int64_t>(cas_results.size()), n);
  EXPECT_EQ(*cas_results.rbegin(), n);

  Result<Bucket> b = client->OpenBucket("shared");
  ASSERT_TRUE(b.ok());
  std::string value;
  ASSERT_TRUE(b->Get("ctr", &value).ok());
  EXPECT_EQ(value, std::to_string(n));
  ASSERT_TRUE(b->Get("cas", &value).ok());
  EXPECT_EQ(value, std::to_string(n));
  // Every token put was taken exactly once, or is still in the slot.
  std::multiset<std::string> accounted = taken_tokens;
  if (b->Get("slot", &value).ok()) accounted.insert(value);
  EXPECT_EQ(accounted, put_tokens);
  EXPECT_GT(put_tokens.size(), 0u);
}

}  // namespace
}  // namespace kv
