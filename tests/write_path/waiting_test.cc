// The waiting policy (docs/design.md, "Waiting") changes how the client and the worker wait for
// each other, never what a write means. These tests check correctness, not speed, under the
// conditions the policy exists for, with both policies (--wait adaptive, the default, and
// --wait dedicated):
//   - the client and the worker pinned to one CPU (neither can run while the other spins): sync
//     and async writes complete, and every acknowledged write is there;
//   - a worker stopped (SIGSTOP) while a client waits for its reply: the client gets TIMEOUT when
//     its deadline passes, not a hang, and the next write after SIGCONT succeeds.
// And workers run at kvd's worker-nice, restarted ones too.
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>

#include <atomic>
#include <fstream>
#include <future>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>

#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

// Pins the calling thread to `cpu` for its lifetime; restores the previous affinity.
class PinnedThread {
 public:
  explicit PinnedThread(int cpu) {
    ok_ = ::sched_getaffinity(0, sizeof saved_, &saved_) == 0;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    ok_ = ok_ && ::sched_setaffinity(0, sizeof one, &one) == 0;
  }
  ~PinnedThread() { ::sched_setaffinity(0, sizeof saved_, &saved_); }
  bool ok() const { return ok_; }

 private:
  cpu_set_t saved_;
  bool ok_ = false;
};

bool PinProcess(pid_t pid, int cpu) {
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  return ::sched_setaffinity(pid, sizeof one, &one) == 0;
}

std::string Key(int i) { return "key" + std::to_string(i); }
std::string Value(int i, const char* tag) { return std::string(tag) + std::to_string(i * 7919); }

class WaitingTest : public ::testing::TestWithParam<const char*> {
 protected:
  WaitingTest() : kvd_({"--wait", GetParam()}) {}

  Bucket CreateBucket(const std::string& name,
                      std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    client_ = kvd_.NewClient(timeout);
    EXPECT_TRUE(client_->CreateBucket(name).ok());
    Result<Bucket> b = client_->OpenBucket(name);
    EXPECT_TRUE(b.ok());
    return std::move(b).value();
  }

  testing::KvdInstance kvd_;
  std::shared_ptr<Client> client_;
};

TEST_P(WaitingTest, ClientAndWorkerOnOneCpuLoseNoAcknowledgedWrite) {
  Bucket b = CreateBucket("pinned");
  pid_t worker = kvd_.WorkerPid("pinned");
  ASSERT_GT(worker, 0);
  ASSERT_TRUE(PinProcess(worker, 0));
  PinnedThread pinned(0);
  ASSERT_TRUE(pinned.ok());

  constexpr int kSync = 3000;
  constexpr int kAsync = 20000;
  for (int i = 0; i < kSync; ++i) ASSERT_TRUE(b.Put(Key(i), Value(i, "s")).ok()) << i;
  for (int i = 0; i < kAsync; ++i) ASSERT_TRUE(b.PutAsync(Key(kSync + i), Value(i, "a")).ok()) << i;
  ASSERT_TRUE(b.Flush().ok());
  std::int64_t counter = 0;
  for (int i = 0; i < kSync; ++i) {
    Result<std::int64_t> n = b.Increment("counter", 1);
    ASSERT_TRUE(n.ok()) << i;
    counter = n.value();
  }
  EXPECT_EQ(counter, kSync);

  std::string value;
  for (int i = 0; i < kSync; ++i) {
    ASSERT_TRUE(b.Get(Key(i), &value).ok()) << i;
    ASSERT_EQ(value, Value(i, "s"));
  }
  for (int i = 0; i < kAsync; ++i) {
    ASSERT_TRUE(b.Get(Key(kSync + i), &value).ok()) << i;
    ASSERT_EQ(value, Value(i, "a"));
  }
}

TEST_P(WaitingTest, WorkerStoppedWhileAClientWaitsGivesTimeoutNotAHang) {
  Bucket b = CreateBucket("stopped", std::chrono::milliseconds(300));
  pid_t worker = kvd_.WorkerPid("stopped");
  ASSERT_GT(worker, 0);
  // A writer in a loop: it is waiting for a reply (spinning or asleep) most of the time, so the
  // SIGSTOP below lands while it waits.
  std::atomic<bool> stop{false};
  std::atomic<long> acknowledged{0};
  auto writer = std::async(std::launch::async, [&]() -> Status {
    for (long i = 0; !stop.load(); ++i) {
      Status s = b.Put("k", std::to_string(i));
      if (!s.ok()) return s;
      acknowledged.store(i + 1);
    }
    return Status();
  });
  ASSERT_TRUE(
      testing::WaitFor([&] { return acknowledged.load() >= 100; }, std::chrono::seconds(30)));
  ASSERT_EQ(::kill(worker, SIGSTOP), 0);
  // The deadline is 300 ms; a hang would leave the future unready. The bound only catches a
  // hang: it is not a timing check.
  bool returned = writer.wait_for(std::chrono::seconds(60)) == std::future_status::ready;
  stop.store(true);
  ::kill(worker, SIGCONT);
  ASSERT_TRUE(returned) << "the client hung on a stopped worker";
  Status s = writer.get();
  EXPECT_EQ(s.code(), Code::kTimeout) << s.ToString();
  // The worker runs again: the next write is served (the timed-out one may have been applied).
  ASSERT_TRUE(testing::WaitFor([&] { return b.Put("k", "after").ok(); }, std::chrono::seconds(30)));
  std::string value;
  ASSERT_TRUE(b.Get("k", &value).ok());
  EXPECT_EQ(value, "after");
}

// The nice value of process `pid` (field 19 of /proc/PID/stat), or 100 if it cannot be read.
int NiceOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t end_of_name = stat.rfind(')');
  if (end_of_name == std::string::npos) return 100;
  std::istringstream fields(stat.substr(end_of_name + 2));  // from field 3 (state) on
  std::string field;
  for (int i = 3; i < 19 && fields >> field; ++i) {
  }
  int nice = 100;
  fields >> nice;
  return nice;
}

// True if this process may set a thread's nice value to `nice` (as kvd's workers, started by
// it, may). Tried on a thread of its own: a nice value is per thread.
bool MayRunAtNice(int nice) {
  bool may = false;
  std::thread([&] { may = ::setpriority(PRIO_PROCESS, 0, nice) == 0; }).join();
  return may;
}

// Creates bucket `name` in `kvd` and returns its worker's pid (0 if there is none).
pid_t CreateBucketWorker(testing::KvdInstance& kvd, const std::string& name) {
  if (!kvd.NewClient()->CreateBucket(name).ok()) return 0;
  return kvd.WorkerPid(name);
}

// Workers run at worker-nice (daemon/worker_priority.h), and so does a restarted one. A value
// above the clients' 0 is allowed without privilege: the test needs none.
TEST(WorkerPriorityTest, WorkersRunAtTheConfiguredNiceAcrossRestarts) {
  testing::KvdInstance kvd({"--worker-nice", "7"});
  pid_t first = CreateBucketWorker(kvd, "niced");
  ASSERT_GT(first, 0);
  EXPECT_EQ(NiceOf(first), 7);
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  pid_t second = 0;
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        second = kvd.WorkerPid("niced");
        return second > 0 && second != first;
      },
      std::chrono::seconds(30)));
  // The registry names the new worker when it is spawned, before it runs RunWorker (a spare
  // process takes the bucket): a served write shows it is past SetWorkerNice.
  auto client = kvd.NewClient();
  auto bucket = client->OpenBucket("niced");
  ASSERT_TRUE(bucket.ok());
  ASSERT_TRUE(
      testing::WaitFor([&] { return bucket->Put("k", "v").ok(); }, std::chrono::seconds(30)));
  ASSERT_EQ(kvd.WorkerPid("niced"), second) << "the worker restarted again";
  EXPECT_EQ(NiceOf(second), 7);
  EXPECT_EQ(NiceOf(kvd.pid()), NiceOf(::getpid())) << "only the workers are niced";
}

// A value below 0 needs the right to lower a nice value; without it the worker keeps the nice
// value it inherited (the test's own).
TEST(WorkerPriorityTest, ANegativeNiceRanksWorkersAboveTheirClientsWhereAllowed) {
  testing::KvdInstance kvd({"--worker-nice", "-10"});
  pid_t worker = CreateBucketWorker(kvd, "above");
  ASSERT_GT(worker, 0);
  EXPECT_EQ(NiceOf(worker), MayRunAtNice(-10) ? -10 : NiceOf(::getpid()));
}

// worker-busy-nice (BusyPriority): the worker ranks above its clients while two of them write at
// once, and goes back to worker-nice when one is left. Without the right to lower its nice value
// it stays where it is.
TEST(WorkerPriorityTest, TheWorkerRanksAboveItsClientsOnlyWhileSeveralWrite) {
  testing::KvdInstance kvd({"--worker-busy-nice", "-5"});
  pid_t worker = CreateBucketWorker(kvd, "busy");
  ASSERT_GT(worker, 0);
  const int rest = NiceOf(worker);
  bool allowed = MayRunAtNice(-5);
  auto client = kvd.NewClient();
  // Each writer has a handle, and so a channel, of its own.
  auto write_until = [&](std::atomic<bool>* stop, std::atomic<int>* failures) {
    auto bucket = client->OpenBucket("busy");
    if (!bucket.ok()) return failures->fetch_add(1);
    for (std::uint64_t n = 0; !stop->load(); ++n) {
      if (!bucket->Put("k" + std::to_string(n % 100), "v").ok()) failures->fetch_add(1);
    }
    return 0;
  };
  std::atomic<bool> stop_first{false}, stop_second{false};
  std::atomic<int> failures{0};
  std::thread first(write_until, &stop_first, &failures);
  std::thread second(write_until, &stop_second, &failures);
  bool ranked = testing::WaitFor([&] { return NiceOf(worker) == (allowed ? -5 : rest); },
                                 std::chrono::seconds(30));
  stop_second.store(true);
  second.join();
  bool back = testing::WaitFor([&] { return NiceOf(worker) == rest; }, std::chrono::seconds(30));
  stop_first.store(true);
  first.join();
  EXPECT_TRUE(ranked) << "nice " << NiceOf(worker) << " with two writers";
  EXPECT_TRUE(back) << "nice " << NiceOf(worker) << " with one writer";
  EXPECT_EQ(failures.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(Policies, WaitingTest, ::testing::Values("adaptive", "dedicated"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param);
                         });

}  // namespace
}  // namespace kv
