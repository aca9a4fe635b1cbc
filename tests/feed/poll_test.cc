// Pollable subscriptions (Subscription::fd, TryNext): an event loop waits on several buckets'
// subscription fds with epoll and wakes for each change another process writes.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "tests/testing/child_process.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using namespace std::chrono_literals;

bool Readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

TEST(PollTest, OneEpollLoopWakesForEachChangeToThreeBuckets) {
  kv::testing::KvdInstance kvd;
  auto client = kvd.NewClient();
  ASSERT_TRUE(client);
  const std::vector<std::string> names = {"red", "green", "blue"};
  std::vector<Subscription> subs;
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  ASSERT_GE(ep, 0);
  for (std::size_t i = 0; i < names.size(); ++i) {
    ASSERT_TRUE(client->CreateBucket(names[i]).ok());
    Result<Bucket> b = client->OpenBucket(names[i]);
    ASSERT_TRUE(b.ok());
    Result<Subscription> sub = b->Subscribe();
    ASSERT_TRUE(sub.ok()) << sub.status().ToString();
    subs.push_back(*sub);
    int fd = subs.back().fd();
    ASSERT_GE(fd, 0);
    EXPECT_FALSE(Readable(fd)) << names[i];
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    ASSERT_EQ(::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
  }
  // The writer: another process, told through a pipe which bucket to write next.
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  std::string ns = kvd.ns();
  pid_t writer = kv::testing::ForkChild([&] {
    ::close(go[1]);
    ClientOptions options;
    options.ns = ns;
    auto c = Client::Open(options);
    if (!c.ok()) return 10;
    std::vector<Bucket> buckets;
    for (const std::string& n : names) {
      auto b = (*c)->OpenBucket(n);
      if (!b.ok()) return 11;
      buckets.push_back(*b);
    }
    char which;
    int n = 0;
    while (::read(go[0], &which, 1) == 1) {
      if (!buckets[static_cast<std::size_t>(which)].Put("k" + std::to_string(n++), "v").ok()) {
        return 12;
      }
    }
    return 0;
  });
  ASSERT_GT(writer, 0);
  ::close(go[0]);
  // Each round: one change to one bucket; the loop wakes for exactly that bucket, TryNext
  // returns the change, then nothing, and the fd is no longer readable.
  const int order[] = {0, 1, 2, 2, 0, 1, 1, 0, 2};
  int round = 0;
  for (int which : order) {
    char c = static_cast<char>(which);
    ASSERT_EQ(::write(go[1], &c, 1), 1);
    epoll_event events[4];
    int n = ::epoll_wait(ep, events, 4, 10'000);
    ASSERT_EQ(n, 1) << "round " << round;
    EXPECT_EQ(events[0].data.u64, static_cast<std::uint64_t>(which)) << "round " << round;
    Subscription& sub = subs[static_cast<std::size_t>(which)];
    Change change;
    Status s = sub.TryNext(&change);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(change.kind, Change::Kind::kPut);
    EXPECT_EQ(change.key, "k" + std::to_string(round));
    EXPECT_EQ(sub.TryNext(&change).code(), Code::kTimeout);
    EXPECT_FALSE(Readable(sub.fd())) << "round " << round;
    ++round;
  }
  ::close(go[1]);
  int status = 0;
  ASSERT_EQ(::waitpid(writer, &status, 0), writer);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ::close(ep);
}

TEST(PollTest, FdBecomesReadableWhenTheBucketIsDropped) {
  kv::testing::KvdInstance kvd;
  auto client = kvd.NewClient();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->CreateBucket("b").ok());
  Result<Bucket> b = client->OpenBucket("b");
  ASSERT_TRUE(b.ok());
  Result<Subscription> sub = b->Subscribe();
  ASSERT_TRUE(sub.ok());
  int fd = sub->fd();
  ASSERT_GE(fd, 0);
  EXPECT_EQ(sub->fd(), fd);  // one fd per subscription
  ASSERT_TRUE(client->DropBucket("b").ok());
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10'000), 1);
  Change change;
  EXPECT_EQ(sub->TryNext(&change).code(), Code::kBucketNotFound);
}

}  // namespace
}  // namespace kv
