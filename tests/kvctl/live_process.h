// A child process with pipes on stdin, stdout and stderr, for tests that talk to a long-running
// command (kvctl watch, the shell after SUBSCRIBE) while it runs. The destructor SIGKILLs and
// reaps the child if it is still running, so no process outlives the test, passing or failing.
#pragma once

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace kv::testing {

class LiveProcess {
 public:
  explicit LiveProcess(const std::vector<std::string>& argv) {
    int in[2], out[2], err[2];
    if (::pipe(in) != 0 || ::pipe(out) != 0 || ::pipe(err) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], STDIN_FILENO);
      ::dup2(out[1], STDOUT_FILENO);
      ::dup2(err[1], STDERR_FILENO);
      for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) ::close(fd);
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    in_ = in[1];
    out_ = out[0];
    err_ = err[0];
  }
  ~LiveProcess() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    for (int fd : {in_, out_, err_}) {
      if (fd >= 0) ::close(fd);
    }
  }
  LiveProcess(const LiveProcess&) = delete;
  LiveProcess& operator=(const LiveProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool Write(const std::string& s) {
    return in_ >= 0 && ::write(in_, s.data(), s.size()) == static_cast<ssize_t>(s.size());
  }
  void CloseStdin() {
    if (in_ >= 0) ::close(in_);
    in_ = -1;
  }
  // The next stdout line (without '\n') within timeout_ms; "<timeout>" or "<eof>" otherwise.
  std::string ReadLine(int timeout_ms) { return ReadLineFrom(out_, &out_buf_, timeout_ms); }
  // Everything left on stdout until EOF (call after the child exited).
  std::string RestOfStdout() { return Drain(out_, &out_buf_); }
  std::string RestOfStderr() { return Drain(err_, &err_buf_); }
  // Threads the child runs now (0 if it is gone).
  int ThreadCount() const {
    DIR* d = ::opendir(("/proc/" + std::to_string(pid_) + "/task").c_str());
    if (d == nullptr) return 0;
    int n = 0;
    while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
    return n;
  }
  // Waits for the child to exit; its exit code, or 128 + signal.
  int Wait() {
    int status = 0;
    if (::waitpid(pid_, &status, 0) != pid_) return -1;
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  static std::string ReadLineFrom(int fd, std::string* buf, int timeout_ms) {
    for (;;) {
      std::size_t nl = buf->find('\n');
      if (nl != std::string::npos) {
        std::string line = buf->substr(0, nl);
        buf->erase(0, nl + 1);
        return line;
      }
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, timeout_ms) <= 0) return "<timeout>";
      char chunk[4096];
      ssize_t n = ::read(fd, chunk, sizeof chunk);
      if (n <= 0) return "<eof>";
      buf->append(chunk, static_cast<std::size_t>(n));
    }
  }
  static std::string Drain(int fd, std::string* buf) {
    char chunk[4096];
    ssize_t n;
    while ((n = ::read(fd, chunk, sizeof chunk)) > 0)
      buf->append(chunk, static_cast<std::size_t>(n));
    std::string all = std::move(*buf);
    buf->clear();
    return all;
  }

  pid_t pid_ = -1;
  bool reaped_ = false;
  int in_ = -1, out_ = -1, err_ = -1;
  std::string out_buf_, err_buf_;
};

}  // namespace kv::testing
