// `dump B [FILE]` and `load B [FILE]`: back up and restore a bucket (format in dump_format.h).
//
// dump writes to FILE.tmp and renames it into place, so a failed dump never leaves a truncated
// FILE; without FILE (or with "-") it writes to stdout, and refuses a terminal. Each key is
// dumped with its expiry time. load verifies the whole dump (checksum included) before it writes
// anything, creates the bucket if needed, optionally clears it (--clear), then stores every
// record with async puts (with its expiry time; a key already expired is skipped and counted)
// and a final flush.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "kvctl/app.h"
#include "kvctl/command_util.h"
#include "kvctl/dump_format.h"

namespace kv::ctl {
namespace {

int Dump(Context& ctx, const std::string& bucket, const std::string& file) {
  bool to_stdout = file.empty() || file == "-";
  if (to_stdout && ::isatty(STDOUT_FILENO) != 0) {
    std::cerr << "kvctl: INVALID: refusing to write a binary dump to a terminal; give a file\n";
    return kExitUsage;
  }
  if (to_stdout && ctx.json) {
    std::cerr << "kvctl: INVALID: --json needs a dump FILE (stdout carries the dump)\n";
    return kExitUsage;
  }
  std::optional<Bucket> b = OpenBucketOrFail(ctx, bucket);
  if (!b) return kExitFailed;
  std::string tmp = file + ".tmp";
  std::ofstream out_file;
  if (!to_stdout) {
    out_file.open(tmp, std::ios::binary | std::ios::trunc);
    if (!out_file) return Fail(ctx, Status(Code::kFailed, "cannot create '" + tmp + "'"));
  }
  std::ostream& out = to_stdout ? std::cout : out_file;
  DumpWriter writer(out);
  Status s = writer.Begin({bucket, NowUnixMs()});
  // Point in time: the dump is the bucket as it was when the snapshot was taken, whatever is
  // written meanwhile (kv::Snapshot; SNAPSHOT_TOO_OLD if writes outrun it: retry).
  std::uint64_t sequence = 0;
  if (s.ok()) {
    Result<Snapshot> snapshot = b->Snapshot();
    if (!snapshot.ok()) s = snapshot.status();
    if (s.ok()) {
      sequence = snapshot->sequence();
      Status write_error;
      s = snapshot->ScanWithExpiry(
          "", [&](std::string_view key, std::string_view value, std::uint64_t expires_unix_ms) {
            write_error = writer.Add(key, value, expires_unix_ms);
            return write_error.ok();
          });
      if (s.ok()) s = write_error;
    }
  }
  if (s.ok()) s = writer.Finish();
  if (!to_stdout) {
    out_file.close();
    if (s.ok() && !out_file) s = Status(Code::kFailed, "cannot write '" + tmp + "'");
    if (s.ok() && std::rename(tmp.c_str(), file.c_str()) != 0) {
      s = Status(Code::kFailed, "cannot rename '" + tmp + "' to '" + file + "'");
    }
    if (!s.ok()) std::remove(tmp.c_str());
  }
  if (!s.ok()) return Fail(ctx, s);
  if (to_stdout) return kExitOk;
  if (!ctx.json) {
    std::cout << "dumped " << writer.count() << " keys of bucket " << bucket << " to " << file
              << " (" << HumanBytes(writer.bytes()) << ")\n";
  }
  return Done(ctx, {{"bucket", bucket},
                    {"file", file},
                    {"keys", writer.count()},
                    {"bytes", writer.bytes()},
                    {"sequence", sequence}});
}

// Queues the put of one dumped key, with its expiry time; a key whose expiry time has passed
// is not stored (counted in *expired).
Status StoreRecord(Bucket& b, const DumpRecord& record, std::uint64_t* expired) {
  if (record.expires_unix_ms == 0) return b.PutAsync(record.key, record.value);
  if (record.expires_unix_ms <= NowUnixMs()) {
    ++*expired;
    return Status();
  }
  ExpiryTime at{std::chrono::milliseconds(record.expires_unix_ms)};
  return b.PutAsync(record.key, record.value, at);
}

int Load(Context& ctx, const std::string& bucket, const std::string& file, bool clear) {
  // A regular file is read twice (verify, then apply); stdin is buffered in memory.
  std::ifstream in_file;
  std::istringstream in_memory;
  std::istream* in = &in_file;
  if (file.empty() || file == "-") {
    std::ostringstream all;
    all << std::cin.rdbuf();
    in_memory.str(all.str());
    in = &in_memory;
  } else {
    in_file.open(file, std::ios::binary);
    if (!in_file) return Fail(ctx, Status(Code::kNotFound, "cannot open '" + file + "'"));
  }
  DumpHeader header;
  std::uint64_t count = 0;
  if (Status s = VerifyDump(*in, &header, &count); !s.ok()) return Fail(ctx, s);
  in->clear();
  in->seekg(0);

  Client* client = ctx.OpenClient();
  if (client == nullptr) return kExitFailed;
  if (Status s = client->CreateBucket(bucket); !s.ok()) return Fail(ctx, s);
  std::optional<Bucket> b = OpenBucketOrFail(ctx, bucket);
  if (!b) return kExitFailed;
  if (clear) {
    if (Status s = b->Clear(); !s.ok()) return Fail(ctx, s);
  }
  DumpReader reader(*in);
  if (Status s = reader.ReadHeader(&header); !s.ok()) return Fail(ctx, s);
  DumpRecord record;
  std::uint64_t expired = 0;  // records whose expiry time had passed: not stored
  for (bool end = false;;) {
    if (Status s = reader.Next(&record, &end); !s.ok()) return Fail(ctx, s);
    if (end) break;
    if (Status s = StoreRecord(*b, record, &expired); !s.ok()) return Fail(ctx, s);
    if (reader.count() % 4096 == 0) {
      if (Status s = b->Flush(); !s.ok()) return Fail(ctx, s);
    }
  }
  if (Status s = b->Flush(); !s.ok()) return Fail(ctx, s);
  std::uint64_t loaded = count - expired;
  if (!ctx.json) {
    std::cout << "loaded " << loaded << " keys into bucket " << bucket << " (dump of bucket "
              << header.bucket << ")";
    if (expired != 0) std::cout << "; skipped " << expired << " keys already expired";
    std::cout << "\n";
  }
  return Done(ctx, {{"bucket", bucket},
                    {"keys", loaded},
                    {"expired", expired},
                    {"source_bucket", header.bucket},
                    {"created_unix_ms", header.created_unix_ms}});
}

}  // namespace

void AddDumpCommands(CLI::App& app, Context& ctx) {
  auto* dump = app.add_subcommand("dump", "write every key and value of a bucket to a dump file");
  auto bucket = std::make_shared<std::string>();
  auto file = std::make_shared<std::string>();
  dump->add_option("bucket", *bucket, "bucket name")->required();
  dump->add_option("file", *file, "dump file (default or -: stdout)");
  OnRun(dump, ctx, [&ctx, bucket, file] { return Dump(ctx, *bucket, *file); });

  auto* load = app.add_subcommand("load", "store every record of a dump file into a bucket");
  auto load_bucket = std::make_shared<std::string>();
  auto load_file = std::make_shared<std::string>();
  auto clear = std::make_shared<bool>(false);
  load->add_option("bucket", *load_bucket, "bucket name (created if it does not exist)")
      ->required();
  load->add_option("file", *load_file, "dump file (default or -: stdin)");
  load->add_flag("--clear", *clear, "remove every key of the bucket first");
  OnRun(load, ctx, [&ctx, load_bucket, load_file, clear] {
    return Load(ctx, *load_bucket, *load_file, *clear);
  });
}

}  // namespace kv::ctl
