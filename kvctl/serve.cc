// `kvctl serve --listen HOST:PORT`: the Elixir guide's KVServer on a TCP port, for hosts without
// systemd (with systemd, systemd/kv-shell.socket runs one `kvctl shell --text-only` per
// connection instead). Each connection is served by a Session (kvctl/session.h), the code
// `kvctl shell` runs on its stdin: same protocol, same limits, same errors.
//
// Approach: plain POSIX sockets and one thread per connection, like the guide's KVServer (a
// Task per connection). Not Boost.Asio: a session is blocking code shared with the shell on
// stdin (which is also what systemd's Accept=yes runs); an asynchronous server would need the
// protocol rewritten as callbacks, for nothing at this scale: kv's calls take microseconds, and
// an idle connection costs a thread blocked in poll() (no CPU, a 512 KiB stack reservation of
// which a few pages are touched) and one descriptor.
//  - Bounded: at most --max-connections sessions; one more gets "ERROR UNAVAILABLE: too many
//    connections ..." and is closed at once. Idle sessions end after --idle-timeout, lines are
//    bounded by --max-line (session.h), so memory is bounded by connections x max-line.
//  - Only the guide's commands (text_only): no kvctl command is reachable from the network.
//  - Startup: the bound address (useful with port 0) is printed on stdout, one line, e.g.
//    "127.0.0.1:4040", once the socket accepts connections.
//  - SIGTERM or SIGINT (read by the accept loop through a signalfd): the listener closes, every
//    session ends after the line it is running (a stop pipe wakes those that wait), and serve
//    exits 0 when the last one has. Exit 1 if the instance cannot be opened or the address not
//    bound.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>

#include "kvctl/app.h"
#include "kvctl/command_util.h"
#include "kvctl/line_io.h"
#include "kvctl/session.h"
#include "kvctl/tcp_listener.h"

namespace kv::ctl {
namespace {

constexpr std::size_t kThreadStack = 512 * 1024;

struct ServeArgs {
  std::string listen;
  int max_connections = 1024;
  int idle_timeout_s = 300;
  std::size_t max_line = 64 * 1024;
};

class Server {
 public:
  Server(Context& ctx, SessionOptions options, int max_connections)
      : ctx_(ctx), options_(options), max_connections_(max_connections) {}

  // REQUIRES: options.stop_fd is the read end of the stop pipe.
  void Accept(int fd);
  // Waits until every session has ended.
  void WaitForSessions();
  int active() {
    std::lock_guard<std::mutex> lock(mu_);
    return active_;
  }

 private:
  struct Connection {
    Server* server;
    int fd;
  };
  static void* Run(void* arg);
  void Refuse(int fd, const std::string& why);

  Context& ctx_;
  const SessionOptions options_;
  const int max_connections_;
  std::mutex mu_;
  std::condition_variable ended_;
  int active_ = 0;  // sessions started and not yet ended; guarded by mu_
};

void Server::Refuse(int fd, const std::string& why) {
  std::string line = "ERROR " + Status(Code::kUnavailable, why).ToString() + "\r\n";
  (void)!::send(fd, line.data(), line.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  ::close(fd);
}

void Server::Accept(int fd) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (active_ >= max_connections_) {
      Refuse(fd,
             "too many connections (" + std::to_string(max_connections_) + "); try again later");
      return;
    }
    ++active_;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // answers are small lines
  pthread_attr_t attr;
  ::pthread_attr_init(&attr);
  ::pthread_attr_setstacksize(&attr, kThreadStack);
  ::pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t thread;
  auto* connection = new Connection{this, fd};
  int rc = ::pthread_create(&thread, &attr, &Server::Run, connection);
  ::pthread_attr_destroy(&attr);
  if (rc != 0) {
    delete connection;
    Refuse(fd, "cannot start a session thread; try again later");
    std::lock_guard<std::mutex> lock(mu_);
    --active_;
    ended_.notify_all();
  }
}

void* Server::Run(void* arg) {
  std::unique_ptr<Connection> c(static_cast<Connection*>(arg));
  Server& server = *c->server;
  {
    Session session(server.ctx_, c->fd, c->fd, server.options_);
    SessionEnd end = session.Run();
    if (EndsWithUnreadInput(end)) LingerBeforeClose(c->fd, server.options_.stop_fd);
  }
  ::close(c->fd);
  std::lock_guard<std::mutex> lock(server.mu_);
  --server.active_;
  server.ended_.notify_all();
  return nullptr;
}

void Server::WaitForSessions() {
  std::unique_lock<std::mutex> lock(mu_);
  ended_.wait(lock, [this] { return active_ == 0; });
}

// Each connection needs a descriptor: raise the soft limit towards the hard one if needed.
// Returns how many connections the limit allows (at most `wanted`).
int FitDescriptorLimit(int wanted) {
  constexpr rlim_t kReserve = 64;  // the client's sockets, signalfd, pipes, stdio
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return wanted;
  rlim_t need = static_cast<rlim_t>(wanted) + kReserve;
  if (lim.rlim_cur < need) {
    lim.rlim_cur = std::min(need, lim.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &lim);
    ::getrlimit(RLIMIT_NOFILE, &lim);
  }
  if (lim.rlim_cur >= need) return wanted;
  return static_cast<int>(lim.rlim_cur > kReserve ? lim.rlim_cur - kReserve : 1);
}

int Serve(Context& ctx, const ServeArgs& args) {
  ::signal(SIGPIPE, SIG_IGN);
  // SIGTERM and SIGINT are read by the accept loop (signalfd): blocked before any thread starts
  // (the client's included), so that every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  if (ctx.OpenClient() == nullptr) return kExitFailed;
  int max_connections = FitDescriptorLimit(args.max_connections);
  if (max_connections < args.max_connections) {
    std::cerr << "kvctl: serve: the descriptor limit allows " << max_connections
              << " connections, not " << args.max_connections << "\n";
  }
  int signal_fd = ::signalfd(-1, &signals, SFD_CLOEXEC);
  int stop[2] = {-1, -1};
  if (signal_fd < 0 || ::pipe2(stop, O_CLOEXEC) != 0) {
    return Fail(ctx, Status(Code::kInternal, "serve: signalfd/pipe failed"));
  }
  int listen_fd = -1;
  std::string bound;
  if (Status s = ListenTcp(args.listen, SOMAXCONN, &listen_fd, &bound); !s.ok()) {
    return Fail(ctx, s);
  }
  std::cout << bound << std::endl;

  SessionOptions options;
  options.text_only = true;
  options.idle_timeout = std::chrono::seconds(args.idle_timeout_s);
  options.max_line = args.max_line;
  options.stop_fd = stop[0];
  Server server(ctx, options, max_connections);
  for (;;) {
    pollfd fds[2] = {{listen_fd, POLLIN, 0}, {signal_fd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents != 0) break;
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) {
      server.Accept(fd);
    } else if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
      // Out of descriptors or memory: the pending connection stays queued; retry shortly
      // rather than spin on a listener that stays readable.
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ::close(listen_fd);
  std::cerr << "kvctl: serve: stopping, " << server.active() << " open connection(s)\n";
  (void)!::write(stop[1], "x", 1);  // the read end stays readable: every session sees it
  server.WaitForSessions();
  ::close(stop[0]);
  ::close(stop[1]);
  ::close(signal_fd);
  return kExitOk;
}

}  // namespace

void AddServeCommand(CLI::App& app, Context& ctx) {
  auto* serve = app.add_subcommand(
      "serve",
      "serve the KV text protocol (CREATE/PUT/GET/DELETE/SUBSCRIBE) on a TCP port, one "
      "session per connection (without systemd; see systemd/kv-shell.socket)");
  auto args = std::make_shared<ServeArgs>();
  serve->add_option("--listen", args->listen, "HOST:PORT to listen on (port 0: any free port)")
      ->required();
  serve
      ->add_option("--max-connections", args->max_connections,
                   "sessions at once; more are refused with ERROR UNAVAILABLE (default 1024)")
      ->check(CLI::Range(1, 65536));
  serve
      ->add_option("--idle-timeout", args->idle_timeout_s,
                   "close a connection after SECONDS without a command (0: never; default 300)")
      ->check(CLI::Range(0, 86400 * 365));
  serve
      ->add_option("--max-line", args->max_line,
                   "longest accepted line in bytes; longer is an error that closes the "
                   "connection (default 65536)")
      ->check(CLI::Range(std::size_t{64}, kMaxProtocolLine));
  OnRun(serve, ctx, [&ctx, args] { return Serve(ctx, *args); });
}

}  // namespace kv::ctl
