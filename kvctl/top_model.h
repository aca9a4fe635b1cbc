// The data behind `kvctl top`: successive InstanceStatus snapshots turned into rows with rates,
// sorted, and rendered as plain text lines (the ncurses view and --batch both draw these) or as
// one JSON document per frame (--batch --json; fields in docs/kvctl.md).
//
// writes/s is the delta of BucketInfo::writes (the segment's applied-writes counter) over the
// time between two snapshots. Reads are not measurable: they are served from shared memory in
// each client process and touch neither the worker nor any counter, so the view says so instead
// of showing a reads/s column (JSON: null). QUEUE is the worker's queue_depth gauge
// (kv::BucketInfo): "-" (JSON null) without a worker.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kv/client.h"

namespace kv::ctl {

enum class TopSort { kName, kKeys, kMemory, kWritesPerSec, kRestarts };

// Parses "name", "keys", "memory", "writes", "restarts"; false if unknown.
bool ParseTopSort(const std::string& word, TopSort* sort);
// The view's label ("writes/s") and the word ParseTopSort accepts ("writes").
const char* TopSortName(TopSort sort);
const char* TopSortWord(TopSort sort);

struct TopRow {
  BucketInfo info;
  double writes_per_sec = 0;
  bool rate_known = false;  // false until two snapshots of this bucket were seen
};

class TopModel {
 public:
  // Feeds a snapshot taken at `now`.
  void Update(const InstanceStatus& status, std::chrono::steady_clock::time_point now);
  // The buckets of the last snapshot, sorted (descending for numbers, ascending for names).
  std::vector<TopRow> Rows(TopSort sort) const;
  // The whole screen as lines of at most `width` characters.
  std::vector<std::string> Render(TopSort sort, int width, const std::string& clock) const;
  // The same frame as one JSON document: {"timestamp_unix_ms","namespace","kvd","sort","total",
  // "buckets":[...]}, the buckets in Rows(sort) order; `timestamp_unix_ms` is when the last
  // snapshot was taken.
  nlohmann::json Json(TopSort sort, std::uint64_t timestamp_unix_ms) const;

 private:
  struct Totals {
    std::uint64_t keys = 0;
    std::uint64_t memory_bytes = 0;
    double writes_per_sec = 0;
  };
  Totals Total() const;

  struct Sample {
    std::uint64_t writes = 0;
    std::chrono::steady_clock::time_point at;
  };
  InstanceStatus status_;
  std::vector<TopRow> rows_;
  std::map<std::uint64_t, Sample> previous_;  // by bucket id
};

}  // namespace kv::ctl
