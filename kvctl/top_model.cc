#include "kvctl/top_model.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "kvctl/output.h"
#include "kvctl/status_json.h"

namespace kv::ctl {
namespace {

constexpr std::pair<const char*, TopSort> kSortWords[] = {{"name", TopSort::kName},
                                                          {"keys", TopSort::kKeys},
                                                          {"memory", TopSort::kMemory},
                                                          {"writes", TopSort::kWritesPerSec},
                                                          {"restarts", TopSort::kRestarts}};

std::string Rate(const TopRow& r) {
  if (!r.rate_known) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f", r.writes_per_sec);
  return buf;
}

std::string Row(const std::string& name, const std::string& state, const std::string& pid,
                const std::string& restarts, const std::string& uptime, const std::string& keys,
                const std::string& memory, const std::string& wps, const std::string& writes,
                const std::string& queue) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-20.20s %-10.10s %8s %8s %9s %10s %10s %10s %12s %5s",
                name.c_str(), state.c_str(), pid.c_str(), restarts.c_str(), uptime.c_str(),
                keys.c_str(), memory.c_str(), wps.c_str(), writes.c_str(), queue.c_str());
  return buf;
}

}  // namespace

bool ParseTopSort(const std::string& word, TopSort* sort) {
  for (const auto& [name, value] : kSortWords) {
    if (word == name) {
      *sort = value;
      return true;
    }
  }
  return false;
}

const char* TopSortWord(TopSort sort) {
  for (const auto& [name, value] : kSortWords) {
    if (value == sort) return name;
  }
  return "?";
}

const char* TopSortName(TopSort sort) {
  return sort == TopSort::kWritesPerSec ? "writes/s" : TopSortWord(sort);
}

void TopModel::Update(const InstanceStatus& status, std::chrono::steady_clock::time_point now) {
  status_ = status;
  rows_.clear();
  std::map<std::uint64_t, Sample> next;
  for (const BucketInfo& b : status.buckets) {
    TopRow row;
    row.info = b;
    auto it = previous_.find(b.id);
    if (it != previous_.end() && now > it->second.at && b.writes >= it->second.writes) {
      double seconds = std::chrono::duration<double>(now - it->second.at).count();
      row.writes_per_sec = static_cast<double>(b.writes - it->second.writes) / seconds;
      row.rate_known = true;
    }
    next[b.id] = {b.writes, now};
    rows_.push_back(row);
  }
  previous_ = std::move(next);
}

std::vector<TopRow> TopModel::Rows(TopSort sort) const {
  std::vector<TopRow> rows = rows_;
  auto key = [sort](const TopRow& r) -> double {
    switch (sort) {
      case TopSort::kKeys:
        return static_cast<double>(r.info.keys);
      case TopSort::kMemory:
        return static_cast<double>(r.info.memory_bytes);
      case TopSort::kWritesPerSec:
        return r.writes_per_sec;
      case TopSort::kRestarts:
        return r.info.restarts;
      case TopSort::kName:
        break;
    }
    return 0;
  };
  std::stable_sort(rows.begin(), rows.end(), [&](const TopRow& a, const TopRow& b) {
    if (sort != TopSort::kName && key(a) != key(b)) return key(a) > key(b);
    return a.info.name < b.info.name;
  });
  return rows;
}

TopModel::Totals TopModel::Total() const {
  Totals total;
  for (const TopRow& r : rows_) {
    total.keys += r.info.keys;
    total.memory_bytes += r.info.memory_bytes;
    total.writes_per_sec += r.writes_per_sec;
  }
  return total;
}

std::vector<std::string> TopModel::Render(TopSort sort, int width, const std::string& clock) const {
  std::vector<std::string> lines;
  Totals total = Total();
  char buf[256];
  std::string kvd = status_.kvd_pid != 0 ? "kvd pid " + std::to_string(status_.kvd_pid) + " up " +
                                               HumanUptime(status_.kvd_started_unix_ms)
                                         : std::string("kvd NOT RUNNING");
  std::snprintf(buf, sizeof buf, "kvctl top - namespace %s - %s - %s", status_.ns.c_str(),
                kvd.c_str(), clock.c_str());
  lines.push_back(buf);
  std::snprintf(buf, sizeof buf, "%zu buckets, %llu keys, %s shared memory, %.0f writes/s",
                rows_.size(), static_cast<unsigned long long>(total.keys),
                HumanBytes(total.memory_bytes).c_str(), total.writes_per_sec);
  lines.push_back(buf);
  lines.push_back(std::string("sort: ") + TopSortName(sort) +
                  "   keys: n name, k keys, m memory, w writes/s, r restarts, q quit");
  lines.push_back(
      "reads/s: not measurable (reads are served from shared memory in each client); "
      "queue: most requests waiting at once in the last second");
  lines.push_back("");
  lines.push_back(Row("BUCKET", "STATE", "PID", "RESTARTS", "UPTIME", "KEYS", "MEMORY", "WRITES/S",
                      "WRITES", "QUEUE"));
  std::vector<TopRow> rows = Rows(sort);
  if (rows.empty()) lines.push_back("(no buckets)");
  for (const TopRow& r : rows) {
    const BucketInfo& b = r.info;
    bool alive = b.worker_pid != 0;
    lines.push_back(Row(b.name, b.state, alive ? std::to_string(b.worker_pid) : "-",
                        std::to_string(b.restarts), alive ? HumanUptime(b.started_unix_ms) : "-",
                        std::to_string(b.keys), HumanBytes(b.memory_bytes), Rate(r),
                        std::to_string(b.writes), alive ? std::to_string(b.queue_depth) : "-") +
                    (b.reason.empty() ? "" : "  (" + b.reason + ")"));
  }
  for (std::string& line : lines) {
    if (width > 0 && line.size() > static_cast<std::size_t>(width)) line.resize(width);
  }
  return lines;
}

nlohmann::json TopModel::Json(TopSort sort, std::uint64_t timestamp_unix_ms) const {
  nlohmann::json buckets = nlohmann::json::array();
  for (const TopRow& r : Rows(sort)) {
    nlohmann::json b = BucketInfoJson(r.info);
    b["writes_per_sec"] = r.rate_known ? nlohmann::json(r.writes_per_sec) : nlohmann::json();
    b["reads_per_sec"] = nullptr;  // not measurable, see the file comment
    buckets.push_back(std::move(b));
  }
  Totals total = Total();
  return {{"timestamp_unix_ms", timestamp_unix_ms},
          {"namespace", status_.ns},
          {"kvd", KvdJson(status_)},
          {"sort", TopSortWord(sort)},
          {"total",
           {{"buckets", rows_.size()},
            {"keys", total.keys},
            {"memory_bytes", total.memory_bytes},
            {"writes_per_sec", total.writes_per_sec}}},
          {"buckets", std::move(buckets)}};
}

}  // namespace kv::ctl
