// kv_supervisor_bench: what supervision costs (DESIGN.md section 5).
//   - create N buckets through kvd (control round trip + worker spawn + worker ready): p50/p99;
//   - PSS of an idle worker (/proc/<pid>/smaps_rollup), mean over all workers;
//   - kill a worker (SIGKILL) and time until the next write to its bucket succeeds: p50/max.
// Starts its own kvd (--ephemeral, in a namespace of its own) and removes everything it made.
//
// Usage: kv_supervisor_bench [--buckets N] [--kills K] [--kvd PATH] [--json]
#include <dirent.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "kv/client.h"
#include "shm/names.h"
#include "shm/segment.h"
#include "shm/unix_socket.h"

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

std::string DefaultKvdPath() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "kvd";
  std::string self(buf, static_cast<std::size_t>(n));
  return self.substr(0, self.rfind('/')) + "/../daemon/kvd";  // build tree: bench/ next to daemon/
}

// Pss of a process in KiB (smaps_rollup), 0 if unreadable.
long PssKib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Pss:", 0) == 0) return std::atol(line.c_str() + 4);
  }
  return 0;
}

void RemoveNamespaceObjects(const std::string& ns) {
  std::vector<std::string> names;
  if (DIR* dir = ::opendir("/dev/shm")) {
    while (dirent* e = ::readdir(dir)) {
      if (std::string(e->d_name).rfind(ns + ".", 0) == 0) names.push_back(e->d_name);
    }
    ::closedir(dir);
  }
  for (const std::string& name : names) kv::shm::Segment::Remove(name);
}

}  // namespace

int main(int argc, char** argv) {
  int buckets = 1000;
  int kills = 20;
  bool json = false;
  std::string kvd_path = DefaultKvdPath();
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json") {
      json = true;
    } else if (a == "--buckets" && i + 1 < argc) {
      buckets = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--kills" && i + 1 < argc) {
      kills = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--kvd" && i + 1 < argc) {
      kvd_path = argv[++i];
    } else {
      std::cerr << "usage: kv_supervisor_bench [--buckets N] [--kills K] [--kvd PATH] [--json]\n";
      return 2;
    }
  }
  kills = std::min(kills, buckets);
  const std::string ns = "kvbench" + std::to_string(::getpid());

  std::printf("kv_supervisor_bench: %d buckets, %d worker kills, kvd %s\n", buckets, kills,
              kvd_path.c_str());
#ifndef NDEBUG
  std::printf("WARNING: debug build (assertions on): figures are not representative\n");
#endif
#if defined(__SANITIZE_ADDRESS__)
  std::printf("WARNING: sanitizer build: figures are not representative\n");
#endif

  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  pid_t kvd = ::fork();
  if (kvd == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    std::string max = std::to_string(buckets + 16);
    ::execl(kvd_path.c_str(), kvd_path.c_str(), "--namespace", ns.c_str(), "--config", "",
            "--ephemeral", "--log-level", "warn", "--max-buckets", max.c_str(), nullptr);
    std::perror("exec kvd");
    ::_exit(127);
  }
  std::shared_ptr<kv::Client> client;
  for (int i = 0; i < 5000 && !client; ++i) {
    int status;
    if (::waitpid(kvd, &status, WNOHANG) == kvd) {
      std::cerr << "kvd exited at start\n";
      return 1;
    }
    int fd = kv::shm::ConnectSeqpacket(kv::shm::ControlSocketAddress(ns));
    if (fd >= 0) {
      ::close(fd);
      kv::ClientOptions options;
      options.ns = ns;
      auto opened = kv::Client::Open(options);
      if (opened.ok()) client = opened.value();
    }
    if (!client) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  int rc = 0;
  nlohmann::json out;
  if (!client) {
    std::cerr << "kvd did not become ready\n";
    rc = 1;
  } else {
    std::vector<double> create_ms;
    for (int b = 0; b < buckets && rc == 0; ++b) {
      auto t0 = Clock::now();
      kv::Status s = client->CreateBucket("bucket" + std::to_string(b));
      create_ms.push_back(Ms(Clock::now() - t0));
      if (!s.ok()) {
        std::cerr << "create failed: " << s.ToString() << "\n";
        rc = 1;
      }
    }
    // Idle workers: let them finish their start-up spin and sleep.
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    auto st = client->GetStatus();
    std::vector<double> pss;
    if (st.ok()) {
      for (const kv::BucketInfo& b : st->buckets) {
        if (b.worker_pid > 0) pss.push_back(static_cast<double>(PssKib(b.worker_pid)));
      }
    }
    double pss_mean = 0;
    for (double p : pss) pss_mean += p;
    if (!pss.empty()) pss_mean /= static_cast<double>(pss.size());
    long kvd_pss = PssKib(kvd);

    std::vector<double> restart_ms;
    for (int k = 0; k < kills && rc == 0 && st.ok(); ++k) {
      const kv::BucketInfo& info = st->buckets[static_cast<std::size_t>(k)];
      auto bucket = client->OpenBucket(info.name);
      if (!bucket.ok() || !bucket->Put("warm", "up").ok()) {
        rc = 1;
        break;
      }
      auto t0 = Clock::now();
      ::kill(info.worker_pid, SIGKILL);
      kv::Status s;
      for (int attempt = 0; attempt < 1000; ++attempt) {
        s = bucket->Put("after", "kill");
        if (s.ok()) break;
      }
      restart_ms.push_back(Ms(Clock::now() - t0));
      if (!s.ok()) {
        std::cerr << "write after kill failed: " << s.ToString() << "\n";
        rc = 1;
      }
    }

    std::printf("%-34s %10s %10s %10s   %s\n", "workload", "p50", "p99", "max", "target (must)");
    std::printf("%-34s %7.3f ms %7.3f ms %7.3f ms   <= 1 ms p50 (<= 2 ms)\n", "create bucket",
                Percentile(create_ms, 0.5), Percentile(create_ms, 0.99),
                Percentile(create_ms, 1.0));
    std::printf("%-34s %7.3f ms %7.3f ms %7.3f ms   <= 10 ms (<= 50 ms)\n",
                "worker SIGKILL -> write served", Percentile(restart_ms, 0.5),
                Percentile(restart_ms, 0.99), Percentile(restart_ms, 1.0));
    std::printf("%-34s %7.0f KiB (mean of %zu; p50 %.0f, max %.0f)   <= 512 KiB (<= 1 MiB)\n",
                "idle worker PSS", pss_mean, pss.size(), Percentile(pss, 0.5),
                Percentile(pss, 1.0));
    std::printf("%-34s %7ld KiB\n", "kvd PSS", kvd_pss);
    out = {{"benchmark", "supervisor"},
           {"buckets", buckets},
           {"kills", kills},
           {"create_ms_p50", Percentile(create_ms, 0.5)},
           {"create_ms_p99", Percentile(create_ms, 0.99)},
           {"create_ms_max", Percentile(create_ms, 1.0)},
           {"worker_pss_kib", pss_mean},
           {"worker_pss_kib_p50", Percentile(pss, 0.5)},
           {"worker_pss_kib_max", Percentile(pss, 1.0)},
           {"kvd_pss_kib", kvd_pss},
           {"restart_ms_p50", Percentile(restart_ms, 0.5)},
           {"restart_ms_p99", Percentile(restart_ms, 0.99)},
           {"restart_ms_max", Percentile(restart_ms, 1.0)}};
    if (!client->Shutdown().ok()) ::kill(kvd, SIGTERM);
  }
  int status = 0;
  for (int i = 0; i < 3000; ++i) {  // up to 30 s for 1,000 workers to stop
    if (::waitpid(kvd, &status, WNOHANG) == kvd) {
      kvd = 0;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (kvd != 0) {
    ::kill(kvd, SIGKILL);
    ::waitpid(kvd, &status, 0);
  }
  while (::waitpid(-1, &status, WNOHANG) > 0) {
  }
  RemoveNamespaceObjects(ns);
  if (json) std::printf("%s\n", out.dump().c_str());
  return rc;
}
