// A small blocking TCP client for the tests of `kvctl serve` and of `kvctl shell` on a socket:
// connect, send, read with a deadline. Every wait is bounded (the test fails instead of hanging).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>

namespace kv::testing {

class TcpClient {
 public:
  TcpClient() = default;
  explicit TcpClient(int port) { Connect(port); }
  ~TcpClient() { Close(); }
  TcpClient(TcpClient&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  TcpClient(const TcpClient&) = delete;
  TcpClient& operator=(const TcpClient&) = delete;

  // Connects to 127.0.0.1:port; false on failure.
  bool Connect(int port) {
    Close();
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      Close();
      return false;
    }
    return true;
  }
  int fd() const { return fd_; }
  bool connected() const { return fd_ >= 0; }

  bool Send(const std::string& data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
      ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<std::size_t>(n);
    }
    return true;
  }
  void ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }
  // Closes with RST (SO_LINGER 0): the connection vanishes as when a client process is killed.
  void Reset() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    Close();
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // Exactly `n` bytes, or fewer if the connection ended or `timeout` passed first.
  std::string Read(std::size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (out.size() < n) {
      if (!WaitReadable(deadline)) break;
      char buf[4096];
      ssize_t got = ::recv(fd_, buf, std::min(sizeof buf, n - out.size()), 0);
      if (got <= 0) break;
      out.append(buf, static_cast<std::size_t>(got));
    }
    return out;
  }
  // One line with its "\n" ("" at EOF, "<timeout>" if none came in time).
  std::string ReadLine(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    std::string line;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (line.empty() || line.back() != '\n') {
      if (!WaitReadable(deadline)) return "<timeout>";
      char c;
      ssize_t got = ::recv(fd_, &c, 1, 0);
      if (got <= 0) break;
      line.push_back(c);
    }
    return line;
  }
  // Everything until the peer closes; "<timeout>" appended if it did not within `timeout`.
  std::string ReadToEof(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (!WaitReadable(deadline)) return out + "<timeout>";
      char buf[4096];
      ssize_t got = ::recv(fd_, buf, sizeof buf, 0);
      if (got <= 0) return out;
      out.append(buf, static_cast<std::size_t>(got));
    }
  }
  // True if the peer has sent nothing and not closed (nothing readable right now).
  bool Quiet() {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;
  }

 private:
  bool WaitReadable(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(left.count())) > 0;
  }

  int fd_ = -1;
};

}  // namespace kv::testing
