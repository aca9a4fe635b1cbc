#include "kvctl/bench_histogram.h"

#include <algorithm>
#include <cmath>

namespace kv::ctl {

int LatencyHistogram::BucketOf(std::uint64_t ns) {
  if (ns < static_cast<std::uint64_t>(kLinear)) return static_cast<int>(ns);
  int e = 63 - __builtin_clzll(ns);  // 6 .. 63
  if (e >= kMaxExponent) return kBuckets - 1;
  int sub = static_cast<int>((ns >> (e - 5)) & (kSubBuckets - 1));
  return kLinear + (e - 6) * kSubBuckets + sub;
}

std::uint64_t LatencyHistogram::LowerBound(int bucket) {
  if (bucket < kLinear) return static_cast<std::uint64_t>(bucket);
  int e = (bucket - kLinear) / kSubBuckets + 6;
  int sub = (bucket - kLinear) % kSubBuckets;
  return (std::uint64_t{1} << e) + (static_cast<std::uint64_t>(sub) << (e - 5));
}

void LatencyHistogram::Record(std::uint64_t ns) {
  ++counts_[BucketOf(ns)];
  ++count_;
  max_ = std::max(max_, ns);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (int i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
}

std::uint64_t LatencyHistogram::Quantile(double q) const {
  if (count_ == 0) return 0;
  auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      if (i < kLinear) return LowerBound(i);
      std::uint64_t lo = LowerBound(i);
      std::uint64_t hi = i + 1 < kBuckets ? LowerBound(i + 1) : lo;
      return std::min(max_, lo + (hi - lo) / 2);
    }
  }
  return max_;
}

}  // namespace kv::ctl
