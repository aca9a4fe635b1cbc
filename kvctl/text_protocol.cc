#include "kvctl/text_protocol.h"

#include <algorithm>

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
