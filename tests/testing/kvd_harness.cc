#include "tests/testing/kvd_harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string_view>
#include <thread>

#include "daemon/process_info.h"
#include "shm/names.h"
#include "shm/registry.h"
#include "shm/segment.h"
#include "shm/unix_socket.h"

namespace kv::testing {
namespace {

// Orphaned workers (after a kvd SIGKILL) are re-parented to this process, so that they can be
// reaped here instead of lingering as zombies under a pid 1 that may not reap.
const bool g_subreaper = [] {
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  return true;
}();

std::vector<char*> Argv(const std::vector<std::string>& args) {
  std::vector<char*> out;
  for (const std::string& a : args) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace

std::string UniqueNamespace() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  return std::string(kTestNamespacePrefix) + std::to_string(::getpid()) + "_" +
         std::to_string(counter++) + "_" + std::to_string(rd() % 100000);
}

pid_t NamespaceOwner(const std::string& ns) {
  std::string_view prefix = kTestNamespacePrefix;
  if (ns.compare(0, prefix.size(), prefix) != 0) return 0;
  std::size_t end = ns.find('_', prefix.size());
  if (end == std::string::npos || end == prefix.size()) return 0;
  pid_t pid = 0;
  for (std::size_t i = prefix.size(); i < end; ++i) {
    if (ns[i] < '0' || ns[i] > '9' || pid > 100'000'000) return 0;
    pid = pid * 10 + (ns[i] - '0');
  }
  return pid;
}

bool IsLeftoverNamespace(const std::string& ns) {
  pid_t owner = NamespaceOwner(ns);
  return owner > 0 && daemon::ProcessStartTicks(owner) == 0;  // 0: gone, or a zombie
}

std::string KvdPath() { return KV_TEST_KVD_PATH; }
std::string KvctlPath() { return KV_TEST_KVCTL_PATH; }

namespace {

std::vector<pid_t> ProcessesWithCommandLine(const std::string& ns, bool include_spawner) {
  std::vector<pid_t> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  const std::string needle = std::string("--namespace") + '\0' + ns + '\0';
  const std::string spawner = std::string("--spawner") + '\0';
  while (dirent* e = ::readdir(proc)) {
    pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0 || pid == ::getpid()) continue;
    std::string cmdline = daemon::ReadProcFile(std::string("/proc/") + e->d_name + "/cmdline");
    if (cmdline.find(needle) == std::string::npos) continue;
    if (!include_spawner && cmdline.find(spawner) != std::string::npos) continue;
    out.push_back(pid);
  }
  ::closedir(proc);
  return out;
}

}  // namespace

std::vector<pid_t> ProcessesOfNamespace(const std::string& ns) {
  return ProcessesWithCommandLine(ns, true);
}

std::vector<pid_t> KvdAndWorkersOfNamespace(const std::string& ns) {
  return ProcessesWithCommandLine(ns, false);
}

std::vector<std::string> ShmObjectsOfNamespace(const std::string& ns) {
  std::vector<std::string> out;
  DIR* dir = ::opendir("/dev/shm");
  if (dir == nullptr) return out;
  while (dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name.rfind(ns + ".", 0) == 0) out.push_back(name);
  }
  ::closedir(dir);
  return out;
}

void KillAndAwaitExit(const std::vector<pid_t>& pids) {
  std::vector<std::pair<pid_t, std::uint64_t>> victims;
  for (pid_t pid : pids) victims.emplace_back(pid, daemon::ProcessStartTicks(pid));
  for (const auto& [pid, start] : victims) {
    ::kill(pid, SIGCONT);
    ::kill(pid, SIGKILL);
  }
  for (const auto& [pid, start] : victims) {
    for (int i = 0; i < 2000; ++i) {  // 10 s: a SIGKILLed process that outlives it is a bug
      int status;
      if (::waitpid(pid, &status, WNOHANG) == pid) break;
      if (!daemon::ProcessMatches(pid, start)) {  // a zombie of another parent, or gone
        ::waitpid(pid, &status, WNOHANG);         // it may have become our zombie just now
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
}

void SweepNamespace(const std::string& ns) {
  // A spawner killed in the same round may have forked a spare first: look again until none.
  for (int round = 0; round < 10; ++round) {
    std::vector<pid_t> pids = ProcessesOfNamespace(ns);
    if (pids.empty()) break;
    KillAndAwaitExit(pids);
  }
  for (const std::string& name : ShmObjectsOfNamespace(ns)) shm::Segment::Remove(name);
}

KvdInstance::KvdInstance(std::vector<std::string> extra_args, std::string kvd_path)
    : ns_(UniqueNamespace()), extra_args_(std::move(extra_args)), kvd_path_(std::move(kvd_path)) {
  EXPECT_TRUE(Start()) << "kvd did not become ready in namespace " << ns_;
}

KvdInstance::~KvdInstance() {
  if (pid_ != 0) Stop();
  SweepNamespace(ns_);
}

bool KvdInstance::Start() {
  std::vector<std::string> args = {kvd_path_, "--namespace", ns_, "--log-level", "warn"};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // a crashed test does not leave kvd running
    if (::getppid() != parent) ::_exit(127);
    std::vector<char*> argv = Argv(args);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  std::string address = shm::ControlSocketAddress(ns_);
  return WaitFor(
             [&] {
               int status;
               if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                 pid_ = 0;
                 return true;  // exited: not ready
               }
               int fd = shm::ConnectSeqpacket(address);
               if (fd < 0) return false;
               ::close(fd);
               shm::ShmError error;  // ready: kvd has recorded itself in the registry
               std::optional<shm::RegistryReader> registry = shm::RegistryReader::Open(ns_, &error);
               return registry && registry->Kvd().pid == pid_;
             },
             std::chrono::seconds(10)) &&
         pid_ != 0;
}

void KvdInstance::Signal(int sig) {
  if (pid_ == 0) return;
  ::kill(pid_, sig);
  if (sig == SIGKILL) {
    ::waitpid(pid_, nullptr, 0);
    pid_ = 0;
  }
}

int KvdInstance::Stop() {
  if (pid_ == 0) return -1;
  ::kill(pid_, SIGTERM);
  int status = 0;
  bool exited =
      WaitFor([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, std::chrono::seconds(10));
  if (!exited) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
  }
  pid_ = 0;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::shared_ptr<Client> KvdInstance::NewClient(std::chrono::milliseconds timeout) {
  ClientOptions options;
  options.ns = ns_;
  options.timeout = timeout;
  Result<std::shared_ptr<Client>> client = Client::Open(options);
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return client.ok() ? client.value() : nullptr;
}

pid_t KvdInstance::WorkerPid(const std::string& bucket) {
  shm::ShmError error;
  std::optional<shm::RegistryReader> registry = shm::RegistryReader::Open(ns_, &error);
  if (!registry) return 0;
  std::optional<shm::BucketRecord> r = registry->Find(bucket);
  return r ? r->worker_pid : 0;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream all;
  all << in.rdbuf();
  return all.str();
}

CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& input,
                         const std::vector<std::string>& extra_env) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    return {};
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    for (const std::string& kv : extra_env) ::putenv(const_cast<char*>(kv.c_str()));
    std::vector<char*> args = Argv(argv);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  std::thread writer([&] {
    std::size_t done = 0;
    while (done < input.size()) {
      ssize_t n = ::write(in[1], input.data() + done, input.size() - done);
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    ::close(in[1]);
  });
  CommandResult result;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    if (::poll(fds, 2, -1) < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? result.out : result.err).append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  writer.join();
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace kv::testing
