// `kvctl serve`: the guide's KVServer on a TCP port. The guide's session through a real TCP client
// (python3's socket module) with 8 clients at once; bad input (overlong lines, binary garbage,
// half-closed and reset connections, 1,000 idle connections, too many connections, idle peers)
// gets errors or closes while the server keeps serving others; SIGTERM stops it cleanly.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include <cerrno>

#include <fstream>
#include <random>
#include <thread>

#include "tests/kvctl/live_process.h"
#include "tests/kvctl/tcp_client.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::testing::KvctlPath;
using kv::testing::KvdInstance;
using kv::testing::LiveProcess;
using kv::testing::RunCommand;
using kv::testing::TcpClient;

// `kvctl serve --listen 127.0.0.1:0` for `kvd`'s namespace; port() is the port it reported.
class Server {
 public:
  Server(const KvdInstance& kvd, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {KvctlPath(), "--namespace", kvd.ns(),
                                     "serve",     "--listen",    "127.0.0.1:0"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process_ = std::make_unique<LiveProcess>(argv);
    address_ = process_->ReadLine(20000);
    if (address_.rfind("127.0.0.1:", 0) == 0) port_ = std::stoi(address_.substr(10));
  }
  int port() const { return port_; }
  const std::string& address() const { return address_; }
  LiveProcess& process() { return *process_; }
  // SIGTERM; the exit code.
  int Stop() {
    ::kill(process_->pid(), SIGTERM);
    return process_->Wait();
  }
  // Peak resident memory of the server (VmHWM), in KiB.
  long PeakRssKiB() const {
    std::ifstream status("/proc/" + std::to_string(process_->pid()) + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
    }
    return -1;
  }

 private:
  std::unique_ptr<LiveProcess> process_;
  std::string address_;
  int port_ = 0;
};

// The guide's session over TCP; "" if every answer matched.
std::string GuideSession(int port, const std::string& bucket) {
  TcpClient c(port);
  if (!c.connected()) return "cannot connect";
  const std::pair<std::string, std::string> steps[] = {
      {"CREATE " + bucket + "\r\n", "OK\r\n"},
      {"PUT " + bucket + " milk 1\r\n", "OK\r\n"},
      {"GET " + bucket + " milk\r\n", "1\r\nOK\r\n"},
      {"DELETE " + bucket + " milk\r\n", "OK\r\n"},
  };
  for (const auto& [request, answer] : steps) {
    if (!c.Send(request)) return "send failed: " + request;
    std::string got = c.Read(answer.size());
    if (got != answer) return request + " answered '" + got + "'";
  }
  return "";
}

void RaiseDescriptorLimit() {
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &lim);
}

TEST(ServeTest, ReportsTheBoundAddress) {
  KvdInstance kvd;
  Server server(kvd);
  ASSERT_GT(server.port(), 0) << server.address();
  EXPECT_EQ(server.Stop(), 0);
}

// Acceptance 1: the guide's session, byte for byte, 8 clients at once (python3's socket module).
TEST(ServeTest, GuideSessionByteForByteWithEightClientsAtOnce) {
  KvdInstance kvd;
  Server server(kvd, {"--max-connections", "8"});
  ASSERT_GT(server.port(), 0) << server.address();
  auto r = RunCommand({"/usr/bin/python3",
                       std::string(KV_SOURCE_DIR) + "/tests/kvctl/guide_tcp_client.py", "127.0.0.1",
                       std::to_string(server.port()), "8"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "ok 8\n") << r.err;
  auto client = kvd.NewClient();
  for (int i = 0; i < 8; ++i) {
    auto bucket = client->OpenBucket("shopping" + std::to_string(i));
    ASSERT_TRUE(bucket.ok()) << i;
    std::string value;
    EXPECT_TRUE(bucket->Get("milk", &value).ok());
    EXPECT_EQ(value, "1");
    EXPECT_TRUE(bucket->Get("eggs", &value).IsNotFound());
  }
  EXPECT_EQ(server.Stop(), 0);
}

TEST(ServeTest, OverlongLineGetsAnErrorAndTheConnectionClosesWithBoundedMemory) {
  KvdInstance kvd;
  Server server(kvd, {"--max-line", "1024"});
  ASSERT_GT(server.port(), 0);
  TcpClient big(server.port());
  ASSERT_TRUE(big.connected());
  // 64 MiB without a newline; the server may close while this is still sending.
  std::thread sender([fd = big.fd()] {
    std::string chunk(1 << 20, 'x');
    for (int i = 0; i < 64; ++i) {
      if (::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL) < 0) break;
    }
  });
  EXPECT_EQ(big.ReadLine(), "ERROR TOO_LARGE: line longer than 1024 bytes; closing\n");
  sender.join();
  EXPECT_EQ(big.ReadToEof(), "");
  // A line just at the limit is fine; one byte more is not.
  TcpClient ok(server.port());
  ASSERT_TRUE(ok.Send("CREATE b\nPUT b k " + std::string(1024 - 8, 'v') + "\n"));
  EXPECT_EQ(ok.Read(6), "OK\nOK\n");
  // The overlong line is not read to its end: the error ends as the last line read did.
  ASSERT_TRUE(ok.Send("PUT b k " + std::string(1024 - 7, 'v') + "\r\n"));
  EXPECT_EQ(ok.ReadToEof(), "ERROR TOO_LARGE: line longer than 1024 bytes; closing\n");
  EXPECT_EQ(GuideSession(server.port(), "shopping"), "");
#if !defined(__SANITIZE_ADDRESS__)
  // Not under ASan: its shadow memory and its quarantine of freed buffers (every read chunk)
  // make the server's resident size say nothing about what it buffers. The normal build checks.
  EXPECT_LT(server.PeakRssKiB(), 48 * 1024) << "the overlong line was buffered";
#endif
  EXPECT_EQ(server.Stop(), 0);
}

TEST(ServeTest, BinaryGarbageGetsUnknownCommandAndTheSessionStaysInStep) {
  KvdInstance kvd;
  Server server(kvd);
  ASSERT_GT(server.port(), 0);
  TcpClient c(server.port());
  std::mt19937 rng(21);
  std::string garbage;
  std::string want;
  for (int line = 0; line < 200; ++line) {
    std::string l = "\xff";  // never a command word
    int n = static_cast<int>(rng() % 300);
    for (int i = 0; i < n; ++i) {
      char b = static_cast<char>(rng() % 256);
      if (b != '\n') l.push_back(b);
    }
    bool crlf = !l.empty() && l.back() == '\r';
    garbage += l + "\n";
    want += crlf ? "UNKNOWN COMMAND\r\n" : "UNKNOWN COMMAND\n";
  }
  garbage += std::string("GET \x01\x02\x00 k\n", 10);  // a command with a binary bucket name
  ASSERT_TRUE(c.Send(garbage));
  EXPECT_EQ(c.Read(want.size()), want);
  std::string invalid = c.ReadLine();
  EXPECT_EQ(invalid.rfind("ERROR INVALID:", 0), 0u) << invalid;
  ASSERT_TRUE(c.Send("CREATE shopping\nGET shopping milk\n"));
  EXPECT_EQ(c.Read(7), "OK\n\nOK\n");
  EXPECT_EQ(GuideSession(server.port(), "other"), "");
  EXPECT_EQ(server.Stop(), 0);
}

TEST(ServeTest, HalfClosedConnectionGetsEveryAnswerThenEof) {
  KvdInstance kvd;
  Server server(kvd);
  ASSERT_GT(server.port(), 0);
  TcpClient c(server.port());
  ASSERT_TRUE(c.Send("CREATE b\r\nPUT b k v\r\nGET b k"));  // the last line has no newline
  c.ShutdownWrite();
  EXPECT_EQ(c.ReadToEof(), "OK\r\nOK\r\nv\nOK\n");
  // Connections that vanish (RST) mid-line and mid-subscription cost the server nothing.
  for (const char* partial : {"PUT b k2 ", "SUBSCRIBE b\n"}) {
    TcpClient gone(server.port());
    ASSERT_TRUE(gone.Send(partial));
    gone.Reset();
  }
  EXPECT_EQ(GuideSession(server.port(), "shopping"), "");
  EXPECT_EQ(server.Stop(), 0);
}

TEST(ServeTest, ThousandIdleConnectionsAndOthersAreStillServed) {
  RaiseDescriptorLimit();
  KvdInstance kvd;
  Server server(kvd);  // default --max-connections 1024
  ASSERT_GT(server.port(), 0);
  std::vector<TcpClient> idle;
  for (int i = 0; i < 1000; ++i) {
    idle.emplace_back(server.port());
    ASSERT_TRUE(idle.back().connected()) << i;
  }
  // Every idle connection is held open (none refused), and the others are served meanwhile.
  ASSERT_TRUE(idle.back().Send("CREATE last\n"));
  EXPECT_EQ(idle.back().ReadLine(), "OK\n");
  std::vector<std::thread> clients;
  std::vector<std::string> results(8);
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back(
        [&, i] { results[i] = GuideSession(server.port(), "shopping" + std::to_string(i)); });
  }
  for (auto& t : clients) t.join();
  for (int i = 0; i < 8; ++i) EXPECT_EQ(results[i], "") << i;
  for (TcpClient& c : idle) EXPECT_TRUE(c.Quiet());
  idle.clear();
  EXPECT_EQ(GuideSession(server.port(), "after"), "");
  EXPECT_EQ(server.Stop(), 0);
}

TEST(ServeTest, ConnectionsBeyondTheLimitAreRefusedWithAnError) {
  KvdInstance kvd;
  Server server(kvd, {"--max-connections", "2"});
  ASSERT_GT(server.port(), 0);
  TcpClient a(server.port());
  TcpClient b(server.port());
  ASSERT_TRUE(a.Send("CREATE x\n"));
  ASSERT_EQ(a.ReadLine(), "OK\n");  // both sessions are running once each answered
  ASSERT_TRUE(b.Send("CREATE x\n"));
  ASSERT_EQ(b.ReadLine(), "OK\n");
  TcpClient refused(server.port());
  EXPECT_EQ(refused.ReadToEof(),
            "ERROR UNAVAILABLE: too many connections (2); try again later\r\n");
  a.Close();
  // Once a session ended, a new connection is served.
  EXPECT_TRUE(kv::testing::WaitFor([&] { return GuideSession(server.port(), "again").empty(); },
                                   std::chrono::seconds(20)));
  EXPECT_EQ(server.Stop(), 0);
}

TEST(ServeTest, IdleConnectionIsClosedWithAnError) {
  KvdInstance kvd;
  Server server(kvd, {"--idle-timeout", "1"});
  ASSERT_GT(server.port(), 0);
  TcpClient c(server.port());
  ASSERT_TRUE(c.Send("CREATE b\r\n"));
  EXPECT_EQ(c.ReadToEof(std::chrono::seconds(30)),
            "OK\r\nERROR TIMEOUT: no command for 1 s; closing\r\n");
  EXPECT_EQ(GuideSession(server.port(), "shopping"), "");
  EXPECT_EQ(server.Stop(), 0);
}

// A peer that sends requests and never reads their answers blocks its session's writes; after
// the idle timeout without progress the session gives up and closes, and others are served.
TEST(ServeTest, PeerThatReadsNothingIsDroppedAfterTheIdleTimeout) {
  KvdInstance kvd;
  Server server(kvd, {"--idle-timeout", "1"});
  ASSERT_GT(server.port(), 0);
  TcpClient setup(server.port());
  ASSERT_TRUE(setup.Send("CREATE b\nPUT b k " + std::string(60000, 'v') + "\n"));
  ASSERT_EQ(setup.Read(6), "OK\nOK\n");
  TcpClient deaf(server.port());
  std::string get;
  for (int i = 0; i < 1024; ++i) get += "GET b k\n";
  std::size_t sent = 0;
  for (;;) {  // until both directions' buffers are full
    ssize_t n = ::send(deaf.fd(), get.data(), get.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    ASSERT_GT(n, 0);
    sent += static_cast<std::size_t>(n);
    ASSERT_LT(sent, 1u << 30);
  }
  // Without reading a byte: the server closes the connection (RST, as it leaves input unread).
  EXPECT_TRUE(kv::testing::WaitFor(
      [&] {
        pollfd p{deaf.fd(), POLLIN, 0};
        return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR)) != 0;
      },
      std::chrono::seconds(30)));
  EXPECT_EQ(GuideSession(server.port(), "shopping"), "");
  EXPECT_EQ(server.Stop(), 0);
}

// A subscriber over TCP sees another client's changes, as in the guide's PubSub chapter.
TEST(ServeTest, SubscribeOverTcp) {
  KvdInstance kvd;
  Server server(kvd);
  ASSERT_GT(server.port(), 0);
  TcpClient sub(server.port());
  ASSERT_TRUE(sub.Send("CREATE shopping\r\n"));
  ASSERT_EQ(sub.ReadLine(), "OK\r\n");
  ASSERT_TRUE(sub.Send("SUBSCRIBE shopping\r\n"));
  // No acknowledgement: put until the subscriber reports a change (it subscribes meanwhile).
  TcpClient writer(server.port());
  std::string line;
  for (int i = 0; i < 200 && line.rfind("milk SET TO ", 0) != 0; ++i) {
    ASSERT_TRUE(writer.Send("PUT shopping milk " + std::to_string(i) + "\n"));
    ASSERT_EQ(writer.ReadLine(), "OK\n");
    line = sub.ReadLine(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(line.rfind("milk SET TO ", 0), 0u) << line;
  ASSERT_TRUE(writer.Send("DELETE shopping milk\n"));
  ASSERT_EQ(writer.ReadLine(), "OK\n");
  for (line = sub.ReadLine(); line.rfind("milk SET TO ", 0) == 0;) line = sub.ReadLine();
  EXPECT_EQ(line, "milk DELETED\r\n");
  sub.ShutdownWrite();
  EXPECT_EQ(sub.ReadToEof(), "");
  EXPECT_EQ(server.Stop(), 0);
}

TEST(ServeTest, SigtermEndsEverySessionAndExitsZero) {
  KvdInstance kvd;
  Server server(kvd);
  ASSERT_GT(server.port(), 0);
  TcpClient idle(server.port());
  TcpClient subscribed(server.port());
  ASSERT_TRUE(subscribed.Send("CREATE b\nSUBSCRIBE b\n"));
  ASSERT_EQ(subscribed.ReadLine(), "OK\n");
  TcpClient partial(server.port());
  ASSERT_TRUE(partial.Send("GET b"));
  ASSERT_TRUE(idle.Send("CREATE c\n"));
  ASSERT_EQ(idle.ReadLine(), "OK\n");
  EXPECT_EQ(server.Stop(), 0);
  EXPECT_EQ(idle.ReadToEof(), "");
  EXPECT_EQ(subscribed.ReadToEof(), "");
  EXPECT_EQ(partial.ReadToEof(), "");
  EXPECT_FALSE(TcpClient().Connect(server.port()));
}

TEST(ServeTest, BadArgumentsAreUsageErrors) {
  KvdInstance kvd;
  for (const char* address : {"4040", "127.0.0.1:", "127.0.0.1:99999", "[::1:4040"}) {
    auto r = RunCommand({KvctlPath(), "--namespace", kvd.ns(), "serve", "--listen", address});
    EXPECT_EQ(r.exit_code, 1) << address << r.err;
    EXPECT_NE(r.err.find("INVALID"), std::string::npos) << address << r.err;
  }
  auto r = RunCommand({KvctlPath(), "--namespace", kvd.ns(), "serve"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
}

}  // namespace
}  // namespace kv
