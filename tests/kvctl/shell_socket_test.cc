// `kvctl shell` with a TCP connection as stdin and stdout, as systemd's kv-shell.socket
// (Accept=yes) runs it: the test plays systemd's part (accept, then fork one shell per connection
// with the connection on fds 0 and 1) and the guide's reader's part (python3's socket module).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "tests/kvctl/tcp_client.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::testing::KvctlPath;
using kv::testing::KvdInstance;
using kv::testing::RunCommand;
using kv::testing::TcpClient;

// Accepts connections on 127.0.0.1:<ephemeral> and runs `argv` for each with the connection as
// stdin and stdout (stderr: /dev/null), like systemd's Accept=yes with StandardInput=socket.
// The destructor stops accepting, SIGKILLs shells still running and reaps them all.
class SocketActivator {
 public:
  explicit SocketActivator(std::vector<std::string> argv) : argv_(std::move(argv)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(listen_fd_, 64) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~SocketActivator() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    ::close(listen_fd_);
    std::lock_guard<std::mutex> lock(mu_);
    for (pid_t pid : running_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  int port() const { return port_; }
  // Waits for every shell started so far to exit; their exit codes (128 + signal if killed).
  std::vector<int> WaitAll() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<int> codes;
    for (pid_t pid : running_) {
      int status = 0;
      ::waitpid(pid, &status, 0);
      codes.push_back(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
    running_.clear();
    return codes;
  }
  int started() {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(running_.size());
  }

 private:
  void AcceptLoop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      std::vector<char*> args;
      for (const std::string& a : argv_) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      std::lock_guard<std::mutex> lock(mu_);
      pid_t pid = ::fork();
      if (pid == 0) {
        int null = ::open("/dev/null", O_WRONLY);
        ::dup2(fd, STDIN_FILENO);
        ::dup2(fd, STDOUT_FILENO);
        ::dup2(null, STDERR_FILENO);
        ::execv(args[0], args.data());
        ::_exit(127);
      }
      ::close(fd);
      if (pid > 0) running_.push_back(pid);
    }
  }

  std::vector<std::string> argv_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<pid_t> running_;  // guarded by mu_
};

std::vector<std::string> ShellArgv(const KvdInstance& kvd, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {KvctlPath(), "--namespace", kvd.ns(), "shell", "--text-only"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

TEST(ShellSocketTest, GuideSessionByteForByteWithEightClientsAtOnce) {
  KvdInstance kvd;
  SocketActivator systemd(ShellArgv(kvd));
  ASSERT_GT(systemd.port(), 0);
  auto r = RunCommand({"/usr/bin/python3",
                       std::string(KV_SOURCE_DIR) + "/tests/kvctl/guide_tcp_client.py", "127.0.0.1",
                       std::to_string(systemd.port()), "8"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "ok 8\n") << r.err;
  std::vector<int> codes = systemd.WaitAll();
  EXPECT_EQ(codes, std::vector<int>(8, 0));  // each shell exited cleanly when its peer closed
}

TEST(ShellSocketTest, TextOnlyKeepsKvctlCommandsOffTheSocket) {
  KvdInstance kvd;
  SocketActivator systemd(ShellArgv(kvd));
  TcpClient c(systemd.port());
  ASSERT_TRUE(
      c.Send("CREATE b\nshutdown\nput b k -\nhelp\nstatus --json\nGET b k\nquit\nGET b k\n"));
  EXPECT_EQ(c.ReadToEof(),
            "OK\nUNKNOWN COMMAND\nUNKNOWN COMMAND\nUNKNOWN COMMAND\nUNKNOWN COMMAND\n\nOK\n");
  EXPECT_EQ(systemd.WaitAll(), std::vector<int>{0});
  EXPECT_TRUE(kvd.NewClient()->CreateBucket("still-up").ok());  // "shutdown" did not run
}

TEST(ShellSocketTest, OverlongLineIsAnErrorAndTheShellExits) {
  KvdInstance kvd;
  SocketActivator systemd(ShellArgv(kvd, {"--max-line", "100"}));
  TcpClient c(systemd.port());
  ASSERT_TRUE(c.Send("CREATE b\r\n" + std::string(5000, '\0')));
  EXPECT_EQ(c.ReadToEof(), "OK\r\nERROR TOO_LARGE: line longer than 100 bytes; closing\r\n");
  EXPECT_EQ(systemd.WaitAll(), std::vector<int>{1});
}

TEST(ShellSocketTest, IdleTimeoutAndVanishedPeersEndTheShellCleanly) {
  KvdInstance kvd;
  SocketActivator systemd(ShellArgv(kvd, {"--idle-timeout", "1"}));
  TcpClient idle(systemd.port());
  EXPECT_EQ(idle.ReadToEof(std::chrono::seconds(30)),
            "ERROR TIMEOUT: no command for 1 s; closing\n");
  TcpClient reset(systemd.port());
  ASSERT_TRUE(reset.Send("CREATE b\nSUBSCRIBE b\n"));
  ASSERT_EQ(reset.ReadLine(), "OK\n");
  reset.Reset();
  TcpClient half(systemd.port());
  ASSERT_TRUE(half.Send("GET b k"));
  half.ShutdownWrite();
  EXPECT_EQ(half.ReadToEof(), "\nOK\n");
  ASSERT_TRUE(
      kv::testing::WaitFor([&] { return systemd.started() == 3; }, std::chrono::seconds(20)));
  EXPECT_EQ(systemd.WaitAll(), std::vector<int>({0, 0, 0}));
}

}  // namespace
}  // namespace kv
