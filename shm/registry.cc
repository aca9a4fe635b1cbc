#include "shm/registry.h"

#include <chrono>
#include <cstring>
#include <thread>

#include "shm/names.h"
#include "shm/seqlock.h"

namespace kv::shm {
namespace {

// A reader retries a torn or in-progress entry: spinning first, then yielding, so that a kvd
// preempted in the middle of an update (or killed there, until the next kvd repairs the counter)
// delays readers by at most about kReadPatience instead of making an entry look absent.
constexpr int kSpinAttempts = 200;
constexpr auto kReadPatience = std::chrono::milliseconds(500);

// Calls attempt() until it returns true; false once the patience is exhausted.
template <typename Attempt>
bool RetryRead(Attempt attempt) {
  for (int i = 0; i < kSpinAttempts; ++i) {
    if (attempt()) return true;
  }
  auto deadline = std::chrono::steady_clock::now() + kReadPatience;
  while (std::chrono::steady_clock::now() < deadline) {
    if (attempt()) return true;
    std::this_thread::yield();
  }
  return false;
}

// False while the creator has not stored the magic (OpenOrCreate stores it last, with release):
// the rest of the header and the entries may not be initialised yet.
bool Published(const char* base, std::size_t size) {
  if (size < sizeof(RegistryHeader)) return true;  // not a registry: Attach says why
  const auto* h = reinterpret_cast<const RegistryHeader*>(base);
  return h->magic.load(std::memory_order_acquire) != 0;
}

std::size_t RegistrySize(std::uint32_t capacity) {
  return sizeof(RegistryHeader) + std::size_t{capacity} * sizeof(RegistryEntry);
}

void CopyString(char* dst, std::size_t cap, std::string_view src) {
  std::size_t n = std::min(cap - 1, src.size());
  if (n != 0) std::memcpy(dst, src.data(), n);
  dst[n] = '\0';
}

}  // namespace

const char* BucketStateName(std::uint32_t state) {
  switch (state) {
    case kBucketFree:
      return "free";
    case kBucketStarting:
      return "starting";
    case kBucketRunning:
      return "running";
    case kBucketRestarting:
      return "restarting";
    case kBucketFailed:
      return "failed";
    case kBucketDropping:
      return "dropping";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------------

std::optional<RegistryReader> RegistryReader::Open(std::string_view ns, ShmError* error) {
  RegistryReader reader;
  reader.segment_ = Segment::OpenReadOnly(RegistryObjectName(ns), error);
  const std::string not_ready =
      "registry of namespace '" + std::string(ns) + "' is being created (kvd is starting)";
  if (!reader.segment_.valid()) {
    if (error->kind == ShmError::kNotReady) error->message = not_ready;
    return std::nullopt;
  }
  if (!Published(reader.segment_.data(), reader.segment_.size())) {
    *error = {ShmError::kNotReady, not_ready};
    return std::nullopt;
  }
  std::string why = reader.Attach(reader.segment_.data(), reader.segment_.size());
  if (!why.empty()) {
    *error = {ShmError::kCorrupt, "registry of namespace '" + std::string(ns) + "': " + why};
    return std::nullopt;
  }
  return reader;
}

std::string RegistryReader::Attach(const char* base, std::size_t size) {
  if (size < sizeof(RegistryHeader)) return "segment is smaller than a registry header";
  const auto* h = reinterpret_cast<const RegistryHeader*>(base);
  if (h->magic.load(std::memory_order_acquire) != kRegistryMagic) {
    return "not a kv registry (bad magic)";
  }
  if (h->format_version != kFormatVersion) {
    return "registry format version " + std::to_string(h->format_version) +
           ", this build reads version " + std::to_string(kFormatVersion);
  }
  if (h->layout_word != kRegistryLayout) return "registry layout word does not match this build";
  if (h->capacity == 0 || RegistrySize(h->capacity) > size)
    return "registry capacity exceeds its segment";
  header_ = h;
  entries_ = reinterpret_cast<const RegistryEntry*>(base + sizeof(RegistryHeader));
  return {};
}

std::optional<BucketRecord> RegistryReader::Read(std::uint32_t index) const {
  if (index >= header_->capacity) return std::nullopt;
  const RegistryEntry& e = entries_[index];
  BucketRecord r;
  char name[kMaxBucketNameSize];
  char reason[sizeof e.reason];
  std::uint32_t len = 0;
  char url[sizeof e.upstream_url];
  char prefix[sizeof e.upstream_prefix];
  char password_file[sizeof e.password_file];
  std::uint32_t url_len = 0, prefix_len = 0, password_file_len = 0;
  bool read = RetryRead([&] {
    std::uint32_t seq;
    if (!ReadBegin(e.seq, &seq)) return false;
    r.index = index;
    r.state = e.state.load(std::memory_order_relaxed);
    r.bucket_id = e.bucket_id.load(std::memory_order_relaxed);
    r.worker_pid = e.worker_pid.load(std::memory_order_relaxed);
    r.restarts = e.restarts.load(std::memory_order_relaxed);
    r.worker_start_ticks = e.worker_start_ticks.load(std::memory_order_relaxed);
    r.started_unix_ms = e.started_unix_ms.load(std::memory_order_relaxed);
    len = e.name_len.load(std::memory_order_relaxed);
    RacyCopy(name, e.name, sizeof name);
    RacyCopy(reason, e.reason, sizeof reason);
    url_len = e.upstream_url_len.load(std::memory_order_relaxed);
    prefix_len = e.upstream_prefix_len.load(std::memory_order_relaxed);
    password_file_len = e.password_file_len.load(std::memory_order_relaxed);
    if (url_len != 0) {
      RacyCopy(url, e.upstream_url, sizeof url);
      RacyCopy(prefix, e.upstream_prefix, sizeof prefix);
      RacyCopy(password_file, e.password_file, sizeof password_file);
    }
    return ReadValid(e.seq, seq);
  });
  if (!read || len > sizeof name) return std::nullopt;  // never trust a length
  if (url_len > sizeof url || prefix_len > sizeof prefix ||
      password_file_len > sizeof password_file) {
    return std::nullopt;
  }
  if (url_len != 0) {
    r.upstream.url.assign(url, url_len);
    r.upstream.prefix.assign(prefix, prefix_len);
    r.upstream.password_file.assign(password_file, password_file_len);
  }
  r.name.assign(name, len);
  reason[sizeof reason - 1] = '\0';
  r.reason = reason;
  return r;
}

std::optional<BucketRecord> RegistryReader::Find(std::string_view name) const {
  for (std::uint32_t i = 0; i < header_->capacity; ++i) {
    const RegistryEntry& e = entries_[i];
    if (e.state.load(std::memory_order_relaxed) == kBucketFree) continue;
    if (e.name_len.load(std::memory_order_relaxed) != name.size()) continue;
    std::optional<BucketRecord> r = Read(i);
    if (r && r->state != kBucketFree && r->name == name) return r;
  }
  return std::nullopt;
}

std::vector<BucketRecord> RegistryReader::List() const {
  std::vector<BucketRecord> out;
  for (std::uint32_t i = 0; i < header_->capacity; ++i) {
    if (entries_[i].state.load(std::memory_order_relaxed) == kBucketFree) continue;
    std::optional<BucketRecord> r = Read(i);
    if (r && r->state != kBucketFree) out.push_back(std::move(*r));
  }
  return out;
}

KvdRecord RegistryReader::Kvd() const {
  KvdRecord k;
  RetryRead([&] {
    std::uint32_t seq;
    if (!ReadBegin(header_->seq, &seq)) return false;
    k.pid = header_->kvd_pid.load(std::memory_order_relaxed);
    k.start_ticks = header_->kvd_start_ticks.load(std::memory_order_relaxed);
    k.started_unix_ms = header_->kvd_started_unix_ms.load(std::memory_order_relaxed);
    k.next_bucket_id = header_->next_bucket_id.load(std::memory_order_relaxed);
    k.reloads = header_->reloads.load(std::memory_order_relaxed);
    k.last_reload_ok = header_->last_reload_ok.load(std::memory_order_relaxed) != 0;
    k.persist_mode = header_->persist_mode.load(std::memory_order_relaxed);
    return ReadValid(header_->seq, seq);
  });
  return k;
}

// ---------------------------------------------------------------------------------------------

std::optional<RegistryWriter> RegistryWriter::OpenOrCreate(std::string_view ns,
                                                           std::uint32_t capacity, mode_t mode,
                                                           bool* created, ShmError* error) {
  RegistryWriter w;
  std::string name = RegistryObjectName(ns);
  std::size_t size = RegistrySize(capacity);
  w.segment_ = Segment::Create(name, size, size, mode, error);
  *created = w.segment_.valid();
  if (*created) {
    auto* h = new (w.segment_.data()) RegistryHeader();
    h->format_version = kFormatVersion;
    h->layout_word = kRegistryLayout;
    h->capacity = capacity;
    h->next_bucket_id.store(1, std::memory_order_relaxed);
    for (std::uint32_t i = 0; i < capacity; ++i) {
      new (w.segment_.data() + sizeof(RegistryHeader) + i * sizeof(RegistryEntry)) RegistryEntry();
    }
    // Last, publishing the rest (readers load it with acquire): without it the registry is one
    // being created, or one a kvd died creating.
    h->magic.store(kRegistryMagic, std::memory_order_release);
  } else {
    if (error->kind != ShmError::kExists) return std::nullopt;
    *error = {};
    w.segment_ = Segment::OpenReadWrite(name, error);
    bool unpublished = w.segment_.valid() ? !Published(w.segment_.data(), w.segment_.size())
                                          : error->kind == ShmError::kNotReady;  // still empty
    if (unpublished) {
      // A kvd died while creating it (kvd holds its control socket before this point, so no
      // other kvd is creating it now): nothing can reference it yet, so start over.
      w.segment_ = Segment();
      *error = {};
      Segment::Remove(name);
      return OpenOrCreate(ns, capacity, mode, created, error);
    }
    if (!w.segment_.valid()) return std::nullopt;
  }
  std::string why = w.reader_.Attach(w.segment_.data(), w.segment_.size());
  if (!why.empty()) {
    *error = {ShmError::kCorrupt, "registry '" + name + "': " + why};
    return std::nullopt;
  }
  w.header_ = reinterpret_cast<RegistryHeader*>(w.segment_.data());
  w.entries_ = reinterpret_cast<RegistryEntry*>(w.segment_.data() + sizeof(RegistryHeader));
  // kvd holds its control socket before this point, so no other writer exists: any odd counter
  // was left by a kvd killed mid-update. Each such entry is rewritten whole by its next update;
  // make the counters even so readers do not spin on them meanwhile.
  if (w.header_->seq.load(std::memory_order_relaxed) & 1u) WriteEnd(w.header_->seq);
  for (std::uint32_t i = 0; i < w.header_->capacity; ++i) {
    if (w.entries_[i].seq.load(std::memory_order_relaxed) & 1u) WriteEnd(w.entries_[i].seq);
  }
  return w;
}

void RegistryWriter::SetKvd(std::int32_t pid, std::uint64_t start_ticks,
                            std::uint64_t started_unix_ms) {
  WriteBegin(header_->seq);
  header_->kvd_pid.store(pid, std::memory_order_relaxed);
  header_->kvd_start_ticks.store(start_ticks, std::memory_order_relaxed);
  header_->kvd_started_unix_ms.store(started_unix_ms, std::memory_order_relaxed);
  WriteEnd(header_->seq);
}

std::uint64_t RegistryWriter::AllocateBucketId() {
  WriteBegin(header_->seq);
  std::uint64_t id = header_->next_bucket_id.fetch_add(1, std::memory_order_relaxed);
  WriteEnd(header_->seq);
  return id;
}

void RegistryWriter::EnsureNextBucketId(std::uint64_t next) {
  WriteBegin(header_->seq);
  if (header_->next_bucket_id.load(std::memory_order_relaxed) < next) {
    header_->next_bucket_id.store(next, std::memory_order_relaxed);
  }
  WriteEnd(header_->seq);
}

void RegistryWriter::SetPersistMode(std::uint32_t mode) {
  WriteBegin(header_->seq);
  header_->persist_mode.store(mode, std::memory_order_relaxed);
  WriteEnd(header_->seq);
}

void RegistryWriter::RecordReload(bool applied) {
  WriteBegin(header_->seq);
  header_->last_reload_ok.store(applied ? 1 : 0, std::memory_order_relaxed);
  header_->reloads.fetch_add(1, std::memory_order_relaxed);
  WriteEnd(header_->seq);
}

std::optional<std::uint32_t> RegistryWriter::Insert(std::string_view name, std::uint64_t bucket_id,
                                                    const UpstreamSpec& upstream) {
  for (std::uint32_t i = 0; i < header_->capacity; ++i) {
    RegistryEntry& e = entries_[i];
    if (e.state.load(std::memory_order_relaxed) != kBucketFree) continue;
    WriteBegin(e.seq);
    e.bucket_id.store(bucket_id, std::memory_order_relaxed);
    e.worker_pid.store(0, std::memory_order_relaxed);
    e.restarts.store(0, std::memory_order_relaxed);
    e.worker_start_ticks.store(0, std::memory_order_relaxed);
    e.started_unix_ms.store(0, std::memory_order_relaxed);
    e.name_len.store(static_cast<std::uint32_t>(name.size()), std::memory_order_relaxed);
    std::memset(e.name, 0, sizeof e.name);
    if (!name.empty()) std::memcpy(e.name, name.data(), std::min(name.size(), sizeof e.name));
    e.reason[0] = '\0';
    auto put = [](char* dst, std::size_t cap, std::atomic<std::uint32_t>* len,
                  const std::string& src) {
      std::size_t n = std::min(cap, src.size());
      std::memset(dst, 0, cap);
      if (n != 0) std::memcpy(dst, src.data(), n);
      len->store(static_cast<std::uint32_t>(n), std::memory_order_relaxed);
    };
    put(e.upstream_url, sizeof e.upstream_url, &e.upstream_url_len, upstream.url);
    put(e.upstream_prefix, sizeof e.upstream_prefix, &e.upstream_prefix_len, upstream.prefix);
    put(e.password_file, sizeof e.password_file, &e.password_file_len, upstream.password_file);
    e.state.store(kBucketStarting, std::memory_order_relaxed);
    WriteEnd(e.seq);
    return i;
  }
  return std::nullopt;
}

void RegistryWriter::SetState(std::uint32_t index, std::uint32_t state, std::string_view reason) {
  RegistryEntry& e = entries_[index];
  WriteBegin(e.seq);
  e.state.store(state, std::memory_order_relaxed);
  CopyString(e.reason, sizeof e.reason, reason);
  WriteEnd(e.seq);
}

void RegistryWriter::SetWorker(std::uint32_t index, std::int32_t pid, std::uint64_t start_ticks,
                               std::uint64_t started_unix_ms, std::uint32_t state,
                               std::string_view reason) {
  RegistryEntry& e = entries_[index];
  WriteBegin(e.seq);
  e.state.store(state, std::memory_order_relaxed);
  CopyString(e.reason, sizeof e.reason, reason);
  e.worker_pid.store(pid, std::memory_order_relaxed);
  e.worker_start_ticks.store(start_ticks, std::memory_order_relaxed);
  e.started_unix_ms.store(started_unix_ms, std::memory_order_relaxed);
  WriteEnd(e.seq);
}

void RegistryWriter::SetRestarts(std::uint32_t index, std::uint32_t restarts) {
  RegistryEntry& e = entries_[index];
  WriteBegin(e.seq);
  e.restarts.store(restarts, std::memory_order_relaxed);
  WriteEnd(e.seq);
}

void RegistryWriter::Free(std::uint32_t index) {
  RegistryEntry& e = entries_[index];
  WriteBegin(e.seq);
  e.state.store(kBucketFree, std::memory_order_relaxed);
  e.worker_pid.store(0, std::memory_order_relaxed);
  WriteEnd(e.seq);
}

}  // namespace kv::shm
