// libkvclient: the C++ API of kv, a shared-memory key-value store for one host.
//
//   auto client = kv::Client::Open({});            // namespace from $KV_NAMESPACE, else "kv"
//   if (!client.ok()) ...client.status().ToString()...
//   kv::Status s = client->CreateBucket("shopping");
//   auto bucket = client->OpenBucket("shopping");
//   s = bucket->Put("milk", "1");
//   std::string value;
//   s = bucket->Get("milk", &value);             // read directly from shared memory
//
// Reads are served from the bucket's shared-memory segment, mapped read-only into this process:
// no message, no syscall, no lock. Writes go to the bucket's worker process over a private
// shared-memory channel and return once the worker has applied them (visible to every reader).
//
// Caveats
//  - fork(): a child must not use a Client or Bucket inherited from its parent; open new ones.
//  - Stale handles: after DropBucket, operations on an existing Bucket handle fail with
//    kBucketNotFound. Bucket ids are never reused, so a stale handle never reaches another bucket.
//  - Worker restarts are invisible: reads keep working while a worker restarts, and writes
//    (queued, in flight or new) wait for the restarted worker within the timeout and are applied
//    exactly once -- none fails because of the restart, none is applied twice. kUnavailable only
//    if the worker is not back in time, kFailed if the bucket is failed. A write that timed out
//    (kTimeout) stays queued and is applied once, later.
//  - Subscriptions see every change or are told how many they missed (Change::Kind::kMissed);
//    a write applied by a worker that crashed before recording it is announced only by the
//    kResync that follows the restart: rescan if you keep derived state.
//  - kvd down: reads, writes, OpenBucket and GetStatus keep working (workers outlive kvd);
//    CreateBucket, DropBucket, RestartBucket and Shutdown fail with kUnavailable.
//  - Limits: keys 1..1024 bytes, values 0..16 MiB (kMaxKeySize/kMaxValueSize below; larger is
//    kTooLarge); bucket names 1..64 printable ASCII characters without spaces. Values over about
//    128 KiB travel to the worker in a sealed memfd instead of the channel ring (one extra copy
//    and a few syscalls), and a Delete returning such an old value receives it the same way.
//
// Thread safety: a Client may be shared by many threads. A Bucket handle is cheap to copy; each
// copy may be used by one thread at a time (copy it into each thread before the thread starts:
// copying a handle another thread is using is a data race). Copies share the write channel,
// which serialises their writes; a second OpenBucket gives a handle with a channel of its own.
// A Bucket stays valid after its Client is destroyed.
//
// The C ABI over this API, for C and other languages, is kv/kv.h.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "kv/status.h"
#include "kv/version.h"

namespace kv {

inline constexpr std::size_t kMaxKeySize = 1024;
inline constexpr std::size_t kMaxValueSize = 16u << 20;  // 16 MiB (shm::kMaxValueSize)
inline constexpr std::size_t kMaxBucketNameSize = 64;
// The longest TTL (Bucket::Put with a ttl, Expire): 1000 years.
inline constexpr std::chrono::milliseconds kMaxTtl{1000LL * 365 * 24 * 3600 * 1000};
// An absolute expiry time (Bucket::Put with `expires_at`): wall clock, in milliseconds, as kv
// stores it (C++20's sys_time<milliseconds>). Not system_clock::time_point, whose nanoseconds
// end in 2262 while kv's times reach 4199. From now:
// std::chrono::ceil<std::chrono::milliseconds>(std::chrono::system_clock::now()) + ttl.
using ExpiryTime = std::chrono::time_point<std::chrono::system_clock, std::chrono::milliseconds>;

// The version of the libkvclient loaded at run time, "MAJOR.MINOR.PATCH" (as kv_version()).
// KV_VERSION_STRING (kv/version.h) is the version of the headers a program was compiled with.
const char* Version();

struct ClientOptions {
  // Instance namespace. Empty (default): $KV_NAMESPACE, else "kv".
  std::string ns;
  // How long a write or control request waits for its reply. Default 5 s. Negative:
  // kInvalidArgument from Open; more than INT_MAX ms (24.8 days) counts as INT_MAX ms.
  std::chrono::milliseconds timeout{5000};
};

struct BucketInfo {
  std::string name;
  std::uint64_t id = 0;
  std::string state;  // "starting", "running", "restarting", "failed", "dropping"
  std::int32_t worker_pid = 0;
  std::uint32_t restarts = 0;
  std::uint64_t started_unix_ms = 0;
  std::string reason;  // why it is restarting or failed; empty otherwise
  // From the bucket's segment (0 if it could not be read).
  std::uint64_t keys = 0;
  std::uint64_t generation = 0;
  std::uint64_t memory_bytes = 0;  // bytes of shared memory the bucket's table occupies
  std::uint64_t writes = 0;        // writes applied since the bucket was created
  std::uint64_t queue_depth = 0;   // as BucketStats::queue_depth
  std::uint32_t subscribers = 0;   // subscriptions connected to the worker (0 without one)
  // Persistence (docs/persistence.md), from the bucket's anchor. "memory only" when kvd has no
  // data directory; else "snapshots" or "snapshots+log (always|everysec|no)".
  std::string persistence = "memory only";
  std::uint64_t last_save_unix_ms = 0;   // last good snapshot (0: none yet)
  std::uint64_t log_bytes = 0;           // bytes of log after that snapshot
  std::uint64_t changes_since_save = 0;  // writes applied since that snapshot
  bool last_save_ok = true;              // the last snapshot attempt succeeded
  bool writes_refused = false;           // writes answered PERSISTENCE until a save succeeds
  std::string persistence_error;         // the failure being reported ("" if none)
  // Mirror of an upstream Redis (docs/mirror.md); upstream empty: not a mirror.
  std::string upstream;                      // its URL
  std::string upstream_prefix;               // upstream key = prefix + bucket key
  std::string upstream_state;                // "syncing", "live" or "stale"
  std::uint64_t upstream_since_unix_ms = 0;  // stale: values are those of this time
  std::uint64_t upstream_lag_us = 0;         // last change: invalidation received to applied
  std::uint64_t upstream_resyncs = 0;        // full resyncs completed by the current worker
  std::uint64_t upstream_resync_ms = 0;      // how long the last one took
  std::uint64_t upstream_skipped = 0;        // upstream keys not mirrored (value too large...)
};

// The upstream of a mirrored bucket (docs/mirror.md).
struct Upstream {
  // redis://HOST:PORT[/DB], unix:///path[?db=N] or redis-cluster://HOST:PORT[,HOST:PORT...]
  std::string url;
  // Upstream key = prefix + bucket key. Unset: "NAME:" (the bucket's name and a colon).
  std::optional<std::string> prefix;
  // A file holding the upstream's password (read by the bucket's worker, never passed around).
  std::string password_file;
};

struct InstanceStatus {
  std::string ns;
  std::int32_t kvd_pid = 0;  // 0: kvd is not running
  std::uint64_t kvd_started_unix_ms = 0;
  // "memory only", or what kvd keeps in its data directory (as BucketInfo::persistence).
  std::string persistence = "memory only";
  std::vector<BucketInfo> buckets;
};

class Bucket;

// Writes applied together (leveldb's WriteBatch, Redis's MULTI/EXEC): Bucket::Write applies all
// of them or none. Every cas is checked against the state before the batch; if one fails,
// nothing is applied. Readers never see a part of a batch through a Snapshot (a single Get may
// see one of its keys changed before another: use a Snapshot for reads across keys).
// Limits: 1..kMaxBatchOps operations, each key once (a key twice is kInvalidArgument: every
// operation sees the state before the batch), keys and values as for Put, and the encoded batch
// (ByteSize: 24 bytes per operation plus keys and values) at most kMaxValueSize. An argument
// error is kept and returned by Bucket::Write, which then sends nothing.
// Thread-compatible: a value type, one thread at a time.
inline constexpr std::size_t kMaxBatchOps = 4096;

class WriteBatch {
 public:
  // Expiry as the single writes: Put removes the key's expiry, Cas keeps it.
  void Put(std::string_view key, std::string_view value);
  void Delete(std::string_view key);  // a missing key is not an error (it stays missing)
  // Stores `value` only if the key's version is `expected_version` (0: only if absent).
  void Cas(std::string_view key, std::uint64_t expected_version, std::string_view value);
  void Clear();  // empties the batch (and forgets its argument error)
  std::size_t Count() const { return count_; }
  std::size_t ByteSize() const { return body_.size(); }
  // The first argument error of an operation added (OK if none).
  const Status& error() const { return error_; }

 private:
  friend class Bucket;
  void Add(int op, std::string_view key, std::string_view value, std::uint64_t arg);
  std::string body_;  // the wire body (shm/batch.h)
  std::size_t count_ = 0;
  std::unordered_set<std::string> keys_;  // to refuse a key twice
  Status error_;
};

// How old a Snapshot may grow (Bucket::Snapshot).
struct SnapshotOptions {
  // A snapshot keeps the table generation it reads mapped; once the bucket has moved to a newer
  // generation (growth, compaction, clear) that memory is the snapshot's alone. A replaced
  // generation larger than this is released at the snapshot's next read, which then fails with
  // kSnapshotTooOld. Default 256 MiB.
  std::uint64_t max_pinned_bytes = std::uint64_t{256} << 20;
};

// A read view of a whole bucket at one moment (LMDB's read transaction): Get and Scan see
// exactly the bucket's state when it was taken, while writes continue, and never a part of a
// batch. Taking one costs a few loads (no message, no copy); reads cost a little more than
// Bucket::Get, plus a look at the slot changes made since the snapshot (each is read once per
// snapshot). Bounded (docs/design.md, "Snapshots"): once more than 65536 slot changes were made
// after it (the bucket's history window) before it looked at them, or when it would pin more
// than SnapshotOptions::max_pinned_bytes, every read fails with kSnapshotTooOld -- never a
// wrong value. Read it promptly or take a new one.
// Thread-compatible: one thread at a time per copy (copies share a cache: do not use two copies
// at once from different threads). Stays valid after the Bucket handle is destroyed.
class Snapshot {
 public:
  // As Bucket::Get, at the snapshot's moment. Plus kSnapshotTooOld.
  Status Get(std::string_view key, std::string* value, std::uint64_t* version = nullptr);
  // Every key starting with `prefix`, as present at the snapshot's moment, each once (order
  // unspecified). As Bucket::Scan plus kSnapshotTooOld (fn may then have seen some keys).
  Status Scan(std::string_view prefix,
              const std::function<bool(std::string_view key, std::string_view value)>& fn);
  // As Scan, and fn also receives the key's expiry time (Unix ms; 0: it does not expire), for
  // copying keys with their expiry (kvctl dump).
  Status ScanWithExpiry(std::string_view prefix,
                        const std::function<bool(std::string_view key, std::string_view value,
                                                 std::uint64_t expires_unix_ms)>& fn);
  // The bucket's change sequence the snapshot reads at (slot changes committed up to it).
  std::uint64_t sequence() const;

  class State;

 private:
  friend class Bucket;
  explicit Snapshot(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

// A connection to one kv instance: the registry mapped read-only, plus control requests to kvd.
// Created by Open (shared ownership); thread-safe.
class Client {
 public:
  // Opens the instance. Fails with kInvalidArgument for a bad namespace or a negative timeout,
  // kUnavailable if no kvd ever ran for it (no registry), kPermissionDenied if this user may not
  // read it.
  static Result<std::shared_ptr<Client>> Open(const ClientOptions& options);

  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Creates a bucket (kvd starts its worker). Creating an existing bucket is OK and changes
  // nothing. Errors: kInvalidArgument (name), kUnavailable (kvd down), kFailed (max buckets, or
  // worker did not start), kTimeout.
  Status CreateBucket(std::string_view name);
  // Creates a bucket that mirrors `upstream` (docs/mirror.md): its worker loads every upstream
  // key under the prefix, follows the upstream's changes, and sends writes to the upstream,
  // applying them once it acknowledged them. An existing bucket with the same upstream is OK;
  // with another (or none), kInvalidArgument. Errors as CreateBucket, plus kInvalidArgument for a
  // bad URL, prefix or password file, and kFailed when kvd was built without hiredis or keeps a
  // data directory.
  Status CreateBucket(std::string_view name, const Upstream& upstream);
  // Stops the bucket's worker and deletes its data; open handles to it become stale (see
  // Caveats). Errors: kBucketNotFound if it does not exist, kInvalidArgument (name),
  // kUnavailable (kvd down), kTimeout.
  Status DropBucket(std::string_view name);
  // Clears a failed bucket's restart history and restarts its worker (also a running one); the
  // data is kept. Errors as DropBucket.
  Status RestartBucket(std::string_view name);
  // A handle to an existing bucket (no round trip to kvd: works while kvd is down). Errors:
  // kBucketNotFound if it does not exist, kInvalidArgument (name), kUnavailable (the bucket has
  // no data yet: its first worker is still starting), kPermissionDenied, kCorrupt.
  Result<Bucket> OpenBucket(std::string_view name);
  // Buckets and kvd as the registry shows them (no round trip to kvd; kvd_pid is 0 if kvd is
  // not running).
  Result<InstanceStatus> GetStatus();
  // Asks kvd to stop (workers stopped, data kept). Errors: kUnavailable (kvd not running),
  // kTimeout.
  Status Shutdown();
  // Takes a snapshot of the bucket to kvd's data directory now and waits (up to
  // max(timeout, 60 s)) until it is written. Errors: kBucketNotFound, kFailed (memory only, or
  // no running worker), kPersistence (the snapshot failed: the message says why), kTimeout.
  Status SaveBucket(std::string_view name);

  // The namespace this client opened (after applying $KV_NAMESPACE and the default).
  const std::string& ns() const;

  class Impl;

 private:
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Statistics of one bucket, read from its segment header (no round trip).
struct BucketStats {
  std::uint64_t keys = 0;
  std::uint64_t generation = 0;    // table generation (grows on growth, compaction and clear)
  std::uint64_t memory_bytes = 0;  // size of the current table segment
  std::uint64_t used_bytes = 0;    // bytes of records written in this generation (incl. garbage)
  std::uint64_t live_bytes = 0;    // bytes of records the keys point at
  std::uint64_t writes = 0;        // writes applied since the bucket was created
  // Queue depth: the most requests the worker found waiting at one look over its clients'
  // channels during its last second (it takes at most 256 per client at a time); 0 after a
  // second without requests. Updated once a second; stale while the worker is not running.
  std::uint64_t queue_depth = 0;
};

// One change to a bucket, as its worker applied it (see Bucket::Subscribe).
struct Change {
  enum class Kind {
    kPut,      // key was set to value (put, cas, incr)
    kDelete,   // key was deleted
    kClear,    // every key was removed
    kMissed,   // `missed` changes starting at `sequence` are gone: this subscriber fell behind
    kResync,   // the worker restarted after a crash: changes just before this may be missing
    kExpired,  // key reached its expiry time and the worker removed it
  };
  Kind kind = Kind::kPut;
  std::uint64_t sequence = 0;  // increases by one per change, across worker restarts
  std::uint64_t missed = 0;    // kMissed only
  std::string key;
  std::string value;
  bool value_omitted = false;  // the value was too large for the feed (64 KiB): Get() it
};

// A live view of a bucket's changes, read from the bucket's change feed in shared memory: the
// worker publishes each change once and never waits for subscribers; a subscriber that falls too
// far behind is told exactly how many changes it missed (Kind::kMissed), never silently skipped.
// Thread-safe: copies share one position; concurrent Next() calls each get different changes.
class Subscription {
 public:
  // Waits up to `timeout` (0: just look; longer than a year counts as a year) for the next
  // change. Reuse one Change across calls: its buffers are reused, so that reading a change
  // allocates nothing once they are large enough. kTimeout if none came; kBucketNotFound if the
  // bucket was dropped; kCorrupt if the feed fails validation; kInvalidArgument for a negative
  // timeout.
  Status Next(Change* change, std::chrono::milliseconds timeout);
  // Next without waiting: kTimeout at once if no change waits. For event loops, with fd().
  Status TryNext(Change* change);
  // A file descriptor for poll/epoll/select/asyncio: readable (POLLIN) while a change waits.
  // Level-triggered in effect: it stays readable until TryNext (or Next) finds no change, so
  // the loop is: wait for the fd, then call TryNext until kTimeout. Owned by the subscription
  // (closed when the last copy is destroyed; never close it yourself). The first call starts
  // one helper thread that sleeps on the feed's futex and signals the fd (an eventfd); a
  // subscription whose fd() is never asked for has no thread. -1 if it cannot be created
  // (errno: EMFILE...). Readable also when the bucket is dropped (TryNext: kBucketNotFound).
  int fd() const;
  // The sequence the next delivered change will have (or the first missed one).
  std::uint64_t position() const;

  class State;

 private:
  friend class Bucket;
  explicit Subscription(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

// A handle to one bucket, from Client::OpenBucket. A value type: copies share the bucket's
// mapping and write channel and are cheap. One thread at a time per copy (see Thread safety).
class Bucket {
 public:
  Bucket(const Bucket&) = default;
  Bucket& operator=(const Bucket&) = default;
  Bucket(Bucket&&) noexcept = default;
  Bucket& operator=(Bucket&&) noexcept = default;
  ~Bucket();

  // --- Reads: served from shared memory in this process; no message, no syscall, no lock. ---

  // Copies the value of `key` into *value (reusing its capacity: no allocation when it fits) and,
  // if `version` is non-null, the key's version (for CompareAndSet).
  // kNotFound for a missing key (allocates nothing); kBucketNotFound if the bucket was dropped;
  // kCorrupt if the segment keeps failing validation; kInvalidArgument/kTooLarge for a bad key.
  Status Get(std::string_view key, std::string* value, std::uint64_t* version = nullptr);
  // Allocation-free variant: copies the value into buffer[0, capacity) and its length into *size.
  // If the value is longer than `capacity`, nothing is copied, *size is the length needed and the
  // result is kTooLarge.
  Status Get(std::string_view key, char* buffer, std::size_t capacity, std::size_t* size);
  // Looks up many keys: *values is resized to keys.size() and (*values)[i] receives the value
  // of keys[i]; the returned vector holds each key's Status (OK or kNotFound, or the error of
  // that lookup, as Get). REQUIRES: values != nullptr.
  std::vector<Status> MultiGet(const std::vector<std::string_view>& keys,
                               std::vector<std::string>* values);
  // Calls fn(key, value) for the keys starting with `prefix` until fn returns false. Weakly
  // consistent: each key is seen at most once, and every key present for the whole scan is seen.
  // The views passed to fn are valid only during the call. An exception thrown by fn propagates
  // to the caller. Errors: kBucketNotFound (dropped), kCorrupt.
  Status Scan(std::string_view prefix,
              const std::function<bool(std::string_view key, std::string_view value)>& fn);
  // Counters from the bucket's segment header. Errors: kBucketNotFound (dropped), kCorrupt.
  Result<BucketStats> Stats();

  // --- Writes: sent to the bucket's worker; sync calls return once applied and visible. ---

  // Stores `value` under `key`; *version (if non-null) receives the key's new version.
  // Errors: kInvalidArgument (empty key), kTooLarge, kBucketFull, kTimeout, kUnavailable,
  // kFailed (the bucket failed and refuses writes), kBucketNotFound (dropped).
  Status Put(std::string_view key, std::string_view value, std::uint64_t* version = nullptr);
  // Deletes `key`; *old_value (if non-null) receives the value it had. kNotFound if absent
  // (*old_value untouched). Other errors as Put.
  Status Delete(std::string_view key, std::string* old_value = nullptr);
  // Stores `value` only if the key's version is `expected_version` (0: only if the key is
  // absent). kVersionMismatch otherwise, with *version set to the current version (0 if absent).
  // On success *version is the new version. Any read-modify-write is a retry loop around this.
  Status CompareAndSet(std::string_view key, std::uint64_t expected_version, std::string_view value,
                       std::uint64_t* version = nullptr);
  // Adds `delta` to the decimal integer stored at `key` (absent counts as 0) and returns the
  // result. kNotAnInteger if the value is not a decimal int64 or the sum overflows (the value
  // is then unchanged). Other errors as Put.
  Result<std::int64_t> Increment(std::string_view key, std::int64_t delta = 1);
  // Removes every key. Errors as Put.
  Status Clear();

  // --- Expiry (TTL), as Redis's SET EX / EXPIRE / PERSIST / TTL. ---
  // A key with an expiry is absent for every reader, in every process, from its expiry time on
  // (wall clock, CLOCK_REALTIME, millisecond resolution, checked on each read), and its worker
  // removes it shortly after (a kExpired change in the feed). Expiry times survive worker
  // restarts and, with persistence, reboots. A plain Put removes a key's expiry; CompareAndSet
  // and Increment keep it.
  // A TTL must be 1 ms .. kMaxTtl (kInvalidArgument otherwise: zero, negative, or too large).

  // Put with an expiry `ttl` from now. Errors as Put, plus kInvalidArgument for a bad ttl and
  // kFailed for a bucket that mirrors Redis (docs/mirror.md: mirrors have no TTLs).
  Status Put(std::string_view key, std::string_view value, std::chrono::milliseconds ttl,
             std::uint64_t* version = nullptr);
  // Put with an absolute expiry time (Redis's SET PXAT), for copying a key with its expiry
  // (kvctl load). A time already past stores a key that is absent at once (the worker removes
  // it). Errors as Put with a ttl; kInvalidArgument for a time before 1970 or past the latest
  // expiry time kv stores.
  Status Put(std::string_view key, std::string_view value, ExpiryTime expires_at,
             std::uint64_t* version = nullptr);
  // Sets the key's expiry to `ttl` from now (a new version). kNotFound if the key is absent.
  // Other errors as Put with a ttl.
  Status Expire(std::string_view key, std::chrono::milliseconds ttl);
  // Removes the key's expiry: true if it had one (a new version), false if it had none.
  // kNotFound if the key is absent. Other errors as Put.
  Result<bool> Persist(std::string_view key);
  // Read from shared memory (no message): the time the key has left, or std::nullopt if it does
  // not expire. kNotFound if absent (or expired). Other errors as Get.
  Result<std::optional<std::chrono::milliseconds>> Ttl(std::string_view key);

  // Async writes (Agent.cast): queued for the worker, returning at once (or kTimeout if the queue
  // stays full). Flush() returns once everything this handle's client sent before it is applied
  // and visible; it reports kFailed if any async write failed since the previous Flush().
  // Argument errors (kInvalidArgument, kTooLarge) are returned by PutAsync/DeleteAsync at once.
  Status PutAsync(std::string_view key, std::string_view value);
  // PutAsync with an expiry `ttl` from now (a bad ttl is kInvalidArgument at once).
  Status PutAsync(std::string_view key, std::string_view value, std::chrono::milliseconds ttl);
  // PutAsync with an absolute expiry time (as Put with `expires_at`).
  Status PutAsync(std::string_view key, std::string_view value, ExpiryTime expires_at);
  Status DeleteAsync(std::string_view key);
  Status Flush();

  // --- Batches and snapshots ---

  // Applies `batch` all-or-nothing (see WriteBatch). *version (if non-null) receives the
  // bucket's version counter after it: operation i of n got version *version - n + 1 + i.
  // kVersionMismatch if a cas failed (*failed_index, if non-null, names it; nothing applied);
  // kInvalidArgument (empty batch, a key twice, an empty key), kTooLarge (too many operations,
  // a key, value or the whole batch too large) before anything is sent; kFailed for a bucket
  // that mirrors an upstream (batches are not supported there); other errors as Put.
  Status Write(const WriteBatch& batch, std::uint64_t* version = nullptr,
               std::size_t* failed_index = nullptr);
  // Queues `batch` (async, as PutAsync); Flush() reports it if it failed (e.g. a cas).
  Status WriteAsync(const WriteBatch& batch);
  // A consistent read view of the whole bucket now (see kv::Snapshot). Errors: kBucketNotFound,
  // kUnavailable (the worker has not created the bucket's history yet), kCorrupt.
  Result<kv::Snapshot> Snapshot(const SnapshotOptions& options = {});

  // Subscribes to this bucket's changes, starting with the next one (from_sequence = 0) or at
  // `from_sequence` (changes still in the feed are replayed; older ones are reported missed).
  // The subscription maps the feed itself: it stays valid after this handle is destroyed.
  // Errors: kBucketNotFound (dropped), kUnavailable (the worker has not created the feed yet),
  // kCorrupt, kPermissionDenied.
  Result<Subscription> Subscribe(std::uint64_t from_sequence = 0);

  const std::string& name() const;
  std::uint64_t id() const;

  class Shared;
  struct View;

 private:
  friend class Client;
  Bucket(std::shared_ptr<Shared> shared, std::shared_ptr<const View> view);
  Status Refresh();
  // Before a write: maps the current generation if the worker has moved on (best effort), so a
  // handle that only writes does not keep a replaced generation's memory allocated.
  void FollowGeneration();
  // Finds `key`, following generation moves; *value views this handle's mapping.
  Status Locate(std::string_view key, std::string_view* value, std::uint64_t* version,
                std::uint64_t* expiry = nullptr);

  std::shared_ptr<Shared> shared_;
  std::shared_ptr<const View> view_;  // this handle's mapping of the current generation
};

}  // namespace kv
