// Subscriptions end to end: real kvd, real worker, subscribers in other processes.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <functional>
#include <thread>

#include "shm/names.h"
#include "tests/testing/bucket_fixture.h"
#include "tests/testing/child_process.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

std::shared_ptr<Client> OpenClient(const std::string& ns) {
  ClientOptions options;
  options.ns = ns;
  auto c = Client::Open(options);
  return c.ok() ? c.value() : nullptr;
}

// Reads one line from `fd` within `timeout_ms`; "" on timeout.
std::string ReadLine(int fd, int timeout_ms) {
  std::string line;
  char c;
  while (true) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0 || ::read(fd, &c, 1) != 1) return "";
    if (c == '\n') return line;
    line.push_back(c);
  }
}

// Forks a subscriber process (tests/testing/child_process.h's ForkChild): it opens its own client,
// subscribes to `bucket` from sequence `from` (0: from now), writes "ready\n" to `ready_fd`, and
// exits with what body(subscription) returns -- or with 10 if it cannot subscribe or say so.
pid_t ForkSubscriber(const std::string& ns, const std::string& bucket, std::uint64_t from,
                     int ready_fd, const std::function<int(Subscription&)>& body) {
  return kv::testing::ForkChild([&] {
    auto client = OpenClient(ns);
    if (client == nullptr) return 10;
    auto b = client->OpenBucket(bucket);
    if (!b.ok()) return 10;
    auto sub = b->Subscribe(from);
    if (!sub.ok() || ::write(ready_fd, "ready\n", 6) != 6) return 10;
    return body(*sub);
  });
}

class SubscribeTest : public kv::testing::BucketFixture {};

TEST_F(SubscribeTest, GuideScenarioSubscriberSeesSetAndDelete) {
  ASSERT_TRUE(client_->CreateBucket("shopping").ok());
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  // Process A: subscribes and prints changes as the guide's server does.
  pid_t a = ForkSubscriber(kvd_.ns(), "shopping", 0, out[1], [&](Subscription& sub) {
    for (int i = 0; i < 2; ++i) {
      Change change;
      if (!sub.Next(&change, std::chrono::seconds(5)).ok()) return 4;
      std::string line = change.kind == Change::Kind::kPut
                             ? change.key + " SET TO " + change.value + "\n"
                             : change.key + " DELETED\n";
      if (::write(out[1], line.data(), line.size()) < 0) return 5;
    }
    return 0;
  });
  ASSERT_GT(a, 0);
  ASSERT_EQ(ReadLine(out[0], 5000), "ready");
  Result<Bucket> b = client_->OpenBucket("shopping");
  ASSERT_TRUE(b->Put("milk", "3").ok());
  EXPECT_EQ(ReadLine(out[0], 1000), "milk SET TO 3");
  ASSERT_TRUE(b->Delete("milk").ok());
  EXPECT_EQ(ReadLine(out[0], 1000), "milk DELETED");
  int status = 0;
  ::waitpid(a, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_F(SubscribeTest, EverySubscriberSeesEveryChangeInOrderOrIsToldWhatItMissed) {
  const char* full = std::getenv("KV_WATCH_FULL");
  const int writes = (full != nullptr && std::string(full) == "1") ? 1000000 : 20000;
  constexpr int kSubscribers = 8;
  std::uint64_t start = bucket_->Subscribe()->position();
  std::vector<pid_t> subs;
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  for (int s = 0; s < kSubscribers; ++s) {
    pid_t pid = ForkSubscriber(kvd_.ns(), "b", start, ready[1], [&](Subscription& sub) {
      std::uint64_t seen = 0, missed = 0, expect_seq = start;
      while (seen + missed < static_cast<std::uint64_t>(writes)) {
        Change ch;
        Status st = sub.Next(&ch, std::chrono::seconds(10));
        if (!st.ok()) {
          fprintf(stderr, "subscriber %d: %s after %lu seen %lu missed\n", s, st.ToString().c_str(),
                  (unsigned long)seen, (unsigned long)missed);
          return 11;
        }
        if (ch.sequence != expect_seq) return 12;  // a gap nobody was told about
        if (ch.kind == Change::Kind::kMissed) {
          missed += ch.missed;
          expect_seq += ch.missed;
          continue;
        }
        // The writer puts key k<i> = <i> for i = 0, 1, ...: the value tells its position.
        std::uint64_t i = ch.sequence - start;
        if (ch.kind != Change::Kind::kPut || ch.key != "k" + std::to_string(i % 1000) ||
            ch.value != std::to_string(i)) {
          return 13;
        }
        ++seen;
        ++expect_seq;
        if (s == 0 && seen % 1000 == 0) ::usleep(20000);  // one deliberately slow subscriber
      }
      return 0;
    });
    ASSERT_GT(pid, 0);
    subs.push_back(pid);
  }
  for (int s = 0; s < kSubscribers; ++s) ASSERT_EQ(ReadLine(ready[0], 60000), "ready");
  for (int i = 0; i < writes; ++i) {
    ASSERT_TRUE(bucket_->PutAsync("k" + std::to_string(i % 1000), std::to_string(i)).ok());
  }
  ASSERT_TRUE(bucket_->Flush().ok());
  for (pid_t pid : subs) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "subscriber exit " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  }
}

// Subscribers frozen (SIGSTOP) or killed (SIGKILL) mid-stream cost the writer nothing: every
// write completes, a thawed subscriber is told exactly what it missed, and the dead ones leave
// no process and no shared-memory object behind.
TEST_F(SubscribeTest, FrozenOrKilledSubscribersNeverHoldTheWriterBack) {
  constexpr int kSubscribers = 8, kWrites = 20000;
  std::uint64_t start = bucket_->Subscribe()->position();
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  std::vector<pid_t> subs;
  for (int s = 0; s < kSubscribers; ++s) {
    // Counts every change and every missed one, in order.
    pid_t pid = ForkSubscriber(kvd_.ns(), "b", start, ready[1], [&](Subscription& sub) {
      std::uint64_t expect = start;
      while (expect < start + kWrites) {
        Change ch;
        if (!sub.Next(&ch, std::chrono::seconds(30)).ok()) return 11;
        if (ch.sequence != expect) return 12;
        expect += ch.kind == Change::Kind::kMissed ? ch.missed : 1;
      }
      return expect == start + kWrites ? 0 : 13;
    });
    ASSERT_GT(pid, 0);
    subs.push_back(pid);
  }
  for (int s = 0; s < kSubscribers; ++s) ASSERT_EQ(ReadLine(ready[0], 60000), "ready");
  ASSERT_EQ(::kill(subs[0], SIGSTOP), 0);  // frozen for the whole run
  for (int i = 0; i < kWrites; ++i) {
    ASSERT_TRUE(bucket_->PutAsync("k" + std::to_string(i % 100), std::to_string(i)).ok());
    if (i % 2500 == 1000) ::kill(subs[1 + (i / 2500) % 4], SIGKILL);  // subscribers 1..4 die
  }
  ASSERT_TRUE(bucket_->Flush().ok());  // the writer was never held back
  ASSERT_EQ(::kill(subs[0], SIGCONT), 0);
  for (int s = 0; s < kSubscribers; ++s) {
    int status = 0;
    ASSERT_EQ(::waitpid(subs[s], &status, 0), subs[s]);
    if (s >= 1 && s <= 4) {
      EXPECT_TRUE(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0)) << s;
    } else {
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
          << "subscriber " << s << " exit " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
  }
  const std::string own = kvd_.ns() + ".b" + std::to_string(bucket_->id());
  for (const std::string& name : kv::testing::ShmObjectsOfNamespace(kvd_.ns())) {
    bool bucket_object = name == own || name == own + ".feed" || name == own + ".dedup" ||
                         name == own + ".hist" || name.rfind(own + ".g", 0) == 0;
    EXPECT_TRUE(name == kvd_.ns() + ".registry" || bucket_object) << "left behind: " << name;
  }
  std::string value;
  ASSERT_TRUE(bucket_->Get("k99", &value).ok());
  EXPECT_EQ(value, std::to_string(kWrites - 1));
}

TEST_F(SubscribeTest, WorkerCrashIsAnnouncedAndSequenceContinues) {
  Result<Subscription> sub = bucket_->Subscribe();
  ASSERT_TRUE(sub.ok()) << sub.status().ToString();
  ASSERT_TRUE(bucket_->Put("a", "1").ok());
  Change ch;
  ASSERT_TRUE(sub->Next(&ch, std::chrono::seconds(1)).ok());
  std::uint64_t before = ch.sequence;
  pid_t worker = kvd_.WorkerPid("b");
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  ASSERT_TRUE(
      kv::testing::WaitFor([&] { return bucket_->Put("b", "2").ok(); }, std::chrono::seconds(5)));
  ASSERT_TRUE(sub->Next(&ch, std::chrono::seconds(1)).ok());
  EXPECT_EQ(ch.kind, Change::Kind::kResync);
  EXPECT_EQ(ch.sequence, before + 1);
  ASSERT_TRUE(sub->Next(&ch, std::chrono::seconds(1)).ok());
  EXPECT_EQ(ch.kind, Change::Kind::kPut);
  EXPECT_EQ(ch.key, "b");
  EXPECT_EQ(ch.sequence, before + 2);
  EXPECT_EQ(sub->Next(&ch, std::chrono::milliseconds(50)).code(), Code::kTimeout);
}

// The worker wakes sleeping subscribers only while it counts one (shm/change_feed.h, "Waking"):
// a subscription connects when it first sleeps, connects again to a worker that replaced the one
// it knew (that worker wakes it when it starts), and is no longer counted once destroyed.
TEST_F(SubscribeTest, SleepingSubscribersAreCountedAcrossWorkerRestarts) {
  auto subscribers = [&] {
    Result<InstanceStatus> st = client_->GetStatus();
    return st.ok() && st->buckets.size() == 1 ? static_cast<int>(st->buckets[0].subscribers) : -1;
  };
  auto counts = [&](int n) {
    return kv::testing::WaitFor([&] { return subscribers() == n; }, std::chrono::seconds(10));
  };
  {
    Result<Subscription> sub = bucket_->Subscribe();
    ASSERT_TRUE(sub.ok()) << sub.status().ToString();
    EXPECT_EQ(subscribers(), 0) << "a subscription that never slept is not connected";
    Change ch;
    ASSERT_EQ(sub->Next(&ch, std::chrono::milliseconds(1)).code(), Code::kTimeout);
    ASSERT_TRUE(counts(1)) << subscribers();
    // A second subscription sleeps in Next while the worker is killed and restarted.
    Result<Subscription> sleeper = bucket_->Subscribe();
    ASSERT_TRUE(sleeper.ok());
    std::atomic<bool> got_put{false};
    std::thread waiter([&] {
      Change c;
      while (sleeper->Next(&c, std::chrono::seconds(20)).ok()) {
        if (c.kind == Change::Kind::kPut) {
          got_put = c.key == "after";
          return;
        }
      }
    });
    struct Join {  // also when an assertion below returns early (Next then times out)
      std::thread& t;
      ~Join() { t.join(); }
    } join{waiter};
    ASSERT_TRUE(counts(2)) << subscribers();
    pid_t worker = kvd_.WorkerPid("b");
    ASSERT_EQ(::kill(worker, SIGKILL), 0);
    // The new worker counts the sleeper (woken by its start, it connects again); the first
    // subscription, not sleeping, connects at its next sleep.
    ASSERT_TRUE(kv::testing::WaitFor(
        [&] {
          return kvd_.WorkerPid("b") != worker && kvd_.WorkerPid("b") > 0 && subscribers() == 1;
        },
        std::chrono::seconds(10)))
        << subscribers();
    ASSERT_TRUE(bucket_->Put("after", "1").ok());
    ASSERT_TRUE(kv::testing::WaitFor([&] { return got_put.load(); }, std::chrono::seconds(10)));
    EXPECT_EQ(sub->Next(&ch, std::chrono::seconds(5)).code(), Code::kOk);  // the resync record
  }
  EXPECT_TRUE(counts(0)) << "destroyed subscriptions hang up: " << subscribers();
}

TEST_F(SubscribeTest, DroppedBucketEndsSubscription) {
  Result<Subscription> sub = bucket_->Subscribe();
  ASSERT_TRUE(sub.ok());
  const std::string feed = "/dev/shm/" + shm::FeedObjectName(kvd_.ns(), bucket_->id());
  ASSERT_EQ(::access(feed.c_str(), F_OK), 0) << feed;
  ASSERT_TRUE(client_->DropBucket("b").ok());
  EXPECT_NE(::access(feed.c_str(), F_OK), 0) << feed << " outlived the drop";
  EXPECT_EQ(kv::testing::ShmObjectsOfNamespace(kvd_.ns()).size(), 1u);  // the registry only
  Change ch;  // the subscription keeps its mapping of the unlinked feed and learns of the drop
  EXPECT_EQ(sub->Next(&ch, std::chrono::seconds(2)).code(), Code::kBucketNotFound);
}

// --feed-changes sizes the feeds kvd's workers create: a subscriber further behind than that is
// told exactly how many changes it missed, and then gets the rest in order.
class SmallFeedTest : public kv::testing::BucketFixture {
 protected:
  SmallFeedTest() : BucketFixture({"--feed-changes", "1024"}) {}
};

TEST_F(SmallFeedTest, FeedKeepsTheConfiguredNumberOfChanges) {
  std::uint64_t start = bucket_->Subscribe()->position();
  constexpr std::uint64_t kWrites = 1500;
  for (std::uint64_t i = 0; i < kWrites; ++i) {
    ASSERT_TRUE(bucket_->PutAsync("k" + std::to_string(i), "v").ok());
  }
  ASSERT_TRUE(bucket_->Flush().ok());
  Result<Subscription> sub = bucket_->Subscribe(start);
  ASSERT_TRUE(sub.ok());
  Change change;
  ASSERT_TRUE(sub->Next(&change, std::chrono::seconds(5)).ok());
  ASSERT_EQ(change.kind, Change::Kind::kMissed);
  EXPECT_EQ(change.sequence, start);
  EXPECT_EQ(change.missed, kWrites - 1024);  // the feed holds exactly the last 1024
  for (std::uint64_t i = kWrites - 1024; i < kWrites; ++i) {
    ASSERT_TRUE(sub->Next(&change, std::chrono::seconds(5)).ok());
    ASSERT_EQ(change.kind, Change::Kind::kPut);
    ASSERT_EQ(change.key, "k" + std::to_string(i));
  }
  EXPECT_EQ(sub->Next(&change, std::chrono::milliseconds(0)).code(), Code::kTimeout);
}

}  // namespace
}  // namespace kv
