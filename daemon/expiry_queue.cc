#include "daemon/expiry_queue.h"

namespace kv::daemon {

void ExpiryQueue::Push(std::string_view key, std::uint64_t expiry) {
  heap_.push(Entry{expiry, std::string(key)});
}

std::size_t ExpiryQueue::Due(std::uint64_t now, std::size_t budget, std::vector<Entry>* out) {
  std::size_t n = 0;
  while (n < budget && !heap_.empty() && heap_.top().expiry <= now) {
    // top() is const: move its key out through a copy of the entry we pop next.
    out->push_back(std::move(const_cast<Entry&>(heap_.top())));
    heap_.pop();
    ++n;
  }
  return n;
}

}  // namespace kv::daemon
