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
                       100, 20)
                .exit_code,
            0);
  auto shows = [&](const std::string& text) {
    return WaitFor([&] { return tmux.Screen().find(text) != std::string::npos; },
                   std::chrono::seconds(20));
  };
  ASSERT_TRUE(shows("kv>")) << tmux.Screen();  // capture-pane trims trailing spaces
  ASSERT_TRUE(tmux.SendKeys({"CREATE shelf", "Enter"}));
  ASSERT_TRUE(shows("OK")) << tmux.Screen();
  // Line editing: type, move left of "2", delete the "X" before it, finish the line.
  ASSERT_TRUE(tmux.SendKeys({"PUT shelf book 4X2", "Left", "BSpace", "End", "Enter"}));
  ASSERT_TRUE(tmux.SendKeys({"GET shelf book", "Enter"}));
  ASSERT_TRUE(shows("\n42\n")) << tmux.Screen();
  // History: Up recalls the previous line.
  ASSERT_TRUE(tmux.SendKeys({"Up", "Enter"}));
  ASSERT_TRUE(WaitFor(
      [&] {
        std::string s = tmux.Screen();
        std::size_t first = s.find("\n42\n");
        return first != std::string::npos && s.find("\n42\n", first + 1) != std::string::npos;
      },
      std::chrono::seconds(20)))
      << tmux.Screen();
  ASSERT_TRUE(tmux.SendKeys({"status", "Enter"}));
  ASSERT_TRUE(shows("shelf")) << tmux.Screen();
  ASSERT_TRUE(tmux.SendKeys({"C-d"}));
  ASSERT_TRUE(WaitFor([&] { return !tmux.Alive(); }, std::chrono::seconds(20))) << tmux.Screen();
  std::string saved = ReadFile(history);
  // libedit's history file escapes spaces ("GET\\040shelf..."): look for a word.
  EXPECT_NE(saved.find("shelf"), std::string::npos) << saved;
}

}  // namespace
}  // namespace kv
