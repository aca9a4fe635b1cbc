// One channel's successful writes of the worker's current pass that wait for the pass's group
// commit (appendfsync always, docs/persistence.md "Group commit"): the OK reply frames written
// into the reply ring but not yet published, and the count of OK async writes (no reply). If the
// commit fails they all become PERSISTENCE before anything is published, so no write is
// acknowledged as durable that is not.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "shm/channel.h"
#include "shm/message.h"

namespace kv::daemon::persistence {

class UnsyncedReplies {
 public:
  // `frame`: an OK reply frame in the reply ring, valid until the ring is published.
  void NoteReply(char* frame) { ok_frames_.push_back(frame); }
  void NoteAsyncWrite() { ++async_writes_; }
  // The commit failed: every noted reply says PERSISTENCE, and the channel's async failure count
  // takes the noted async writes. Then forgets them.
  void Fail(shm::ChannelHeader* channel) {
    for (char* frame : ok_frames_) {
      frame[offsetof(shm::ReplyHeader, status)] = static_cast<char>(shm::WireStatus::kPersistence);
    }
    if (async_writes_ != 0) {
      channel->async_last_status.store(static_cast<std::uint32_t>(shm::WireStatus::kPersistence),
                                       std::memory_order_relaxed);
      channel->async_failures.fetch_add(async_writes_, std::memory_order_release);
    }
    Clear();
  }
  void Clear() {
    ok_frames_.clear();
    async_writes_ = 0;
  }

 private:
  std::vector<char*> ok_frames_;
  std::uint64_t async_writes_ = 0;
};

}  // namespace kv::daemon::persistence
