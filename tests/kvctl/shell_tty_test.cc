// The interactive `kvctl shell` on a terminal (tmux): prompt, libedit line editing and history.
#include <gtest/gtest.h>

#include "tests/kvctl/tmux_session.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::testing::KvctlPath;
using kv::testing::KvdInstance;
using kv::testing::ReadFile;
using kv::testing::WaitFor;

TEST(ShellTtyTest, PromptsEditsAndKeepsHistory) {
  KvdInstance kvd;
  testing::TmuxSession tmux;
  std::string history = tmux.File("history");
  ASSERT_EQ(tmux.Start("KVCTL_HISTORY=" + history + " " + KvctlPath() + " --namespace " + kvd.ns() +
                           " shell",
                       100, 40)
                .exit_code,
            0);
  // Keys must be sent only while libedit reads: a key typed while a command runs arrives in
  // cooked mode, where C-d is swallowed as end-of-file by the terminal and never reaches the shell.
  // So each step waits for its answer and for the prompt after it: the screen's last line is the
  // `count`-th "kv>".
  auto prompt = [&](int count, const std::string& answer) {
    return WaitFor(
        [&] {
          std::string s = tmux.Screen();
          while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
          int prompts = 0;
          for (std::size_t at = s.find("kv>"); at != std::string::npos; at = s.find("kv>", at + 1))
            ++prompts;
          return prompts == count && s.size() >= 3 && s.compare(s.size() - 3, 3, "kv>") == 0 &&
                 s.find(answer) != std::string::npos;
        },
        std::chrono::seconds(20));
  };
  ASSERT_TRUE(prompt(1, "")) << tmux.Screen();  // capture-pane trims trailing spaces
  ASSERT_TRUE(tmux.SendKeys({"CREATE shelf", "Enter"}));
  ASSERT_TRUE(prompt(2, "OK")) << tmux.Screen();
  // Line editing: type, move left of "2", delete the "X" before it, finish the line.
  ASSERT_TRUE(tmux.SendKeys({"PUT shelf book 4X2", "Left", "BSpace", "End", "Enter"}));
  ASSERT_TRUE(prompt(3, "OK")) << tmux.Screen();
  ASSERT_TRUE(tmux.SendKeys({"GET shelf book", "Enter"}));
  ASSERT_TRUE(prompt(4, "\n42\n")) << tmux.Screen();
  // History: Up recalls the previous line.
  ASSERT_TRUE(tmux.SendKeys({"Up", "Enter"}));
  ASSERT_TRUE(prompt(5, "\n42\n")) << tmux.Screen();
  std::string s = tmux.Screen();
  std::size_t first = s.find("\n42\n");
  EXPECT_NE(s.find("\n42\n", first + 1), std::string::npos) << s;
  ASSERT_TRUE(tmux.SendKeys({"status", "Enter"}));
  ASSERT_TRUE(prompt(6, "QUEUE")) << tmux.Screen();
  ASSERT_TRUE(tmux.SendKeys({"C-d"}));
  ASSERT_TRUE(WaitFor([&] { return !tmux.Alive(); }, std::chrono::seconds(20))) << tmux.Screen();
  std::string saved = ReadFile(history);
  // libedit's history file escapes spaces ("GET\\040shelf..."): look for a word.
  EXPECT_NE(saved.find("shelf"), std::string::npos) << saved;
}

}  // namespace
}  // namespace kv
