// kv::Snapshot: point-in-time reads over the bucket's live table and its slot history
// (shm/slot_history.h; the read-side protocol is in docs/design.md, "Snapshots").
//
// A snapshot holds the generation it reads (mapped), S (the history's commit when it was taken)
// and a map, slot index -> the word that slot held at S, for every slot changed after S in that
// generation. Before using a slot word it brings the map up to the history's head (each entry
// is read once per snapshot): a word loaded (acquire) before the head was loaded is covered by
// an entry below it (H1). An entry overwritten before the snapshot read it, or a replaced
// generation larger than the pinning limit, makes the snapshot too old: every later read fails
// with kSnapshotTooOld.
#include <unordered_map>
#include <unordered_set>

#include "client_impl.h"
#include "shm/coarse_clock.h"
#include "shm/names.h"

namespace kv {

class Snapshot::State {
 public:
  std::string bucket;
  std::shared_ptr<const Bucket::View> view;  // the generation read (pinned)
  std::shared_ptr<const HistoryMapping> history;
  std::uint64_t sequence = 0;       // S
  std::uint64_t taken_unix_ms = 0;  // keys expired at this time are absent (coarse clock)
  std::uint64_t generation = 0;     // of view
  std::uint64_t consumed = 0;       // history entries below this are in `changed`
  std::uint64_t max_pinned = 0;
  std::unordered_map<std::uint64_t, std::uint64_t> changed;  // slot index -> word at S
  Status broken;  // kSnapshotTooOld (sticky) or another error that ended the snapshot

  // The word slot `index` held at S (the current word if it has not changed since).
  static std::uint64_t WordAt(void* self, std::uint64_t index) {
    auto* s = static_cast<State*>(self);
    if (!s->broken.ok()) return shm::kSlotEmpty;  // the caller discards the answer
    std::uint64_t word = s->view->table.SlotWord(index);
    std::atomic_thread_fence(std::memory_order_acquire);  // the word, then the head (H1)
    s->CatchUp();
    auto it = s->changed.find(index);
    return it != s->changed.end() ? it->second : word;
  }

  // Reads the history entries written since the last look. Sets `broken` when too old.
  void CatchUp() {
    if (!broken.ok()) return;
    std::uint64_t head = history->reader.head();
    if (head <= consumed) return;
    if (head - consumed > shm::kHistoryEntries) {
      TooOld("more than " + std::to_string(shm::kHistoryEntries) +
             " slot changes were made since it was taken (the history window)");
      return;
    }
    shm::HistoryRecord r;
    for (std::uint64_t seq = consumed; seq < head; ++seq) {
      if (!history->reader.Read(seq, &r)) {
        TooOld("slot changes made since it was taken were overwritten in the history window of " +
               std::to_string(shm::kHistoryEntries));
        return;
      }
      if (r.generation == generation) changed.emplace(r.index, r.old_word);  // the first wins
    }
    consumed = head;
  }

  // Checks the pinning bound and the history before a read.
  Status Check() {
    if (!broken.ok()) {
      view.reset();  // releases the pinned generation (no read is in flight here)
      changed.clear();
      return broken;
    }
    std::uint64_t moved = view->table.moved_to();
    if (moved == shm::kMovedDropped) {
      broken = Status(Code::kBucketNotFound, "bucket '" + bucket + "' was dropped");
      return Check();
    }
    if (moved != 0 && view->segment.size() > max_pinned) {
      TooOld("its generation (" + std::to_string(view->segment.size()) +
             " bytes) was replaced and is larger than max_pinned_bytes (" +
             std::to_string(max_pinned) + ")");
      return Check();
    }
    CatchUp();
    return broken;
  }

  void TooOld(const std::string& why) {
    broken = Status(Code::kSnapshotTooOld, "snapshot of bucket '" + bucket + "' at sequence " +
                                               std::to_string(sequence) + " is too old: " + why);
  }

  Status Corrupt() {
    return Status(Code::kCorrupt,
                  "bucket '" + bucket + "': a snapshot read fails validation (damaged segment)");
  }
};

Status Snapshot::Get(std::string_view key, std::string* value, std::uint64_t* version) {
  if (key.empty()) return Status(Code::kInvalidArgument, "key is empty");
  if (key.size() > kMaxKeySize) {
    return Status(Code::kTooLarge, "key is " + std::to_string(key.size()) +
                                       " bytes, the limit is " + std::to_string(kMaxKeySize));
  }
  State& s = *state_;
  if (Status c = s.Check(); !c.ok()) return c;
  std::shared_ptr<const Bucket::View> view = s.view;  // kept while the record is copied
  shm::RecordRef record;
  shm::ReadResult r = view->table.FindThrough(key, &record, &State::WordAt, &s, s.taken_unix_ms);
  if (!s.broken.ok()) return s.broken;  // too old while probing: the answer may be wrong
  switch (r) {
    case shm::ReadResult::kFound:
      value->assign(record.value.data(), record.value.size());
      if (version != nullptr) *version = record.version;
      return Status();
    case shm::ReadResult::kNotFound:
      return Status(Code::kNotFound, {});
    default:
      return s.Corrupt();
  }
}

Status Snapshot::Scan(std::string_view prefix,
                      const std::function<bool(std::string_view, std::string_view)>& fn) {
  return ScanWithExpiry(prefix, [&](std::string_view key, std::string_view value, std::uint64_t) {
    return fn(key, value);
  });
}

Status Snapshot::ScanWithExpiry(
    std::string_view prefix,
    const std::function<bool(std::string_view, std::string_view, std::uint64_t)>& fn) {
  State& s = *state_;
  if (Status c = s.Check(); !c.ok()) return c;
  std::shared_ptr<const Bucket::View> view = s.view;  // kept while fn runs
  for (std::uint64_t i = 0; i < view->table.slot_count(); ++i) {
    if ((i & 1023) == 0) {
      if (Status c = s.Check(); !c.ok()) return c;
    }
    std::uint64_t word = State::WordAt(&s, i);
    if (!s.broken.ok()) return s.broken;
    shm::RecordRef record;
    shm::ReadResult r = view->table.WordRecord(word, &record, s.taken_unix_ms);
    if (r == shm::ReadResult::kCorrupt) return s.Corrupt();
    if (r != shm::ReadResult::kFound || record.key.substr(0, prefix.size()) != prefix) continue;
    if (!fn(record.key, record.value, record.expires_unix_ms)) return Status();
  }
  return s.broken;
}

std::uint64_t Snapshot::sequence() const { return state_->sequence; }

Result<std::shared_ptr<const HistoryMapping>> Bucket::Shared::History() {
  std::lock_guard<std::mutex> lock(history_mu_);
  if (history_ != nullptr) return history_;
  auto mapping = std::make_shared<HistoryMapping>();
  shm::ShmError error;
  mapping->segment = shm::Segment::OpenReadOnly(shm::HistoryObjectName(ns, id), &error);
  if (!mapping->segment.valid()) {
    if (error.kind == shm::ShmError::kNotFound || error.kind == shm::ShmError::kNotReady) {
      return Status(Code::kUnavailable, "bucket '" + name + "' has no slot history yet");
    }
    return FromShmError(error);
  }
  std::string why = mapping->reader.Attach(mapping->segment.data(), mapping->segment.size());
  if (!why.empty()) return Status(Code::kCorrupt, "bucket '" + name + "': " + why);
  history_ = std::move(mapping);
  return history_;
}

Result<kv::Snapshot> Bucket::Snapshot(const SnapshotOptions& options) {
  Result<std::shared_ptr<const HistoryMapping>> history = shared_->History();
  if (!history.ok()) return history.status();
  for (int attempt = 0; attempt < 64; ++attempt) {
    if (view_->table.moved_to() != 0) {
      if (Status s = Refresh(); !s.ok()) return s;
      continue;
    }
    // S, then the generation's moved_to: still current means every change <= S is in its
    // slots and every later change of them is in the history (docs/design.md).
    std::uint64_t sequence = (*history)->reader.commit();
    if (view_->table.moved_to() != 0) continue;
    auto state = std::make_shared<kv::Snapshot::State>();
    state->bucket = shared_->name;
    state->view = view_;
    state->history = *history;
    state->sequence = sequence;
    state->taken_unix_ms = shm::RealtimeCoarseMillis();
    state->generation = view_->table.header()->generation;
    state->consumed = sequence + 1;
    state->max_pinned = options.max_pinned_bytes;
    return kv::Snapshot(std::move(state));
  }
  return Status(Code::kCorrupt,
                "bucket '" + shared_->name + "': cannot take a snapshot (generation keeps moving)");
}

}  // namespace kv
