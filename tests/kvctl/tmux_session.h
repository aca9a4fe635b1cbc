// A detached tmux session on a private server socket, for tests of kvctl's terminal UIs
// (top, the interactive shell). The destructor kills the server and removes the socket, so no
// tmux process or session outlives the test, passing or failing.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "tests/testing/kvd_harness.h"

namespace kv::testing {

class TmuxSession {
 public:
  TmuxSession() {
    char tmpl[] = "/tmp/kvctl_tmux_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    socket_ = dir_ + "/tmux.sock";
    name_ = "kvctl" + std::to_string(::getpid());
  }
  ~TmuxSession() {
    Tmux({"kill-server"});
    ::unlink(socket_.c_str());
    for (const std::string& f : files_) ::unlink(f.c_str());
    ::rmdir(dir_.c_str());
  }
  TmuxSession(const TmuxSession&) = delete;
  TmuxSession& operator=(const TmuxSession&) = delete;

  // A path in the session's private directory, removed by the destructor.
  std::string File(const std::string& name) {
    files_.push_back(dir_ + "/" + name);
    return files_.back();
  }
  // Starts `command` (run by sh) in a detached session of the given size.
  CommandResult Start(const std::string& command, int width = 160, int height = 40) {
    return Tmux({"new-session", "-d", "-s", name_, "-x", std::to_string(width), "-y",
                 std::to_string(height), command});
  }
  CommandResult Tmux(std::vector<std::string> args) {
    args.insert(args.begin(), {"/usr/bin/tmux", "-S", socket_});
    return RunCommand(args, {}, {"TERM=xterm"});
  }
  std::string Screen() { return Tmux({"capture-pane", "-p", "-t", name_}).out; }
  // tmux send-keys: each argument is a key name ("Enter", "Up", "C-d") or literal text.
  bool SendKeys(std::vector<std::string> keys) {
    keys.insert(keys.begin(), {"send-keys", "-t", name_});
    return Tmux(keys).exit_code == 0;
  }
  bool Alive() { return Tmux({"has-session", "-t", name_}).exit_code == 0; }

 private:
  std::string dir_, socket_, name_;
  std::vector<std::string> files_;
};

}  // namespace kv::testing
