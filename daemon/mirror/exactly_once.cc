#include "daemon/mirror/exactly_once.h"

#include <cstdio>
#include <vector>

#include "daemon/mirror/cluster.h"

namespace kv::daemon::mirror {
namespace {

// Shared head of the scripts: answers a request found in the record; drops the members below
// ARGV[2]; defines record(outcome), which adds this request's outcome and answers {1, outcome}.
// Without KEYS[2] (a slot in mid-migration, see mirror.h) the write is only executed.
constexpr std::string_view kPrologue = R"(local rid = ARGV[1]
local rec = KEYS[2]
if rec then
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', rec, rid, rid)) do
    if string.sub(m, 1, #rid + 1) == rid .. ':' then return {2, string.sub(m, #rid + 2)} end
  end
  redis.call('ZREMRANGEBYSCORE', rec, '-inf', '(' .. ARGV[2])
end
local function record(outcome)
  if rec then
    redis.call('ZADD', rec, rid, rid .. ':' .. outcome)
    redis.call('PEXPIRE', rec, ARGV[3])
  end
  return {1, outcome}
end
)";

// INCRBY's own reply is a Lua number (a double): the value is read back as a string, exact.
constexpr std::string_view kIncrBody = R"(local n = redis.pcall('INCRBY', KEYS[1], ARGV[4])
if type(n) == 'table' and n.err then return n end
return record(redis.call('GET', KEYS[1])))";

constexpr std::string_view kDeleteBody = R"(local v = redis.pcall('GETDEL', KEYS[1])
if type(v) == 'table' and v.err then return v end
if v then return record('1' .. v) end
return record('0'))";

constexpr std::string_view kCasBody = R"(if ARGV[4] == '?' then return {0} end
local cur = redis.call('GET', KEYS[1])
if ARGV[4] == '0' then
  if cur then return {0, cur} end
elseif cur ~= ARGV[5] then
  if cur then return {0, cur} end
  return {0}
end
redis.call('SET', KEYS[1], ARGV[6])
return record('1'))";

std::string Script(std::string_view body) { return std::string(kPrologue) + std::string(body); }

}  // namespace

const std::string kIncrOnceScript = Script(kIncrBody);
const std::string kDeleteOnceScript = Script(kDeleteBody);
const std::string kCasOnceScript = Script(kCasBody);

const std::string& SlotTag(int slot) {
  // Short strings over [0-9a-z], in order of length, until every slot has one (4 characters at
  // most: about 1.7 million candidates for 16384 slots).
  static const std::vector<std::string> tags = [] {
    constexpr std::string_view kAlphabet = "0123456789abcdefghijklmnopqrstuvwxyz";
    std::vector<std::string> out(kClusterSlots);
    std::size_t missing = out.size();
    for (std::size_t length = 1; missing > 0; ++length) {
      std::vector<std::size_t> digits(length, 0);
      std::string tag(length, kAlphabet[0]);
      for (;;) {
        std::string& slot_tag = out[static_cast<std::size_t>(KeySlot(tag))];
        if (slot_tag.empty()) {
          slot_tag = tag;
          if (--missing == 0) break;
        }
        std::size_t i = 0;  // the next tag of this length, as an odometer
        while (i < length && ++digits[i] == kAlphabet.size()) digits[i++] = 0;
        if (i == length) break;
        for (std::size_t j = 0; j <= i; ++j) tag[j] = kAlphabet[digits[j]];
      }
    }
    return out;
  }();
  return tags[static_cast<std::size_t>(slot)];
}

std::string RecordKey(std::string_view key, std::uint64_t channel_id, bool cluster) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(channel_id));
  std::string out(kReservedPrefix);
  if (cluster) out += "{" + SlotTag(KeySlot(key)) + "}";
  out += hex;
  return out;
}

}  // namespace kv::daemon::mirror
