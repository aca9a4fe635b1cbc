#include "shm/registry.h"

#include <gtest/gtest.h>

#include "shm/names.h"
#include "tests/testing/kvd_harness.h"

namespace kv::shm {
namespace {

class RegistryTest : public ::testing::Test {
 protected:
  void TearDown() override { Segment::Remove(RegistryObjectName(ns_)); }
  std::string ns_ = kv::testing::UniqueNamespace();
};

TEST_F(RegistryTest, InsertFindListFree) {
  bool created = false;
  ShmError e;
  auto w = RegistryWriter::OpenOrCreate(ns_, 8, 0600, &created, &e);
  ASSERT_TRUE(w) << e.message;
  EXPECT_TRUE(created);
  std::uint64_t id = w->AllocateBucketId();
  auto index = w->Insert("shopping", id);
  ASSERT_TRUE(index);
  w->SetState(*index, kBucketRunning);

  auto reader = RegistryReader::Open(ns_, &e);
  ASSERT_TRUE(reader) << e.message;
  auto found = reader->Find("shopping");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->bucket_id, id);
  EXPECT_EQ(found->state, kBucketRunning);
  EXPECT_FALSE(reader->Find("shop"));
  EXPECT_EQ(reader->List().size(), 1u);
  w->Free(*index);
  EXPECT_FALSE(reader->Find("shopping"));
  EXPECT_GT(w->AllocateBucketId(), id);  // ids are never reused
}

TEST_F(RegistryTest, ReopenKeepsEntriesAndFullRegistryRefuses) {
  bool created = false;
  ShmError e;
  {
    auto w = RegistryWriter::OpenOrCreate(ns_, 2, 0600, &created, &e);
    ASSERT_TRUE(w);
    ASSERT_TRUE(w->Insert("a", w->AllocateBucketId()));
    ASSERT_TRUE(w->Insert("b", w->AllocateBucketId()));
    EXPECT_FALSE(w->Insert("c", w->AllocateBucketId()));
  }
  auto w = RegistryWriter::OpenOrCreate(ns_, 2, 0600, &created, &e);
  ASSERT_TRUE(w) << e.message;
  EXPECT_FALSE(created);
  EXPECT_EQ(w->reader().List().size(), 2u);
}

TEST_F(RegistryTest, ForeignSegmentIsRefusedNotOverwritten) {
  ShmError e;
  Segment s = Segment::Create(RegistryObjectName(ns_), 8192, 8192, 0600, &e);
  ASSERT_TRUE(s.valid());
  std::memset(s.data(), 0x5a, 8192);
  bool created = false;
  auto w = RegistryWriter::OpenOrCreate(ns_, 8, 0600, &created, &e);
  EXPECT_FALSE(w);
  EXPECT_EQ(e.kind, ShmError::kCorrupt);
  EXPECT_EQ(static_cast<unsigned char>(s.data()[100]), 0x5a);
}

}  // namespace
}  // namespace kv::shm
