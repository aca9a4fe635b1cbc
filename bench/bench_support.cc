#include "bench/bench_support.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
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

std::string DefaultKvdPath() {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "kvd";
  return self.parent_path().string() + "/../daemon/kvd";
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

Bucket OpenBucketOrExit(const std::string& ns, const std::string& bucket) {
  ClientOptions options;
  options.ns = ns;
  Result<std::shared_ptr<Client>> client = Client::Open(options);
  if (!client.ok()) {
    std::fprintf(stderr, "cannot open client: %s\n", client.status().ToString().c_str());
    ::_exit(1);
  }
  Result<Bucket> b = (*client)->OpenBucket(bucket);
  if (!b.ok()) {
    std::fprintf(stderr, "cannot open bucket '%s': %s\n", bucket.c_str(),
                 b.status().ToString().c_str());
    ::_exit(1);
  }
  return *b;  // the Bucket keeps what it needs of the client alive
}

namespace {

// Every process but this one whose command line has "--namespace <ns>": kvd, its spawner and
// spare, its workers (forked or exec'd, they keep kvd's arguments).
std::vector<pid_t> ProcessesOfNamespace(const std::string& ns) {
  std::vector<pid_t> out;
  const std::string needle = std::string("--namespace") + '\0' + ns + '\0';
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    pid_t pid = static_cast<pid_t>(std::atoi(entry.path().filename().c_str()));
    if (pid <= 0 || pid == ::getpid()) continue;
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmdline.find(needle) != std::string::npos) out.push_back(pid);
  }
  return out;
}

}  // namespace

BenchDaemon::BenchDaemon(BenchDaemonOptions options)
    : ns_("kvbench" + std::to_string(::getpid()) + options.ns_suffix) {
  std::string kvd = options.kvd.empty() ? DefaultKvdPath() : options.kvd;
  std::vector<std::string> args = {kvd, "--namespace", ns_,           "--config",
                                   "",  "--ephemeral", "--log-level", options.log_level};
  args.insert(args.end(), options.args.begin(), options.args.end());
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
  if (pid_ < 0) {
    std::perror("fork kvd");
    pid_ = 0;
  }
}

BenchDaemon::~BenchDaemon() { Stop(); }

void BenchDaemon::Stop(std::chrono::milliseconds grace) {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + grace;
    int status;
    pid_t reaped;
    while ((reaped = ::waitpid(pid_, &status, WNOHANG)) == 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (reaped == 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
    pid_ = 0;
  }
  // A kvd that was killed, or died, leaves its workers running.
  std::vector<pid_t> left = ProcessesOfNamespace(ns_);
  for (pid_t pid : left) ::kill(pid, SIGKILL);
  for (pid_t pid : left) ::waitpid(pid, nullptr, 0);  // ECHILD at once if not our child
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm", ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind(ns_ + ".", 0) == 0) shm::Segment::Remove(name);
  }
}

std::shared_ptr<Client> BenchDaemon::Connect(ClientOptions options) {
  options.ns = ns_;
  for (int i = 0; i < 2000 && pid_ > 0; ++i) {
    int status;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = 0;  // exited at start (bad flags, namespace in use)
      break;
    }
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
