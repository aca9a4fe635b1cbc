#include "kvctl/text_protocol.h"

#include <algorithm>
#include <charconv>

namespace kv::ctl {
namespace {

std::vector<std::string_view> SplitWhitespace(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
  };
  while (i < line.size()) {
    while (i < line.size() && space(line[i])) ++i;
    std::size_t start = i;
    while (i < line.size() && !space(line[i])) ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

// A TTL argument: a positive decimal count of `unit_ms` milliseconds, at most kMaxTtl.
Status ParseTtl(std::string_view text, std::int64_t unit_ms, std::chrono::milliseconds* ttl) {
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  std::int64_t ms = 0;
  if (ec != std::errc() || end != text.data() + text.size() || n <= 0 ||
      __builtin_mul_overflow(n, unit_ms, &ms) || ms > kMaxTtl.count()) {
    return Status(Code::kInvalidArgument, "TTL '" + std::string(text) +
                                              "' is not a positive integer up to " +
                                              std::to_string(kMaxTtl.count() / unit_ms) +
                                              (unit_ms == 1000 ? " seconds" : " milliseconds"));
  }
  *ttl = std::chrono::milliseconds(ms);
  return Status();
}

// The expiry commands (see the header); nullopt if `t` is none of them.
std::optional<std::vector<std::string>> RunExpiryCommand(Client& client,
                                                         const std::vector<std::string_view>& t) {
  bool put_ttl = t.size() == 6 && t[0] == "PUT" && (t[4] == "EX" || t[4] == "PX");
  bool expire = t.size() == 4 && (t[0] == "EXPIRE" || t[0] == "PEXPIRE");
  bool ttl = t.size() == 3 && (t[0] == "TTL" || t[0] == "PTTL");
  bool persist = t.size() == 3 && t[0] == "PERSIST";
  if (!put_ttl && !expire && !ttl && !persist) return std::nullopt;
  Result<Bucket> bucket = client.OpenBucket(t[1]);
  if (!bucket.ok()) return TextAnswer(bucket.status());
  std::chrono::milliseconds d{0};
  if (put_ttl || expire) {
    bool seconds = put_ttl ? t[4] == "EX" : t[0] == "EXPIRE";
    if (Status s = ParseTtl(t.back(), seconds ? 1000 : 1, &d); !s.ok()) return TextAnswer(s);
  }
  if (put_ttl) return TextAnswer(bucket->Put(t[2], t[3], d));
  if (expire) {
    Status s = bucket->Expire(t[2], d);
    if (s.IsNotFound()) return std::vector<std::string>{"0", "OK"};
    if (!s.ok()) return TextAnswer(s);
    return std::vector<std::string>{"1", "OK"};
  }
  if (persist) {
    Result<bool> r = bucket->Persist(t[2]);
    if (r.status().IsNotFound()) return std::vector<std::string>{"0", "OK"};
    if (!r.ok()) return TextAnswer(r.status());
    return std::vector<std::string>{*r ? "1" : "0", "OK"};
  }
  Result<std::optional<std::chrono::milliseconds>> left = bucket->Ttl(t[2]);
  if (left.status().IsNotFound()) return std::vector<std::string>{"-2", "OK"};
  if (!left.ok()) return TextAnswer(left.status());
  if (!left->has_value()) return std::vector<std::string>{"-1", "OK"};
  std::int64_t ms = (*left)->count();
  return std::vector<std::string>{std::to_string(t[0] == "TTL" ? (ms + 999) / 1000 : ms), "OK"};
}

}  // namespace

std::vector<std::string> TextAnswer(const Status& s) {
  if (s.ok()) return {"OK"};
  if (s.code() == Code::kBucketNotFound) return {"NOT FOUND"};
  return {"ERROR " + s.ToString()};
}

std::optional<std::string> SubscribeTarget(std::string_view line) {
  std::vector<std::string_view> t = SplitWhitespace(line);
  if (t.size() != 2 || t[0] != "SUBSCRIBE") return std::nullopt;
  return std::string(t[1]);
}

std::vector<std::string> RunTextCommand(Client& client, std::string_view line) {
  std::vector<std::string_view> t = SplitWhitespace(line);
  if (t.size() == 2 && t[0] == "CREATE") return TextAnswer(client.CreateBucket(t[1]));
  if (std::optional<std::vector<std::string>> r = RunExpiryCommand(client, t)) return *r;
  bool get = t.size() == 3 && t[0] == "GET";
  bool put = t.size() == 4 && t[0] == "PUT";
  bool del = t.size() == 3 && t[0] == "DELETE";
  if (!get && !put && !del) return {"UNKNOWN COMMAND"};
  Result<Bucket> bucket = client.OpenBucket(t[1]);
  if (!bucket.ok()) return TextAnswer(bucket.status());
  if (put) return TextAnswer(bucket->Put(t[2], t[3]));
  if (del) {
    Status s = bucket->Delete(t[2]);
    return TextAnswer(s.IsNotFound() ? Status() : s);  // deleting a missing key is OK, as in Elixir
  }
  std::string value;
  Status s = bucket->Get(t[2], &value);
  if (s.ok() || s.IsNotFound()) return {value, "OK"};
  return TextAnswer(s);
}

std::vector<std::string> TextProtocol::Run(Client& client, std::string_view line) {
  std::vector<std::string_view> t = SplitWhitespace(line);
  bool multi = t.size() == 1 && t[0] == "MULTI";
  bool exec = t.size() == 1 && t[0] == "EXEC";
  bool discard = t.size() == 1 && t[0] == "DISCARD";
  if (!in_multi_) {
    if (multi) {
      in_multi_ = true;
      bucket_.clear();
      keys_.clear();
      batch_.Clear();
      return {"OK"};
    }
    if (exec || discard) return {"ERROR INVALID: " + std::string(t[0]) + " without MULTI"};
    return RunTextCommand(client, line);
  }
  if (multi) return {"ERROR INVALID: MULTI inside MULTI"};
  if (discard) {
    in_multi_ = false;
    batch_.Clear();
    return {"OK"};
  }
  if (exec) {
    in_multi_ = false;
    if (batch_.Count() == 0) return {"OK"};  // nothing queued: nothing to do
    Result<Bucket> bucket = client.OpenBucket(bucket_);
    if (!bucket.ok()) return TextAnswer(bucket.status());
    Status s = bucket->Write(batch_);  // an argument error (too large) refuses all of it
    batch_.Clear();
    keys_.clear();
    return TextAnswer(s);
  }
  bool put = t.size() == 4 && t[0] == "PUT";
  bool del = t.size() == 3 && t[0] == "DELETE";
  if (!put && !del) {
    return {"ERROR INVALID: only PUT and DELETE can be queued in MULTI (EXEC or DISCARD ends it)"};
  }
  if (!bucket_.empty() && t[1] != bucket_) {
    return {"ERROR INVALID: a MULTI block writes one bucket ('" + bucket_ + "'); not queued"};
  }
  std::string key(t[2]);
  if (std::find(keys_.begin(), keys_.end(), key) != keys_.end()) {
    return {
        "ERROR INVALID: this key is already queued in the MULTI block (each key once); "
        "not queued"};
  }
  if (keys_.size() >= kMaxBatchOps) {
    return {"ERROR TOO_LARGE: a MULTI block holds at most " + std::to_string(kMaxBatchOps) +
            " writes; not queued"};
  }
  keys_.push_back(key);
  if (put) {
    batch_.Put(t[2], t[3]);
  } else {
    batch_.Delete(t[2]);
  }
  bucket_ = std::string(t[1]);
  return {"QUEUED"};
}

}  // namespace kv::ctl
