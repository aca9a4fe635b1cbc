// Subscriptions end to end: real kvd, real worker, subscribers in other processes.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "shm/names.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::testing::KvdInstance;

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

TEST(SubscribeTest, GuideScenarioSubscriberSeesSetAndDelete) {
  KvdInstance kvd;
  auto client = kvd.NewClient();
  ASSERT_TRUE(client->CreateBucket("shopping").ok());
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  pid_t a = ::fork();
  if (a == 0) {  // process A: subscribes and prints changes as the guide's server does
    auto c = OpenClient(kvd.ns());
    auto b = c->OpenBucket("shopping");
    auto sub = b->Subscribe();
    if (!sub.ok()) ::_exit(2);
    if (::write(out[1], "ready\n", 6) != 6) ::_exit(3);
    for (int i = 0; i < 2; ++i) {
      Change change;
      if (!sub->Next(&change, std::chrono::seconds(5)).ok()) ::_exit(4);
      std::string line = change.kind == Change::Kind::kPut
                             ? change.key + " SET TO " + change.value + "\n"
                             : change.key + " DELETED\n";
      if (::write(out[1], line.data(), line.size()) < 0) ::_exit(5);
    }
    ::_exit(0);
  }
  ASSERT_EQ(ReadLine(out[0], 5000), "ready");
  Result<Bucket> b = client->OpenBucket("shopping");
  ASSERT_TRUE(b->Put("milk", "3").ok());
  EXPECT_EQ(ReadLine(out[0], 1000), "milk SET TO 3");
  ASSERT_TRUE(b->Delete("milk").ok());
  EXPECT_EQ(ReadLine(out[0], 1000), "milk DELETED");
  int status = 0;
  ::waitpid(a, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(SubscribeTest, EverySubscriberSeesEveryChangeInOrderOrIsToldWhatItMissed) {
  const char* full = std::getenv("KV_WATCH_FULL");
  const int writes = (full != nullptr && std::string(full) == "1") ? 1000000 : 20000;
  constexpr int kSubscribers = 8;
  KvdInstance kvd;
  auto client = kvd.NewClient();
  ASSERT_TRUE(client->CreateBucket("b").ok());
  Result<Bucket> bucket = client->OpenBucket("b");
  ASSERT_TRUE(bucket.ok());
  std::uint64_t start = bucket->Subscribe()->position();
  std::vector<pid_t> subs;
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  for (int s = 0; s < kSubscribers; ++s) {
    pid_t pid = ::fork();
    if (pid == 0) {
      auto c = OpenClient(kvd.ns());
      auto b = c->OpenBucket("b");
      auto sub = b->Subscribe(start);
      if (!sub.ok() || ::write(ready[1], "r", 1) != 1) ::_exit(10);
      std::uint64_t seen = 0, missed = 0, expect_seq = start;
      while (seen + missed < static_cast<std::uint64_t>(writes)) {
        Change ch;
        Status st = sub->Next(&ch, std::chrono::seconds(10));
        if (!st.ok()) {
          fprintf(stderr, "subscriber %d: %s after %lu seen %lu missed\n", s, st.ToString().c_str(),
                  (unsigned long)seen, (unsigned long)missed);
          ::_exit(11);
        }
        if (ch.sequence != expect_seq) ::_exit(12);  // a gap nobody was told about
        if (ch.kind == Change::Kind::kMissed) {
          missed += ch.missed;
          expect_seq += ch.missed;
          continue;
        }
        // The writer puts key k<i> = <i> for i = 0, 1, ...: the value tells its position.
        std::uint64_t i = ch.sequence - start;
        if (ch.kind != Change::Kind::kPut || ch.key != "k" + std::to_string(i % 1000) ||
            ch.value != std::to_string(i)) {
          ::_exit(13);
        }
        ++seen;
        ++expect_seq;
        if (s == 0 && seen % 1000 == 0) ::usleep(20000);  // one deliberately slow subscriber
      }
      ::_exit(0);
    }
    subs.push_back(pid);
  }
  char c;
  for (int s = 0; s < kSubscribers; ++s) ASSERT_EQ(::read(ready[0], &c, 1), 1);
  for (int i = 0; i < writes; ++i) {
    ASSERT_TRUE(bucket->PutAsync("k" + std::to_string(i % 1000), std::to_string(i)).ok());
  }
  ASSERT_TRUE(bucket->Flush().ok());
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
TEST(SubscribeTest, FrozenOrKilledSubscribersNeverHoldTheWriterBack) {
  constexpr int kSubscribers = 8, kWrites = 20000;
  KvdInstance kvd;
  auto client = kvd.NewClient();
  ASSERT_TRUE(client->CreateBucket("b").ok());
  Result<Bucket> bucket = client->OpenBucket("b");
  ASSERT_TRUE(bucket.ok());
  std::uint64_t start = bucket->Subscribe()->position();
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  std::vector<pid_t> subs;
  for (int s = 0; s < kSubscribers; ++s) {
    pid_t pid = ::fork();
    if (pid == 0) {  // counts every change and every missed one, in order
      auto b = OpenClient(kvd.ns())->OpenBucket("b");
      auto sub = b->Subscribe(start);
      if (!sub.ok() || ::write(ready[1], "r", 1) != 1) ::_exit(10);
      std::uint64_t expect = start;
      while (expect < start + kWrites) {
        Change ch;
        if (!sub->Next(&ch, std::chrono::seconds(30)).ok()) ::_exit(11);
        if (ch.sequence != expect) ::_exit(12);
        expect += ch.kind == Change::Kind::kMissed ? ch.missed : 1;
      }
      ::_exit(expect == start + kWrites ? 0 : 13);
    }
    subs.push_back(pid);
  }
  char c;
  for (int s = 0; s < kSubscribers; ++s) ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(::kill(subs[0], SIGSTOP), 0);  // frozen for the whole run
  for (int i = 0; i < kWrites; ++i) {
    ASSERT_TRUE(bucket->PutAsync("k" + std::to_string(i % 100), std::to_string(i)).ok());
    if (i % 2500 == 1000) ::kill(subs[1 + (i / 2500) % 4], SIGKILL);  // subscribers 1..4 die
  }
  ASSERT_TRUE(bucket->Flush().ok());  // the writer was never held back
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
  const std::string own = kvd.ns() + ".b" + std::to_string(bucket->id());
  for (const std::string& name : kv::testing::ShmObjectsOfNamespace(kvd.ns())) {
    bool bucket_object = name == own || name == own + ".feed" || name.rfind(own + ".g", 0) == 0;
    EXPECT_TRUE(name == kvd.ns() + ".registry" || bucket_object) << "left behind: " << name;
  }
  std::string value;
  ASSERT_TRUE(bucket->Get("k99", &value).ok());
  EXPECT_EQ(value, std::to_string(kWrites - 1));
}

TEST(SubscribeTest, WorkerCrashIsAnnouncedAndSequenceContinues) {
  KvdInstance kvd;
  auto client = kvd.NewClient();
  ASSERT_TRUE(client->CreateBucket("b").ok());
  Result<Bucket> bucket = client->OpenBucket("b");
  Result<Subscription> sub = bucket->Subscribe();
  ASSERT_TRUE(sub.ok()) << sub.status().ToString();
  ASSERT_TRUE(bucket->Put("a", "1").ok());
  Change ch;
  ASSERT_TRUE(sub->Next(&ch, std::chrono::seconds(1)).ok());
  std::uint64_t before = ch.sequence;
  pid_t worker = kvd.WorkerPid("b");
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  ASSERT_TRUE(
      kv::testing::WaitFor([&] { return bucket->Put("b", "2").ok(); }, std::chrono::seconds(5)));
  ASSERT_TRUE(sub->Next(&ch, std::chrono::seconds(1)).ok());
  EXPECT_EQ(ch.kind, Change::Kind::kResync);
  EXPECT_EQ(ch.sequence, before + 1);
  ASSERT_TRUE(sub->Next(&ch, std::chrono::seconds(1)).ok());
  EXPECT_EQ(ch.kind, Change::Kind::kPut);
  EXPECT_EQ(ch.key, "b");
  EXPECT_EQ(ch.sequence, before + 2);
  EXPECT_EQ(sub->Next(&ch, std::chrono::milliseconds(50)).code(), Code::kTimeout);
}

TEST(SubscribeTest, DroppedBucketEndsSubscription) {
  KvdInstance kvd;
  auto client = kvd.NewClient();
  ASSERT_TRUE(client->CreateBucket("b").ok());
  Result<Bucket> bucket = client->OpenBucket("b");
  Result<Subscription> sub = bucket->Subscribe();
  ASSERT_TRUE(sub.ok());
  const std::string feed = "/dev/shm/" + shm::FeedObjectName(kvd.ns(), bucket->id());
  ASSERT_EQ(::access(feed.c_str(), F_OK), 0) << feed;
  ASSERT_TRUE(client->DropBucket("b").ok());
  EXPECT_NE(::access(feed.c_str(), F_OK), 0) << feed << " outlived the drop";
  EXPECT_EQ(kv::testing::ShmObjectsOfNamespace(kvd.ns()).size(), 1u);  // the registry only
  Change ch;  // the subscription keeps its mapping of the unlinked feed and learns of the drop
  EXPECT_EQ(sub->Next(&ch, std::chrono::seconds(2)).code(), Code::kBucketNotFound);
}

}  // namespace
}  // namespace kv
