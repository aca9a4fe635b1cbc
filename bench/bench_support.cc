#include "bench/bench_support.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <thread>
#include <vector>

#include "shm/segment.h"

namespace kv::bench {

const char* BuildType() {
#if defined(__SANITIZE_ADDRESS__)
  return "sanitizer";
#elif !defined(__OPTIMIZE__)
  return "debug";
#else
  return "release";
#endif
}

void PrintHeader(const std::string& name) {
  std::printf("%s (kv %s), build %s, %u cpus\n", name.c_str(), KV_VERSION, BuildType(),
              std::thread::hardware_concurrency());
  if (std::string(BuildType()) != "release") {
    std::printf("WARNING: %s build: figures are not representative\n", BuildType());
  }
}

BenchDaemon::BenchDaemon(std::string kvd, const std::string& extra_args)
    : ns_("kvbench" + std::to_string(::getpid())) {
  if (kvd.empty()) {
    kvd = (std::filesystem::read_symlink("/proc/self/exe").parent_path() / ".." / "daemon" / "kvd")
              .string();
  }
  std::vector<std::string> args = {kvd, "--namespace", ns_, "--ephemeral", "--log-level", "error"};
  std::istringstream extra(extra_args);
  for (std::string a; extra >> a;) args.push_back(a);
  pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(127);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    std::perror("exec kvd");
    ::_exit(127);
  }
}

BenchDaemon::~BenchDaemon() {
  ::kill(pid_, SIGTERM);
  int status;
  for (int i = 0; i < 1000 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm", ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind(ns_ + ".", 0) == 0) shm::Segment::Remove(name);
  }
}

std::shared_ptr<Client> BenchDaemon::Connect(ClientOptions options) {
  options.ns = ns_;
  for (int i = 0; i < 2000; ++i) {
    auto client = Client::Open(options);
    // kvd answers a drop of a bucket that does not exist once it accepts requests.
    if (client.ok() && client.value()->DropBucket("-").code() == Code::kBucketNotFound) {
      return client.value();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return nullptr;
}

}  // namespace kv::bench
