#include "bench/redis_server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <thread>
#include <vector>

#include "bench/cpu_hogs.h"

namespace kv::bench {
namespace {

bool OnPath(const std::string& tool) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (::access((dir + "/" + tool).c_str(), X_OK) == 0) return true;
  }
  return false;
}

bool Connectable(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// Runs argv with stdout into a pipe (stderr discarded), pinned to `cpu` if >= 0; its output, or
// nullopt if it could not run or exited with an error.
std::optional<std::string> Capture(const std::vector<std::string>& argv, int cpu) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return std::nullopt;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (cpu >= 0) PinToCpu(0, cpu);
    ::dup2(p[1], STDOUT_FILENO);
    int null = ::open("/dev/null", O_WRONLY);
    if (null >= 0) ::dup2(null, STDERR_FILENO);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(p[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(p[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  ::close(p[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
  return out;
}

// The last CSV line of redis-benchmark --csv:
// "SET","rps","avg_ms","min_ms","p50_ms","p95_ms","p99_ms","max_ms" (quoted fields).
std::optional<RedisFigures> ParseCsv(const std::string& out) {
  std::size_t end = out.find_last_not_of('\n');
  if (end == std::string::npos) return std::nullopt;
  std::size_t start = out.rfind('\n', end);
  std::string line = out.substr(start == std::string::npos ? 0 : start + 1, end + 1);
  std::vector<double> fields;
  std::istringstream in(line);
  std::string field;
  while (std::getline(in, field, ',')) {
    field.erase(std::remove(field.begin(), field.end(), '"'), field.end());
    char* rest = nullptr;
    double v = std::strtod(field.c_str(), &rest);
    if (rest != field.c_str()) fields.push_back(v);
  }
  if (fields.size() < 6) return std::nullopt;
  return RedisFigures{fields[0], fields[3] * 1000, fields[5] * 1000};
}

}  // namespace

RedisServer::RedisServer(const RedisOptions& options) {
  if (!OnPath("redis-server") || !OnPath("redis-benchmark")) {
    why_ = "redis-server or redis-benchmark not found (apt-get install redis-server)";
    return;
  }
  char tmpl[] = "/tmp/kvbench-redis.XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    why_ = std::string("cannot make a directory for redis-server: ") + std::strerror(errno);
    return;
  }
  dir_ = tmpl;
  socket_ = dir_ + "/redis.sock";
  std::vector<std::string> argv = {"redis-server",
                                   "--port",
                                   std::to_string(options.tcp_port),
                                   "--unixsocket",
                                   socket_,
                                   "--unixsocketperm",
                                   "700",
                                   "--save",
                                   "",
                                   "--appendonly",
                                   "no",
                                   "--dir",
                                   options.data_dir.empty() ? dir_ : options.data_dir,
                                   "--logfile",
                                   dir_ + "/redis.log"};
  if (options.tcp_port != 0) argv.insert(argv.end(), {"--bind", "127.0.0.1"});
  if (!options.replicaof.empty()) argv.insert(argv.end(), {"--replicaof", options.replicaof});
  argv.insert(argv.end(), options.args.begin(), options.args.end());
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  pid_ = pid;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!Connectable(socket_)) {
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_ || std::chrono::steady_clock::now() > until) {
      why_ = "redis-server did not start (see its log in " + dir_ + ")";
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = 0;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!options.populate) return;
  Capture({"redis-benchmark", "-s", socket_, "-c", "1", "-r", "100000", "-d", "64", "-t", "set",
           "-n", "200000", "-P", "64", "--csv"},
          -1);
}

RedisServer::~RedisServer() {
  Stop();
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

void RedisServer::Stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = 0;
}

std::optional<RedisFigures> RedisServer::Set(long requests, int clients, int cpu) const {
  if (!available()) return std::nullopt;
  auto out = Capture(
      {"redis-benchmark", "-s", socket_, "-c", std::to_string(clients), "-r", "100000", "-d", "64",
       "-t", "set", "-n", std::to_string(requests), "--csv", "--precision", "3"},
      cpu);
  if (!out) return std::nullopt;
  return ParseCsv(*out);
}

}  // namespace kv::bench
