// Forked child processes for process tests. A child dies with the test process
// (PR_SET_PDEATHSIG) and ends with _exit, never returning into the test framework; it must open
// its own kv::Client (an inherited one must not be used after fork).
//
// ForkChild runs a function whose return value is the exit code; StartChild gives the child a
// pipe to report what it observed (one line per event), read back with CollectChildren.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace kv::testing {

struct Child {
  pid_t pid = -1;
  int out = -1;  // read end of the child's report pipe
  std::string report;
};

// Forks a child that runs `body` and exits with its return value (122 if it throws, 120 if the
// test process died before the child started). Returns the child's pid, -1 if fork failed.
inline pid_t ForkChild(const std::function<int()>& body) {
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(120);
  int code = 121;
  try {
    code = body();
  } catch (...) {
    code = 122;
  }
  ::_exit(code);
}

// Waits for `pid` until `timeout`; SIGKILLs it if it is still running (a hang). Returns its exit
// code, or -1 if it hung, or 128+signal if a signal killed it.
inline int WaitChild(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (r < 0) return -2;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

// Forks a child running body(report_fd), exiting 0 when it returns. Returns pid -1 on failure.
inline Child StartChild(const std::function<void(int report_fd)>& body) {
  int p[2];
  Child c;
  if (::pipe2(p, O_CLOEXEC) != 0) return c;
  c.pid = ForkChild([&] {
    ::close(p[0]);
    body(p[1]);
    return 0;
  });
  ::close(p[1]);
  if (c.pid < 0) {
    ::close(p[0]);
    return c;
  }
  c.out = p[0];
  return c;
}

// Writes one report line (atomic: shorter than PIPE_BUF).
inline void Report(int fd, const std::string& line) {
  std::string l = line + "\n";
  if (::write(fd, l.data(), l.size()) < 0) ::_exit(2);
}

// Reads every child's report until each closes its pipe, then reaps them all. Returns their exit
// statuses (as from waitpid).
inline std::vector<int> CollectChildren(std::vector<Child>* children) {
  std::vector<pollfd> fds;
  for (Child& c : *children) fds.push_back({c.out, POLLIN, 0});
  std::size_t open = fds.size();
  while (open > 0) {
    if (::poll(fds.data(), fds.size(), 60000) <= 0) break;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[65536];
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (*children)[i].report.append(buf, static_cast<std::size_t>(n));
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open;
      }
    }
  }
  std::vector<int> statuses;
  for (Child& c : *children) {
    int status = 0;
    ::waitpid(c.pid, &status, 0);
    statuses.push_back(status);
  }
  return statuses;
}

// Splits a report into lines.
inline std::vector<std::string> Lines(const std::string& report) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t i = 0; i < report.size(); ++i) {
    if (report[i] == '\n') {
      out.push_back(report.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;  // a last line without '\n' was cut by a kill: ignored
}

}  // namespace kv::testing
