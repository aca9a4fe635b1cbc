#include "shm/ring.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "shm/channel.h"

namespace kv::shm {
namespace {

struct Ring {
  alignas(64) std::atomic<std::uint64_t> tail{0};
  alignas(64) std::atomic<std::uint64_t> head{0};
  std::vector<char> data = std::vector<char>(4096);
  RingWriter writer{&tail, &head, data.data(), 4096};
  RingReader reader{&tail, &head, data.data(), 4096};
};

bool Push(RingWriter& w, const std::string& s) {
  bool broken = false;
  char* p = w.Begin(static_cast<std::uint32_t>(s.size()), &broken);
  if (p == nullptr) return false;
  std::memcpy(p, s.data(), s.size());
  w.Commit();
  w.Publish();
  return true;
}

std::string Pop(RingReader& r) {
  bool broken = false;
  std::uint32_t size;
  const char* p = r.Next(&size, &broken);
  EXPECT_FALSE(broken);
  if (p == nullptr) return "<empty>";
  std::string s(p, size);
  r.Pop();
  r.Release();
  return s;
}

TEST(RingTest, FramesComeOutInOrderAcrossManyWraps) {
  Ring ring;
  for (int i = 0; i < 5000; ++i) {
    std::string msg(static_cast<std::size_t>(i % 700), static_cast<char>('a' + i % 26));
    ASSERT_TRUE(Push(ring.writer, msg)) << i;
    ASSERT_EQ(Pop(ring.reader), msg) << i;
  }
  EXPECT_EQ(Pop(ring.reader), "<empty>");
}

TEST(RingTest, FullRingRefusesUntilConsumed) {
  Ring ring;
  int pushed = 0;
  while (Push(ring.writer, std::string(100, 'x'))) ++pushed;
  EXPECT_GT(pushed, 10);
  EXPECT_EQ(Pop(ring.reader), std::string(100, 'x'));
  EXPECT_TRUE(Push(ring.writer, std::string(100, 'y')));
}

TEST(RingTest, OversizedFrameIsRefused) {
  Ring ring;
  bool broken = false;
  EXPECT_EQ(ring.writer.Begin(4096, &broken), nullptr);
  EXPECT_FALSE(broken);
}

TEST(RingTest, ReaderDetectsImpossibleTailAndFrameSizes) {
  Ring ring;
  bool broken = false;
  std::uint32_t size;
  ring.tail.store(8192 + 8);  // more than a lap ahead of head
  EXPECT_EQ(ring.reader.Next(&size, &broken), nullptr);
  EXPECT_TRUE(broken);

  Ring ring2;
  ring2.tail.store(16);
  std::uint32_t header[2] = {100000, 0};  // frame larger than what was published
  std::memcpy(ring2.data.data(), header, sizeof header);
  broken = false;
  EXPECT_EQ(ring2.reader.Next(&size, &broken), nullptr);
  EXPECT_TRUE(broken);

  Ring ring3;
  ring3.tail.store(13);  // unaligned
  broken = false;
  EXPECT_EQ(ring3.reader.Next(&size, &broken), nullptr);
  EXPECT_TRUE(broken);
}

TEST(RingTest, UnalignedOwnIndexPlantedBeforeAttachBreaksTheRing) {
  // Found by the fuzzer: a peer sets the index the other side starts from to an unaligned value;
  // a frame header at offset capacity-4 would be read (or written) past the ring's end.
  Ring ring;
  ring.head.store(4092);
  ring.tail.store(4092 + 16);
  RingReader reader(&ring.tail, &ring.head, ring.data.data(), 4096);
  bool broken = false;
  std::uint32_t size;
  EXPECT_EQ(reader.Next(&size, &broken), nullptr);
  EXPECT_TRUE(broken);

  Ring ring2;
  ring2.tail.store(4095);
  ring2.head.store(4095);
  RingWriter writer(&ring2.tail, &ring2.head, ring2.data.data(), 4096);
  broken = false;
  EXPECT_EQ(writer.Begin(8, &broken), nullptr);
  EXPECT_TRUE(broken);
}

TEST(RingTest, WriterDetectsImpossibleHead) {
  Ring ring;
  ring.head.store(1 << 20);  // consumer claims to be ahead of the producer
  bool broken = false;
  EXPECT_EQ(ring.writer.Begin(8, &broken), nullptr);
  EXPECT_TRUE(broken);
}

TEST(ChannelTest, AttachRejectsForgedCapacities) {
  std::string error;
  Channel client = Channel::Create(4096, 4096, &error);
  ASSERT_TRUE(client.valid()) << error;
  client.header()->request_capacity = 1u << 30;  // lies about its size
  Channel worker = Channel::Attach(::dup(client.fd()), &error);
  EXPECT_FALSE(worker.valid());
  EXPECT_NE(error, "");
}

TEST(ChannelTest, AttachedChannelSharesRings) {
  std::string error;
  Channel client = Channel::Create(4096, 8192, &error);
  ASSERT_TRUE(client.valid()) << error;
  Channel worker = Channel::Attach(::dup(client.fd()), &error);
  ASSERT_TRUE(worker.valid()) << error;
  RingWriter w = client.RequestWriter();
  RingReader r = worker.RequestReader();
  ASSERT_TRUE(Push(w, "hello"));
  EXPECT_EQ(Pop(r), "hello");
}

}  // namespace
}  // namespace kv::shm
