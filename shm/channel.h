// A client's write channel to one bucket worker: a memfd holding a request ring (client -> worker)
// and a reply ring (worker -> client), plus the words each side uses to wake the other.
//
// The client creates the memfd and hands it to the worker over the bucket's socket (SCM_RIGHTS);
// the socket connection stays open for the channel's life, so the kernel tells the worker when the
// client dies (and the memfd disappears with its last mapping: nothing is left in /dev/shm).
//
// Wake-up protocol (Dekker style; both sides use seq_cst fences between "publish" and "check"):
//   worker: spin briefly on every ring; then store worker_waiting=<this sleep's number>, fence,
//           re-check rings, sleep in epoll on the channel sockets, store worker_waiting=0.
//           Client: publish tail, fence, if worker_waiting is a sleep it has not rung for yet,
//           send a one-byte doorbell on the socket (one per sleep: a client that keeps writing
//           while the worker is being woken does not send one per request).
//   client: spin briefly on reply_tail; then store client_waiting=1, fence, re-check, futex-wait on
//           reply_seq. Worker: publish replies, bump reply_seq, fence, if client_waiting wake it.
//
// Trust: the worker treats everything in the memfd as hostile input: indices and lengths are
// validated (ring.h), capacities are checked against the memfd's real size at attach time, and
// the memfd must be sealed against shrinking (F_SEAL_SHRINK), so a client cannot truncate it
// under the worker's mapping and kill the worker with SIGBUS.
//
// Large values (message.h kFlagStagedValue / kReplyStagedValue) travel as sealed memfds passed on
// the channel socket: CreateStagedValue / ReadStagedValue below. The reader never maps them (it
// copies with pread), so nothing the sender does to the memfd afterwards can fault the reader.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "shm/layout.h"
#include "shm/ring.h"

namespace kv::shm {

struct alignas(kCacheLine) ChannelHeader {
  std::uint64_t magic;
  std::uint32_t format_version;
  std::uint32_t layout_word;
  std::uint32_t request_capacity;  // bytes, power of two
  std::uint32_t reply_capacity;    // bytes, power of two
  // The channel's identity, random and never 0, chosen by the client once: a worker that
  // starts after a crash finds the channel's exactly-once state (shm/channel_dedup.h) by it when
  // the client hands it the same memfd again.
  std::uint64_t channel_id;

  alignas(kCacheLine) std::atomic<std::uint64_t> request_tail;  // client stores (release)
  alignas(kCacheLine) std::atomic<std::uint64_t> request_head;  // worker stores (release)
  // Read by the client after every request: on a line the worker writes only around its sleeps.
  // 0 while awake; else the number of the sleep (never 0, changes with every sleep).
  alignas(kCacheLine) std::atomic<std::uint32_t> worker_waiting;  // worker stores; client loads
  alignas(kCacheLine) std::atomic<std::uint64_t> reply_tail;      // worker stores (release)
  std::atomic<std::uint32_t> reply_seq;                           // futex word, worker bumps
  std::atomic<std::uint64_t> async_failures;  // worker: async writes that failed, ever
  std::atomic<std::uint32_t> async_last_status;
  alignas(kCacheLine) std::atomic<std::uint64_t> reply_head;  // client stores (release)
  std::atomic<std::uint32_t> client_waiting;                  // client stores; worker loads
  // The CPU the client last sent a request from (relaxed; the worker's idle spin reads it: a
  // client on the worker's own CPU cannot send while the worker spins).
  std::atomic<std::int32_t> client_cpu;
};

inline constexpr std::uint32_t kChannelLayout =
    LayoutWord(sizeof(ChannelHeader), alignof(ChannelHeader));
inline constexpr std::uint32_t kDefaultRequestCapacity = 256 * 1024;
inline constexpr std::uint32_t kDefaultReplyCapacity = 128 * 1024;

// Registration: the client's first packet on a new connection to the bucket socket is exactly
// these 11 bytes with the channel memfd attached; the worker answers with one control reply
// (control_message.h). Afterwards the client sends its doorbell eventfd (kDoorbellFdPacket, 1
// byte, one eventfd; at most one per channel), staged values (kStagedPacket, 1 byte, one memfd)
// and, only if it has no doorbell eventfd, doorbell packets (1 byte, no fd); the worker sends
// staged reply values the same way.
//
// Doorbells: a client rings by writing 1 to its eventfd, which the worker watches edge-triggered
// and never reads (a wake-up costs the worker no system call besides epoll_wait; the counter
// would take centuries to fill at a million rings a second, and a client that fills it on
// purpose silences only its own doorbell).
inline constexpr char kRegisterMessage[] = "KVREGISTER1";
inline constexpr std::size_t kRegisterMessageSize = sizeof kRegisterMessage - 1;
// The same for a channel that was registered before, with a worker that has since died: the
// worker adopts it (shm/channel_dedup.h) instead of starting it afresh. Same size.
inline constexpr char kAdoptMessage[] = "KVADOPTION1";
static_assert(sizeof kAdoptMessage - 1 == kRegisterMessageSize);
// A subscriber's connection (no memfd, no reply): the worker counts such connections while they
// stay open and makes the feed's wake-up system call only while it has one (shm/change_feed.h,
// "Waking"). On receiving it the worker wakes the feed once, so that a change published before
// it was counted wakes the subscriber anyway. Same size.
inline constexpr char kSubscribeMessage[] = "KVSUBSCRIB1";
static_assert(sizeof kSubscribeMessage - 1 == kRegisterMessageSize);
inline constexpr char kDoorbellPacket = 'w';
inline constexpr char kDoorbellFdPacket = 'D';
inline constexpr char kStagedPacket = 'V';

// One mapping of a channel memfd. Move-only; unmaps and closes on destruction.
class Channel {
 public:
  Channel() = default;
  ~Channel();
  Channel(Channel&& other) noexcept;
  Channel& operator=(Channel&& other) noexcept;

  // Client side: a new memfd with initialised header. Empty Channel and *error on failure.
  static Channel Create(std::uint32_t request_capacity, std::uint32_t reply_capacity,
                        std::string* error);
  // Worker side: maps a memfd received from a client (takes ownership of fd) after checking the
  // header against the memfd's real size.
  static Channel Attach(int fd, std::string* error);

  bool valid() const { return header_ != nullptr; }
  int fd() const { return fd_; }
  ChannelHeader* header() const { return header_; }
  // The validated copy of header()->channel_id taken at Create/Attach (never re-read).
  std::uint64_t channel_id() const { return channel_id_; }

  RingWriter RequestWriter() const;  // client
  RingReader RequestReader() const;  // worker
  RingWriter ReplyWriter() const;    // worker
  RingReader ReplyReader() const;    // client

 private:
  void Reset();

  int fd_ = -1;
  ChannelHeader* header_ = nullptr;
  std::size_t size_ = 0;
  std::uint32_t request_capacity_ = 0;  // validated copies: never re-read from shared memory
  std::uint32_t reply_capacity_ = 0;
  std::uint64_t channel_id_ = 0;
};

// A sealed (no write, shrink or grow) memfd holding `value`. Returns the fd (CLOEXEC) or -1 and
// *error.
int CreateStagedValue(std::string_view value, std::string* error);
// Copies exactly `size` bytes from a staged-value fd into *out. Fails (false, *error) unless the
// fd is a tmpfs/memfd regular file of exactly `size` bytes: never blocks on a file system, never
// maps the peer's memory. Does not close fd.
bool ReadStagedValue(int fd, std::uint32_t size, std::string* out, std::string* error);

// Futex on a 32-bit word in a MAP_SHARED mapping (cross-process). Wait returns after a wake, a
// value change, a signal or `timeout_ns` (relative, CLOCK_MONOTONIC); callers re-check.
void FutexWait(const std::atomic<std::uint32_t>* word, std::uint32_t expected, long timeout_ns);
void FutexWakeAll(const std::atomic<std::uint32_t>* word);

}  // namespace kv::shm
