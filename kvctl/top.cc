// `kvctl top`: a live full-screen view of the instance (ncurses), refreshed every
// --interval-ms (default 1 s): the rows of TopModel, sortable by key (n k m w r), q quits.
// With --batch (or when stdin or stdout is not a terminal) it prints --iterations frames as plain
// text instead, as `top -b` does; with --json too, each frame is one JSON object on one line
// (TopModel::Json). --json is refused (usage) when the view would be the full-screen one.
#include <curses.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <iostream>
#include <thread>

#include "kvctl/app.h"
#include "kvctl/command_util.h"
#include "kvctl/top_model.h"

namespace kv::ctl {
namespace {

struct TopOptions {
  int interval_ms = 1000;
  std::string sort = "writes";
  bool batch = false;
  int iterations = 2;
};

std::string Clock() {
  std::time_t t = std::time(nullptr);
  char buf[16];
  std::tm tm{};
  ::localtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}

Status Sample(Client& client, TopModel* model) {
  Result<InstanceStatus> st = client.GetStatus();
  if (!st.ok()) return st.status();
  model->Update(*st, std::chrono::steady_clock::now());
  return Status();
}

int Batch(Context& ctx, Client& client, const TopOptions& o, TopSort sort) {
  TopModel model;
  if (Status s = Sample(client, &model); !s.ok()) return Fail(ctx, s);
  for (int i = 0; i < o.iterations; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(o.interval_ms));  // rates need a delta
    if (Status s = Sample(client, &model); !s.ok()) return Fail(ctx, s);
    if (ctx.json) {
      PrintJson(model.Json(sort, NowUnixMs()));
      continue;
    }
    if (i > 0) std::cout << "\n";
    for (const std::string& line : model.Render(sort, 0, Clock())) std::cout << line << "\n";
    std::cout << std::flush;
  }
  return kExitOk;
}

int Live(Context& ctx, Client& client, const TopOptions& o, TopSort sort) {
  TopModel model;
  if (Status s = Sample(client, &model); !s.ok()) return Fail(ctx, s);
  if (initscr() == nullptr) {
    return Fail(ctx, Status(Code::kFailed, "cannot initialise the terminal (TERM?)"));
  }
  cbreak();
  noecho();
  keypad(stdscr, TRUE);
  curs_set(0);
  Status error;
  auto next = std::chrono::steady_clock::now() + std::chrono::milliseconds(o.interval_ms);
  for (bool quit = false; !quit;) {
    erase();
    int rows = 0, cols = 0;
    getmaxyx(stdscr, rows, cols);
    std::vector<std::string> lines = model.Render(sort, cols, Clock());
    for (int y = 0; y < rows && y < static_cast<int>(lines.size()); ++y) {
      if (y == 5) attron(A_REVERSE);
      mvaddnstr(y, 0, lines[y].c_str(), cols);
      if (y == 5) attroff(A_REVERSE);
    }
    refresh();
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    next - std::chrono::steady_clock::now())
                    .count();
    timeout(static_cast<int>(std::max<long long>(0, left)));
    int ch = getch();
    switch (ch) {
      case 'q':
      case 'Q':
        quit = true;
        break;
      case 'n':
        sort = TopSort::kName;
        break;
      case 'k':
        sort = TopSort::kKeys;
        break;
      case 'm':
        sort = TopSort::kMemory;
        break;
      case 'w':
        sort = TopSort::kWritesPerSec;
        break;
      case 'r':
        sort = TopSort::kRestarts;
        break;
      default:
        break;
    }
    if (std::chrono::steady_clock::now() >= next) {
      next += std::chrono::milliseconds(o.interval_ms);
      if (next < std::chrono::steady_clock::now()) {
        next = std::chrono::steady_clock::now() + std::chrono::milliseconds(o.interval_ms);
      }
      error = Sample(client, &model);
      if (!error.ok()) quit = true;
    }
  }
  endwin();
  return error.ok() ? kExitOk : Fail(ctx, error);
}

int Top(Context& ctx, const TopOptions& o) {
  TopSort sort;
  if (!ParseTopSort(o.sort, &sort)) {
    std::cerr << "kvctl: INVALID: unknown sort '" << o.sort
              << "' (name, keys, memory, writes, restarts)\n";
    return kExitUsage;
  }
  bool batch = o.batch || ::isatty(STDOUT_FILENO) == 0 || ::isatty(STDIN_FILENO) == 0;
  if (ctx.json && !batch) {
    std::cerr << "kvctl: INVALID: top --json prints frames as JSON lines, which needs batch mode:"
                 " add --batch (and --iterations N)\n";
    return kExitUsage;
  }
  Client* client = ctx.OpenClient();
  if (client == nullptr) return kExitFailed;
  return batch ? Batch(ctx, *client, o, sort) : Live(ctx, *client, o, sort);
}

}  // namespace

void AddTopCommand(CLI::App& app, Context& ctx) {
  auto* top = app.add_subcommand(
      "top", "live view of buckets: keys, memory, writes/s, restarts, state (q quits)");
  auto o = std::make_shared<TopOptions>();
  top->add_option("-i,--interval-ms", o->interval_ms, "refresh interval (default 1000)")
      ->check(CLI::Range(100, 60000));
  top->add_option("-s,--sort", o->sort, "initial sort: name, keys, memory, writes, restarts")
      ->capture_default_str();
  top->add_flag(
      "-b,--batch", o->batch,
      "print frames as plain text, or JSON lines with --json (automatic when stdin or stdout "
      "is not a terminal)");
  top->add_option("--iterations", o->iterations,
                  "frames to print in batch mode; the first is taken one interval after start")
      ->check(CLI::Range(1, 1000000));
  top->footer(
      "--json (batch mode only; refused on the full-screen view): each frame is one JSON object\n"
      "on one line: timestamp_unix_ms, namespace, kvd, sort, total, and buckets[] with name,\n"
      "state, pid, restarts, keys, memory_bytes, writes, writes_per_sec, reads_per_sec (null),\n"
      "queue_depth, ... as in 'kvctl status --json'. See docs/kvctl.md.");
  OnRun(top, ctx, [&ctx, o] { return Top(ctx, *o); });
}

}  // namespace kv::ctl
