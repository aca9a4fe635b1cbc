#include "kvctl/top_model.h"

#include <algorithm>
#include <cstdio>

#include "kvctl/output.h"

namespace kv::ctl {
namespace {

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
  static const std::pair<const char*, TopSort> kNames[] = {{"name", TopSort::kName},
                                                           {"keys", TopSort::kKeys},
                                                           {"memory", TopSort::kMemory},
                                                           {"writes", TopSort::kWritesPerSec},
                                                           {"restarts", TopSort::kRestarts}};
  for (const auto& [name, value] : kNames) {
    if (word == name) {
      *sort = value;
      return true;
    }
  }
  return false;
}

const char* TopSortName(TopSort sort) {
  switch (sort) {
    case TopSort::kName:
      return "name";
    case TopSort::kKeys:
      return "keys";
    case TopSort::kMemory:
      return "memory";
    case TopSort::kWritesPerSec:
      return "writes/s";
    case TopSort::kRestarts:
      return "restarts";
  }
  return "?";
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

std::vector<std::string> TopModel::Render(TopSort sort, int width, const std::string& clock) const {
  std::vector<std::string> lines;
  std::uint64_t keys = 0, memory = 0;
  double wps = 0;
  for (const TopRow& r : rows_) {
    keys += r.info.keys;
    memory += r.info.memory_bytes;
    wps += r.writes_per_sec;
  }
  char buf[256];
  std::string kvd = status_.kvd_pid != 0 ? "kvd pid " + std::to_string(status_.kvd_pid) + " up " +
                                               HumanUptime(status_.kvd_started_unix_ms)
                                         : std::string("kvd NOT RUNNING");
  std::snprintf(buf, sizeof buf, "kvctl top - namespace %s - %s - %s", status_.ns.c_str(),
                kvd.c_str(), clock.c_str());
  lines.push_back(buf);
  std::snprintf(buf, sizeof buf, "%zu buckets, %llu keys, %s shared memory, %.0f writes/s",
                rows_.size(), static_cast<unsigned long long>(keys), HumanBytes(memory).c_str(),
                wps);
  lines.push_back(buf);
  lines.push_back(std::string("sort: ") + TopSortName(sort) +
                  "   keys: n name, k keys, m memory, w writes/s, r restarts, q quit");
  lines.push_back(
      "reads/s: not measurable (reads are served from shared memory in each client); "
      "queue depth: not exposed");
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
                        std::to_string(b.writes), "-") +
                    (b.reason.empty() ? "" : "  (" + b.reason + ")"));
  }
  for (std::string& line : lines) {
    if (width > 0 && line.size() > static_cast<std::size_t>(width)) line.resize(width);
  }
  return lines;
}

}  // namespace kv::ctl
