#include "shm/registry.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

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

// kvd creates the registry in steps (create the object, size it, initialise it, store the magic
// last); a reader that arrives in between must see "not ready", never "corrupt".
TEST_F(RegistryTest, ObjectNotYetSizedIsNotReady) {
  std::string path = "/" + RegistryObjectName(ns_);
  int fd = ::shm_open(path.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);  // created, not sized
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ::close(fd);
  ShmError e;
  EXPECT_FALSE(RegistryReader::Open(ns_, &e));
  EXPECT_EQ(e.kind, ShmError::kNotReady) << e.message;
  EXPECT_NE(e.message.find("being created"), std::string::npos) << e.message;
}

TEST_F(RegistryTest, SizedButUnpublishedIsNotReadyUntilTheMagicIsStored) {
  ShmError e;
  std::size_t size = sizeof(RegistryHeader) + 8 * sizeof(RegistryEntry);
  Segment s = Segment::Create(RegistryObjectName(ns_), size, size, 0600, &e);  // all zero
  ASSERT_TRUE(s.valid()) << e.message;
  EXPECT_FALSE(RegistryReader::Open(ns_, &e));
  EXPECT_EQ(e.kind, ShmError::kNotReady) << e.message;

  // The creator finishes: the same object now opens.
  auto* h = new (s.data()) RegistryHeader();
  h->format_version = kFormatVersion;
  h->layout_word = kRegistryLayout;
  h->capacity = 8;
  h->magic.store(kRegistryMagic, std::memory_order_release);
  e = {};
  auto reader = RegistryReader::Open(ns_, &e);
  ASSERT_TRUE(reader) << e.message;
  EXPECT_EQ(reader->capacity(), 8u);
}

TEST_F(RegistryTest, WrongMagicIsStillCorrupt) {
  ShmError e;
  Segment s = Segment::Create(RegistryObjectName(ns_), 8192, 8192, 0600, &e);
  ASSERT_TRUE(s.valid());
  std::memset(s.data(), 0x5a, 8192);
  EXPECT_FALSE(RegistryReader::Open(ns_, &e));
  EXPECT_EQ(e.kind, ShmError::kCorrupt) << e.message;
}

// What a kvd killed while creating the registry leaves (empty, or sized without magic): the next
// kvd starts over instead of refusing.
TEST_F(RegistryTest, KvdReplacesARegistryItsPredecessorDiedCreating) {
  for (bool sized : {false, true}) {
    SCOPED_TRACE(sized ? "sized" : "empty");
    ShmError e;
    if (sized) {
      ASSERT_TRUE(Segment::Create(RegistryObjectName(ns_), 4096, 4096, 0600, &e).valid());
    } else {
      int fd = ::shm_open(("/" + RegistryObjectName(ns_)).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
      ASSERT_GE(fd, 0);
      ::close(fd);
    }
    bool created = false;
    auto w = RegistryWriter::OpenOrCreate(ns_, 8, 0600, &created, &e);
    ASSERT_TRUE(w) << e.message;
    EXPECT_TRUE(created);
    EXPECT_TRUE(RegistryReader::Open(ns_, &e)) << e.message;
    Segment::Remove(RegistryObjectName(ns_));
  }
}

}  // namespace
}  // namespace kv::shm
