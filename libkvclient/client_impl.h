// Private state behind kv::Client and kv::Bucket (not installed).
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "kv/client.h"
#include "shm/anchor.h"
#include "shm/bucket_table.h"
#include "shm/control_message.h"
#include "shm/registry.h"
#include "shm/segment.h"
#include "shm/slot_history.h"
#include "write_channel.h"

namespace kv {

// Maps a ShmError to the public vocabulary.
Status FromShmError(const shm::ShmError& error);

class Client::Impl {
 public:
  std::string ns;
  ClientOptions options;
  shm::RegistryReader registry;  // PROT_READ mapping of NS.registry
  // Sends one control request to kvd and returns its reply as a Status.
  Status Control(shm::ControlOp op, std::string_view name);
};

// One mapped generation of a bucket's table (read-only). Immutable once built; shared by handles.
struct Bucket::View {
  shm::Segment segment;
  shm::TableView table;
};

// The bucket's slot history mapped read-only (shm/slot_history.h), for snapshots.
struct HistoryMapping {
  shm::Segment segment;
  shm::HistoryReader reader;
};

// State shared by every copy of a Bucket handle.
class Bucket::Shared {
 public:
  Shared(std::string ns, std::uint64_t id, std::string name, shm::Segment anchor,
         std::chrono::milliseconds timeout);

  // Maps the generation the anchor names now. kBucketNotFound if the bucket was dropped.
  Result<std::shared_ptr<const View>> CurrentView() const;
  // Sends one write and waits for its reply (serialised by the mutex).
  Status Write(shm::Op op, std::string_view key, std::string_view value, std::int64_t arg,
               WriteReply* reply);
  // A sync put with `expiry` (Unix ms, 0: none) of a validated key and value; *version (if
  // non-null) is the new version.
  Status Put(std::string_view key, std::string_view value, std::int64_t expiry,
             std::uint64_t* version);
  // Queues one async write (no reply).
  Status Cast(shm::Op op, std::string_view key, std::string_view value, std::int64_t arg = 0);
  // Waits until every write queued before is applied; kFailed if any async write failed.
  Status Flush();
  // Queues one async batch (Op::kBatch: its body and operation count).
  Status CastBatch(std::string_view body, std::int64_t count);
  // The bucket's slot history, mapped on first use and kept.
  Result<std::shared_ptr<const HistoryMapping>> History();

  const shm::AnchorHeader* anchor() const { return anchor_; }

  const std::string ns;
  const std::uint64_t id;
  const std::string name;

 private:
  shm::Segment anchor_segment_;
  const shm::AnchorHeader* anchor_;
  std::chrono::milliseconds timeout_;
  std::mutex mu_;
  WriteChannel channel_;  // guarded by mu_
  std::mutex history_mu_;
  std::shared_ptr<const HistoryMapping> history_;  // guarded by history_mu_
};

// Maps a worker's reply status to a Status with context.
Status FromWireStatus(shm::WireStatus status, const std::string& bucket, std::string_view key);

}  // namespace kv
