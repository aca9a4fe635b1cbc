#include "tests/chaos/chaos_client.h"

#include <signal.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include "kv/client.h"

namespace kv::chaos {
namespace {

std::uint32_t Crc(const std::string& s) { return XXH32(s.data(), s.size(), 0); }

class Log {
 public:
  explicit Log(const std::string& path) : f_(std::fopen(path.c_str(), "a")) {}
  // Each line is flushed to the kernel at once: a SIGKILL right after loses nothing logged.
  void Line(const std::string& s) {
    std::fputs((s + "\n").c_str(), f_);
    std::fflush(f_);
  }

 private:
  std::FILE* f_;
};

}  // namespace

std::string MakeValue(const std::string& key, std::uint64_t seq) {
  std::string body = key + "|" + std::to_string(seq) + "|";
  return body + std::to_string(Crc(body));
}

std::optional<std::uint64_t> ParseValue(const std::string& key, const std::string& value) {
  auto last = value.rfind('|');
  if (last == std::string::npos) return std::nullopt;
  std::string body = value.substr(0, last + 1);
  if (std::to_string(Crc(body)) != value.substr(last + 1)) return std::nullopt;
  if (body.compare(0, key.size() + 1, key + "|") != 0) return std::nullopt;
  try {
    return std::stoull(body.substr(key.size() + 1));
  } catch (...) {
    return std::nullopt;
  }
}

void RunClient(const ClientConfig& config) {
  ::signal(SIGTERM, SIG_DFL);
  Log log(config.log_path);
  ClientOptions options;
  options.ns = config.ns;
  options.timeout = std::chrono::milliseconds(2000);
  std::mt19937_64 rng(static_cast<std::uint64_t>(::getpid()) * 7919 + config.client_id);
  std::map<std::string, std::uint64_t> next_seq;  // per bucket/key
  std::map<std::string, std::uint64_t> acked;     // last acknowledged seq (0 after a delete)
  std::uint64_t reads = 0, torn = 0, stale = 0;
  for (;;) {
    Result<std::shared_ptr<Client>> client = Client::Open(options);
    if (!client.ok()) {
      ::usleep(10000);  // kvd restarting
      continue;
    }
    for (int round = 0; round < 1000; ++round) {
      const std::string& bname = config.buckets[rng() % config.buckets.size()];
      Result<Bucket> bucket = client.value()->OpenBucket(bname);
      if (!bucket.ok()) {
        ::usleep(5000);
        continue;
      }
      for (int op = 0; op < 50; ++op) {
        std::string key = "c" + std::to_string(config.client_id) + "k" +
                          std::to_string(rng() % config.keys_per_bucket);
        std::string id = bname + " " + key;
        int dice = static_cast<int>(rng() % 100);
        if (dice < 40) {  // read and verify
          std::string value;
          Status s = bucket->Get(key, &value);
          ++reads;
          if (s.ok()) {
            std::optional<std::uint64_t> seq = ParseValue(key, value);
            if (!seq) {
              ++torn;
            } else if (*seq < acked[id] || *seq >= next_seq[id] + 1) {
              ++stale;
            }
          } else if (!s.IsNotFound()) {
            ++torn;  // a read must never fail while the bucket exists
          }
          if (reads % 500 == 0) {
            log.Line("R " + std::to_string(reads) + " " + std::to_string(torn) + " " +
                     std::to_string(stale));
          }
          continue;
        }
        if (dice < 50) {  // shared-nothing counter per client
          std::string ckey = "c" + std::to_string(config.client_id) + "ctr";
          log.Line("i " + bname + " " + ckey);
          Result<std::int64_t> r = bucket->Increment(ckey);
          if (r.ok()) {
            log.Line("I " + bname + " " + ckey + " " + std::to_string(r.value()));
          } else {
            log.Line("E " + bname + " I " + r.status().ToString());
          }
          continue;
        }
        std::uint64_t seq = ++next_seq[id];
        Status s;
        if (dice < 85) {
          log.Line("S " + id + " " + std::to_string(seq) + " P");
          s = bucket->Put(key, MakeValue(key, seq));
        } else if (dice < 93) {
          log.Line("S " + id + " " + std::to_string(seq) + " D");
          s = bucket->Delete(key);
          if (s.IsNotFound()) s = Status();
        } else {
          std::string value;
          std::uint64_t version = 0;
          Status g = bucket->Get(key, &value, &version);
          if (!g.ok() && !g.IsNotFound()) continue;
          log.Line("S " + id + " " + std::to_string(seq) + " C");
          s = bucket->CompareAndSet(key, g.ok() ? version : 0, MakeValue(key, seq));
          if (s.code() == Code::kVersionMismatch) continue;  // an answer: not applied
        }
        if (!s.ok()) log.Line("E " + bname + " " + (dice < 85 ? "P " : "D ") + s.ToString());
        if (s.ok()) {
          log.Line("A " + id + " " + std::to_string(seq));
          acked[id] = seq;
        }
      }
    }
  }
}

ClientLog ReadClientLog(const std::string& path) {
  ClientLog out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    char kind;
    f >> kind;
    if (kind == 'R') {
      std::uint64_t r, t, s;
      if (f >> r >> t >> s) {
        out.reads = r;
        out.torn = t;
        out.stale = s;
      }
      continue;
    }
    if (kind == 'E') {
      ++out.errors;
      if (out.error_lines.size() < 5) out.error_lines.push_back(line);
      continue;
    }
    std::string bucket, key;
    f >> bucket >> key;
    auto id = std::make_pair(bucket, key);
    if (kind == 'S') {
      std::uint64_t seq;
      char op;
      f >> seq >> op;
      out.keys[id].maybe[seq] = op == 'D';
      ++out.ops;
    } else if (kind == 'A') {
      std::uint64_t seq;
      f >> seq;
      KeyExpectation& k = out.keys[id];
      k.acked = seq;
      k.acked_is_delete = k.maybe[seq];
      k.maybe.erase(k.maybe.begin(), k.maybe.upper_bound(seq));
    } else if (kind == 'i') {
      ++out.counters[id].sent;
      ++out.ops;
    } else if (kind == 'I') {
      std::int64_t v;
      f >> v;
      CounterExpectation& c = out.counters[id];
      c.acked_max = std::max(c.acked_max, v);
    }
  }
  return out;
}

}  // namespace kv::chaos
