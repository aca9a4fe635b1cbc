#include "daemon/persistence/restore.h"

#include <unistd.h>

#include <memory>
#include <vector>

#include "daemon/persistence/bucket_dir.h"
#include "daemon/persistence/byte_codec.h"
#include "daemon/persistence/file_util.h"
#include "daemon/persistence/log_format.h"
#include "daemon/persistence/snapshot_format.h"

namespace kv::daemon::persistence {

void ScanBucketDir(const std::string& dir, RestoreResult* result) {
  std::vector<std::uint64_t> seqs = ListLogs(dir);
  result->last_log_seq = seqs.empty() ? 0 : seqs.back();
  MappedFile f;
  std::string path = dir + "/" + kSnapshotFileName;
  if (f.Open(path).empty() && f.size() >= 48) {
    result->next_log_seq = LoadLe<std::uint64_t>(f.data() + 40);
    SnapshotHeader header;
    if (ReadSnapshotHeader(path, f.data(), f.size(), &header).empty()) {
      result->snapshot_header_ok = true;
      result->snapshot_last_version = header.last_version;
    }
  }
}

std::string RestoreBucket(const std::string& dir, BucketStore* store, RestoreResult* result) {
  std::uint64_t id = store->bucket_id();
  std::string snapshot_path = dir + "/" + kSnapshotFileName;
  MappedFile snapshot;
  bool missing = false;
  if (std::string e = snapshot.Open(snapshot_path, &missing); !e.empty() && !missing) return e;
  bool have_snapshot = !missing;
  // Snapshot header first (cheap), to know which logs follow it.
  if (have_snapshot && snapshot.size() >= 48) {
    result->next_log_seq = LoadLe<std::uint64_t>(snapshot.data() + 40);
  }
  std::vector<std::uint64_t> seqs = ListLogs(dir);
  result->last_log_seq = seqs.empty() ? 0 : seqs.back();
  struct Log {
    std::uint64_t seq;
    std::string path;
    MappedFile file;
    std::uint64_t valid_end = 0;
    std::uint64_t torn = 0;
  };
  std::vector<Log> logs;
  std::uint64_t expect = have_snapshot ? result->next_log_seq : 0;
  for (std::uint64_t seq : seqs) {
    if (have_snapshot && seq < result->next_log_seq) {
      result->notes += LogFileName(seq) + " is older than the snapshot: ignored; ";
      continue;
    }
    if (expect == 0) {
      expect = seq;
      if (seq != 1) {
        return "snapshot " + snapshot_path + " is missing, but the oldest log is " +
               LogFileName(seq) + " (logs 1.." + std::to_string(seq - 1) + " are gone)";
      }
    }
    if (seq != expect) {
      return "log " + dir + "/" + LogFileName(expect) + " is missing (the next is " +
             LogFileName(seq) + ")";
    }
    ++expect;
    Log log{seq, dir + "/" + LogFileName(seq), MappedFile(), 0, 0};
    if (std::string e = log.file.Open(log.path); !e.empty()) return e;
    logs.push_back(std::move(log));
  }
  // Pass 1 over the logs: every record checked, torn tails found.
  for (Log& log : logs) {
    LogReader reader;
    std::string e = reader.Open(log.path, log.file.data(), log.file.size(), id, log.seq);
    if (!e.empty()) return e;
    LogRecord r;
    LogReader::Result got;
    while ((got = reader.Next(&r)) == LogReader::kRecord) {
    }
    if (got == LogReader::kCorrupt) return reader.error();
    log.valid_end = reader.valid_end();
    log.torn = reader.torn_bytes();
  }
  // The snapshot: checked whole, then applied.
  if (have_snapshot) {
    SnapshotHeader header;
    bool reserved = false;
    bool refused = false;
    std::string e =
        ReadSnapshot(snapshot_path, snapshot.data(), snapshot.size(), &header,
                     [&](std::string_view key, std::string_view value, std::uint64_t version,
                         std::uint64_t expiry) {
                       if (!reserved) {
                         reserved = true;
                         if (header.bucket_id != id) return false;
                         store->Reserve(header.key_count, snapshot.size());
                       }
                       if (store->RestorePut(key, value, version, expiry) != shm::WireStatus::kOk) {
                         refused = true;
                         return false;
                       }
                       ++result->keys;
                       return true;
                     });
    if (e.empty() && header.bucket_id != id) {
      e = "snapshot " + snapshot_path + " belongs to bucket " + std::to_string(header.bucket_id) +
          ", not " + std::to_string(id);
    }
    if (refused) e = "snapshot " + snapshot_path + " does not fit the bucket's maximum size";
    if (!e.empty()) return e;
    // Versions stay unique: the counter continues from the snapshot's, even for deleted keys.
    store->RaiseLastVersion(header.last_version);
    result->snapshot_unix_ms = header.created_unix_ms;
  }
  // Pass 2 over the logs: apply.
  for (Log& log : logs) {
    LogReader reader;
    (void)reader.Open(log.path, log.file.data(), log.file.size(), id, log.seq);
    LogRecord r;
    while (reader.valid_end() < log.valid_end && reader.Next(&r) == LogReader::kRecord) {
      switch (r.op) {
        case LogOp::kPut:
          if (store->RestorePut(r.key, r.value, r.version, r.expiry) != shm::WireStatus::kOk) {
            return "log " + log.path + " does not fit the bucket's maximum size";
          }
          break;
        case LogOp::kDelete:
          store->RestoreDelete(r.key, r.version);
          break;
        case LogOp::kClear:
          if (store->RestoreClear(r.version) != shm::WireStatus::kOk) {
            return "cannot replay a clear from log " + log.path;
          }
          break;
        case LogOp::kBatch:
          break;  // never returned: the reader yields a batch's records one by one
      }
      ++result->log_records;
    }
    if (log.torn != 0) {
      // Cut the torn tail, so that the file ends with a complete record again.
      if (::truncate(log.path.c_str(), static_cast<off_t>(log.valid_end)) != 0) {
        return FileError("cannot cut the torn tail of", log.path, errno);
      }
      result->notes += "log " + log.path + ": torn tail cut at byte " +
                       std::to_string(log.valid_end) + ", " + std::to_string(log.torn) +
                       " bytes dropped; ";
    }
  }
  return {};
}

}  // namespace kv::daemon::persistence
