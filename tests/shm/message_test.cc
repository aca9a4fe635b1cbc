#include "shm/message.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "shm/layout.h"

namespace kv::shm {
namespace {

std::vector<char> Encode(Op op, std::string_view key, std::string_view value, std::int64_t arg = 0,
                         std::uint16_t flags = 0) {
  std::vector<char> frame(RequestSize(key.size(), value.size()));
  EncodeRequest(frame.data(), op, flags, 42, key, value, arg);
  return frame;
}

RequestHeader* Header(std::vector<char>& frame) {
  return reinterpret_cast<RequestHeader*>(frame.data());
}

TEST(MessageTest, RoundTripsBinaryKeyAndValue) {
  std::string key("k\0\xff", 3), value("\0v\xff\0", 4);
  auto frame = Encode(Op::kPut, key, value);
  Request r;
  ASSERT_EQ(DecodeRequest(frame.data(), frame.size(), &r), WireStatus::kOk);
  EXPECT_EQ(r.header.request_id, 42u);
  EXPECT_EQ(r.key, key);
  EXPECT_EQ(r.value, value);
}

TEST(MessageTest, ExpiryTimesAreCheckedPerOp) {
  Request r;
  const std::int64_t latest = static_cast<std::int64_t>(kMaxExpiryUnixMs);
  auto ok = [&](Op op, std::string_view value, std::int64_t arg) {
    auto frame = Encode(op, "k", value, arg);
    return DecodeRequest(frame.data(), frame.size(), &r);
  };
  EXPECT_EQ(ok(Op::kPut, "v", 0), WireStatus::kOk);  // no expiry
  EXPECT_EQ(ok(Op::kPut, "v", 1'900'000'000'000), WireStatus::kOk);
  EXPECT_EQ(ok(Op::kPut, "v", latest), WireStatus::kOk);
  EXPECT_EQ(ok(Op::kPut, "v", latest + 1), WireStatus::kMalformed);
  EXPECT_EQ(ok(Op::kPut, "v", -1), WireStatus::kMalformed);
  EXPECT_EQ(ok(Op::kExpire, "", 1), WireStatus::kOk);
  EXPECT_EQ(ok(Op::kExpire, "", 0), WireStatus::kMalformed);  // expire needs a time
  EXPECT_EQ(ok(Op::kExpire, "", -5), WireStatus::kMalformed);
  EXPECT_EQ(ok(Op::kExpire, "", latest + 1), WireStatus::kMalformed);
  EXPECT_EQ(ok(Op::kExpire, "v", 1), WireStatus::kMalformed);  // no value
  EXPECT_EQ(ok(Op::kPersist, "", 0), WireStatus::kOk);
  EXPECT_EQ(ok(Op::kPersist, "", 1), WireStatus::kMalformed);
  auto frame = Encode(Op::kPersist, "", "");
  EXPECT_EQ(DecodeRequest(frame.data(), frame.size(), &r), WireStatus::kMalformed);  // no key
  frame = Encode(Op::kPersist, "k", "");
  Header(frame)->op = kMaxOp + 1;  // past the last op
  EXPECT_EQ(DecodeRequest(frame.data(), frame.size(), &r), WireStatus::kUnknownOp);
}

TEST(MessageTest, EachBadFieldGetsItsOwnError) {
  Request r;
  auto frame = Encode(Op::kPut, "k", "v");
  Header(frame)->version = 9;
  EXPECT_EQ(DecodeRequest(frame.data(), frame.size(), &r), WireStatus::kBadVersion);

  frame = Encode(Op::kPut, "k", "v");
  Header(frame)->op = 0;
  EXPECT_EQ(DecodeRequest(frame.data(), frame.size(), &r), WireStatus::kUnknownOp);
  Header(frame)->op = 200;
  EXPECT_EQ(DecodeRequest(frame.data(), frame.size(), &r), WireStatus::kUnknownOp);

  frame = Encode(Op::kPut, "k", "v");
  Header(frame)->reserved = 1;
  EXPECT_EQ(DecodeRequest(frame.data(), frame.size(), &r), WireStatus::kMalformed);

  frame = Encode(Op::kPut, "k", "v");
  Header(frame)->flags = 0x8000;
  EXPECT_EQ(DecodeRequest(frame.data(), frame.size(), &r), WireStatus::kMalformed);

  frame = Encode(Op::kPut, "k", "v");
  Header(frame)->value_len = 1000;  // longer than the frame
  EXPECT_EQ(DecodeRequest(frame.data(), frame.size(), &r), WireStatus::kMalformed);
  Header(frame)->key_len = 0xffffffffu;  // overflow attempt
  EXPECT_EQ(DecodeRequest(frame.data(), frame.size(), &r), WireStatus::kMalformed);

  frame = Encode(Op::kPut, "", "v");  // empty key
  EXPECT_EQ(DecodeRequest(frame.data(), frame.size(), &r), WireStatus::kMalformed);

  frame = Encode(Op::kDelete, "k", "unexpected value");
  EXPECT_EQ(DecodeRequest(frame.data(), frame.size(), &r), WireStatus::kMalformed);

  frame = Encode(Op::kClear, "k", "");  // clear takes no key
  EXPECT_EQ(DecodeRequest(frame.data(), frame.size(), &r), WireStatus::kMalformed);

  frame = Encode(Op::kDelete, "k", "", 5);  // arg only for put/cas/incr/expire
  EXPECT_EQ(DecodeRequest(frame.data(), frame.size(), &r), WireStatus::kMalformed);

  std::string big_key(kMaxKeySize + 1, 'k');
  frame = Encode(Op::kPut, big_key, "v");
  EXPECT_EQ(DecodeRequest(frame.data(), frame.size(), &r), WireStatus::kTooLarge);
}

TEST(MessageTest, TruncatedFramesAreMalformedAtEveryLength) {
  auto frame = Encode(Op::kPut, "key", "value");
  for (std::size_t n = 0; n < frame.size(); ++n) {
    Request r;
    EXPECT_NE(DecodeRequest(frame.data(), n, &r), WireStatus::kOk) << n;
  }
}

TEST(MessageTest, ReplyRoundTripAndRejectsInconsistentLength) {
  std::vector<char> frame(ReplySize(3));
  EncodeReply(frame.data(), WireStatus::kNotFound, 7, -5, "abc");
  ReplyHeader h;
  std::string_view v;
  ASSERT_TRUE(DecodeReply(frame.data(), frame.size(), &h, &v));
  EXPECT_EQ(h.request_id, 7u);
  EXPECT_EQ(h.number, -5);
  EXPECT_EQ(v, "abc");
  EXPECT_FALSE(DecodeReply(frame.data(), frame.size() - 1, &h, &v));
}

}  // namespace
}  // namespace kv::shm
