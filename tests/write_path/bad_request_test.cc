// Every field of a request wrong in every way, sent as raw frames over a real channel to a real
// worker: each answered by its specific error, the worker still serving, no stored data changed.
// Then the layers below the frame: forged ring indices and frame headers, garbage written into
// the ring by a foreign process, and malformed registration packets.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <map>
#include <random>

#include "shm/batch.h"
#include "shm/layout.h"
#include "tests/testing/bucket_fixture.h"
#include "tests/testing/kvd_harness.h"
#include "tests/write_path/raw_channel.h"

namespace kv {
namespace {

using shm::Op;
using shm::WireStatus;
using testing::Frame;
using testing::HeaderOf;
using testing::RawChannel;
using testing::RawReply;

class BadRequestTest : public testing::BucketFixture {
 protected:
  void SetUp() override {
    BucketFixture::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_TRUE(bucket_->Put("k", "v").ok());
    ASSERT_TRUE(bucket_->Put("n", "41").ok());
    ASSERT_TRUE(bucket_->Put(std::string("bin\0\xff", 5), std::string("\0\xff", 2)).ok());
    before_ = Contents();
  }

  std::map<std::string, std::string> Contents() {
    std::map<std::string, std::string> out;
    EXPECT_TRUE(bucket_
                    ->Scan("",
                           [&](std::string_view k, std::string_view v) {
                             out.emplace(std::string(k), std::string(v));
                             return true;
                           })
                    .ok());
    return out;
  }

  // The worker answers a valid request on a fresh channel, and on the library's own channel.
  void ExpectServing() {
    RawChannel fresh;
    std::string error;
    ASSERT_TRUE(fresh.Open(kvd_.ns(), bucket_->id(), &error)) << error;
    ASSERT_TRUE(fresh.Send(Op::kFlush, 99, {}, {}));
    RawReply reply;
    ASSERT_TRUE(fresh.Await(&reply));
    EXPECT_EQ(reply.status, WireStatus::kOk);
    EXPECT_EQ(reply.request_id, 99u);
    EXPECT_TRUE(bucket_->Flush().ok());
  }

  std::map<std::string, std::string> before_;
};

struct BadFrame {
  const char* name;
  std::function<std::string()> make;
  WireStatus expected;
};

std::string Edit(std::string frame, const std::function<void(shm::RequestHeader*)>& edit) {
  edit(HeaderOf(frame));
  return frame;
}

// A batch body of `n` puts of keys "k0".. (which the bad frames around it must not apply).
std::string BatchBody(int n) {
  std::string body;
  for (int i = 0; i < n; ++i)
    shm::AppendBatchEntry(&body, Op::kPut, "k" + std::to_string(i), "b", 0);
  return body;
}

std::vector<BadFrame> BadFrames() {
  auto put = [] { return Frame(Op::kPut, 7, "k", "changed"); };
  auto put_with = [put](std::function<void(shm::RequestHeader*)> e) {
    return [put, e] { return Edit(put(), e); };
  };
  std::string huge_key(shm::kMaxKeySize + 1, 'k');
  return {
      // version
      {"version 0", put_with([](auto* h) { h->version = 0; }), WireStatus::kBadVersion},
      {"version 2", put_with([](auto* h) { h->version = 2; }), WireStatus::kBadVersion},
      {"version 255", put_with([](auto* h) { h->version = 255; }), WireStatus::kBadVersion},
      // op
      {"op 0", put_with([](auto* h) { h->op = 0; }), WireStatus::kUnknownOp},
      {"op past kMaxOp", put_with([](auto* h) { h->op = shm::kMaxOp + 1; }),
       WireStatus::kUnknownOp},
      {"op 255", put_with([](auto* h) { h->op = 255; }), WireStatus::kUnknownOp},
      // batches (op 9: shm/batch.h)
      {"batch with a key", [] { return Frame(Op::kBatch, 7, "k", BatchBody(1), 1); },
       WireStatus::kMalformed},
      {"batch count 0", [] { return Frame(Op::kBatch, 7, "", BatchBody(1), 0); },
       WireStatus::kMalformed},
      {"batch count 4097", [] { return Frame(Op::kBatch, 7, "", BatchBody(1), 4097); },
       WireStatus::kTooLarge},
      {"batch count past its body", [] { return Frame(Op::kBatch, 7, "", BatchBody(1), 2); },
       WireStatus::kMalformed},
      {"batch body past its count", [] { return Frame(Op::kBatch, 7, "", BatchBody(2), 1); },
       WireStatus::kMalformed},
      {"batch with a key twice",
       [] {
         std::string body;
         shm::AppendBatchEntry(&body, Op::kPut, "k", "a", 0);
         shm::AppendBatchEntry(&body, Op::kDelete, "k", "", 0);
         return Frame(Op::kBatch, 7, "", body, 2);
       },
       WireStatus::kMalformed},
      {"batch entry of op incr",
       [] {
         std::string body;
         shm::AppendBatchEntry(&body, Op::kIncr, "k", "", 0);
         return Frame(Op::kBatch, 7, "", body, 1);
       },
       WireStatus::kMalformed},
      {"batch entry with reserved bits",
       [] {
         std::string body = BatchBody(1);
         body[1] = 1;
         return Frame(Op::kBatch, 7, "", body, 1);
       },
       WireStatus::kMalformed},
      // flags (unknown bits: answered even though a no-reply bit may look set)
      {"flag 4", put_with([](auto* h) { h->flags = 4; }), WireStatus::kMalformed},
      {"flag 0x8000", put_with([](auto* h) { h->flags = 0x8000; }), WireStatus::kMalformed},
      {"no-reply with unknown flag", put_with([](auto* h) { h->flags = 0x8001; }),
       WireStatus::kMalformed},
      // reserved
      {"reserved 1", put_with([](auto* h) { h->reserved = 1; }), WireStatus::kMalformed},
      {"reserved top bit", put_with([](auto* h) { h->reserved = 0x80000000u; }),
       WireStatus::kMalformed},
      // lengths
      {"key_len past frame", put_with([](auto* h) { h->key_len = 100; }), WireStatus::kMalformed},
      {"value_len past frame", put_with([](auto* h) { h->value_len = 1000; }),
       WireStatus::kMalformed},
      {"value_len short of frame", put_with([](auto* h) { h->value_len = 2; }),
       WireStatus::kMalformed},
      {"key_len 2^32-1", put_with([](auto* h) { h->key_len = 0xffffffffu; }),
       WireStatus::kMalformed},
      {"value_len 2^32-1", put_with([](auto* h) { h->value_len = 0xffffffffu; }),
       WireStatus::kMalformed},
      {"empty key on put", [] { return Frame(Op::kPut, 7, "", "v"); }, WireStatus::kMalformed},
      {"empty key on delete", [] { return Frame(Op::kDelete, 7, "", ""); }, WireStatus::kMalformed},
      {"key on clear", [] { return Frame(Op::kClear, 7, "k", ""); }, WireStatus::kMalformed},
      {"key on flush", [] { return Frame(Op::kFlush, 7, "k", ""); }, WireStatus::kMalformed},
      {"value on delete", [] { return Frame(Op::kDelete, 7, "k", "v"); }, WireStatus::kMalformed},
      {"value on incr", [] { return Frame(Op::kIncr, 7, "n", "5", 1); }, WireStatus::kMalformed},
      {"arg on delete", [] { return Frame(Op::kDelete, 7, "k", "", 3); }, WireStatus::kMalformed},
      {"negative expiry on put", [] { return Frame(Op::kPut, 7, "k", "v", -3); },
       WireStatus::kMalformed},
      {"expire without a time", [] { return Frame(Op::kExpire, 7, "k", "", 0); },
       WireStatus::kMalformed},
      {"expiry past the year 4199",
       [] { return Frame(Op::kExpire, 7, "k", "", std::int64_t{1} << 47); },
       WireStatus::kMalformed},
      {"arg on delete", [] { return Frame(Op::kDelete, 7, "k", "", 3); }, WireStatus::kMalformed},
      // oversize
      {"key of 1025 bytes", [huge_key] { return Frame(Op::kPut, 7, huge_key, "v"); },
       WireStatus::kTooLarge},
      {"staged value over 16 MiB", put_with([](auto* h) {
         h->flags = shm::kFlagStagedValue;
         h->value_len = shm::kMaxValueSize + 1;
       }),
       WireStatus::kTooLarge},
      // truncation (request id 7 is recoverable from 16 bytes on)
      {"truncated to 31 bytes", [put] { return put().substr(0, 31); }, WireStatus::kMalformed},
      {"truncated to 16 bytes", [put] { return put().substr(0, 16); }, WireStatus::kMalformed},
      {"header only, lengths kept", [put] { return put().substr(0, sizeof(shm::RequestHeader)); },
       WireStatus::kMalformed},
      {"one byte cut", [put] { return put().substr(0, put().size() - 1); }, WireStatus::kMalformed},
      // staged values gone wrong
      {"staged flag on delete",
       [] { return Edit(Frame(Op::kDelete, 7, "k", ""), [](auto* h) { h->flags = 2; }); },
       WireStatus::kMalformed},
      {"staged put without a memfd", put_with([](auto* h) {
         h->flags = shm::kFlagStagedValue;
         h->value_len = 0;
         h->key_len = 1 + 7;  // key "k" + the former value bytes, all in the frame
       }),
       WireStatus::kMalformed},
      // ops refused on their merits
      {"incr of a non-integer", [] { return Frame(Op::kIncr, 7, "k", "", 1); },
       WireStatus::kNotAnInteger},
      {"cas with a wrong version", [] { return Frame(Op::kCas, 7, "k", "x", 123456); },
       WireStatus::kVersionMismatch},
      {"incr overflowing", [] { return Frame(Op::kIncr, 7, "n", "", INT64_MAX); },
       WireStatus::kNotAnInteger},
  };
}

TEST_F(BadRequestTest, EachBadFieldIsAnsweredByItsErrorAndChangesNothing) {
  RawChannel raw;
  std::string error;
  ASSERT_TRUE(raw.Open(kvd_.ns(), bucket_->id(), &error)) << error;
  for (const BadFrame& row : BadFrames()) {
    SCOPED_TRACE(row.name);
    std::string frame = row.make();
    ASSERT_TRUE(raw.SendFrame(frame));
    RawReply reply;
    ASSERT_TRUE(raw.Await(&reply));
    EXPECT_EQ(reply.status, row.expected)
        << "got " << shm::WireStatusName(reply.status) << " for " << row.name;
    if (frame.size() >= 16) {
      EXPECT_EQ(reply.request_id, 7u);
    }
    // The same channel keeps working.
    ASSERT_TRUE(raw.Send(Op::kFlush, 8, {}, {}));
    ASSERT_TRUE(raw.Await(&reply));
    EXPECT_EQ(reply.status, WireStatus::kOk);
    EXPECT_EQ(reply.request_id, 8u);
  }
  // Tiny frames carry no request id: answered with id 0.
  for (std::size_t size : {0, 1, 4, 15}) {
    SCOPED_TRACE(size);
    ASSERT_TRUE(raw.SendFrame(Frame(Op::kPut, 7, "k", "v").substr(0, size)));
    RawReply reply;
    ASSERT_TRUE(raw.Await(&reply));
    EXPECT_EQ(reply.status, WireStatus::kMalformed);
    EXPECT_EQ(reply.request_id, 0u);
  }
  ExpectServing();
  EXPECT_EQ(Contents(), before_);
}

int Staged(const std::string& value) {
  std::string error;
  return shm::CreateStagedValue(value, &error);
}

TEST_F(BadRequestTest, BadStagedValuesAreRefused) {
  RawChannel raw;
  std::string error;
  ASSERT_TRUE(raw.Open(kvd_.ns(), bucket_->id(), &error)) << error;
  auto staged_put = [](std::uint32_t announced) {
    return Edit(Frame(Op::kPut, 7, "k", ""), [announced](auto* h) {
      h->flags = shm::kFlagStagedValue;
      h->value_len = announced;
    });
  };
  struct Row {
    const char* name;
    std::function<int()> fd;  // what to send before the frame
    std::uint32_t announced;
  };
  std::vector<Row> rows = {
      {"memfd shorter than announced", [] { return Staged(std::string(1000, 'x')); }, 5000},
      {"memfd longer than announced", [] { return Staged(std::string(9000, 'x')); }, 5000},
      {"a pipe instead of a memfd",
       [] {
         int p[2];
         EXPECT_EQ(::pipe(p), 0);
         ::close(p[1]);
         return p[0];
       },
       5000},
      {"a regular file instead of a memfd", [] { return ::open("/proc/self/exe", O_RDONLY); },
       5000},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    int fd = row.fd();
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(raw.SendStagedFd(fd));
    ::close(fd);
    ASSERT_TRUE(raw.SendFrame(staged_put(row.announced)));
    RawReply reply;
    ASSERT_TRUE(raw.Await(&reply));
    EXPECT_EQ(reply.status, WireStatus::kMalformed);
  }
  // Descriptors sent without a staged packet byte, and more than the worker keeps, are dropped.
  for (int i = 0; i < 40; ++i) {
    int fd = shm::CreateStagedValue("x", &error);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(raw.SendStagedFd(fd));
    ::close(fd);
  }
  ExpectServing();
  EXPECT_EQ(Contents(), before_);
}

// Ring-level damage cannot be answered on the ring: the worker closes that channel only.
struct RingDamage {
  const char* name;
  std::function<void(RawChannel&)> damage;
};

std::vector<RingDamage> RingDamages() {
  return {
      {"tail not 8-aligned", [](RawChannel& r) { r.header()->request_tail.store(13); }},
      {"tail more than a lap ahead",
       [](RawChannel& r) { r.header()->request_tail.store(shm::kDefaultRequestCapacity * 3ull); }},
      {"tail behind head (wrapped u64)",
       [](RawChannel& r) { r.header()->request_tail.store(~std::uint64_t{7}); }},
      {"frame larger than half the ring",
       [](RawChannel& r) {
         char* ring = reinterpret_cast<char*>(r.header()) + sizeof(shm::ChannelHeader);
         std::uint32_t h[2] = {shm::kDefaultRequestCapacity, 0};
         std::memcpy(ring, h, sizeof h);
         r.header()->request_tail.store(64);
       }},
      {"frame longer than what was published",
       [](RawChannel& r) {
         char* ring = reinterpret_cast<char*>(r.header()) + sizeof(shm::ChannelHeader);
         std::uint32_t h[2] = {1000, 0};
         std::memcpy(ring, h, sizeof h);
         r.header()->request_tail.store(64);
       }},
      {"frame size 0xfffffffe",
       [](RawChannel& r) {
         char* ring = reinterpret_cast<char*>(r.header()) + sizeof(shm::ChannelHeader);
         std::uint32_t h[2] = {0xfffffffeu, 0};
         std::memcpy(ring, h, sizeof h);
         r.header()->request_tail.store(64);
       }},
      {"reply head ahead of reply tail",
       [](RawChannel& r) {
         r.header()->reply_head.store(1 << 20);
         ASSERT_TRUE(r.Send(Op::kFlush, 1, {}, {}));
       }},
  };
}

TEST_F(BadRequestTest, ForgedRingIndicesCloseOnlyThatChannel) {
  for (const RingDamage& row : RingDamages()) {
    SCOPED_TRACE(row.name);
    RawChannel victim;
    std::string error;
    ASSERT_TRUE(victim.Open(kvd_.ns(), bucket_->id(), &error)) << error;
    row.damage(victim);
    victim.RingDoorbell();
    EXPECT_TRUE(victim.WorkerClosed());
    ExpectServing();
  }
  EXPECT_EQ(Contents(), before_);
}

TEST_F(BadRequestTest, IndicesPlantedBeforeRegistrationCloseOnlyThatChannel) {
  // Found by the fuzzer: the worker starts its reply writer at the reply_tail the client left in
  // the memfd; an unaligned one made the worker write a frame header past the ring's end.
  for (int which = 0; which < 2; ++which) {
    SCOPED_TRACE(which == 0 ? "reply tail" : "request head");
    std::string error;
    shm::Channel channel =
        shm::Channel::Create(shm::kDefaultRequestCapacity, shm::kDefaultReplyCapacity, &error);
    ASSERT_TRUE(channel.valid()) << error;
    std::uint64_t planted = shm::kDefaultReplyCapacity - 4;
    if (which == 0) {
      channel.header()->reply_tail.store(planted);
      channel.header()->reply_head.store(planted);
    } else {
      channel.header()->request_head.store(planted);
      channel.header()->request_tail.store(planted);
    }
    RawChannel raw;
    ASSERT_TRUE(raw.Connect(kvd_.ns(), bucket_->id()));
    std::string message;
    ASSERT_EQ(raw.Register(std::string(shm::kRegisterMessage, shm::kRegisterMessageSize),
                           channel.fd(), &message),
              shm::ControlStatus::kOk)
        << message;
    // A request written where the worker expects it (past the planted index).
    char* ring = reinterpret_cast<char*>(channel.header()) + sizeof(shm::ChannelHeader);
    std::string frame = Frame(Op::kFlush, 5, {}, {});
    std::uint32_t h[2] = {static_cast<std::uint32_t>(frame.size()), 0};
    std::uint64_t at = which == 0 ? 0 : planted;
    std::memcpy(ring + at, h, sizeof h);
    std::memcpy(ring + at + 8, frame.data(), frame.size());
    channel.header()->request_tail.store(at +
                                         shm::FrameBytes(static_cast<std::uint32_t>(frame.size())));
    raw.RingDoorbell();
    EXPECT_TRUE(raw.WorkerClosed());
    ExpectServing();
  }
  EXPECT_EQ(Contents(), before_);
}

TEST_F(BadRequestTest, ForeignProcessScribblingOnTheRingWedgesNothing) {
  std::mt19937_64 rng(12345);
  for (int round = 0; round < 8; ++round) {
    SCOPED_TRACE(round);
    RawChannel victim;
    std::string error;
    ASSERT_TRUE(victim.Open(kvd_.ns(), bucket_->id(), &error)) << error;
    ASSERT_TRUE(victim.Send(Op::kFlush, 1, {}, {}));
    std::uint64_t seed = rng();
    pid_t pid = ::fork();
    if (pid == 0) {
      // Another process with the memfd mapped: garbage over the indices and both rings.
      std::mt19937_64 r(seed);
      shm::ChannelHeader* h = victim.header();
      char* rings = reinterpret_cast<char*>(h) + sizeof(shm::ChannelHeader);
      std::size_t span = shm::kDefaultRequestCapacity + shm::kDefaultReplyCapacity;
      for (std::size_t i = 0; i < span; i += 8) {
        std::uint64_t word = r();
        if (round % 2 == 1) word &= 0x000000ff000000ffull;  // small, plausible-looking sizes
        std::memcpy(rings + i, &word, 8);
      }
      h->request_tail.store(round % 2 == 1 ? (r() % 4096) * 8 : r());
      h->reply_head.store(r() % 3 == 0 ? r() : 0);
      victim.RingDoorbell();
      ::_exit(0);
    }
    ASSERT_GT(pid, 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    // Whatever the worker made of it (errors, or closing the channel), it still serves.
    ExpectServing();
  }
  EXPECT_EQ(Contents(), before_);
}

TEST_F(BadRequestTest, ClientIgnoringItsRepliesStallsOnlyItself) {
  RawChannel lazy;
  std::string error;
  ASSERT_TRUE(lazy.Open(kvd_.ns(), bucket_->id(), &error)) << error;
  int sent = 0;
  while (lazy.Send(Op::kFlush, static_cast<std::uint64_t>(sent + 1), {}, {})) ++sent;
  EXPECT_GT(sent, 1000);  // the request ring filled up: the reply ring is full and paused
  ExpectServing();
  RawReply reply;
  for (int i = 1; i <= sent; ++i) {
    ASSERT_TRUE(lazy.Await(&reply)) << i;
    ASSERT_EQ(reply.request_id, static_cast<std::uint64_t>(i));
  }
}

TEST_F(BadRequestTest, BadRegistrationsAreRefused) {
  std::string error;
  shm::Channel good =
      shm::Channel::Create(shm::kDefaultRequestCapacity, shm::kDefaultReplyCapacity, &error);
  ASSERT_TRUE(good.valid()) << error;
  std::string reg(shm::kRegisterMessage, shm::kRegisterMessageSize);

  int unsealed = ::memfd_create("unsealed", MFD_CLOEXEC);
  ASSERT_GE(unsealed, 0);
  std::vector<char> copy(sizeof(shm::ChannelHeader) + shm::kDefaultRequestCapacity +
                         shm::kDefaultReplyCapacity);
  std::memcpy(copy.data(), good.header(), sizeof(shm::ChannelHeader));
  ASSERT_EQ(::write(unsealed, copy.data(), copy.size()), static_cast<ssize_t>(copy.size()));

  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  struct Row {
    const char* name;
    std::string packet;
    int fd;
  };
  std::vector<Row> rows = {
      {"no descriptor", reg, -1},
      {"wrong magic text", "KVREGISTER9", good.fd()},
      {"short packet", "KV", good.fd()},
      {"a pipe", reg, pipe_fds[0]},
      {"an unsealed memfd (could be truncated under the worker)", reg, unsealed},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    RawChannel raw;
    ASSERT_TRUE(raw.Connect(kvd_.ns(), bucket_->id()));
    std::string message;
    EXPECT_EQ(raw.Register(row.packet, row.fd, &message), shm::ControlStatus::kInvalid) << message;
    EXPECT_TRUE(raw.WorkerClosed());
  }
  ::close(unsealed);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  ExpectServing();
  EXPECT_EQ(Contents(), before_);
}

}  // namespace
}  // namespace kv
