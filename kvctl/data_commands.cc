// Key-value commands: put, get, del, cas, incr, keys, and expiry: ttl, expire, persist (and
// put --ttl). Durations are a number with a unit: 500ms, 30s, 5m, 2h, 1d (no unit: seconds).
//
// `get` writes the value's bytes to stdout exactly, with no terminator, when stdout is not a
// terminal (so `kvctl get b k > file` is byte-exact); on a terminal it adds a newline for
// readability. `put`/`cas` take the value from an argument, or from stdin (read to EOF, binary
// safe) when the argument is "-". Keys come from arguments, so they cannot hold a NUL byte;
// `dump`/`load` carry any key.
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <iostream>
#include <iterator>

#include "kvctl/app.h"
#include "kvctl/command_util.h"
#include "kvctl/line_io.h"

namespace kv::ctl {
namespace {

std::string ValueArg(const std::string& arg) { return arg == "-" ? ReadAll(STDIN_FILENO) : arg; }

Status KeyNotFound(const std::string& bucket, const std::string& key) {
  return Status(Code::kNotFound, "key '" + EscapeBytes(key) + "' not in bucket '" + bucket + "'");
}

nlohmann::json KeyJson(const std::string& bucket, const std::string& key) {
  nlohmann::json j = {{"bucket", bucket}};
  SetBytes(j, "key", key);
  return j;
}

struct KeyArgs {
  std::string bucket;
  std::string key;
  std::string value;
  std::string ttl;  // put --ttl, expire: a duration ("" for put: none)
};

// A duration argument: "500ms", "30s", "5m", "2h", "1d" or a number of seconds; positive and at
// most kMaxTtl.
Status ParseDuration(const std::string& text, std::chrono::milliseconds* out) {
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  std::string unit(end, text.data() + text.size());
  std::int64_t scale = unit == "ms"                  ? 1
                       : unit == "s" || unit.empty() ? 1000
                       : unit == "m"                 ? 60'000
                       : unit == "h"                 ? 3'600'000
                       : unit == "d"                 ? 86'400'000
                                                     : 0;
  std::int64_t ms = 0;
  if (ec != std::errc() || end == text.data() || scale == 0 || n <= 0 ||
      __builtin_mul_overflow(n, scale, &ms) || ms > kMaxTtl.count()) {
    return Status(
        Code::kInvalidArgument,
        "TTL '" + text +
            "' is not a positive duration up to 1000 years (e.g. 500ms, 30s, 5m, 2h, 1d)");
  }
  *out = std::chrono::milliseconds(ms);
  return Status();
}

std::shared_ptr<KeyArgs> AddKeyArgs(CLI::App* cmd) {
  auto a = std::make_shared<KeyArgs>();
  cmd->add_option("bucket", a->bucket, "bucket name")->required();
  cmd->add_option("key", a->key, "key")->required();
  return a;
}

int Put(Context& ctx, const KeyArgs& a) {
  std::optional<Bucket> b = OpenBucketOrFail(ctx, a.bucket);
  if (!b) return kExitFailed;
  std::uint64_t version = 0;
  std::chrono::milliseconds ttl{0};
  if (!a.ttl.empty()) {
    if (Status s = ParseDuration(a.ttl, &ttl); !s.ok()) return Fail(ctx, s);
  }
  Status s = a.ttl.empty() ? b->Put(a.key, ValueArg(a.value), &version)
                           : b->Put(a.key, ValueArg(a.value), ttl, &version);
  if (!s.ok()) return Fail(ctx, s);
  nlohmann::json j = KeyJson(a.bucket, a.key);
  j["version"] = version;
  if (!a.ttl.empty()) j["ttl_ms"] = ttl.count();
  return Done(ctx, j);
}

// Prints the time a key has left in milliseconds, -1 if it does not expire.
int Ttl(Context& ctx, const KeyArgs& a) {
  std::optional<Bucket> b = OpenBucketOrFail(ctx, a.bucket);
  if (!b) return kExitFailed;
  Result<std::optional<std::chrono::milliseconds>> left = b->Ttl(a.key);
  if (left.status().IsNotFound()) return Fail(ctx, KeyNotFound(a.bucket, a.key));
  if (!left.ok()) return Fail(ctx, left.status());
  std::int64_t ms = left->has_value() ? (*left)->count() : -1;
  if (!ctx.json) {
    std::cout << ms << "\n";
    return kExitOk;
  }
  nlohmann::json j = KeyJson(a.bucket, a.key);
  j["ttl_ms"] = ms;
  PrintJson(j);
  return kExitOk;
}

int Expire(Context& ctx, const KeyArgs& a) {
  std::chrono::milliseconds ttl{0};
  if (Status s = ParseDuration(a.ttl, &ttl); !s.ok()) return Fail(ctx, s);
  std::optional<Bucket> b = OpenBucketOrFail(ctx, a.bucket);
  if (!b) return kExitFailed;
  Status s = b->Expire(a.key, ttl);
  if (s.IsNotFound()) return Fail(ctx, KeyNotFound(a.bucket, a.key));
  if (!s.ok()) return Fail(ctx, s);
  nlohmann::json j = KeyJson(a.bucket, a.key);
  j["ttl_ms"] = ttl.count();
  return Done(ctx, j);
}

int Persist(Context& ctx, const KeyArgs& a) {
  std::optional<Bucket> b = OpenBucketOrFail(ctx, a.bucket);
  if (!b) return kExitFailed;
  Result<bool> removed = b->Persist(a.key);
  if (removed.status().IsNotFound()) return Fail(ctx, KeyNotFound(a.bucket, a.key));
  if (!removed.ok()) return Fail(ctx, removed.status());
  nlohmann::json j = KeyJson(a.bucket, a.key);
  j["removed"] = *removed;
  if (!ctx.json && !*removed) std::cerr << "kvctl: the key had no expiry\n";
  return Done(ctx, j);
}

int Get(Context& ctx, const KeyArgs& a) {
  std::optional<Bucket> b = OpenBucketOrFail(ctx, a.bucket);
  if (!b) return kExitFailed;
  std::string value;
  std::uint64_t version = 0;
  Status s = b->Get(a.key, &value, &version);
  if (s.IsNotFound()) return Fail(ctx, KeyNotFound(a.bucket, a.key));
  if (!s.ok()) return Fail(ctx, s);
  if (ctx.json) {
    nlohmann::json j = KeyJson(a.bucket, a.key);
    SetBytes(j, "value", value);
    j["version"] = version;
    PrintJson(j);
    return kExitOk;
  }
  std::cout.write(value.data(), static_cast<std::streamsize>(value.size()));
  if (::isatty(STDOUT_FILENO) != 0) std::cout << "\n";
  std::cout << std::flush;
  return kExitOk;
}

int Del(Context& ctx, const KeyArgs& a) {
  std::optional<Bucket> b = OpenBucketOrFail(ctx, a.bucket);
  if (!b) return kExitFailed;
  std::string old;
  Status s = b->Delete(a.key, &old);
  if (s.IsNotFound()) return Fail(ctx, KeyNotFound(a.bucket, a.key));
  if (!s.ok()) return Fail(ctx, s);
  nlohmann::json j = KeyJson(a.bucket, a.key);
  SetBytes(j, "old_value", old);
  return Done(ctx, j);
}

int Cas(Context& ctx, const KeyArgs& a, std::uint64_t expected) {
  std::optional<Bucket> b = OpenBucketOrFail(ctx, a.bucket);
  if (!b) return kExitFailed;
  std::uint64_t version = 0;
  Status s = b->CompareAndSet(a.key, expected, ValueArg(a.value), &version);
  nlohmann::json j = KeyJson(a.bucket, a.key);
  j["version"] = version;
  if (s.code() == Code::kVersionMismatch) {
    std::cerr << "kvctl: " << s.ToString() << " (expected version " << expected
              << ", current version " << version << ")\n";
    if (ctx.json) {
      j["ok"] = false;
      j["error"] = CodeName(s.code());
      j["message"] = s.message();
      PrintJson(j);
    }
    return kExitFailed;
  }
  if (!s.ok()) return Fail(ctx, s);
  if (!ctx.json) std::cout << version << "\n";
  return Done(ctx, j);
}

int Incr(Context& ctx, const KeyArgs& a, std::int64_t delta) {
  std::optional<Bucket> b = OpenBucketOrFail(ctx, a.bucket);
  if (!b) return kExitFailed;
  Result<std::int64_t> r = b->Increment(a.key, delta);
  if (!r.ok()) return Fail(ctx, r.status());
  if (!ctx.json) {
    std::cout << *r << "\n";
    return kExitOk;
  }
  nlohmann::json j = KeyJson(a.bucket, a.key);
  j["value"] = *r;
  return Done(ctx, j);
}

int Keys(Context& ctx, const std::string& bucket, const std::string& prefix, std::size_t limit) {
  std::optional<Bucket> b = OpenBucketOrFail(ctx, bucket);
  if (!b) return kExitFailed;
  std::vector<std::pair<std::string, std::size_t>> keys;
  Status s = b->Scan(prefix, [&](std::string_view key, std::string_view value) {
    keys.emplace_back(std::string(key), value.size());
    return true;
  });
  if (!s.ok()) return Fail(ctx, s);
  std::sort(keys.begin(), keys.end());
  std::size_t total = keys.size();
  if (limit != 0 && keys.size() > limit) keys.resize(limit);
  if (ctx.json) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& [key, size] : keys) {
      nlohmann::json k;
      SetBytes(k, "key", key);
      k["value_bytes"] = size;
      list.push_back(k);
    }
    nlohmann::json doc = {{"bucket", bucket}, {"count", total}, {"keys", list}};
    SetBytes(doc, "prefix", prefix);
    PrintJson(doc);
    return kExitOk;
  }
  for (const auto& entry : keys) std::cout << EscapeBytes(entry.first) << "\n";
  return kExitOk;
}

}  // namespace

void AddDataCommands(CLI::App& app, Context& ctx) {
  auto* put = app.add_subcommand("put", "store a value (\"-\": read the value from stdin)");
  auto put_args = AddKeyArgs(put);
  put->add_option("value", put_args->value, "the value, or - to read it from stdin")->required();
  put->add_option("--ttl", put_args->ttl,
                  "expire the key after this long (500ms, 30s, 5m, 2h, 1d; no unit: seconds)");
  OnRun(put, ctx, [&ctx, put_args] { return Put(ctx, *put_args); });

  auto* ttl = app.add_subcommand(
      "ttl", "print the milliseconds a key has left (-1: it does not expire; exit 1 if absent)");
  auto ttl_args = AddKeyArgs(ttl);
  OnRun(ttl, ctx, [&ctx, ttl_args] { return Ttl(ctx, *ttl_args); });

  auto* expire = app.add_subcommand("expire", "make a key expire after DURATION from now");
  auto expire_args = AddKeyArgs(expire);
  expire->add_option("duration", expire_args->ttl, "500ms, 30s, 5m, 2h, 1d (no unit: seconds)")
      ->required();
  OnRun(expire, ctx, [&ctx, expire_args] { return Expire(ctx, *expire_args); });

  auto* persist = app.add_subcommand("persist", "remove a key's expiry");
  auto persist_args = AddKeyArgs(persist);
  OnRun(persist, ctx, [&ctx, persist_args] { return Persist(ctx, *persist_args); });

  auto* get = app.add_subcommand(
      "get", "write a value's raw bytes to stdout (read directly from shared memory)");
  auto get_args = AddKeyArgs(get);
  OnRun(get, ctx, [&ctx, get_args] { return Get(ctx, *get_args); });

  auto* del = app.add_subcommand("del", "delete a key (exit 1 if it is absent)");
  auto del_args = AddKeyArgs(del);
  OnRun(del, ctx, [&ctx, del_args] { return Del(ctx, *del_args); });

  auto* cas =
      app.add_subcommand("cas",
                         "store a value only if the key's version is VERSION (0: only if absent); "
                         "prints the new version (see get --json)");
  auto cas_args = AddKeyArgs(cas);
  auto expected = std::make_shared<std::uint64_t>(0);
  cas->add_option("version", *expected, "expected version")->required();
  cas->add_option("value", cas_args->value, "the value, or - to read it from stdin")->required();
  OnRun(cas, ctx, [&ctx, cas_args, expected] { return Cas(ctx, *cas_args, *expected); });

  auto* incr = app.add_subcommand(
      "incr", "add DELTA (default 1) to a decimal integer value and print the result");
  auto incr_args = AddKeyArgs(incr);
  auto delta = std::make_shared<std::int64_t>(1);
  incr->add_option("delta", *delta, "amount to add (may be negative)");
  OnRun(incr, ctx, [&ctx, incr_args, delta] { return Incr(ctx, *incr_args, *delta); });

  auto* keys = app.add_subcommand("keys", "list a bucket's keys (sorted), one a line");
  auto bucket = std::make_shared<std::string>();
  auto prefix = std::make_shared<std::string>();
  auto limit = std::make_shared<std::size_t>(0);
  keys->add_option("bucket", *bucket, "bucket name")->required();
  keys->add_option("-p,--prefix", *prefix, "only keys starting with this prefix");
  keys->add_option("--limit", *limit, "print at most this many keys (0: all)");
  OnRun(keys, ctx, [&ctx, bucket, prefix, limit] { return Keys(ctx, *bucket, *prefix, *limit); });
}

}  // namespace kv::ctl
