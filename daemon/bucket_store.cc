#include "daemon/bucket_store.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <charconv>

#include "daemon/crash_point.h"
#include "daemon/process_info.h"
#include "shm/names.h"

namespace kv::daemon {
namespace {

constexpr std::uint64_t kInitialSlots = 64;
constexpr std::uint64_t kInitialHeap = 16 * 1024;

bool ParseInt64(std::string_view s, std::int64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  const char* begin = s.data();
  if (*begin == '+') return false;
  auto [end, ec] = std::from_chars(begin, s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

std::optional<BucketStore> BucketStore::Open(const std::string& ns, std::uint64_t bucket_id,
                                             const BucketLimits& limits, std::string* error,
                                             bool* fresh) {
  if (fresh != nullptr) *fresh = false;
  shm::SetTableCrashHook([](const char* point) { CrashPoint(point); });
  BucketStore store;
  store.ns_ = ns;
  store.bucket_id_ = bucket_id;
  store.limits_ = limits;
  std::string anchor_name = shm::AnchorObjectName(ns, bucket_id);

  shm::ShmError e;
  store.anchor_segment_ = shm::Segment::OpenReadWrite(anchor_name, &e);
  if (store.anchor_segment_.valid()) {
    const auto* a = reinterpret_cast<const shm::AnchorHeader*>(store.anchor_segment_.data());
    bool complete = store.anchor_segment_.size() >= sizeof(shm::AnchorHeader) && a->magic != 0;
    if (!complete) {
      // Killed while creating the anchor: no generation can exist behind it yet.
      store.anchor_segment_ = shm::Segment();
      shm::Segment::Remove(anchor_name);
    } else if (a->magic != shm::kAnchorMagic || a->format_version != shm::kFormatVersion ||
               a->layout_word != shm::kAnchorLayout || a->bucket_id != bucket_id) {
      *error = "anchor '" + anchor_name + "' is not a valid anchor of bucket " +
               std::to_string(bucket_id) + " for this build; refusing to touch it";
      return std::nullopt;
    }
  } else if (e.kind == shm::ShmError::kNotReady) {
    shm::Segment::Remove(anchor_name);  // killed before it could size the anchor
  } else if (e.kind != shm::ShmError::kNotFound) {
    *error = e.message;
    return std::nullopt;
  }
  if (!store.anchor_segment_.valid()) {
    if (fresh != nullptr) *fresh = true;
    e = {};
    store.anchor_segment_ =
        shm::Segment::Create(anchor_name, shm::kAnchorSize, shm::kAnchorSize, limits.mode, &e);
    if (!store.anchor_segment_.valid()) {
      *error = e.message;
      return std::nullopt;
    }
    auto* a = new (store.anchor_segment_.data()) shm::AnchorHeader();
    a->format_version = shm::kFormatVersion;
    a->layout_word = shm::kAnchorLayout;
    a->bucket_id = bucket_id;
    a->state.store(shm::kAnchorLive, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    a->magic = shm::kAnchorMagic;
  }
  store.anchor_ = reinterpret_cast<shm::AnchorHeader*>(store.anchor_segment_.data());

  std::uint64_t generation = store.anchor_->generation.load(std::memory_order_acquire);
  // Leftovers of an interrupted generation change (see the header comment). A replaced
  // generation may still be mapped by readers: mark it moved (T4) before unlinking it, or they
  // would keep reading it and miss every later write.
  shm::Segment::Remove(shm::GenerationObjectName(ns, bucket_id, generation + 1));
  if (generation > 1) {
    std::string previous = shm::GenerationObjectName(ns, bucket_id, generation - 1);
    shm::TableWriter::MarkReplaced(previous, generation);
    shm::Segment::Remove(previous);
  }

  if (generation == 0) {
    std::string name = shm::GenerationObjectName(ns, bucket_id, 1);
    shm::Segment::Remove(name);  // half-built by a worker killed before publishing it
    store.table_ =
        shm::TableWriter::Create(name, bucket_id, 1, kInitialSlots, kInitialHeap, limits.mode, &e);
    if (!store.table_.valid()) {
      *error = e.message;
      return std::nullopt;
    }
    CrashPoint("first-generation-built");
    store.table_.Publish();
    store.anchor_->generation.store(1, std::memory_order_release);
  } else {
    std::string repairs;
    store.table_ =
        shm::TableWriter::Open(shm::GenerationObjectName(ns, bucket_id, generation), &e, &repairs);
    if (!store.table_.valid()) {
      *error = "CORRUPT: " + e.message;
      return std::nullopt;
    }
    if (!repairs.empty()) {
      spdlog::warn("bucket {}: generation {} repaired on open: {}", bucket_id, generation, repairs);
    }
  }
  // A batch (or write) killed after its history was published is completed before anything
  // else looks at the table (shm/slot_history.h); the table is then verified again.
  bool history_reset = false;
  store.history_ = std::make_unique<shm::HistoryWriter>(shm::HistoryWriter::OpenOrCreate(
      shm::HistoryObjectName(ns, bucket_id), bucket_id, limits.mode, &history_reset, &e));
  if (!store.history_->valid()) {
    *error = e.message;
    return std::nullopt;
  }
  std::uint64_t generation_now = store.table_.generation();
  std::uint64_t rolled = store.history_->RollForward(
      generation_now,
      [&](std::uint64_t index, std::uint64_t word) { store.table_.RestoreSlot(index, word); });
  if (rolled != 0) {
    spdlog::warn("bucket {}: completed {} slot changes of an interrupted write", bucket_id, rolled);
    store.table_ = shm::TableWriter::Open(shm::GenerationObjectName(ns, bucket_id, generation_now),
                                          &e, nullptr);
    if (!store.table_.valid()) {
      *error = "CORRUPT: " + e.message;
      return std::nullopt;
    }
  }
  store.table_.SetHistory(store.history_.get());
  bool reset = false;
  store.dedup_ = shm::ChannelDedup::OpenOrCreate(shm::DedupObjectName(ns, bucket_id), bucket_id,
                                                 limits.mode & 0700, &reset, &e);
  if (!store.dedup_.valid()) {
    *error = e.message;
    return std::nullopt;
  }
  if (std::string recovered = store.dedup_.Recover(store.table_, store.history_->commit());
      !recovered.empty()) {
    spdlog::warn("bucket {}: {}", bucket_id, recovered);
  }
  store.table_.SetSwingHook(&shm::ChannelDedup::Swung, store.dedup_.swing_context());
  bool unclean = false;
  store.feed_ = shm::FeedWriter::OpenOrCreate(
      shm::FeedObjectName(ns, bucket_id), bucket_id, limits.feed_changes,
      limits.feed_changes * kFeedBytesPerChange, limits.mode, &unclean, &e);
  if (!store.feed_.valid()) {
    *error = e.message;
    return std::nullopt;
  }
  if (unclean) {  // F4: the previous worker may have applied writes it never appended
    store.feed_.Append(shm::FeedOp::kResync, {}, {});
    store.feed_.Publish(false);  // the worker wakes every subscriber when it starts (Run)
  }
  if (history_reset && generation != 0) {
    // A new history for an existing table: a snapshot still mapping the old one would see no
    // later change of its generation. Replacing the generation freezes it (same contents).
    if (store.NextGeneration(0, false) != shm::WireStatus::kOk) {
      *error = "cannot replace generation " + std::to_string(generation) +
               " after recreating the slot history";
      return std::nullopt;
    }
  }
  store.QueueExpiries();  // the expiry times are in the records: they survive the worker
  store.anchor_->state.store(shm::kAnchorLive, std::memory_order_release);
  store.SetSubscribers(0);  // those of the previous worker connect again (change_feed.h)
  store.anchor_->worker_start_ticks.store(ProcessStartTicks(::getpid()), std::memory_order_relaxed);
  store.anchor_->worker_pid.store(::getpid(), std::memory_order_release);
  store.Heartbeat();
  return store;
}

void BucketStore::Heartbeat() {
  anchor_->heartbeat_ns.store(MonotonicNanosNow(), std::memory_order_relaxed);
}

void BucketStore::MarkDropped() {
  anchor_->state.store(shm::kAnchorDropped, std::memory_order_release);
  table_.MarkMoved(shm::kMovedDropped);
}

shm::WireStatus BucketStore::NextGeneration(std::uint64_t extra_bytes, bool empty,
                                            std::uint64_t extra_keys) {
  table_.AbandonNext();  // sized for what the table held, not for this
  std::uint64_t next_gen = table_.generation() + 1;
  std::string name = shm::GenerationObjectName(ns_, bucket_id_, next_gen);
  shm::Segment::Remove(name);
  shm::ShmError error;
  shm::TableWriter next =
      table_.BuildNext(name, extra_bytes, empty, limits_.max_bytes, &error, extra_keys);
  if (!next.valid()) {
    spdlog::warn("bucket {}: cannot build generation {}: {}", bucket_id_, next_gen, error.message);
    return shm::WireStatus::kBucketFull;
  }
  Adopt(std::move(next));
  return shm::WireStatus::kOk;
}

void BucketStore::Adopt(shm::TableWriter next) {
  std::uint64_t next_gen = next.generation();
  dedup_.CarryValues(table_.view(), next, next_gen);  // before anyone can see `next`
  CrashPoint("generation-built");
  next.Publish();
  CrashPoint("generation-published");
  anchor_->generation.store(next_gen, std::memory_order_release);  // A1
  dedup_.AdoptGeneration(next_gen);
  CrashPoint("anchor-updated");
  table_.MarkMoved(next_gen);  // T4
  shm::TableWriter old = std::move(table_);
  table_ = std::move(next);
  table_.SetSwingHook(&shm::ChannelDedup::Swung, dedup_.swing_context());
  table_.SetHistory(history_.get());
  shm::Segment::Remove(old.name());  // A2: readers that mapped it keep their mapping
  released_.Release(std::move(old));
  spdlog::debug("bucket {}: generation {} published", bucket_id_, next_gen);
}

bool BucketStore::AdvanceNextGeneration(std::size_t requests) {
  // The worker is the only writer of the counter: no seqlock read is needed (TableView::Stats).
  auto writes = [this] {
    return table_.view().header()->writes_applied.load(std::memory_order_relaxed);
  };
  if (!table_.building_next()) {
    if (!table_.NearlyFull(limits_.max_bytes) || writes() < retry_next_after_writes_) return false;
    std::string name = shm::GenerationObjectName(ns_, bucket_id_, table_.generation() + 1);
    shm::Segment::Remove(name);
    shm::ShmError error;
    if (!table_.StartNext(name, limits_.max_bytes, &error)) {
      // The writes that fill the table will build it at once (and say why if they cannot).
      retry_next_after_writes_ = writes() + kNextRetryWrites;
      return false;
    }
  }
  if (CopyNextGeneration(requests == 0 ? kNextSlotsIdle : requests * kNextSlotsPerRequest)) {
    return false;
  }
  if (!table_.building_next()) retry_next_after_writes_ = writes() + kNextRetryWrites;
  return table_.building_next();
}

bool BucketStore::CopyNextGeneration(std::uint64_t slots) {
  if (!table_.CopyNext(slots)) return false;
  Adopt(table_.TakeNext());
  return true;
}

template <typename Write>
shm::WireStatus BucketStore::Grow(std::uint64_t bytes, Write&& write) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    shm::WriteResult r = write();
    if (r == shm::WriteResult::kOk) return shm::WireStatus::kOk;
    if (r == shm::WriteResult::kNotFound) return shm::WireStatus::kNotFound;
    if (r == shm::WriteResult::kVersionMismatch) return shm::WireStatus::kVersionMismatch;
    if (table_.last_error().kind == shm::ShmError::kNoSpace) return shm::WireStatus::kBucketFull;
    // A build under way has room for what this table holds and as much again: finish it now.
    if (table_.building_next() && CopyNextGeneration(~std::uint64_t{0})) continue;
    shm::WireStatus grown = NextGeneration(bytes, false);
    if (grown != shm::WireStatus::kOk) return grown;
  }
  return shm::WireStatus::kBucketFull;
}

shm::WireStatus BucketStore::Put(std::string_view key, std::string_view value,
                                 std::int64_t* version, std::uint64_t expiry) {
  std::uint64_t v = 0;
  shm::WireStatus s = Grow(shm::RecordSize(key.size(), value.size(), expiry != 0),
                           [&] { return table_.Put(key, value, &v, expiry); });
  if (s == shm::WireStatus::kOk) {
    *version = static_cast<std::int64_t>(v);
    if (expiry != 0) expiry_.Push(key, expiry);
  }
  return s;
}

shm::WireStatus BucketStore::Cas(std::string_view key, std::uint64_t expected,
                                 std::string_view value, std::int64_t* version) {
  // Cas keeps the key's expiry: its entry in the expiry queue stays right (same time).
  std::uint64_t v = 0;
  shm::WireStatus s = Grow(shm::RecordSize(key.size(), value.size(), true),
                           [&] { return table_.Cas(key, expected, value, &v); });
  *version = static_cast<std::int64_t>(v);
  return s;
}

shm::WireStatus BucketStore::SetExpiry(std::string_view key, std::uint64_t expiry,
                                       std::int64_t* version) {
  shm::RecordRef current;
  if (table_.view().Find(key, &current) != shm::ReadResult::kFound) {
    return shm::WireStatus::kNotFound;
  }
  if (expiry == 0 && current.expires_unix_ms == 0) {  // persist: nothing to remove
    *version = 0;
    return shm::WireStatus::kOk;
  }
  std::uint64_t v = 0;
  shm::WireStatus s = Grow(shm::RecordSize(key.size(), current.value.size(), expiry != 0),
                           [&] { return table_.SetExpiry(key, expiry, &v); });
  if (s == shm::WireStatus::kOk) {
    *version = static_cast<std::int64_t>(v);
    if (expiry != 0) expiry_.Push(key, expiry);
  }
  return s;
}

shm::WireStatus BucketStore::Incr(std::string_view key, std::int64_t delta, std::int64_t* result) {
  shm::RecordRef current;
  std::int64_t value = 0;
  shm::ReadResult r = table_.view().Find(key, &current);
  if (r == shm::ReadResult::kFound && !ParseInt64(current.value, &value)) {
    return shm::WireStatus::kNotAnInteger;
  }
  if (__builtin_add_overflow(value, delta, &value)) return shm::WireStatus::kNotAnInteger;
  // Incr keeps the key's expiry (as Redis's INCR): the queue's entry for it stays right.
  std::uint64_t expiry = r == shm::ReadResult::kFound ? current.expires_unix_ms : 0;
  std::string text = std::to_string(value);
  std::uint64_t v = 0;
  shm::WireStatus s = Grow(shm::RecordSize(key.size(), text.size(), expiry != 0),
                           [&] { return table_.Put(key, text, &v, expiry); });
  if (s == shm::WireStatus::kOk) *result = value;
  return s;
}

void BucketStore::QueueExpiries() {
  const shm::TableView& view = table_.view();
  for (std::uint64_t i = 0; i < view.slot_count(); ++i) {
    std::uint64_t word = view.SlotWord(i);
    if (word == shm::kSlotEmpty || word == shm::kSlotTombstone) continue;
    std::uint32_t k = 0, v = 0;
    const shm::RecordHeader* rec = view.Record(word, &k, &v);
    if (rec == nullptr) continue;
    if (std::uint64_t expiry = shm::RecordExpiry(rec); expiry != 0) {
      expiry_.Push({shm::RecordKey(rec), k}, expiry);
    }
  }
}

void BucketStore::RecordChange(const shm::Request& request, shm::WireStatus status,
                               std::int64_t number) {
  if (status != shm::WireStatus::kOk) return;
  switch (static_cast<shm::Op>(request.header.op)) {
    case shm::Op::kPut:
    case shm::Op::kCas:
      feed_.Append(shm::FeedOp::kPut, request.key, request.value);
      break;
    case shm::Op::kIncr:
      feed_.Append(shm::FeedOp::kPut, request.key, std::to_string(number));
      break;
    case shm::Op::kDelete:
      feed_.Append(shm::FeedOp::kDelete, request.key, {});
      break;
    case shm::Op::kClear:
      feed_.Append(shm::FeedOp::kClear, {}, {});
      expiry_.Clear();
      break;
    case shm::Op::kExpire:
    case shm::Op::kPersist:
      // The record was rewritten with its value and a new expiry: a put of the same value.
      if (number != 0) {
        shm::RecordRef record;
        if (table_.view().FindAny(request.key, &record) == shm::ReadResult::kFound) {
          feed_.Append(shm::FeedOp::kPut, request.key, record.value);
        }
      }
      break;
    case shm::Op::kBatch:
      feed_.BeginGroup();  // subscribers see the batch's changes together
      for (std::size_t i = 0; i < batch_.size(); ++i) {
        const shm::BatchOp& op = batch_[i];
        if (i % shm::kPulseEveryRequests == 0) Pulse();
        if (op.op == shm::Op::kDelete) {
          feed_.Append(shm::FeedOp::kDelete, op.key, {});
        } else {
          feed_.Append(shm::FeedOp::kPut, op.key, op.value);
        }
      }
      CrashPoint("batch-feed-appended");
      feed_.EndGroup();
      break;
    case shm::Op::kFlush:
      break;
  }
}

shm::WireStatus BucketStore::Batch(const shm::Request& request, std::int64_t* number) {
  std::size_t bad = 0;
  shm::WireStatus s = shm::DecodeBatch(
      request.value, static_cast<std::uint64_t>(request.header.arg), &batch_, &bad);
  if (s != shm::WireStatus::kOk) {
    *number = static_cast<std::int64_t>(bad);
    batch_.clear();
    return s;
  }
  // A batch never spans generations: when it does not fit, the next generation is built with
  // room for it first (invisible to readers: same contents), then the batch is applied there.
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::size_t failed = 0;
    std::uint64_t version = 0;
    Pulse();
    shm::WriteResult r = table_.ApplyBatch(batch_, &failed, &version);
    Pulse();
    if (r == shm::WriteResult::kOk) {
      *number = static_cast<std::int64_t>(version);
      return shm::WireStatus::kOk;
    }
    if (r == shm::WriteResult::kVersionMismatch) {
      *number = static_cast<std::int64_t>(failed);
      return shm::WireStatus::kVersionMismatch;
    }
    if (table_.last_error().kind == shm::ShmError::kNoSpace) return shm::WireStatus::kBucketFull;
    shm::BatchNeeds needs = table_.Needs(batch_);
    shm::WireStatus grown = NextGeneration(needs.bytes, false, needs.new_keys);
    if (grown != shm::WireStatus::kOk) return grown;
  }
  return shm::WireStatus::kBucketFull;
}

shm::WireStatus BucketStore::Reserve(std::uint64_t keys, std::uint64_t bytes) {
  if (keys == 0) return shm::WireStatus::kOk;
  return NextGeneration(bytes, false, keys);
}

shm::WireStatus BucketStore::RestorePut(std::string_view key, std::string_view value,
                                        std::uint64_t version, std::uint64_t expiry) {
  // A key restored already expired is put all the same (it replaces any older value of the key
  // from the snapshot); readers never see it and the active expiry removes it once serving.
  shm::WireStatus s = Grow(shm::RecordSize(key.size(), value.size(), expiry != 0),
                           [&] { return table_.PutVersioned(key, value, version, expiry); });
  if (s == shm::WireStatus::kOk && expiry != 0) expiry_.Push(key, expiry);
  return s;
}

void BucketStore::RestoreDelete(std::string_view key, std::uint64_t last_version) {
  // A delete of an expired key (logged by the active expiry) removes it too.
  if (table_.Delete(key, nullptr) == shm::WriteResult::kNotFound) {
    shm::RecordRef record;
    if (table_.view().FindAny(key, &record) == shm::ReadResult::kFound) {
      table_.Expire(key, record.expires_unix_ms, ~std::uint64_t{0});
    }
  }
  table_.RaiseLastVersion(last_version);
}

shm::WireStatus BucketStore::RestoreClear(std::uint64_t last_version) {
  shm::WireStatus s = NextGeneration(0, true);
  table_.RaiseLastVersion(last_version);
  return s;
}

void BucketStore::RemoveObjects() {
  std::uint64_t generation = table_.generation();
  table_ = shm::TableWriter();
  feed_ = shm::FeedWriter();
  anchor_ = nullptr;
  anchor_segment_ = shm::Segment();
  for (std::uint64_t g = generation > 0 ? generation - 1 : 0; g <= generation + 1; ++g) {
    shm::Segment::Remove(shm::GenerationObjectName(ns_, bucket_id_, g));
  }
  shm::Segment::Remove(shm::FeedObjectName(ns_, bucket_id_));
  shm::Segment::Remove(shm::HistoryObjectName(ns_, bucket_id_));
  shm::Segment::Remove(shm::AnchorObjectName(ns_, bucket_id_));
}

shm::WireStatus BucketStore::Apply(const shm::Request& request, std::int64_t* number,
                                   std::string* value) {
  *number = 0;
  value->clear();
  switch (static_cast<shm::Op>(request.header.op)) {
    case shm::Op::kPut:
      return Put(request.key, request.value, number,
                 static_cast<std::uint64_t>(request.header.arg));
    case shm::Op::kDelete:
      switch (table_.Delete(request.key, value)) {
        case shm::WriteResult::kOk:
          return shm::WireStatus::kOk;
        case shm::WriteResult::kNeedsGrowth:  // no memory for the slot history
          return shm::WireStatus::kBucketFull;
        default:
          return shm::WireStatus::kNotFound;
      }
    case shm::Op::kBatch:
      return Batch(request, number);
    case shm::Op::kCas:
      return Cas(request.key, static_cast<std::uint64_t>(request.header.arg), request.value,
                 number);
    case shm::Op::kIncr:
      return Incr(request.key, request.header.arg, number);
    case shm::Op::kClear:
      return NextGeneration(0, true);
    case shm::Op::kFlush:
      return shm::WireStatus::kOk;
    case shm::Op::kExpire:
      return SetExpiry(request.key, static_cast<std::uint64_t>(request.header.arg), number);
    case shm::Op::kPersist:
      return SetExpiry(request.key, 0, number);
  }
  return shm::WireStatus::kUnknownOp;
}

}  // namespace kv::daemon
