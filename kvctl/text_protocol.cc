#include "kvctl/text_protocol.h"

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

}  // namespace kv::ctl
