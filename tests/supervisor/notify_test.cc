// systemd integration without systemd: the test plays the service manager's NOTIFY_SOCKET and
// checks what kvd says and when -- READY=1 only once it accepts requests, STOPPING=1 on SIGTERM,
// WATCHDOG=1 only while every worker's heartbeat is fresh -- and that a wedged (SIGSTOPped)
// worker is found by the liveness check, killed and restarted.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>

#include "shm/control_message.h"
#include "shm/names.h"
#include "shm/registry.h"
#include "shm/unix_socket.h"
#include "tests/supervisor/supervisor_test_util.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using namespace kv::testing;
using std::chrono::milliseconds;
using std::chrono::seconds;

// One control round trip (ping): true if kvd answered OK.
bool Ping(const std::string& ns) {
  int sock = shm::ConnectSeqpacket(shm::ControlSocketAddress(ns));
  if (sock < 0) return false;
  std::string request = shm::EncodeControlRequest(shm::ControlOp::kPing, {});
  bool ok = shm::SendPacket(sock, request.data(), request.size()) && shm::WaitReadable(sock, 5000);
  char buf[shm::kMaxControlPacket];
  int fd = -1;
  ssize_t n = ok ? shm::ReceivePacket(sock, buf, sizeof buf, &fd) : -1;
  ::close(sock);
  shm::ControlStatus status;
  std::string_view message;
  return n > 0 && shm::DecodeControlReply(buf, static_cast<std::size_t>(n), &status, &message) &&
         status == shm::ControlStatus::kOk;
}

TEST(SupervisorNotifyTest, ReadyOnlyWhenAcceptingRequestsAndStoppingOnSigterm) {
  NotifyListener listener;
  std::optional<KvdInstance> kvd;
  {
    ScopedEnv notify("NOTIFY_SOCKET", listener.address());
    kvd.emplace();
  }
  std::vector<std::string> log;
  ASSERT_TRUE(listener.WaitFor("READY=1", seconds(10), &log));
  EXPECT_TRUE(Ping(kvd->ns())) << "READY=1 was sent before kvd accepted requests";
  EXPECT_NE(log.back().find("MAINPID=" + std::to_string(kvd->pid())), std::string::npos)
      << log.back();
  EXPECT_NE(log.back().find("STATUS="), std::string::npos) << log.back();

  kvd->Signal(SIGTERM);
  ASSERT_TRUE(listener.WaitFor("STOPPING=1", seconds(10), &log));
  EXPECT_EQ(kvd->Stop(), 0);
  for (const std::string& m : log) std::printf("notification: %s\n", m.c_str());
}

TEST(SupervisorNotifyTest, WatchdogOnlyWhileHeartbeatsAreFreshAndWedgedWorkerIsRestarted) {
  NotifyListener listener;
  std::optional<KvdInstance> kvd;
  {
    ScopedEnv notify("NOTIFY_SOCKET", listener.address());
    ScopedEnv watchdog("WATCHDOG_USEC", "200000");  // a ping every 100 ms
    kvd.emplace(std::vector<std::string>{"--liveness-timeout-ms", "4500"});
  }
  auto client = kvd->NewClient();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->CreateBucket("b").ok());
  Result<Bucket> bucket = client->OpenBucket("b");
  ASSERT_TRUE(bucket.ok());
  ASSERT_TRUE(bucket->Put("k", "v").ok());
  std::vector<std::string> log;
  ASSERT_TRUE(listener.WaitFor("WATCHDOG=1", seconds(5), &log));

  pid_t wedged = kvd->WorkerPid("b");
  ASSERT_GT(wedged, 0);
  ::kill(wedged, SIGSTOP);
  // kvd notices the stale heartbeat (withholding the watchdog), then kills the worker after the
  // liveness timeout and starts a new one.
  ASSERT_TRUE(listener.WaitFor("unresponsive: b", seconds(10), &log));
  std::size_t stale_at = log.size() - 1;
  ASSERT_TRUE(WaitForState(kvd->ns(), "b", shm::kBucketRunning, seconds(10), wedged));
  ASSERT_TRUE(listener.WaitFor("1 running", seconds(5), &log));
  ASSERT_TRUE(listener.WaitFor("WATCHDOG=1", seconds(5), &log));
  // Recovered: the first status after the stale one that names no unresponsive worker (sent when
  // the wedged worker is gone; its replacement is not checked until it is ready).
  std::size_t recovered_at = stale_at + 1;
  while (recovered_at < log.size() &&
         (log[recovered_at].find("STATUS=") == std::string::npos ||
          log[recovered_at].find("unresponsive") != std::string::npos)) {
    ++recovered_at;
  }
  ASSERT_LT(recovered_at, log.size());

  for (std::size_t i = stale_at; i < recovered_at; ++i) {
    EXPECT_EQ(log[i].find("WATCHDOG=1"), std::string::npos)
        << "watchdog pinged while a worker was unresponsive: message " << i;
  }
  std::optional<shm::BucketRecord> r = Record(kvd->ns(), "b");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->restarts, 1u);
  EXPECT_NE(r->worker_pid, wedged);
  EXPECT_EQ(Get(*bucket, "k"), "v");
  EXPECT_TRUE(bucket->Put("k2", "v2").ok());
  std::printf("%zu notifications; stale at #%zu, recovered at #%zu\n", log.size(), stale_at,
              recovered_at);
}

}  // namespace
}  // namespace kv
