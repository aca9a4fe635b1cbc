// The registry segment NS.registry: which buckets exist, their ids, and the supervision state kvd
// keeps for each. It is the native form of the Elixir KV.Registry (a :protected ETS table): written
// by one process (kvd), read lock-free by every client through a PROT_READ mapping.
//
// Invariants:
//   R1. Only kvd writes. Each entry changes under its own seqlock (entry.seq); readers copy an
//   entry
//       and retry if the counter was odd or changed (bounded retries).
//   R2. A bucket id is never reused within an instance (next_bucket_id only grows), so a stale
//       handle can never reach another bucket's objects.
//   R3. An entry's name is unique among entries whose state is not kFree.
//   R4. An entry whose state is kBucketRunning names its worker (worker_pid != 0): kvd changes
//       worker_pid only in the same seqlock section as state (SetWorker), and sets running only
//       on an entry that has a worker.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shm/layout.h"
#include "shm/segment.h"
#include "shm/upstream.h"

namespace kv::shm {

enum BucketState : std::uint32_t {
  kBucketFree = 0,
  kBucketStarting = 1,  // worker spawned, not yet ready
  kBucketRunning = 2,
  kBucketRestarting = 3,  // worker died; kvd restarts it after a backoff
  kBucketFailed = 4,      // restart intensity exceeded; reads work, writes are refused
  kBucketDropping = 5,    // drop requested; the worker is stopping
};

const char* BucketStateName(std::uint32_t state);

struct alignas(kCacheLine) RegistryEntry {
  std::atomic<std::uint32_t> seq;  // R1
  std::atomic<std::uint32_t> state;
  std::atomic<std::uint64_t> bucket_id;
  std::atomic<std::int32_t> worker_pid;
  std::atomic<std::uint32_t> restarts;
  std::atomic<std::uint64_t> worker_start_ticks;  // /proc/<pid>/stat field 22: pid reuse check
  std::atomic<std::uint64_t> started_unix_ms;     // when the current worker started
  std::atomic<std::uint32_t> name_len;
  char name[kMaxBucketNameSize];
  char reason[96];  // NUL-terminated: why the bucket is restarting or failed
  // The bucket's upstream (shm/upstream.h; url_len 0: none), written once by Insert.
  std::atomic<std::uint32_t> upstream_url_len;
  std::atomic<std::uint32_t> upstream_prefix_len;
  std::atomic<std::uint32_t> password_file_len;
  char upstream_url[kMaxUpstreamUrl];
  char upstream_prefix[kMaxUpstreamPrefix];
  char password_file[kMaxPasswordFile];
};

struct alignas(kCacheLine) RegistryHeader {
  // Published last by its creator (release), after every other field and entry is initialised:
  // 0 means "being created, or its creator died doing so" (RegistryReader::Open: kNotReady).
  std::atomic<std::uint64_t> magic;
  std::uint32_t format_version;
  std::uint32_t layout_word;
  std::uint32_t capacity;  // number of entries after the header

  alignas(kCacheLine) std::atomic<std::uint32_t> seq;  // guards the fields below
  std::atomic<std::int32_t> kvd_pid;                   // 0 when kvd stopped cleanly
  std::atomic<std::uint64_t> kvd_start_ticks;
  std::atomic<std::uint64_t> kvd_started_unix_ms;
  std::atomic<std::uint64_t> next_bucket_id;  // R2
  // Configuration reloads (SIGHUP) kvd finished, and whether the last one was applied (1) or
  // refused (0). `kvd --reload` waits for `reloads` to change.
  std::atomic<std::uint64_t> reloads;
  std::atomic<std::uint32_t> last_reload_ok;
  // What kvd keeps on disk (AnchorHeader::persist_mode bits, shm/anchor.h); 0: memory only.
  std::atomic<std::uint32_t> persist_mode;
};

static_assert(sizeof(RegistryHeader) == 2 * kCacheLine, "header growth changes the layout word");
inline constexpr std::uint32_t kRegistryLayout =
    LayoutWord(sizeof(RegistryHeader), sizeof(RegistryEntry), alignof(RegistryEntry));

// A consistent copy of one entry.
struct BucketRecord {
  std::uint32_t index = 0;
  std::uint32_t state = kBucketFree;
  std::uint64_t bucket_id = 0;
  std::string name;
  std::int32_t worker_pid = 0;
  std::uint32_t restarts = 0;
  std::uint64_t worker_start_ticks = 0;
  std::uint64_t started_unix_ms = 0;
  std::string reason;
  UpstreamSpec upstream;  // empty url: not a mirror
};

struct KvdRecord {
  std::int32_t pid = 0;
  std::uint64_t start_ticks = 0;
  std::uint64_t started_unix_ms = 0;
  std::uint64_t next_bucket_id = 0;
  std::uint64_t reloads = 0;
  bool last_reload_ok = false;
  std::uint32_t persist_mode = 0;
};

// Read side: any process. Thread-safe (read-only).
class RegistryReader {
 public:
  // kNotFound: no registry (kvd not started). kNotReady: kvd is creating it (the object is still
  // empty or its magic is not published yet), or died doing so. kCorrupt: not a valid registry.
  static std::optional<RegistryReader> Open(std::string_view ns, ShmError* error);
  // Attaches to an already mapped registry (kvd reads through its own writable mapping).
  std::string Attach(const char* base, std::size_t size);

  std::optional<BucketRecord> Find(std::string_view name) const;  // only non-free entries
  std::optional<BucketRecord> Read(std::uint32_t index) const;    // nullopt if torn too often
  std::vector<BucketRecord> List() const;                         // non-free, by index
  KvdRecord Kvd() const;
  std::uint32_t capacity() const { return header_->capacity; }

 private:
  Segment segment_;  // empty when attached to another mapping
  const RegistryHeader* header_ = nullptr;
  const RegistryEntry* entries_ = nullptr;
};

// Write side: kvd only (R1). Not thread-safe.
class RegistryWriter {
 public:
  // Opens the instance's registry if it exists and is valid (re-adoption), else creates it.
  // *created says which. A registry that exists but is invalid is an error, never overwritten.
  static std::optional<RegistryWriter> OpenOrCreate(std::string_view ns, std::uint32_t capacity,
                                                    mode_t mode, bool* created, ShmError* error);

  const RegistryReader& reader() const { return reader_; }
  RegistryEntry* entry(std::uint32_t index) { return &entries_[index]; }

  void SetKvd(std::int32_t pid, std::uint64_t start_ticks, std::uint64_t started_unix_ms);
  std::uint64_t AllocateBucketId();
  // Raises next_bucket_id to at least `next` (ids restored from disk are never reused, R2).
  void EnsureNextBucketId(std::uint64_t next);
  void SetPersistMode(std::uint32_t mode);
  // Counts one finished configuration reload; `applied` false when it was refused.
  void RecordReload(bool applied);
  // Claims a free entry for `name`; nullopt when the registry is full.
  std::optional<std::uint32_t> Insert(std::string_view name, std::uint64_t bucket_id,
                                      const UpstreamSpec& upstream = {});
  void SetState(std::uint32_t index, std::uint32_t state, std::string_view reason = {});
  // Records the bucket's worker (pid 0: none) together with its state and reason: a reader sees
  // both or neither (R4).
  void SetWorker(std::uint32_t index, std::int32_t pid, std::uint64_t start_ticks,
                 std::uint64_t started_unix_ms, std::uint32_t state, std::string_view reason);
  void SetRestarts(std::uint32_t index, std::uint32_t restarts);
  void Free(std::uint32_t index);

 private:
  Segment segment_;
  RegistryHeader* header_ = nullptr;
  RegistryEntry* entries_ = nullptr;
  RegistryReader reader_;
};

}  // namespace kv::shm
