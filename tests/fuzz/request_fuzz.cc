// libFuzzer target for the worker's untrusted input: request frames (shm::DecodeRequest) and the
// request ring a client fills (shm::RingReader over hostile indices and frame headers), plus the
// client's reply decoder (shm::DecodeReply).
//
// Input layout: byte 0 selects the mode; the rest is the payload.
//   mode % 3 == 0: the payload is one request frame.
//   mode % 3 == 1: the payload is a 4096-byte ring image: [u64 tail][u64 head][ring bytes...];
//                  every frame the reader accepts is decoded as a request (and the frames
//                  after it are peeked at, as the worker's prefetching lookahead does).
//   mode % 3 == 2: the payload is one reply frame.
// Checks: no crash, no sanitizer report, no read outside the input, bounded loops, and that
// every accepted request's key and value lie inside its frame with the lengths it announced.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "shm/batch.h"
#include "shm/layout.h"
#include "shm/message.h"
#include "shm/ring.h"

namespace {

using kv::shm::WireStatus;

void Check(bool condition) {
  if (!condition) std::abort();
}

void FuzzRequest(const char* data, std::size_t size) {
  // A heap copy of exactly `size` bytes: ASan flags any read past the frame.
  std::vector<char> frame(data, data + size);
  kv::shm::Request request;
  WireStatus s = kv::shm::DecodeRequest(frame.data(), frame.size(), &request);
  if (s != WireStatus::kOk) return;
  const kv::shm::RequestHeader& h = request.header;
  Check(h.version == kv::shm::kProtocolVersion && h.op >= 1 && h.op <= kv::shm::kMaxOp);
  Check(h.key_len <= kv::shm::kMaxKeySize && h.value_len <= kv::shm::kMaxValueSize);
  Check(request.key.size() == h.key_len);
  Check(request.key.data() == frame.data() + sizeof h);
  if (request.staged()) {
    Check(request.value.empty() && size == sizeof h + h.key_len);
  } else {
    Check(request.value.size() == h.value_len);
    Check(size == sizeof h + h.key_len + h.value_len);
  }
  // A batch's body is decoded by the worker next (shm/batch.h): every op inside the body.
  if (h.op == static_cast<std::uint8_t>(kv::shm::Op::kBatch) && !request.staged()) {
    std::vector<kv::shm::BatchOp> ops;
    std::size_t bad = 0;
    if (kv::shm::DecodeBatch(request.value, static_cast<std::uint64_t>(h.arg), &ops, &bad) ==
        WireStatus::kOk) {
      Check(ops.size() == static_cast<std::size_t>(h.arg));
      for (const kv::shm::BatchOp& op : ops) {
        Check(op.key.data() >= request.value.data() &&
              op.value.data() + op.value.size() <= request.value.data() + request.value.size());
        Check(!op.key.empty() && op.key.size() <= kv::shm::kMaxKeySize);
      }
    }
  }
  // Touch every byte the worker would read.
  volatile char sink = 0;
  for (char c : request.key) sink = static_cast<char>(sink ^ c);
  for (char c : request.value) sink = static_cast<char>(sink ^ c);
}

void FuzzRing(const char* data, std::size_t size) {
  constexpr std::size_t kCapacity = 4096;
  alignas(8) std::atomic<std::uint64_t> tail{0};
  alignas(8) std::atomic<std::uint64_t> head{0};
  std::uint64_t t = 0, h = 0;
  if (size >= 16) {
    std::memcpy(&t, data, 8);
    std::memcpy(&h, data + 8, 8);
    data += 16;
    size -= 16;
  }
  tail.store(t);
  head.store(h);
  std::vector<char> ring(kCapacity, 0);
  std::memcpy(ring.data(), data, size < kCapacity ? size : kCapacity);
  kv::shm::RingReader reader(&tail, &head, ring.data(), kCapacity);
  // A lap holds at most capacity/8 frames; anything beyond means the reader loops.
  for (int frames = 0; frames <= static_cast<int>(kCapacity / 8) + 2; ++frames) {
    bool broken = false;
    std::uint32_t frame_size = 0;
    const char* frame = reader.Next(&frame_size, &broken);
    if (broken || frame == nullptr) return;
    Check(frame >= ring.data() && frame + frame_size <= ring.data() + kCapacity);
    // The worker's lookahead (prefetch hints) peeks at the frames after the current one.
    std::uint64_t cursor = reader.after_current();
    for (int ahead = 0; ahead < 8; ++ahead) {
      std::uint32_t peek_size = 0;
      const char* peek = reader.Peek(&cursor, &peek_size);
      if (peek == nullptr) break;
      Check(peek >= ring.data() && peek + peek_size <= ring.data() + kCapacity);
    }
    FuzzRequest(frame, frame_size);
    reader.Pop();
    reader.Release();
  }
  std::abort();  // the reader returned more frames than a lap can hold
}

void FuzzReply(const char* data, std::size_t size) {
  std::vector<char> frame(data, data + size);
  kv::shm::ReplyHeader header;
  std::string_view value;
  if (!kv::shm::DecodeReply(frame.data(), frame.size(), &header, &value)) return;
  Check(value.size() <= frame.size());
  if (!value.empty()) Check(value.data() + value.size() == frame.data() + frame.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  if (size == 0) return 0;
  const char* data = reinterpret_cast<const char*>(bytes);
  switch (bytes[0] % 3) {
    case 0:
      FuzzRequest(data + 1, size - 1);
      break;
    case 1:
      FuzzRing(data + 1, size - 1);
      break;
    default:
      FuzzReply(data + 1, size - 1);
      break;
  }
  return 0;
}
