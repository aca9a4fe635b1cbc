// What a bucket keeps on disk, and when (docs/persistence.md): kvd's `data-dir`, `save`,
// `appendonly`, `appendfsync` and `stop-writes-on-save-error` settings, which kvd passes to every
// worker as flags. Without a data directory kv keeps its buckets in memory only (/dev/shm).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kv::daemon::persistence {

// `save SECONDS CHANGES`: snapshot when at least CHANGES writes were applied and SECONDS have
// passed since the last snapshot (Redis's rule).
struct SaveRule {
  std::uint32_t seconds = 0;
  std::uint64_t changes = 0;
  bool operator==(const SaveRule& o) const { return seconds == o.seconds && changes == o.changes; }
};

enum class AppendFsync {
  kAlways,    // a write is acknowledged only once it is on disk (group commit per batch)
  kEverysec,  // the log is written per batch and fdatasync'ed once a second
  kNo,        // the log is written per batch; the kernel decides when it reaches the disk
};

struct PersistenceOptions {
  std::string data_dir;  // empty: memory only
  std::vector<SaveRule> save_rules = {{3600, 1}, {300, 100}, {60, 10000}};
  bool appendonly = true;
  AppendFsync appendfsync = AppendFsync::kEverysec;
  // A failed snapshot (or log write outside `always`) refuses writes until a save succeeds.
  bool stop_writes_on_save_error = true;

  bool enabled() const { return !data_dir.empty(); }
};

// Parses "3600 1 300 100" (pairs; empty: no scheduled snapshots). Returns "" or why not.
std::string ParseSaveRules(const std::string& text, std::vector<SaveRule>* out);
std::string FormatSaveRules(const std::vector<SaveRule>& rules);
// "always" | "everysec" | "no". Returns "" or why not.
std::string ParseAppendFsync(const std::string& text, AppendFsync* out);
const char* AppendFsyncName(AppendFsync mode);

}  // namespace kv::daemon::persistence
