#include "tests/mirror/redis_process.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

namespace kv::testing {

RedisProcess::RedisProcess(std::string socket, std::vector<std::string> extra, int port)
    : port_(port) {
  char tmpl[] = "/tmp/kvmirror-redis.XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return;
  dir_ = tmpl;
  socket_ = socket.empty() ? dir_ + "/redis.sock" : socket;
  std::vector<std::string> args = {"redis-server", "--port",    std::to_string(port),
                                   "--bind",       "127.0.0.1", "--unixsocket",
                                   socket_,        "--save",    "",
                                   "--appendonly", "no",        "--dir",
                                   dir_,           "--logfile", dir_ + "/redis.log"};
  args.insert(args.end(), extra.begin(), extra.end());
  args_ = std::move(args);
  if (!Start()) pid_ = 0;
}

bool RedisProcess::Restart() {
  Kill();
  return Start();
}

bool RedisProcess::Start() {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    std::vector<char*> argv;
    for (std::string& a : args_) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  pid_ = pid;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < until) {
    RedisConn conn(socket_);
    if (conn.ok()) {
      auto r = conn.Command({"PING"});
      if (r && r->type == REDIS_REPLY_STATUS) return true;
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {  // it exited
      pid_ = -1;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  Kill();
  return false;
}

void RedisProcess::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

RedisProcess::~RedisProcess() {
  Kill();
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

namespace {

bool PortFree(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

int FreeClusterPort() {
  // Ports below 55535 (the bus port must exist), spread by pid so that parallel tests differ.
  static int next = 20000 + static_cast<int>(::getpid() % 2000) * 16;
  for (int tries = 0; tries < 5000; ++tries) {
    int port = next;
    next = next >= 55000 ? 20000 : next + 1;
    if (PortFree(port) && PortFree(port + 10000)) return port;
  }
  return 0;
}

RedisConn::RedisConn(const std::string& socket) {
  timeval tv{2, 0};
  c_ = redisConnectUnixWithTimeout(socket.c_str(), tv);
  if (c_ != nullptr) redisSetTimeout(c_, tv);
}

RedisConn::~RedisConn() {
  if (c_ != nullptr) redisFree(c_);
}

std::unique_ptr<redisReply, void (*)(void*)> RedisConn::Command(
    const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  void* r = ok() ? redisCommandArgv(c_, static_cast<int>(args.size()), argv.data(), lens.data())
                 : nullptr;
  return {static_cast<redisReply*>(r), freeReplyObject};
}

std::map<std::string, std::string> RedisConn::Dump(const std::string& pattern) {
  std::map<std::string, std::string> out;
  std::string cursor = "0";
  do {
    auto r = Command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) return {};
    cursor.assign(r->element[0]->str, r->element[0]->len);
    for (std::size_t i = 0; i < r->element[1]->elements; ++i) {
      std::string key(r->element[1]->element[i]->str, r->element[1]->element[i]->len);
      auto v = Command({"GET", key});
      if (v && v->type == REDIS_REPLY_STRING) out[key].assign(v->str, v->len);
    }
  } while (cursor != "0");
  return out;
}

}  // namespace kv::testing
