// An idle bucket costs no CPU: after a burst of writes the worker spins for a bounded time, then
// sleeps in epoll until the next doorbell (bench: kv_write_bench's "idle worker" line measures it).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

// (state, utime + stime in clock ticks) of a process, from /proc/<pid>/stat.
std::pair<char, long> StatOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return {'?', -1};
  std::istringstream rest(stat.substr(paren + 2));
  std::string field;
  char state = '?';
  long ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 3) state = field[0];
    if (i == 14 || i == 15) ticks += std::stol(field);
  }
  return {state, ticks};
}

TEST(IdleWorkerTest, WorkerSleepsWhenNobodyWrites) {
  testing::KvdInstance kvd;
  auto client = kvd.NewClient();
  ASSERT_TRUE(client->CreateBucket("idle").ok());
  Result<Bucket> b = client->OpenBucket("idle");
  ASSERT_TRUE(b.ok());
  for (int i = 0; i < 2000; ++i) ASSERT_TRUE(b->PutAsync("k" + std::to_string(i), "v").ok());
  ASSERT_TRUE(b->Flush().ok());  // the client keeps its channel open: the worker must still sleep
  pid_t worker = kvd.WorkerPid("idle");
  ASSERT_GT(worker, 0);
  // The spin is bounded: the worker is soon found asleep ('S') ...
  ASSERT_TRUE(
      testing::WaitFor([&] { return StatOf(worker).first == 'S'; }, std::chrono::seconds(10)));
  // ... and stays asleep: over 50 samples it is almost never running, and it burns (nearly) no
  // CPU time. A spinning worker would be running in most samples and gain ~50 ticks.
  long before = StatOf(worker).second;
  int running = 0;
  for (int i = 0; i < 50; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (StatOf(worker).first == 'R') ++running;
  }
  long after = StatOf(worker).second;
  EXPECT_LE(running, 5);
  EXPECT_LE(after - before, 5) << "clock ticks used while idle";
  // And it wakes up for the next write.
  ASSERT_TRUE(b->Put("after", "idle").ok());
}

}  // namespace
}  // namespace kv
