// Deciding whether to spin from what spinning earned lately (docs/design.md, "Waiting").
#pragma once

#include <cstdint>

namespace kv::shm {

// What spinning has earned recently, for one decision that keeps recurring (the worker's idle
// spin per channel, daemon/idle_spin.h; a client's spin while its worker wakes up,
// libkvclient/write_channel.cc): an exponential average of "a spin would have paid" over the last
// few occasions. Starts earned. Single-threaded; private memory.
class SpinScore {
 public:
  // Records one idle period that this channel's request ended.
  void Observe(bool earned) {
    value_ = static_cast<std::uint8_t>(value_ - value_ / 4 + (earned ? kGain : 0));
  }
  // True if at least about half of the recent idle periods were earned.
  bool Earns() const { return value_ >= kThreshold; }

 private:
  // Steady state: all earned -> 4 * kGain - 3 = 61; all wasted -> 3; half -> ~32.
  static constexpr std::uint8_t kGain = 16;
  static constexpr std::uint8_t kThreshold = 32;
  std::uint8_t value_ = 4 * kGain;
};

}  // namespace kv::shm
