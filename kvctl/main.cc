// kvctl: the kv admin tool. Exit codes: 0 success, 1 not found / operation failed, 2 usage.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "kv/client.h"
#include "kvctl/text_protocol.h"

namespace {

constexpr int kExitFailed = 1;

int Fail(const kv::Status& s) {
  std::cerr << "kvctl: " << s.ToString() << "\n";
  return kExitFailed;
}

std::string HumanBytes(std::uint64_t b) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(1);
  if (b >= (1u << 20)) {
    out << static_cast<double>(b) / (1u << 20) << " MiB";
  } else {
    out << static_cast<double>(b) / 1024 << " KiB";
  }
  return out.str();
}

std::string Uptime(std::uint64_t started_unix_ms) {
  if (started_unix_ms == 0) return "-";
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  std::uint64_t s = (static_cast<std::uint64_t>(now) - started_unix_ms) / 1000;
  std::ostringstream out;
  if (s >= 86400) out << s / 86400 << "d";
  if (s >= 3600) out << (s / 3600) % 24 << "h";
  if (s >= 60) out << (s / 60) % 60 << "m";
  out << s % 60 << "s";
  return out.str();
}

int Status(kv::Client& client) {
  kv::Result<kv::InstanceStatus> st = client.GetStatus();
  if (!st.ok()) return Fail(st.status());
  if (st->kvd_pid != 0) {
    std::cout << "kvd  namespace " << st->ns << "  pid " << st->kvd_pid << "  running  uptime "
              << Uptime(st->kvd_started_unix_ms) << "  buckets " << st->buckets.size() << "\n";
  } else {
    std::cout << "kvd  namespace " << st->ns << "  not running  buckets " << st->buckets.size()
              << "\n";
  }
  if (st->buckets.empty()) {
    std::cout << "no buckets\n";
    return st->kvd_pid != 0 ? 0 : kExitFailed;
  }
  std::cout << std::left << std::setw(20) << "BUCKET" << std::setw(10) << "STATE" << std::setw(9)
            << "PID" << std::setw(10) << "RESTARTS" << std::setw(10) << "UPTIME" << std::setw(10)
            << "KEYS" << std::setw(6) << "GEN"
            << "MEMORY\n";
  for (const kv::BucketInfo& b : st->buckets) {
    std::cout << std::left << std::setw(20) << b.name << std::setw(10) << b.state << std::setw(9)
              << (b.worker_pid != 0 ? std::to_string(b.worker_pid) : "-") << std::setw(10)
              << b.restarts << std::setw(10)
              << (b.worker_pid != 0 ? Uptime(b.started_unix_ms) : "-") << std::setw(10) << b.keys
              << std::setw(6) << b.generation << HumanBytes(b.memory_bytes);
    if (!b.reason.empty()) std::cout << "  (" << b.reason << ")";
    std::cout << "\n";
  }
  return st->kvd_pid != 0 ? 0 : kExitFailed;
}

int Shell(kv::Client& client) {
  bool tty = ::isatty(STDIN_FILENO) != 0;
  std::string line;
  if (tty) std::cout << "kv> " << std::flush;
  while (std::getline(std::cin, line)) {
    bool crlf = !line.empty() && line.back() == '\r';
    if (crlf) line.pop_back();
    const char* eol = crlf ? "\r\n" : "\n";
    if (tty && line.find_first_not_of(" \t") == std::string::npos) {
      std::cout << "kv> " << std::flush;
      continue;
    }
    for (const std::string& reply : kv::ctl::RunTextCommand(client, line))
      std::cout << reply << eol;
    std::cout << std::flush;
    if (tty) std::cout << "kv> " << std::flush;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kvctl: administer and use a kv instance", "kvctl"};
  app.require_subcommand(1);
  kv::ClientOptions options;
  app.add_option("-n,--namespace", options.ns, "instance namespace (env KV_NAMESPACE, default kv)");
  int timeout_ms = 5000;
  app.add_option("--timeout-ms", timeout_ms, "how long a write waits for its reply")
      ->check(CLI::Range(1, 3600000));
  std::string bucket, key, value;

  auto* create = app.add_subcommand("create", "create a bucket (OK if it exists)");
  create->add_option("bucket", bucket)->required();
  auto* drop = app.add_subcommand("drop", "stop a bucket's worker and delete its data");
  drop->add_option("bucket", bucket)->required();
  auto* restart =
      app.add_subcommand("restart", "restart a bucket's worker (clears a failed state)");
  restart->add_option("bucket", bucket)->required();
  auto* put = app.add_subcommand("put", "store a value");
  put->add_option("bucket", bucket)->required();
  put->add_option("key", key)->required();
  put->add_option("value", value)->required();
  auto* get = app.add_subcommand("get", "print a value (read directly from shared memory)");
  get->add_option("bucket", bucket)->required();
  get->add_option("key", key)->required();
  auto* del = app.add_subcommand("del", "delete a key");
  del->add_option("bucket", bucket)->required();
  del->add_option("key", key)->required();
  auto* buckets = app.add_subcommand("buckets", "list buckets");
  auto* status = app.add_subcommand("status", "kvd and each worker: pid, state, keys, memory");
  auto* shell = app.add_subcommand("shell", "speak the KV text protocol on stdin/stdout");
  auto* shutdown = app.add_subcommand("shutdown", "stop kvd (workers stopped, data kept)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  options.timeout = std::chrono::milliseconds(timeout_ms);
  kv::Result<std::shared_ptr<kv::Client>> opened = kv::Client::Open(options);
  if (!opened.ok()) return Fail(opened.status());
  kv::Client& client = *opened.value();

  if (*create) {
    kv::Status s = client.CreateBucket(bucket);
    return s.ok() ? 0 : Fail(s);
  }
  if (*drop) {
    kv::Status s = client.DropBucket(bucket);
    return s.ok() ? 0 : Fail(s);
  }
  if (*restart) {
    kv::Status s = client.RestartBucket(bucket);
    return s.ok() ? 0 : Fail(s);
  }
  if (*shutdown) {
    kv::Status s = client.Shutdown();
    return s.ok() ? 0 : Fail(s);
  }
  if (*status) return Status(client);
  if (*buckets) {
    kv::Result<kv::InstanceStatus> st = client.GetStatus();
    if (!st.ok()) return Fail(st.status());
    for (const kv::BucketInfo& b : st->buckets) std::cout << b.name << "\n";
    return 0;
  }
  if (*shell) return Shell(client);

  kv::Result<kv::Bucket> b = client.OpenBucket(bucket);
  if (!b.ok()) return Fail(b.status());
  if (*put) {
    kv::Status s = b->Put(key, value);
    return s.ok() ? 0 : Fail(s);
  }
  if (*del) {
    kv::Status s = b->Delete(key);
    if (s.IsNotFound())
      return Fail(
          kv::Status(kv::Code::kNotFound, "key '" + key + "' not in bucket '" + bucket + "'"));
    return s.ok() ? 0 : Fail(s);
  }
  if (*get) {
    kv::Status s = b->Get(key, &value);
    if (s.IsNotFound())
      return Fail(
          kv::Status(kv::Code::kNotFound, "key '" + key + "' not in bucket '" + bucket + "'"));
    if (!s.ok()) return Fail(s);
    std::cout << value << "\n";
    return 0;
  }
  return 2;
}
