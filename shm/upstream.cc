#include "shm/upstream.h"

#include <charconv>

#include "shm/anchor.h"

namespace kv::shm {
namespace {

bool ParseNumber(std::string_view s, int max, int* out) {
  if (s.empty() || s.size() > 9) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size() && *out >= 0 && *out <= max;
}

void PutU16(std::string* out, std::size_t n) {
  out->push_back(static_cast<char>(n & 0xff));
  out->push_back(static_cast<char>((n >> 8) & 0xff));
}

// HOST:PORT of a TCP URL. Empty, or why not (`shown` names the URL).
std::string ParseHostPort(std::string_view rest, const std::string& shown, std::string* host,
                          int* port) {
  if (rest.find('@') != std::string_view::npos) {
    return shown + ": a password never goes in the URL (use a password file)";
  }
  std::size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return shown + ": expected HOST:PORT";
  std::string_view h = rest.substr(0, colon);
  for (char ch : h) {
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '-' || ch == '_';
    if (!ok) return shown + ": the host may hold only letters, digits, '.', '-' and '_'";
  }
  if (!ParseNumber(rest.substr(colon + 1), 65535, port) || *port == 0) {
    return shown + ": the port must be a number from 1 to 65535";
  }
  host->assign(h);
  return {};
}

bool TakeField(std::string_view* in, std::size_t width, std::string* out) {
  if (in->size() < width) return false;
  std::size_t n = static_cast<unsigned char>((*in)[0]);
  if (width == 2) n |= static_cast<std::size_t>(static_cast<unsigned char>((*in)[1])) << 8;
  in->remove_prefix(width);
  if (in->size() < n) return false;
  out->assign(in->data(), n);
  in->remove_prefix(n);
  return true;
}

}  // namespace

const char* MirrorStateName(std::uint32_t state) {
  switch (state) {
    case kMirrorNone:
      return "";
    case kMirrorSyncing:
      return "syncing";
    case kMirrorLive:
      return "live";
    case kMirrorStale:
      return "stale";
  }
  return "unknown";
}

std::string DefaultUpstreamPrefix(std::string_view bucket_name) {
  return std::string(bucket_name) + ":";
}

std::string ParseUpstreamUrl(std::string_view url, UpstreamAddress* out) {
  *out = {};
  if (url.size() > kMaxUpstreamUrl) {
    return "upstream URL is " + std::to_string(url.size()) + " bytes, the limit is " +
           std::to_string(kMaxUpstreamUrl);
  }
  constexpr std::string_view kRedis = "redis://";
  constexpr std::string_view kUnix = "unix://";
  constexpr std::string_view kCluster = "redis-cluster://";
  const std::string shown = "upstream URL '" + std::string(url) + "'";
  if (url.substr(0, kCluster.size()) == kCluster) {
    std::string_view rest = url.substr(kCluster.size());
    if (rest.find('/') != std::string_view::npos) {
      return shown + ": a cluster has database 0 only (expected redis-cluster://HOST:PORT[,...])";
    }
    while (true) {
      std::size_t comma = rest.find(',');
      std::string host;
      int port = 0;
      if (std::string e = ParseHostPort(rest.substr(0, comma), shown, &host, &port); !e.empty()) {
        return e;
      }
      out->seeds.emplace_back(std::move(host), port);
      if (comma == std::string_view::npos) break;
      rest = rest.substr(comma + 1);
    }
    out->cluster = true;
    out->host = out->seeds[0].first;
    out->port = out->seeds[0].second;
    return {};
  }
  if (url.substr(0, kRedis.size()) == kRedis) {
    std::string_view rest = url.substr(kRedis.size());
    std::string_view db;
    if (std::size_t slash = rest.find('/'); slash != std::string_view::npos) {
      db = rest.substr(slash + 1);
      rest = rest.substr(0, slash);
      if (db.empty()) return shown + ": '/' must be followed by a database number";
    }
    if (std::string e = ParseHostPort(rest, shown, &out->host, &out->port); !e.empty()) {
      return rest.rfind(':') == std::string_view::npos || rest.rfind(':') == 0
                 ? shown + ": expected redis://HOST:PORT[/DB]"
                 : e;
    }
    if (!db.empty() && !ParseNumber(db, 1 << 20, &out->db)) {
      return shown + ": the database must be a number";
    }
    return {};
  }
  if (url.substr(0, kUnix.size()) == kUnix) {
    std::string_view rest = url.substr(kUnix.size());
    if (std::size_t q = rest.find('?'); q != std::string_view::npos) {
      std::string_view query = rest.substr(q + 1);
      rest = rest.substr(0, q);
      if (query.substr(0, 3) != "db=" || !ParseNumber(query.substr(3), 1 << 20, &out->db)) {
        return shown + ": the only query is ?db=N";
      }
    }
    if (rest.size() < 2 || rest[0] != '/') {
      return shown + ": expected unix:///absolute/path[?db=N]";
    }
    if (rest.size() > 107) return shown + ": a unix socket path is at most 107 bytes";
    out->unix_socket = true;
    out->path = std::string(rest);
    return {};
  }
  return shown +
         ": expected redis://HOST:PORT[/DB], unix:///path[?db=N] or "
         "redis-cluster://HOST:PORT[,HOST:PORT...]";
}

std::string ValidateUpstream(const UpstreamSpec& spec) {
  UpstreamAddress address;
  if (std::string e = ParseUpstreamUrl(spec.url, &address); !e.empty()) return e;
  if (spec.prefix.size() > kMaxUpstreamPrefix) {
    return "upstream key prefix is " + std::to_string(spec.prefix.size()) +
           " bytes, the limit is " + std::to_string(kMaxUpstreamPrefix);
  }
  if (spec.prefix.find('\0') != std::string::npos) return "upstream key prefix contains NUL";
  if (!spec.password_file.empty()) {
    if (spec.password_file.size() > kMaxPasswordFile) {
      return "password file path is longer than " + std::to_string(kMaxPasswordFile) + " bytes";
    }
    if (spec.password_file[0] != '/') return "password file must be an absolute path";
    if (spec.password_file.find('\0') != std::string::npos) return "password file path has NUL";
  }
  return {};
}

std::string DescribeUpstream(const UpstreamSpec& spec) { return spec.url; }

std::string EncodeMirroredCreate(std::string_view name, const UpstreamSpec& spec) {
  std::string out;
  out.push_back(static_cast<char>(name.size() & 0xff));
  out.append(name.substr(0, 255));
  PutU16(&out, spec.url.size());
  out.append(spec.url);
  PutU16(&out, spec.prefix.size());
  out.append(spec.prefix);
  PutU16(&out, spec.password_file.size());
  out.append(spec.password_file);
  return out;
}

bool DecodeMirroredCreate(std::string_view payload, std::string* name, UpstreamSpec* spec) {
  return TakeField(&payload, 1, name) && TakeField(&payload, 2, &spec->url) &&
         TakeField(&payload, 2, &spec->prefix) && TakeField(&payload, 2, &spec->password_file) &&
         payload.empty();
}

}  // namespace kv::shm
