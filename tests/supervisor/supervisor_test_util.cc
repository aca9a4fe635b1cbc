#include "tests/supervisor/supervisor_test_util.h"

#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include "tests/testing/kvd_harness.h"

namespace kv::testing {

std::string Get(Bucket& bucket, std::string_view key) {
  std::string value;
  Status s = bucket.Get(key, &value);
  if (s.IsNotFound()) return "NOT_FOUND";
  return s.ok() ? value : s.ToString();
}

std::optional<shm::BucketRecord> Record(const std::string& ns, const std::string& bucket) {
  shm::ShmError error;
  std::optional<shm::RegistryReader> registry = shm::RegistryReader::Open(ns, &error);
  if (!registry) return std::nullopt;
  return registry->Find(bucket);
}

bool WaitForState(const std::string& ns, const std::string& bucket, std::uint32_t state,
                  std::chrono::milliseconds timeout, pid_t not_pid) {
  return WaitFor(
      [&] {
        std::optional<shm::BucketRecord> r = Record(ns, bucket);
        return r && r->state == state && r->worker_pid != not_pid;
      },
      timeout);
}

ScopedEnv::ScopedEnv(std::string name, const std::string& value) : name_(std::move(name)) {
  if (const char* old = std::getenv(name_.c_str())) old_ = old;
  ::setenv(name_.c_str(), value.c_str(), 1);
}

ScopedEnv::~ScopedEnv() {
  if (old_) {
    ::setenv(name_.c_str(), old_->c_str(), 1);
  } else {
    ::unsetenv(name_.c_str());
  }
}

ScopedPath::ScopedPath(const std::string& stem)
    : path_("/tmp/" + stem + "." + std::to_string(::getpid())) {}

ScopedPath::~ScopedPath() { ::unlink(path_.c_str()); }

void ScopedPath::Write(const std::string& content) const {
  std::string tmp = path_ + ".new";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << content;
  }
  ::rename(tmp.c_str(), path_.c_str());  // readers see the old or the new file, never half
}

NotifyListener::NotifyListener() : name_(UniqueNamespace() + ".notify") {
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path + 1, name_.data(), name_.size());
  ::bind(fd_, reinterpret_cast<sockaddr*>(&sa),
         static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name_.size()));
}

NotifyListener::~NotifyListener() {
  if (fd_ >= 0) ::close(fd_);
}

std::optional<std::string> NotifyListener::Receive(std::chrono::milliseconds timeout) {
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
  char buf[4096];
  ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
  if (n < 0) return std::nullopt;
  return std::string(buf, static_cast<std::size_t>(n));
}

bool NotifyListener::WaitFor(const std::string& needle, std::chrono::milliseconds timeout,
                             std::vector<std::string>* log) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    std::optional<std::string> m = Receive(std::max(left, std::chrono::milliseconds(1)));
    if (!m) continue;
    log->push_back(*m);
    if (m->find(needle) != std::string::npos) return true;
  }
  return false;
}

std::string RunAsUser(const std::string& user, const std::function<int(std::string*)>& fn) {
  const passwd* pw = ::getpwnam(user.c_str());
  if (pw == nullptr) return "no user " + user + " exit=-1";
  uid_t uid = pw->pw_uid;
  gid_t gid = pw->pw_gid;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return "pipe failed exit=-1";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    std::string report;
    int code = 100;
    if (::initgroups(user.c_str(), gid) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) {
      report = std::string("cannot become ") + user + ": " + std::strerror(errno);
    } else {
      code = fn(&report);
    }
    if (::write(fds[1], report.data(), report.size()) < 0) code = 101;
    ::_exit(code);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return out + " exit=" + std::to_string(code);
}

namespace {

// Runs an account tool, retrying while another process holds /etc/passwd's lock.
int RunAccountTool(const std::vector<std::string>& argv, std::string* err) {
  CommandResult r;
  for (int attempt = 0; attempt < 20; ++attempt) {
    r = RunCommand(argv);
    if (r.exit_code != 10 && r.exit_code != 1) break;  // 10/1: lock busy (shadow-utils)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  *err = r.err;
  return r.exit_code;
}

bool IsMember(const std::string& user, const std::string& group) {
  const passwd* pw = ::getpwnam(user.c_str());
  const struct group* g = ::getgrnam(group.c_str());
  if (pw == nullptr || g == nullptr) return false;
  if (pw->pw_gid == g->gr_gid) return true;
  for (char** m = g->gr_mem; *m != nullptr; ++m) {
    if (user == *m) return true;
  }
  return false;
}

}  // namespace

std::string EnsureUsers(const std::string& group, const std::vector<std::string>& members,
                        const std::vector<std::string>& outsiders) {
  if (::geteuid() != 0) return "not root";
  std::string err;
  if (::getgrnam(group.c_str()) == nullptr) {
    int rc = RunAccountTool({"/usr/sbin/groupadd", "--system", group}, &err);
    if (rc != 0 && rc != 9 && ::getgrnam(group.c_str()) == nullptr) return "groupadd: " + err;
  }
  auto add_user = [&](const std::string& user) -> std::string {
    if (::getpwnam(user.c_str()) != nullptr) return {};
    int rc = RunAccountTool({"/usr/sbin/useradd", "--system", "--no-create-home", "--no-user-group",
                             "--gid", "nogroup", "--shell", "/usr/sbin/nologin", user},
                            &err);
    if (rc != 0 && rc != 9 && ::getpwnam(user.c_str()) == nullptr) return "useradd: " + err;
    return {};
  };
  for (const std::string& user : members) {
    if (std::string e = add_user(user); !e.empty()) return e;
    if (!IsMember(user, group)) {
      int rc = RunAccountTool({"/usr/sbin/usermod", "--append", "--groups", group, user}, &err);
      if (rc != 0 && !IsMember(user, group)) return "usermod: " + err;
    }
  }
  for (const std::string& user : outsiders) {
    if (std::string e = add_user(user); !e.empty()) return e;
    if (IsMember(user, group)) return user + " is a member of " + group + "; it must not be";
  }
  return {};
}

void ReapExited(const std::vector<pid_t>& pids) {
  for (pid_t pid : pids) {
    int status;
    ::waitpid(pid, &status, WNOHANG);
  }
}

}  // namespace kv::testing
