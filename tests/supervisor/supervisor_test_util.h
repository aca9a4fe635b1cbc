// Helpers for the supervisor tests: registry look-ups, scoped environment variables and files,
// a systemd notification listener, and running code as another user.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "kv/client.h"
#include "shm/registry.h"

namespace kv::testing {

// The value of `key`, "NOT_FOUND", or the error as text.
std::string Get(Bucket& bucket, std::string_view key);

// The registry entry of `bucket` in `ns`, if both exist.
std::optional<shm::BucketRecord> Record(const std::string& ns, const std::string& bucket);

// Waits until `bucket` is in `state` (shm::BucketState) with a worker pid other than `not_pid`.
bool WaitForState(const std::string& ns, const std::string& bucket, std::uint32_t state,
                  std::chrono::milliseconds timeout, pid_t not_pid = -1);

// setenv for the life of the object (kvd started meanwhile inherits it); restores on destruction.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const std::string& value);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// A file path under /tmp removed on destruction (whether or not it was created).
class ScopedPath {
 public:
  explicit ScopedPath(const std::string& stem);
  ~ScopedPath();
  const std::string& path() const { return path_; }
  void Write(const std::string& content) const;

 private:
  std::string path_;
};

// A datagram socket in the abstract namespace, as systemd's NOTIFY_SOCKET is.
class NotifyListener {
 public:
  NotifyListener();
  ~NotifyListener();
  // The value for NOTIFY_SOCKET ("@name").
  std::string address() const { return "@" + name_; }
  // Receives one datagram within `timeout`; nullopt if none came.
  std::optional<std::string> Receive(std::chrono::milliseconds timeout);
  // Receives datagrams, appending them to *log, until one contains `needle` or `timeout` passes.
  bool WaitFor(const std::string& needle, std::chrono::milliseconds timeout,
               std::vector<std::string>* log);

 private:
  std::string name_;
  int fd_ = -1;
};

// Runs `fn` in a forked child with the identity of `user` (its uid, primary and supplementary
// groups). Returns what the child wrote to its `report` argument, then "exit=<code>".
std::string RunAsUser(const std::string& user, const std::function<int(std::string* report)>& fn);

// Creates group `group` and users (system accounts, no home, no login) if missing; `members`
// are made members of `group`, `outsiders` not. Returns an error text, empty on success.
std::string EnsureUsers(const std::string& group, const std::vector<std::string>& members,
                        const std::vector<std::string>& outsiders);

// Reaps `pids` if they are (re-parented) children of this process and have exited.
void ReapExited(const std::vector<pid_t>& pids);

}  // namespace kv::testing
