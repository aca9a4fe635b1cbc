#include "daemon/persistence/options.h"

#include <sstream>

namespace kv::daemon::persistence {

std::string ParseSaveRules(const std::string& text, std::vector<SaveRule>* out) {
  std::istringstream in(text);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  if (words.size() % 2 != 0) {
    return "save takes pairs of SECONDS CHANGES (e.g. \"3600 1 300 100\"), not '" + text + "'";
  }
  std::vector<SaveRule> rules;
  for (std::size_t i = 0; i < words.size(); i += 2) {
    SaveRule r;
    std::size_t used = 0;
    try {
      unsigned long long s = std::stoull(words[i], &used);
      if (used != words[i].size() || s == 0 || s > 31536000) throw std::out_of_range("");
      r.seconds = static_cast<std::uint32_t>(s);
      r.changes = std::stoull(words[i + 1], &used);
      if (used != words[i + 1].size() || r.changes == 0) throw std::out_of_range("");
    } catch (const std::exception&) {
      return "save: '" + words[i] + " " + words[i + 1] +
             "' is not SECONDS (1..31536000) CHANGES (>= 1)";
    }
    rules.push_back(r);
  }
  *out = std::move(rules);
  return {};
}

std::string FormatSaveRules(const std::vector<SaveRule>& rules) {
  std::string s;
  for (const SaveRule& r : rules) {
    if (!s.empty()) s += ' ';
    s += std::to_string(r.seconds) + ' ' + std::to_string(r.changes);
  }
  return s;
}

std::string ParseAppendFsync(const std::string& text, AppendFsync* out) {
  if (text == "always") {
    *out = AppendFsync::kAlways;
  } else if (text == "everysec") {
    *out = AppendFsync::kEverysec;
  } else if (text == "no") {
    *out = AppendFsync::kNo;
  } else {
    return "appendfsync must be always, everysec or no, not '" + text + "'";
  }
  return {};
}

const char* AppendFsyncName(AppendFsync mode) {
  switch (mode) {
    case AppendFsync::kAlways:
      return "always";
    case AppendFsync::kEverysec:
      return "everysec";
    case AppendFsync::kNo:
      return "no";
  }
  return "?";
}

}  // namespace kv::daemon::persistence
