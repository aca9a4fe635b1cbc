#include "shm/channel_dedup.h"

#include <charconv>
#include <new>

#include "shm/message.h"

namespace kv::shm {
namespace {

bool IsOp(std::uint8_t op, Op want) { return op == static_cast<std::uint8_t>(want); }

// A compiler barrier between the stores of two steps (D1..D3): shared memory outlives the
// process, so program order is all a SIGKILL can observe.
void StepBoundary() { std::atomic_signal_fence(std::memory_order_seq_cst); }

}  // namespace

ChannelDedup ChannelDedup::OpenOrCreate(const std::string& name, std::uint64_t bucket_id,
                                        mode_t mode, bool* reset, ShmError* error) {
  ChannelDedup d;
  *reset = false;
  ShmError e;
  d.segment_ = Segment::OpenReadWrite(name, &e);
  if (d.segment_.valid()) {
    const auto* h = reinterpret_cast<const DedupHeader*>(d.segment_.data());
    bool usable = d.segment_.size() == kDedupSize && h->magic == kDedupMagic &&
                  h->format_version == kFormatVersion && h->layout_word == kDedupLayout &&
                  h->bucket_id == bucket_id && h->entry_count == kDedupEntries &&
                  d.segment_.Reserve(kDedupSize).kind == ShmError::kNone;
    if (!usable) {  // killed while creating it, or written by another build: start afresh
      d.segment_ = Segment();
      Segment::Remove(name);
    }
  } else if (e.kind != ShmError::kNotFound) {
    *error = e;
    return {};
  }
  if (!d.segment_.valid()) {
    *reset = true;
    d.segment_ = Segment::Create(name, kDedupSize, kDedupSize, mode, error);
    if (!d.segment_.valid()) return {};
    auto* h = new (d.segment_.data()) DedupHeader();
    h->format_version = kFormatVersion;
    h->layout_word = kDedupLayout;
    h->bucket_id = bucket_id;
    h->entry_count = kDedupEntries;
    StepBoundary();
    h->magic = kDedupMagic;
  }
  d.header_ = reinterpret_cast<DedupHeader*>(d.segment_.data());
  d.entries_ = reinterpret_cast<DedupEntry*>(d.segment_.data() + kDedupHeaderSize);
  return d;
}

std::uint32_t ChannelDedup::Find(std::uint64_t channel_id) const {
  if (channel_id == 0) return kNoDedupEntry;
  for (std::uint32_t i = 0; i < kDedupEntries; ++i) {
    if (entries_[i].channel_id == channel_id) return i;
  }
  return kNoDedupEntry;
}

std::uint32_t ChannelDedup::Claim(std::uint64_t channel_id,
                                  const std::function<bool(std::uint32_t)>& in_use) {
  std::uint32_t existing = Find(channel_id);
  std::uint32_t pick = kNoDedupEntry;
  for (std::uint32_t i = 0; i < kDedupEntries && existing == kNoDedupEntry; ++i) {
    if (entries_[i].channel_id == 0) {
      pick = i;
      break;
    }
    if (in_use(i)) continue;
    // Oldest registration first (unsigned distance from the clock: wraps correctly).
    if (pick == kNoDedupEntry ||
        header_->clock - entries_[i].last_used > header_->clock - entries_[pick].last_used) {
      pick = i;
    }
  }
  if (existing != kNoDedupEntry) pick = existing;
  if (pick == kNoDedupEntry) return pick;
  DedupEntry& e = entries_[pick];
  // The id goes last: a crash in between leaves a free entry, never a stale one under a new id.
  e.channel_id = 0;
  StepBoundary();
  e.applied_seq = 0;
  e.number = 0;
  e.status = 0;
  e.op = 0;
  e.value_generation = 0;
  e.value_offset = 0;
  e.next_generation = 0;
  e.next_offset = 0;
  StepBoundary();
  e.channel_id = channel_id;
  Touch(pick);
  return pick;
}

void ChannelDedup::Touch(std::uint32_t index) { entries_[index].last_used = ++header_->clock; }

void ChannelDedup::Retire(std::uint32_t index) {
  entries_[index].last_used = header_->clock - 0x80000000u;  // as old as an entry can be
}

void ChannelDedup::Begin(std::uint32_t index, std::uint64_t seq, std::uint8_t op,
                         const TableView& table) {
  DedupIntent& in = intent();
  in.entry = index;
  in.seq = seq;
  in.op = op;
  in.begin_generation = table.header()->generation;
  in.writes_before = table.header()->writes_applied.load(std::memory_order_relaxed);
  in.generation = 0;
  in.record_offset = 0;
  in.state.store(kDedupBegun, std::memory_order_release);
}

void ChannelDedup::Swung(void* context, std::uint64_t generation, std::uint64_t record_offset) {
  DedupIntent& in = *static_cast<DedupIntent*>(context);
  if (in.state.load(std::memory_order_relaxed) == kDedupIdle) return;  // not a client's request
  in.generation = generation;
  in.record_offset = record_offset;
  in.state.store(kDedupSwung, std::memory_order_release);
}

void ChannelDedup::Finish(std::uint8_t status, std::int64_t number) {
  DedupIntent& in = intent();
  in.status = status;
  in.number = number;
  in.state.store(kDedupDone, std::memory_order_release);
  CopyOutcome();
}

void ChannelDedup::CopyOutcome() {
  DedupIntent& in = intent();
  if (in.entry < kDedupEntries) {
    DedupEntry& e = entries_[in.entry];
    bool keeps_value = IsOp(in.op, Op::kDelete) && in.status == 0 && in.generation != 0;
    e.value_generation = 0;  // first: a half-copied entry never pairs a seq with a wrong value
    e.next_generation = 0;
    StepBoundary();
    e.number = in.number;
    e.status = in.status;
    e.op = in.op;
    e.value_offset = keeps_value ? in.record_offset : 0;
    StepBoundary();
    e.value_generation = keeps_value ? in.generation : 0;
    e.applied_seq = in.seq;
  }
  StepBoundary();
  in.state.store(kDedupIdle, std::memory_order_release);
}

std::string ChannelDedup::Recover(TableWriter& table, std::uint64_t history_commit) {
  const TableView& current = table.view();
  std::string done;
  std::uint64_t generation = current.header()->generation;
  // An interrupted AdoptGeneration: the anchor names the generation the copies are in.
  for (std::uint32_t i = 0; i < kDedupEntries; ++i) {
    DedupEntry& e = entries_[i];
    if (e.channel_id != 0 && e.next_generation != 0 && e.next_generation == generation) {
      e.value_offset = e.next_offset;
      StepBoundary();
      e.value_generation = generation;
      e.next_generation = 0;
    } else if (e.next_generation != 0) {
      e.next_generation = 0;  // the copies' generation was never published
    }
  }
  DedupIntent& in = intent();
  std::uint32_t state = in.state.load(std::memory_order_acquire);
  if (state == kDedupIdle) return done;
  std::string what = "request " + std::to_string(in.seq) + " (op " + std::to_string(in.op) + ")";
  if (state == kDedupDone) {
    CopyOutcome();
    return what + " was applied and answered; its outcome is recorded";
  }
  bool applied = false;
  std::int64_t number = 0;
  if (state == kDedupBegun) {
    // Nothing reached a slot. Only a clear commits without one: by publishing a new generation.
    applied = IsOp(in.op, Op::kClear) && generation != in.begin_generation;
    in.generation = 0;
  } else if (IsOp(in.op, Op::kBatch)) {  // kSwung: record_offset is its last history sequence
    applied = in.generation == generation && history_commit >= in.record_offset;
    number =
        static_cast<std::int64_t>(current.header()->last_version.load(std::memory_order_relaxed));
  } else if (in.generation == generation) {  // kSwung
    RecordRef record;
    RecordRef now;
    if (current.RecordAt(in.record_offset, &record) != nullptr) {
      bool there = current.FindAny(record.key, &now) == ReadResult::kFound &&
                   current.RecordOffset(now) == in.record_offset;
      applied = IsOp(in.op, Op::kDelete) ? !there : there;
      if (applied && (IsOp(in.op, Op::kPut) || IsOp(in.op, Op::kCas) || IsOp(in.op, Op::kExpire) ||
                      IsOp(in.op, Op::kPersist))) {
        number = static_cast<std::int64_t>(record.version);
      } else if (applied && IsOp(in.op, Op::kIncr)) {
        std::from_chars(record.value.data(), record.value.data() + record.value.size(), number);
      }
    }
  }
  if (!IsOp(in.op, Op::kClear) && !IsOp(in.op, Op::kFlush)) {
    table.SetWritesApplied(in.writes_before + (applied ? 1 : 0));
  }
  if (!applied) {
    in.state.store(kDedupIdle, std::memory_order_release);
    return what + " was not applied; it will be applied from the channel";
  }
  Finish(0, number);
  return what + " was applied; its outcome is recorded";
}

void ChannelDedup::CarryValues(const TableView& current, TableWriter& next,
                               std::uint64_t next_generation) {
  std::uint64_t generation = current.header()->generation;
  for (std::uint32_t i = 0; i < kDedupEntries; ++i) {
    DedupEntry& e = entries_[i];
    if (e.channel_id == 0 || e.value_generation != generation) continue;
    std::uint64_t offset = next.CarryRecord(current, e.value_offset);
    if (offset == 0) continue;  // the reply value is lost with the old generation
    e.next_offset = offset;
    StepBoundary();
    e.next_generation = next_generation;
  }
}

void ChannelDedup::AdoptGeneration(std::uint64_t generation) {
  for (std::uint32_t i = 0; i < kDedupEntries; ++i) {
    DedupEntry& e = entries_[i];
    if (e.next_generation != generation) continue;
    e.value_offset = e.next_offset;
    StepBoundary();
    e.value_generation = generation;
    e.next_generation = 0;
  }
}

bool ChannelDedup::ReplyValue(const DedupEntry& e, const TableView& current, std::string* value) {
  value->clear();
  if (!IsOp(e.op, Op::kDelete) || e.status != 0) return true;  // no value in the reply
  std::uint64_t generation = current.header()->generation;
  std::uint64_t offset = e.value_generation == generation  ? e.value_offset
                         : e.next_generation == generation ? e.next_offset
                                                           : 0;
  RecordRef record;
  if (offset == 0 || current.RecordAt(offset, &record) == nullptr) return false;
  value->assign(record.value.data(), record.value.size());
  return true;
}

}  // namespace kv::shm
