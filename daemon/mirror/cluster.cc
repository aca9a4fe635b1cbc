#include "daemon/mirror/cluster.h"

#include <array>
#include <charconv>

namespace kv::daemon::mirror {
namespace {

constexpr std::array<std::uint16_t, 256> MakeCrcTable() {
  std::array<std::uint16_t, 256> table{};
  for (int i = 0; i < 256; ++i) {
    auto crc = static_cast<std::uint16_t>(i << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = static_cast<std::uint16_t>((crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    table[static_cast<std::size_t>(i)] = crc;
  }
  return table;
}
constexpr std::array<std::uint16_t, 256> kCrcTable = MakeCrcTable();

std::uint16_t Crc16(std::string_view s) {
  std::uint16_t crc = 0;
  for (char ch : s) {
    auto byte = static_cast<std::uint8_t>(ch);
    crc = static_cast<std::uint16_t>((crc << 8) ^ kCrcTable[((crc >> 8) ^ byte) & 0xff]);
  }
  return crc;
}

std::string_view Text(const redisReply* r) {
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) return {r->str, r->len};
  return {};
}

bool Number(const redisReply* r, int* out) {
  if (r->type == REDIS_REPLY_INTEGER) {
    *out = static_cast<int>(r->integer);
    return true;
  }
  std::string_view s = Text(r);
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

// A RESP2 map (flat array of name, value): the value named `name`, or nullptr.
const redisReply* Field(const redisReply* map, std::string_view name) {
  if (map->type != REDIS_REPLY_ARRAY) return nullptr;
  for (std::size_t i = 0; i + 1 < map->elements; i += 2) {
    if (Text(map->element[i]) == name) return map->element[i + 1];
  }
  return nullptr;
}

void Add(std::vector<ClusterMaster>* out, std::string host, int port, int first, int last) {
  for (ClusterMaster& m : *out) {
    if (m.host == host && m.port == port) {
      m.ranges.emplace_back(first, last);
      return;
    }
  }
  ClusterMaster m;
  m.host = std::move(host);
  m.port = port;
  m.ranges.emplace_back(first, last);
  out->push_back(std::move(m));
}

bool ValidRange(int first, int last) { return first >= 0 && last >= first && last < kClusterSlots; }

}  // namespace

int KeySlot(std::string_view key) {
  if (std::size_t open = key.find('{'); open != std::string_view::npos) {
    std::size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return Crc16(key) & (kClusterSlots - 1);
}

std::string ParseShards(const redisReply* reply, std::vector<ClusterMaster>* out) {
  out->clear();
  if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY) return "not an array";
  for (std::size_t s = 0; s < reply->elements; ++s) {
    const redisReply* shard = reply->element[s];
    const redisReply* slots = Field(shard, "slots");
    const redisReply* nodes = Field(shard, "nodes");
    if (slots == nullptr || nodes == nullptr || slots->type != REDIS_REPLY_ARRAY ||
        nodes->type != REDIS_REPLY_ARRAY || slots->elements % 2 != 0) {
      return "a shard without slots or nodes";
    }
    for (std::size_t n = 0; n < nodes->elements; ++n) {
      const redisReply* node = nodes->element[n];
      const redisReply* role = Field(node, "role");
      const redisReply* health = Field(node, "health");
      if (role == nullptr || Text(role) != "master") continue;
      if (health != nullptr && Text(health) != "online") continue;
      const redisReply* endpoint = Field(node, "endpoint");
      const redisReply* ip = Field(node, "ip");
      const redisReply* port = Field(node, "port");
      std::string host(endpoint != nullptr ? Text(endpoint) : std::string_view());
      if ((host.empty() || host == "?") && ip != nullptr) host = std::string(Text(ip));
      int p = 0;
      if (host.empty() || port == nullptr || !Number(port, &p) || p <= 0 || p > 65535) {
        return "a master without an address";
      }
      for (std::size_t i = 0; i < slots->elements; i += 2) {
        int first = 0;
        int last = 0;
        if (!Number(slots->element[i], &first) || !Number(slots->element[i + 1], &last) ||
            !ValidRange(first, last)) {
          return "a slot range out of bounds";
        }
        Add(out, host, p, first, last);
      }
      break;
    }
  }
  return {};
}

std::string ParseSlots(const redisReply* reply, std::vector<ClusterMaster>* out) {
  out->clear();
  if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY) return "not an array";
  for (std::size_t i = 0; i < reply->elements; ++i) {
    const redisReply* range = reply->element[i];
    if (range->type != REDIS_REPLY_ARRAY || range->elements < 3) return "a range without master";
    int first = 0;
    int last = 0;
    int port = 0;
    const redisReply* master = range->element[2];
    if (!Number(range->element[0], &first) || !Number(range->element[1], &last) ||
        !ValidRange(first, last) || master->type != REDIS_REPLY_ARRAY || master->elements < 2 ||
        Text(master->element[0]).empty() || !Number(master->element[1], &port) || port <= 0 ||
        port > 65535) {
      return "a malformed slot range";
    }
    Add(out, std::string(Text(master->element[0])), port, first, last);
  }
  return {};
}

}  // namespace kv::daemon::mirror
