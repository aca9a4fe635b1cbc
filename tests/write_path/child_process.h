// Forked client processes for write-path tests: each child runs a function with a pipe to report
// what it observed (one line per event), and dies with the test process (PR_SET_PDEATHSIG).
//
// A child must open its own kv::Client (an inherited one must not be used after fork) and ends
// with _exit, never returning into the test framework.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

namespace kv::testing {

struct Child {
  pid_t pid = -1;
  int out = -1;  // read end of the child's report pipe
  std::string report;
};

// Forks a child running body(report_fd). Returns pid -1 on failure.
inline Child StartChild(const std::function<void(int report_fd)>& body) {
  int p[2];
  Child c;
  if (::pipe2(p, O_CLOEXEC) != 0) return c;
  pid_t parent = ::getpid();
  c.pid = ::fork();
  if (c.pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    ::close(p[0]);
    body(p[1]);
    ::_exit(0);
  }
  ::close(p[1]);
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
