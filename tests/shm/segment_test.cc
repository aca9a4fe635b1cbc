// Segment creation: exclusive, with its final mode and size from the moment its name exists.
#include "shm/segment.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "tests/testing/kvd_harness.h"

namespace kv::shm {
namespace {

// Names of /dev/shm objects that begin with `prefix`.
std::vector<std::string> ObjectsStartingWith(const std::string& prefix) {
  std::vector<std::string> names;
  if (DIR* dir = ::opendir("/dev/shm")) {
    while (dirent* entry = ::readdir(dir)) {
      if (std::string(entry->d_name).rfind(prefix, 0) == 0) names.push_back(entry->d_name);
    }
    ::closedir(dir);
  }
  return names;
}

class SegmentTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const std::string& name : ObjectsStartingWith(ns_ + ".")) Segment::Remove(name);
  }
  std::string ns_ = kv::testing::UniqueNamespace();
};

TEST_F(SegmentTest, CreatedObjectHasItsModeAndSizeWhateverTheUmask) {
  mode_t old_umask = ::umask(077);
  ShmError e;
  Segment s = Segment::Create(ns_ + ".seg", 8192, 4096, 0640, &e);
  ::umask(old_umask);
  ASSERT_TRUE(s.valid()) << e.message;
  struct stat st {};
  ASSERT_EQ(::stat(("/dev/shm/" + ns_ + ".seg").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  EXPECT_EQ(st.st_size, 8192);
  EXPECT_EQ(ObjectsStartingWith(ns_ + "."), std::vector<std::string>{ns_ + ".seg"})
      << "the private name it was built under is gone";
}

TEST_F(SegmentTest, CreateIsExclusiveAndLeavesNothingWhenRefused) {
  ShmError e;
  Segment first = Segment::Create(ns_ + ".seg", 4096, 4096, 0600, &e);
  ASSERT_TRUE(first.valid()) << e.message;
  first.data()[100] = 42;
  Segment second = Segment::Create(ns_ + ".seg", 8192, 8192, 0600, &e);
  EXPECT_FALSE(second.valid());
  EXPECT_EQ(e.kind, ShmError::kExists) << e.message;
  EXPECT_EQ(ObjectsStartingWith(ns_ + "."), std::vector<std::string>{ns_ + ".seg"});
  Segment reader = Segment::OpenReadOnly(ns_ + ".seg", &e);
  ASSERT_TRUE(reader.valid()) << e.message;
  EXPECT_EQ(reader.size(), 4096u) << "the first object is untouched";
  EXPECT_EQ(reader.data()[100], 42);
}

}  // namespace
}  // namespace kv::shm
