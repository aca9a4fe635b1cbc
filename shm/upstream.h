// A mirrored bucket's upstream: the Redis/Valkey server that holds the truth of the bucket's keys
// (docs/mirror.md). kvd records it in the bucket's registry entry when the bucket is created; the
// bucket's worker reads it there and is the only process that talks to the upstream.
//
// An upstream is a URL, a key prefix and, optionally, the path of a file holding the password
// (never the password itself: it would show in command lines and in the registry, which every
// client of the instance maps).
//
// URLs:   redis://HOST:PORT[/DB]        (HOST a name or an IPv4 address; PORT 1..65535; DB 0..)
//         unix:///absolute/path[?db=N]
//         redis-cluster://HOST:PORT[,HOST:PORT...]   a Redis Cluster: seed nodes, any of which
//                                       names the masters (CLUSTER SHARDS); database 0 only
// Prefix: the bucket's key K is the upstream key PREFIX+K; only keys under the prefix are
//         mirrored. Any bytes but NUL, at most kMaxUpstreamPrefix; empty mirrors the whole DB.
//         Creating a bucket without a prefix uses DefaultUpstreamPrefix(name) ("NAME:").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kv::shm {

inline constexpr std::size_t kMaxUpstreamUrl = 160;
inline constexpr std::size_t kMaxUpstreamPrefix = 96;
inline constexpr std::size_t kMaxPasswordFile = 160;

struct UpstreamSpec {
  std::string url;            // empty: the bucket has no upstream
  std::string prefix;         // upstream key = prefix + bucket key
  std::string password_file;  // empty: no AUTH
  bool empty() const { return url.empty(); }
  bool operator==(const UpstreamSpec& o) const {
    return url == o.url && prefix == o.prefix && password_file == o.password_file;
  }
  bool operator!=(const UpstreamSpec& o) const { return !(*this == o); }
};

// Where to connect (the parsed URL).
struct UpstreamAddress {
  bool unix_socket = false;
  std::string host;  // TCP
  int port = 0;      // TCP
  std::string path;  // unix socket
  int db = 0;
  // redis-cluster://: true, and `seeds` holds every HOST:PORT of the URL (host/port: the first).
  bool cluster = false;
  std::vector<std::pair<std::string, int>> seeds;
};

std::string DefaultUpstreamPrefix(std::string_view bucket_name);

// Parses a URL (forms above). Empty string, or why it is not a valid upstream URL.
std::string ParseUpstreamUrl(std::string_view url, UpstreamAddress* out);

// Checks a whole spec (URL, prefix and password file lengths and forms). Empty, or why not.
std::string ValidateUpstream(const UpstreamSpec& spec);

// The URL as shown to people: unchanged (it carries no secret; the password is in a file).
std::string DescribeUpstream(const UpstreamSpec& spec);

// The control payload of a create with an upstream (shm/control_message.h, kCreateMirrored):
// [u8 name_len][name][u16 url_len][url][u16 prefix_len][prefix][u16 pw_len][password_file].
std::string EncodeMirroredCreate(std::string_view name, const UpstreamSpec& spec);
bool DecodeMirroredCreate(std::string_view payload, std::string* name, UpstreamSpec* spec);

}  // namespace kv::shm
