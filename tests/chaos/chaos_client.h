// A chaos client: a child process that writes, reads and verifies one key space of its own in
// every bucket, logging each operation before it is sent and again once acknowledged, so that a
// checker can tell afterwards what must be in the store even if this process, a worker or kvd was
// killed at any moment.
//
// Values are self-describing: "<key>|<seq>|<crc32 of the rest>". A read that returns anything
// else (or a sequence older than one already acknowledged) is a torn or stale read.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kv::chaos {

struct ClientConfig {
  std::string ns;
  int client_id = 0;
  std::vector<std::string> buckets;
  int keys_per_bucket = 16;
  std::string log_path;
};

// Runs until killed or SIGTERM; never returns normally. Log lines (text, one per event):
//   S <bucket> <key> <seq> <op>   about to send op (P put, D delete, C cas) with sequence seq
//   A <bucket> <key> <seq>        acknowledged
//   I <bucket> <key> <value>      increment acknowledged with its result
//   i <bucket> <key>              increment about to be sent
//   R <reads> <torn> <stale>      read statistics so far (every few hundred reads)
//   E <bucket> <op> <status...>   a write call failed (a delete's NOT_FOUND and a cas's
//                                 VERSION_MISMATCH are answers, not failures)
[[noreturn]] void RunClient(const ClientConfig& config);

std::string MakeValue(const std::string& key, std::uint64_t seq);
// Parses a value made by MakeValue; nullopt if it is malformed or its checksum is wrong.
std::optional<std::uint64_t> ParseValue(const std::string& key, const std::string& value);

// What one client's log proves about the final state of its keys.
struct KeyExpectation {
  std::uint64_t acked = 0;  // last acknowledged sequence (0: none)
  bool acked_is_delete = false;
  std::map<std::uint64_t, bool> maybe;  // later sequences sent but not acknowledged -> is_delete
};
struct CounterExpectation {
  std::int64_t acked_max = 0;  // largest value an increment returned
  std::int64_t sent = 0;       // increments sent (acknowledged or not)
};
struct ClientLog {
  std::map<std::pair<std::string, std::string>, KeyExpectation> keys;
  std::map<std::pair<std::string, std::string>, CounterExpectation> counters;
  std::uint64_t ops = 0;
  std::uint64_t reads = 0;
  std::uint64_t torn = 0;
  std::uint64_t stale = 0;
  std::uint64_t errors = 0;              // E lines
  std::vector<std::string> error_lines;  // the first few
};
ClientLog ReadClientLog(const std::string& path);

}  // namespace kv::chaos
