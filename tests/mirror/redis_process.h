// A private redis-server for one test: a unix socket in a temporary directory of its own (no TCP
// port, so tests run in parallel without colliding), persistence off. Killed (SIGKILL) and its
// directory removed by the destructor, also when the test failed; it dies with the test process
// (PR_SET_PDEATHSIG) if that is killed.
//
// RedisConn: a blocking hiredis connection for the test's own reads and writes ("redis-cli").
#pragma once

#include <hiredis/hiredis.h>
#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kv::testing {

class RedisProcess {
 public:
  // Starts redis-server listening on `socket` (empty: <dir>/redis.sock) and, if `port` is not
  // 0, on TCP 127.0.0.1:`port` (a cluster node needs it), extra arguments appended. ok() is
  // false if it did not answer PING within 10 s.
  explicit RedisProcess(std::string socket = {}, std::vector<std::string> extra = {}, int port = 0);
  ~RedisProcess();
  RedisProcess(const RedisProcess&) = delete;
  RedisProcess& operator=(const RedisProcess&) = delete;

  bool ok() const { return pid_ > 0; }
  const std::string& socket() const { return socket_; }
  const std::string& dir() const { return dir_; }
  std::string url() const { return "unix://" + socket_; }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  // SIGKILL and reap; the socket file stays (a dead server: connections are refused).
  void Kill();
  // Starts the server again, as before, in the same directory (a cluster node keeps its
  // nodes.conf). False if it did not answer PING within 10 s.
  bool Restart();

 private:
  bool Start();
  std::string dir_;
  std::string socket_;
  std::vector<std::string> args_;
  int port_ = 0;
  pid_t pid_ = 0;
};

// A TCP port nobody listens on, whose cluster bus port (+10000) is free too; 0 if none found.
int FreeClusterPort();

class RedisConn {
 public:
  explicit RedisConn(const std::string& socket);
  ~RedisConn();
  bool ok() const { return c_ != nullptr && c_->err == 0; }
  // One command, binary-safe; the reply (nullptr if the connection failed).
  std::unique_ptr<redisReply, void (*)(void*)> Command(const std::vector<std::string>& args);
  // Every string key matching `pattern` with its value (SCAN + GET).
  std::map<std::string, std::string> Dump(const std::string& pattern);

 private:
  redisContext* c_ = nullptr;
};

}  // namespace kv::testing
