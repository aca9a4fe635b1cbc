// `kvctl batch B [FILE]`: applies the writes listed in FILE (or stdin) to bucket B as one atomic
// batch (kv::WriteBatch): all of them or none. One command a line:
//   put KEY VALUE...        (the value is the rest of the line after one separating space)
//   del KEY
//   cas KEY VERSION VALUE...
// Keys are single words (no whitespace); blank lines and lines starting with '#' are skipped.
// A malformed line is a usage error naming its line number, and nothing is sent.
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "kvctl/app.h"
#include "kvctl/command_util.h"
#include "kvctl/line_io.h"

namespace kv::ctl {
namespace {

// Splits off the next whitespace-delimited word of *rest.
std::string_view NextWord(std::string_view* rest) {
  std::size_t start = rest->find_first_not_of(" \t");
  if (start == std::string_view::npos) {
    *rest = {};
    return {};
  }
  std::size_t end = rest->find_first_of(" \t", start);
  std::string_view word = rest->substr(start, end == std::string_view::npos ? end : end - start);
  *rest = end == std::string_view::npos ? std::string_view() : rest->substr(end + 1);
  return word;
}

// Adds one line to *batch; "" or what is wrong with it.
std::string ParseLine(std::string_view line, WriteBatch* batch) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  std::string_view rest = line;
  std::string_view op = NextWord(&rest);
  if (op.empty() || op.front() == '#') return {};
  std::string_view key = NextWord(&rest);
  if (key.empty()) return "missing key";
  if (op == "put" || op == "PUT") {
    batch->Put(key, rest);
  } else if (op == "del" || op == "DEL" || op == "delete" || op == "DELETE") {
    if (!NextWord(&rest).empty()) return "del takes only a key";
    batch->Delete(key);
  } else if (op == "cas" || op == "CAS") {
    std::string version(NextWord(&rest));
    std::uint64_t expected = 0;
    std::istringstream parse(version);
    if (version.empty() || version.find_first_not_of("0123456789") != std::string::npos ||
        !(parse >> expected)) {
      return "cas needs a version (a decimal integer) before the value";
    }
    batch->Cas(key, expected, rest);
  } else {
    return "unknown command '" + std::string(op) + "' (put, del or cas)";
  }
  if (!batch->error().ok()) return batch->error().ToString();
  return {};
}

int Batch(Context& ctx, const std::string& bucket, const std::string& file) {
  std::ifstream in_file;
  std::istringstream in_memory;
  std::istream* in = &in_memory;
  if (!file.empty() && file != "-") {
    in_file.open(file, std::ios::binary);
    if (!in_file) return Fail(ctx, Status(Code::kNotFound, "cannot open '" + file + "'"));
    in = &in_file;
  } else {
    in_memory.str(ReadAll(STDIN_FILENO));  // read(2): std::cin may hold buffered bytes
  }
  WriteBatch batch;
  std::string line;
  std::size_t number = 0;
  while (std::getline(*in, line)) {
    ++number;
    if (std::string why = ParseLine(line, &batch); !why.empty()) {
      std::cerr << "kvctl: INVALID: line " << number << ": " << why << "; nothing was applied\n";
      return kExitUsage;
    }
  }
  if (batch.Count() == 0) {
    std::cerr << "kvctl: INVALID: the batch is empty; nothing was applied\n";
    return kExitUsage;
  }
  std::optional<Bucket> b = OpenBucketOrFail(ctx, bucket);
  if (!b) return kExitFailed;
  std::uint64_t version = 0;
  std::size_t failed = 0;
  Status s = b->Write(batch, &version, &failed);
  if (s.code() == Code::kVersionMismatch) {
    s = Status(s.code(), s.message() + " (operation " + std::to_string(failed) +
                             " is the batch's line of that index, counting from 0)");
  }
  if (!s.ok()) return Fail(ctx, s);
  if (!ctx.json) {
    std::cout << "applied " << batch.Count() << " writes to bucket " << bucket << " (version "
              << version << ")\n";
  }
  return Done(ctx, {{"bucket", bucket}, {"writes", batch.Count()}, {"version", version}});
}

}  // namespace

void AddBatchCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand(
      "batch", "apply the writes listed in FILE or stdin (put/del/cas, one a line) atomically");
  auto bucket = std::make_shared<std::string>();
  auto file = std::make_shared<std::string>();
  cmd->add_option("bucket", *bucket, "bucket name")->required();
  cmd->add_option("file", *file, "file of commands (default: stdin)");
  OnRun(cmd, ctx, [&ctx, bucket, file] { return Batch(ctx, *bucket, *file); });
}

}  // namespace kv::ctl
