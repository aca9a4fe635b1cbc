// kv::WriteBatch and Bucket::Write: a batch is encoded on the client as the wire body of one
// Op::kBatch request (shm/batch.h) and applied by the worker all-or-nothing
// (shm::TableWriter::ApplyBatch). Argument errors are found here, before anything is sent.
#include "client_impl.h"
#include "shm/batch.h"

namespace kv {

void WriteBatch::Add(int op, std::string_view key, std::string_view value, std::uint64_t arg) {
  if (!error_.ok()) return;
  if (key.empty()) {
    error_ = Status(Code::kInvalidArgument,
                    "batch operation " + std::to_string(count_) + " has an empty key");
    return;
  }
  if (key.size() > kMaxKeySize) {
    error_ = Status(Code::kTooLarge, "batch operation " + std::to_string(count_) + ": key is " +
                                         std::to_string(key.size()) + " bytes, the limit is " +
                                         std::to_string(kMaxKeySize));
    return;
  }
  if (value.size() > kMaxValueSize) {
    error_ = Status(Code::kTooLarge, "batch operation " + std::to_string(count_) + ": value is " +
                                         std::to_string(value.size()) + " bytes, the limit is " +
                                         std::to_string(kMaxValueSize));
    return;
  }
  if (count_ >= kMaxBatchOps) {
    error_ = Status(Code::kTooLarge,
                    "batch has more than " + std::to_string(kMaxBatchOps) + " operations");
    return;
  }
  if (!keys_.emplace(key).second) {
    error_ = Status(Code::kInvalidArgument,
                    "batch operation " + std::to_string(count_) + " names a key of " +
                        std::to_string(key.size()) +
                        " bytes already in the batch (each key at most once per batch)");
    return;
  }
  shm::AppendBatchEntry(&body_, static_cast<shm::Op>(op), key, value,
                        static_cast<std::int64_t>(arg));
  ++count_;
  if (body_.size() > kMaxValueSize) {
    error_ = Status(Code::kTooLarge, "batch is " + std::to_string(body_.size()) +
                                         " bytes encoded, the limit is " +
                                         std::to_string(kMaxValueSize));
  }
}

void WriteBatch::Put(std::string_view key, std::string_view value) {
  Add(static_cast<int>(shm::Op::kPut), key, value, 0);
}

void WriteBatch::Delete(std::string_view key) {
  Add(static_cast<int>(shm::Op::kDelete), key, {}, 0);
}

void WriteBatch::Cas(std::string_view key, std::uint64_t expected_version, std::string_view value) {
  Add(static_cast<int>(shm::Op::kCas), key, value, expected_version);
}

void WriteBatch::Clear() {
  body_.clear();
  count_ = 0;
  keys_.clear();
  error_ = Status();
}

namespace {

Status BatchError(const WriteBatch& batch) {
  if (!batch.error().ok()) return batch.error();
  if (batch.Count() == 0) return Status(Code::kInvalidArgument, "batch is empty");
  return Status();
}

}  // namespace

Status Bucket::Write(const WriteBatch& batch, std::uint64_t* version, std::size_t* failed_index) {
  FollowGeneration();
  if (Status s = BatchError(batch); !s.ok()) return s;
  WriteReply reply;
  Status s = shared_->Write(shm::Op::kBatch, {}, batch.body_,
                            static_cast<std::int64_t>(batch.count_), &reply);
  if (!s.ok()) return s;
  switch (reply.status) {
    case shm::WireStatus::kOk:
      if (version != nullptr) *version = static_cast<std::uint64_t>(reply.number);
      return Status();
    case shm::WireStatus::kVersionMismatch:
      if (failed_index != nullptr) *failed_index = static_cast<std::size_t>(reply.number);
      return Status(Code::kVersionMismatch, "batch operation " + std::to_string(reply.number) +
                                                " (cas) in bucket '" + shared_->name +
                                                "': version changed; nothing was applied");
    case shm::WireStatus::kUnsupported:
      return Status(Code::kFailed, "bucket '" + shared_->name +
                                       "' mirrors an upstream: batches are not supported there "
                                       "(docs/mirror.md); nothing was applied");
    case shm::WireStatus::kMalformed:
      return Status(Code::kInvalidArgument,
                    "bucket '" + shared_->name + "' refused the batch at operation " +
                        std::to_string(reply.number) + " (malformed); nothing was applied");
    default:
      return FromWireStatus(reply.status, shared_->name, {});
  }
}

Status Bucket::WriteAsync(const WriteBatch& batch) {
  FollowGeneration();
  if (Status s = BatchError(batch); !s.ok()) return s;
  return shared_->CastBatch(batch.body_, static_cast<std::int64_t>(batch.count_));
}

Status Bucket::Shared::CastBatch(std::string_view body, std::int64_t count) {
  std::lock_guard<std::mutex> lock(mu_);
  return channel_.Cast(shm::Op::kBatch, {}, body, timeout_, count);
}

}  // namespace kv
