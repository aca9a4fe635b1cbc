// kvd's log lines under systemd: with $JOURNAL_STREAM naming stderr, every line starts with the
// syslog priority prefix journald reads ("<3>" for an error) and carries no timestamp of its own,
// so `journalctl -p err` finds kvd's errors. Checked by parsing what kvd and its workers write,
// filtering by priority as journald would. Without a matching $JOURNAL_STREAM, lines keep their
// timestamp and have no prefix.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <map>
#include <regex>
#include <sstream>

#include "tests/supervisor/supervisor_test_util.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using namespace kv::testing;

struct JournalLine {
  int priority = -1;    // -1: no "<N>" prefix
  std::string message;  // the rest of the line
};

std::vector<JournalLine> ParseJournalStream(const std::string& text) {
  std::vector<JournalLine> lines;
  std::istringstream in(text);
  static const std::regex prefix(R"(^<([0-7])>(.*)$)");
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    JournalLine parsed;
    if (std::regex_match(line, m, prefix)) {
      parsed.priority = std::stoi(m[1]);
      parsed.message = m[2];
    } else {
      parsed.message = line;
    }
    lines.push_back(parsed);
  }
  return lines;
}

// `journalctl -p err`: the lines of priority err (3) or more urgent.
std::vector<std::string> ErrorsOf(const std::vector<JournalLine>& lines) {
  std::vector<std::string> errors;
  for (const JournalLine& l : lines) {
    if (l.priority >= 0 && l.priority <= 3) errors.push_back(l.message);
  }
  return errors;
}

// A kvd executable that writes its stderr to `log` with JOURNAL_STREAM set to `stream`
// ("match": the log file's own device:inode, as systemd sets it for a journal stream), and logs
// at level info where the harness asks for warn (so that workers log too).
void WriteKvdWrapper(const ScopedPath& wrapper, const ScopedPath& log, const std::string& stream) {
  std::string journal = stream == "match" ? "$(stat -c %d:%i '" + log.path() + "')" : stream;
  wrapper.Write(
      "#!/bin/sh\nexec 2>>'" + log.path() + "'\nexport JOURNAL_STREAM=" + journal +
      "\nfor a; do shift; [ \"$a\" = warn ] && a=info; set -- \"$@\" \"$a\"; done\nexec '" +
      KvdPath() + "' \"$@\"\n");
  ASSERT_EQ(::chmod(wrapper.path().c_str(), 0755), 0);
}

TEST(JournalLogTest, UnderTheJournalEveryLineHasItsPriorityAndNoTimestamp) {
  ScopedPath log("kvt-journal.log");
  log.Write("");
  ScopedPath wrapper("kvt-journal-kvd.sh");
  WriteKvdWrapper(wrapper, log, "match");
  std::string ns;
  {
    KvdInstance kvd({}, wrapper.path());
    ASSERT_NE(kvd.pid(), 0) << ReadFile(log.path()) << ReadFile(wrapper.path());
    ns = kvd.ns();
    auto client = kvd.NewClient();
    ASSERT_TRUE(client->CreateBucket("logged").ok());
    // A second kvd for the same namespace is refused with an error (written by the wrapper too).
    CommandResult second = RunCommand({wrapper.path(), "--namespace", ns});
    EXPECT_EQ(second.exit_code, 1);
    // A refused configuration is an error line too, though logging is not set up yet.
    CommandResult bad = RunCommand({wrapper.path(), "--namespace", ns, "--max-buckets", "0"});
    EXPECT_EQ(bad.exit_code, 2);
    EXPECT_EQ(kvd.Stop(), 0);
  }
  std::vector<JournalLine> lines = ParseJournalStream(ReadFile(log.path()));
  ASSERT_FALSE(lines.empty());
  static const std::regex timestamp(R"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)");
  bool worker_line = false;
  for (const JournalLine& l : lines) {
    EXPECT_GE(l.priority, 0) << "no priority prefix: " << l.message;
    EXPECT_FALSE(std::regex_search(l.message, timestamp)) << l.message;
    if (l.message.find(" worker b") != std::string::npos) worker_line = true;
  }
  EXPECT_TRUE(worker_line) << "workers log through the same stream";
  // The level word of a spdlog line matches its priority.
  const std::map<std::string, int> priority_of = {
      {"critical", 2}, {"error", 3}, {"warning", 4}, {"info", 6}, {"debug", 7}};
  for (const JournalLine& l : lines) {
    std::string word = l.message.substr(0, l.message.find(' '));
    auto it = priority_of.find(word);
    if (it != priority_of.end()) {
      EXPECT_EQ(l.priority, it->second) << l.message;
    }
  }
  std::vector<std::string> errors = ErrorsOf(lines);
  ASSERT_EQ(errors.size(), 2u) << ReadFile(log.path());
  EXPECT_NE(errors[0].find("another kvd is already running for namespace '" + ns + "'"),
            std::string::npos)
      << errors[0];
  EXPECT_NE(errors[1].find("invalid configuration: --max-buckets"), std::string::npos) << errors[1];
  SweepNamespace(ns);
}

TEST(JournalLogTest, WithoutAMatchingJournalStreamLinesKeepTheirTimestamp) {
  for (const std::string stream : {"", "1:1", "garbage"}) {
    SCOPED_TRACE("JOURNAL_STREAM=" + stream);
    ScopedPath log("kvt-nojournal.log");
    log.Write("");
    ScopedPath wrapper("kvt-nojournal-kvd.sh");
    WriteKvdWrapper(wrapper, log, stream);
    std::string ns;
    {
      KvdInstance kvd({}, wrapper.path());
      ASSERT_NE(kvd.pid(), 0) << ReadFile(log.path()) << ReadFile(wrapper.path());
      ns = kvd.ns();
      EXPECT_EQ(kvd.Stop(), 0);
    }
    std::vector<JournalLine> lines = ParseJournalStream(ReadFile(log.path()));
    ASSERT_FALSE(lines.empty());
    static const std::regex plain(
        R"(^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \w+ \[\d+ [^\]]+\] .*)");
    for (const JournalLine& l : lines) {
      EXPECT_EQ(l.priority, -1) << l.message;
      EXPECT_TRUE(std::regex_match(l.message, plain)) << l.message;
    }
    SweepNamespace(ns);
  }
}

}  // namespace
}  // namespace kv
