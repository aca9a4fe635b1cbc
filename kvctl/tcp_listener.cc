#include "kvctl/tcp_listener.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace kv::ctl {
namespace {

// Splits "HOST:PORT" / "[HOST]:PORT"; false if there is no port.
bool SplitHostPort(const std::string& address, std::string* host, std::string* port) {
  std::size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 == address.size()) return false;
  *host = address.substr(0, colon);
  *port = address.substr(colon + 1);
  if (!host->empty() && host->front() == '[') {
    if (host->size() < 2 || host->back() != ']') return false;
    *host = host->substr(1, host->size() - 2);
  }
  return !host->empty() && port->find_first_not_of("0123456789") == std::string::npos &&
         port->size() <= 5 && std::stoi(*port) <= 65535;
}

std::string Numeric(const sockaddr* sa, socklen_t len) {
  char host[NI_MAXHOST];
  char port[NI_MAXSERV];
  if (::getnameinfo(sa, len, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return "?";
  }
  if (sa->sa_family == AF_INET6) return "[" + std::string(host) + "]:" + port;
  return std::string(host) + ":" + port;
}

}  // namespace

Status ListenTcp(const std::string& address, int backlog, int* fd, std::string* bound) {
  std::string host;
  std::string port;
  if (!SplitHostPort(address, &host, &port)) {
    return Status(Code::kInvalidArgument,
                  "listen address '" + address + "' is not HOST:PORT (e.g. 127.0.0.1:4040)");
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return Status(Code::kInvalidArgument,
                  "listen address '" + address + "': " + ::gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, &::freeaddrinfo);
  std::string why = "no address";
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    int s = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (s < 0) {
      why = std::strerror(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(s, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(s, backlog) != 0) {
      why = std::strerror(errno);
      ::close(s);
      continue;
    }
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    ::getsockname(s, reinterpret_cast<sockaddr*>(&local), &len);
    *fd = s;
    *bound = Numeric(reinterpret_cast<sockaddr*>(&local), len);
    return Status();
  }
  return Status(Code::kFailed, "cannot listen on " + address + ": " + why);
}

}  // namespace kv::ctl
