// Values larger than a ring frame (staged in a sealed memfd) up to kMaxValueSize, and TOO_LARGE
// beyond; a delete of a large value returns it; sync, async and cas all take the staged path.
#include <gtest/gtest.h>

#include "tests/testing/bucket_fixture.h"

namespace kv {
namespace {

std::string Pattern(std::size_t size, char seed) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>(seed + i * 131 + (i >> 12));
  return s;
}

class LargeValueTest : public testing::BucketFixture {
 protected:
  LargeValueTest()
      : BucketFixture({"--max-bucket-bytes", std::to_string(std::uint64_t{256} << 20)}, "big") {}
  std::string Get(std::string_view key) {
    std::string v;
    Status s = bucket_->Get(key, &v);
    return s.ok() ? v : s.ToString();
  }
};

TEST_F(LargeValueTest, ValuesAroundTheFrameLimitRoundTrip) {
  // Just below, at and above the inline limit of a 256 KiB request ring (half of it, less
  // headers), then powers of two.
  for (std::size_t size : {std::size_t{131000}, std::size_t{131032}, std::size_t{131033},
                           std::size_t{131072}, std::size_t{1} << 20}) {
    SCOPED_TRACE(size);
    std::string value = Pattern(size, 'a');
    ASSERT_TRUE(bucket_->Put("k" + std::to_string(size), value).ok());
    EXPECT_EQ(Get("k" + std::to_string(size)), value);
  }
}

TEST_F(LargeValueTest, SixteenMebibytesIsTheLimit) {
  std::string max = Pattern(kMaxValueSize, 'm');
  std::uint64_t version = 0;
  ASSERT_TRUE(bucket_->Put("max", max, &version).ok());
  EXPECT_EQ(Get("max"), max);
  Status s = bucket_->Put("over", std::string(kMaxValueSize + 1, 'x'));
  EXPECT_EQ(s.code(), Code::kTooLarge) << s.ToString();
  EXPECT_NE(s.message().find(std::to_string(kMaxValueSize)), std::string::npos) << s.ToString();
  EXPECT_EQ(bucket_->PutAsync("over", std::string(kMaxValueSize + 1, 'x')).code(), Code::kTooLarge);
  // cas on a large value, with its version.
  std::string next = Pattern(kMaxValueSize - 1, 'n');
  EXPECT_EQ(bucket_->CompareAndSet("max", version + 1000, next).code(), Code::kVersionMismatch);
  ASSERT_TRUE(bucket_->CompareAndSet("max", version, next, &version).ok());
  EXPECT_EQ(Get("max"), next);
}

TEST_F(LargeValueTest, DeleteOfALargeValueReturnsIt) {
  std::string value = Pattern(5 << 20, 'd');
  ASSERT_TRUE(bucket_->Put("d", value).ok());
  std::string old;
  ASSERT_TRUE(bucket_->Delete("d", &old).ok());
  EXPECT_EQ(old, value);
  EXPECT_EQ(bucket_->Delete("d", &old).code(), Code::kNotFound);
  // Interleaved with small deletes, whose old values come inline.
  ASSERT_TRUE(bucket_->Put("small", "s").ok());
  ASSERT_TRUE(bucket_->Put("d", value).ok());
  ASSERT_TRUE(bucket_->Delete("small", &old).ok());
  EXPECT_EQ(old, "s");
  ASSERT_TRUE(bucket_->Delete("d", &old).ok());
  EXPECT_EQ(old, value);
}

TEST_F(LargeValueTest, AsyncLargePutsAreAppliedInOrderWithSmallOnes) {
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(bucket_->PutAsync("a", Pattern(300000 + i, static_cast<char>('a' + i))).ok());
    ASSERT_TRUE(bucket_->PutAsync("s" + std::to_string(i), "small").ok());
  }
  ASSERT_TRUE(bucket_->DeleteAsync("s0").ok());
  ASSERT_TRUE(bucket_->Flush().ok());
  EXPECT_EQ(Get("a"), Pattern(300005, 'f'));
  EXPECT_EQ(Get("s5"), "small");
  std::string v;
  EXPECT_EQ(bucket_->Get("s0", &v).code(), Code::kNotFound);
}

}  // namespace
}  // namespace kv
