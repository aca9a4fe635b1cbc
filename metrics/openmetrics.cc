#include "metrics/openmetrics.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

namespace kv::metrics {
namespace {

constexpr const char* kStates[] = {"starting", "running", "restarting", "failed", "dropping"};

// A label value: backslash, double quote and newline escaped (text format 0.0.4).
std::string Escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

class Writer {
 public:
  void Family(const char* name, const char* type, const char* help) {
    out_ += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  }
  void Sample(const char* name, const std::string& labels, double value) {
    char number[64];
    std::snprintf(number, sizeof number, "%.17g", value);
    out_ += std::string(name) + "{" + labels + "} " + number + "\n";
  }
  void Sample(const char* name, const std::string& labels, std::uint64_t value) {
    out_ += std::string(name) + "{" + labels + "} " + std::to_string(value) + "\n";
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

Result<InstanceMetrics> Collect(Client& client) {
  Result<InstanceStatus> status = client.GetStatus();
  if (!status.ok()) return status.status();
  InstanceMetrics m;
  m.ns = status->ns;
  m.kvd_up = status->kvd_pid != 0;
  if (m.kvd_up) {
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    std::int64_t ms = now - static_cast<std::int64_t>(status->kvd_started_unix_ms);
    m.kvd_uptime_seconds = ms > 0 ? static_cast<double>(ms) / 1000.0 : 0.0;
  }
  for (const BucketInfo& b : status->buckets) {
    BucketMetrics bm;
    bm.name = b.name;
    bm.state = b.state;
    bm.keys = b.keys;
    bm.memory_bytes = b.memory_bytes;
    bm.writes = b.writes;
    bm.restarts = b.restarts;
    bm.queue_depth = b.queue_depth;
    // The feed's head: a subscription from now starts at the next change's sequence.
    if (Result<Bucket> bucket = client.OpenBucket(b.name); bucket.ok()) {
      if (Result<Subscription> sub = bucket->Subscribe(); sub.ok()) {
        bm.feed_position = sub->position();
      }
    }
    m.buckets.push_back(std::move(bm));
  }
  return m;
}

std::string Format(const InstanceMetrics& m) {
  Writer w;
  const std::string ns = "namespace=\"" + Escape(m.ns) + "\"";
  w.Family("kv_up", "gauge", "1 if kvd is running for the namespace");
  w.Sample("kv_up", ns, std::uint64_t{m.kvd_up ? 1u : 0u});
  w.Family("kv_kvd_uptime_seconds", "gauge", "seconds since kvd started (0 if not running)");
  w.Sample("kv_kvd_uptime_seconds", ns, m.kvd_uptime_seconds);
  w.Family("kv_buckets", "gauge", "buckets in the registry");
  w.Sample("kv_buckets", ns, std::uint64_t{m.buckets.size()});
  std::uint64_t restarts = 0;
  for (const BucketMetrics& b : m.buckets) restarts += b.restarts;
  w.Family("kv_restarts_total", "counter", "worker restarts, summed over the buckets");
  w.Sample("kv_restarts_total", ns, restarts);

  struct Gauge {
    const char* name;
    const char* type;
    const char* help;
    std::uint64_t BucketMetrics::*field;
  };
  const Gauge per_bucket[] = {
      {"kv_bucket_keys", "gauge", "live keys", &BucketMetrics::keys},
      {"kv_bucket_memory_bytes", "gauge", "bytes of shared memory of the bucket's table",
       &BucketMetrics::memory_bytes},
      {"kv_bucket_writes_total", "counter", "writes applied since the bucket was created",
       &BucketMetrics::writes},
      {"kv_bucket_restarts_total", "counter", "restarts of the bucket's worker",
       &BucketMetrics::restarts},
      {"kv_bucket_queue_depth", "gauge",
       "most requests the worker found waiting at one look during its last second",
       &BucketMetrics::queue_depth},
      {"kv_bucket_feed_position", "gauge", "sequence of the next change in the bucket's feed",
       &BucketMetrics::feed_position},
  };
  for (const Gauge& g : per_bucket) {
    w.Family(g.name, g.type, g.help);
    for (const BucketMetrics& b : m.buckets) {
      w.Sample(g.name, ns + ",bucket=\"" + Escape(b.name) + "\"", b.*g.field);
    }
  }
  w.Family("kv_bucket_state", "gauge", "1 for the bucket's current state, 0 for the others");
  for (const BucketMetrics& b : m.buckets) {
    for (const char* state : kStates) {
      w.Sample("kv_bucket_state", ns + ",bucket=\"" + Escape(b.name) + "\",state=\"" + state + "\"",
               std::uint64_t{b.state == state ? 1u : 0u});
    }
  }
  return w.Take();
}

bool WriteFileAtomically(const std::string& path, const std::string& text, std::string* error) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    *error = "cannot create " + tmp + ": " + std::strerror(errno);
    return false;
  }
  ::fchmod(fd, 0644);  // whatever the umask: the collector runs as another user
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = "cannot write " + tmp + ": " + std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = "cannot replace " + path + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

}  // namespace kv::metrics
