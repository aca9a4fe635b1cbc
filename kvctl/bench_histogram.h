// A fixed-size log-linear latency histogram (HdrHistogram-like, about 3% relative precision)
// with no allocation, so that forked bench clients can fill one in shared memory and the parent
// can merge them.
#pragma once

#include <cstdint>

namespace kv::ctl {

class LatencyHistogram {
 public:
  static constexpr int kLinear = 64;       // values below kLinear ns are exact
  static constexpr int kSubBuckets = 32;   // per power of two above that
  static constexpr int kMaxExponent = 40;  // 2^40 ns, about 18 minutes; larger values clamp
  static constexpr int kBuckets = kLinear + (kMaxExponent - 6) * kSubBuckets;

  void Record(std::uint64_t ns);
  void Merge(const LatencyHistogram& other);
  std::uint64_t count() const { return count_; }
  std::uint64_t max() const { return max_; }
  // The value at quantile q in [0, 1] (the midpoint of its bucket), 0 when empty.
  std::uint64_t Quantile(double q) const;

 private:
  static int BucketOf(std::uint64_t ns);
  static std::uint64_t LowerBound(int bucket);
  std::uint64_t counts_[kBuckets] = {};
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
};

}  // namespace kv::ctl
