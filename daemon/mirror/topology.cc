// The mirror's connections to its upstream: which servers (a single one, or a Redis Cluster's
// masters, docs/mirror.md "Redis Cluster"), connecting to each with tracking on, and sending a
// key's command to the server that holds it, following MOVED, ASK and TRYAGAIN. The load,
// the fetches and the writes (mirror.cc) go through Owner, Routed and Follow.
#include "daemon/mirror/mirror.h"

#include <sys/epoll.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include <spdlog/spdlog.h>

namespace kv::daemon::mirror {
namespace {

constexpr auto kTimeout = std::chrono::milliseconds(1000);  // any upstream call (kvd: 3 s beat)
// How long the worker polls for a reply from Redis before it sleeps in recv (RedisLink::SetSpin),
// with kvd's `wait dedicated` only.
constexpr auto kReplySpin = std::chrono::microseconds(50);
constexpr int kMaxRedirects = 8;

}  // namespace

bool Mirror::Discover(std::vector<ClusterMaster>* masters) {
  masters->clear();
  if (!address_.cluster && (address_.unix_socket || address_.db != 0)) {
    cluster_ = false;
    return true;  // a socket path or a database number: a single server
  }
  std::string why;
  std::vector<std::string> candidates = known_masters_;
  if (!address_.cluster) candidates = {address_.host + ":" + std::to_string(address_.port)};
  // A redirection to a master this mirror did not know (a failover, slots moved to a new master)
  // came from a node that knows the new layout: its target is asked first, since a seed may not
  // have heard of the change yet (it spreads through the cluster bus).
  if (!redirected_to_.empty()) {
    candidates.insert(candidates.begin(), redirected_to_);
    redirected_to_.clear();
  }
  for (const std::string& name : candidates) {
    shm::UpstreamAddress at;
    std::size_t colon = name.rfind(':');
    at.host = name.substr(0, colon);
    at.port = std::atoi(name.c_str() + colon + 1);
    RedisLink link = RedisLink::Connect(at, spec_.password_file, kTimeout);
    if (!link.ok()) {
      why = name + ": " + link.error();
      continue;
    }
    Reply r = link.Command({"CLUSTER", "SHARDS"});
    std::string parsed = "no reply";
    if (r && r->type == REDIS_REPLY_ARRAY) {
      parsed = ParseShards(r.get(), masters);
    } else if (r && r->type == REDIS_REPLY_ERROR) {
      if (!address_.cluster) {
        cluster_ = false;
        return true;  // redis:// naming a single server (or a user not allowed CLUSTER)
      }
      if (Str(r.get()).find("cluster support disabled") != std::string_view::npos) {
        why = name + " is not a cluster node (cluster support disabled)";
        continue;
      }
      r = link.Command({"CLUSTER", "SLOTS"});  // before Redis 7
      parsed = r && r->type == REDIS_REPLY_ARRAY ? ParseSlots(r.get(), masters)
                                                 : (r ? ReplyText(r.get()) : link.error());
    }
    if (parsed.empty() && !masters->empty()) {
      if (!cluster_)
        spdlog::info("upstream {}: a Redis Cluster of {} masters", spec_.url, masters->size());
      cluster_ = true;
      return true;
    }
    why = name + ": cannot read the cluster's masters: " + parsed;
  }
  Down(why.empty() ? "no cluster node to ask" : why);
  return false;
}

std::string Mirror::ConnectNode(Node& node) {
  node.sub = RedisLink::Connect(node.address, spec_.password_file, kTimeout);
  if (!node.sub.ok()) return node.sub.error();
  Reply id = node.sub.Command({"CLIENT", "ID"});
  if (!id || id->type != REDIS_REPLY_INTEGER) {
    return "CLIENT ID: " + (id ? ReplyText(id.get()) : node.sub.error());
  }
  Reply subscribed = node.sub.Command({"SUBSCRIBE", "__redis__:invalidate"});
  if (!subscribed || subscribed->type != REDIS_REPLY_ARRAY) {
    return "SUBSCRIBE: " + (subscribed ? ReplyText(subscribed.get()) : node.sub.error());
  }
  node.data = RedisLink::Connect(node.address, spec_.password_file, kTimeout);
  if (!node.data.ok()) return node.data.error();
  // Spin for replies only where kv's processes have CPUs of their own (kvd's `wait dedicated`).
  // Otherwise the worker sleeps in recv at once: a spinning worker holds the CPU Redis needs to
  // answer it (on two CPUs with a reader spinning on the other, Redis waited for the end of the
  // worker's spin or time slice, and a fetch took 137 us at the median instead of 21 us).
  bool dedicated = store_->anchor()->wait_policy.load(std::memory_order_relaxed) ==
                   static_cast<std::uint32_t>(shm::kWaitDedicated);
  node.data.SetSpin(dedicated ? kReplySpin : std::chrono::microseconds(0),
                    [store = store_] { store->Pulse(); });
  std::string redirect = std::to_string(id->integer);
  std::vector<std::string_view> tracking = {"CLIENT", "TRACKING", "on",    "REDIRECT",
                                            redirect, "BCAST",    "NOLOOP"};
  if (!spec_.prefix.empty()) {
    tracking.push_back("PREFIX");
    tracking.push_back(spec_.prefix);
  }
  Reply on = node.data.Command(tracking);
  if (IsError(on.get())) {
    return "CLIENT TRACKING: " + (on ? ReplyText(on.get()) : node.data.error());
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = node.sub.fd();
  ::epoll_ctl(events_, EPOLL_CTL_ADD, node.sub.fd(), &ev);
  return {};
}

void Mirror::Connect(Clock::time_point now) {
  if ((address_.path.empty() && address_.host.empty()) || events_ < 0) return Down(last_error_);
  if (state_ != shm::kMirrorStale) SetState(shm::kMirrorSyncing);
  std::vector<ClusterMaster> masters;
  if (!Discover(&masters)) return;
  nodes_.clear();
  slot_owner_.clear();
  if (!cluster_) {
    auto node = std::make_unique<Node>();
    node->address = address_;
    node->name =
        address_.unix_socket ? address_.path : address_.host + ":" + std::to_string(address_.port);
    nodes_.push_back(std::move(node));
  } else {
    slot_owner_.assign(kClusterSlots, kNoNode);
    known_masters_.clear();
    for (const auto& [host, port] : address_.seeds) {
      known_masters_.push_back(host + ":" + std::to_string(port));
    }
    for (const ClusterMaster& m : masters) {
      auto node = std::make_unique<Node>();
      node->address.host = m.host;
      node->address.port = m.port;
      node->name = m.name();
      for (const auto& [first, last] : m.ranges) {
        for (int slot = first; slot <= last; ++slot) {
          slot_owner_[static_cast<std::size_t>(slot)] = static_cast<std::uint16_t>(nodes_.size());
        }
      }
      if (std::find(known_masters_.begin(), known_masters_.end(), node->name) ==
          known_masters_.end()) {
        known_masters_.push_back(node->name);
      }
      nodes_.push_back(std::move(node));
    }
    auto unserved = std::find(slot_owner_.begin(), slot_owner_.end(), kNoNode);
    if (unserved != slot_owner_.end()) {
      return Down("slot " + std::to_string(unserved - slot_owner_.begin()) +
                  " has no master online (the cluster is failing over or incomplete)");
    }
  }
  for (auto& node : nodes_) {
    if (std::string e = ConnectNode(*node); !e.empty()) return Down(node->name + ": " + e);
  }
  last_ping_ = now;
  SetState(shm::kMirrorSyncing);
  if (!Resync()) return;
  backoff_ = std::chrono::milliseconds(50);
  last_error_.clear();
  SetState(shm::kMirrorLive);
  store_->anchor()->mirror_live_once.store(1, std::memory_order_relaxed);
  spdlog::info("upstream {} prefix '{}': live", spec_.url, spec_.prefix);
  OnEvent();  // announcements that arrived during the load
}

bool Mirror::CheckLinks() {
  for (auto& node : nodes_) {
    if (!node->data.ok()) {
      Down(node->name + ": " + node->data.error());
      return false;
    }
  }
  return true;
}

Mirror::Node* Mirror::Owner(std::string_view key) {
  if (nodes_.empty()) return nullptr;
  if (!cluster_) return nodes_[0].get();
  std::uint16_t owner = slot_owner_[static_cast<std::size_t>(KeySlot(key))];
  return owner < nodes_.size() ? nodes_[owner].get() : nullptr;
}

Mirror::Node* Mirror::NodeNamed(std::string_view name) {
  for (auto& node : nodes_) {
    if (node->name == name) return node.get();
  }
  return nullptr;
}

Reply Mirror::Follow(Reply reply, std::string_view key, const std::vector<std::string_view>& args) {
  for (int hop = 0; hop < kMaxRedirects && IsRedirect(reply.get()); ++hop) {
    std::string_view e = Str(reply.get());
    Node* target = nullptr;
    bool ask = false;
    if (e.substr(0, 8) == "TRYAGAIN") {
      // A multi-key command during a migration; single-key ones never get it. Wait a little.
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      Node* node = Owner(key);
      if (node == nullptr) return reply;
      node->data.Append(args);
      reply = node->data.Read();
      continue;
    }
    // MOVED <slot> <host:port> / ASK <slot> <host:port>
    ask = e.substr(0, 4) == "ASK ";
    std::size_t sp1 = e.find(' ');
    std::size_t sp2 = e.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) return reply;
    int slot = std::atoi(std::string(e.substr(sp1 + 1, sp2 - sp1 - 1)).c_str());
    target = NodeNamed(e.substr(sp2 + 1));
    if (target == nullptr) {
      topology_changed_ = true;  // a new master (failover, added node): Tick re-discovers
      redirected_to_ = std::string(e.substr(sp2 + 1));
      return reply;
    }
    if (!ask && slot >= 0 && slot < kClusterSlots) {
      for (std::size_t i = 0; i < nodes_.size(); ++i) {
        if (nodes_[i].get() == target) {
          slot_owner_[static_cast<std::size_t>(slot)] = static_cast<std::uint16_t>(i);
        }
      }
    }
    if (ask) target->data.Append({"ASKING"});
    target->data.Append(args);
    if (ask) {
      Reply asking = target->data.Read();
      if (!asking) return nullptr;
    }
    reply = target->data.Read();
  }
  return reply;
}

Reply Mirror::WithoutRecord(Reply reply, std::string_view key,
                            const std::vector<std::string_view>& args) {
  // {"EVAL", script, "2", key, record, ARGV...}: a script of exactly_once.h with its record.
  if (!IsRedirect(reply.get()) || args.size() < 5 || args[0] != "EVAL" || args[2] != "2") {
    return reply;
  }
  std::vector<std::string_view> alone = args;
  alone[2] = "1";
  alone.erase(alone.begin() + 4);
  return Rediscovered(Routed(key, alone), key, alone);
}

Reply Mirror::Rediscovered(Reply reply, std::string_view key,
                           const std::vector<std::string_view>& args) {
  if (!topology_changed_ || !IsRedirect(reply.get())) return reply;
  Down("a MOVED named a master this mirror does not know: re-discovering the cluster");
  Connect(Clock::now());
  if (!live()) return reply;
  return Routed(key, args);
}

Reply Mirror::Routed(std::string_view key, const std::vector<std::string_view>& args) {
  Node* node = Owner(key);
  if (node == nullptr) return nullptr;
  node->data.Append(args);
  return Follow(node->data.Read(), key, args);
}

}  // namespace kv::daemon::mirror
