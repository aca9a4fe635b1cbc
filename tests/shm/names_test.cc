#include "shm/names.h"

#include <gtest/gtest.h>

namespace kv::shm {
namespace {

TEST(NamesTest, NamespaceAcceptsLettersDigitsDashUnderscore) {
  EXPECT_EQ(ValidateNamespace("kv"), "");
  EXPECT_EQ(ValidateNamespace("test_01-a"), "");
  EXPECT_EQ(ValidateNamespace(std::string(32, 'a')), "");
}

TEST(NamesTest, NamespaceRejectsEscapesAndOddSizes) {
  for (std::string bad :
       {std::string(), std::string(33, 'a'), std::string("a.b"), std::string("../x"),
        std::string("a/b"), std::string("a b"), std::string("a\0b", 3)}) {
    EXPECT_NE(ValidateNamespace(bad), "") << bad;
  }
}

TEST(NamesTest, BucketNameRejectsSpacesControlAndOversize) {
  EXPECT_EQ(ValidateBucketName("shopping"), "");
  EXPECT_EQ(ValidateBucketName("a/../b.c"), "");  // never used as an object name
  for (std::string bad :
       {std::string(), std::string(65, 'a'), std::string("a b"), std::string("a\nb"),
        std::string("\x01"), std::string("caf\xc3\xa9"), std::string("a\0b", 3)}) {
    EXPECT_NE(ValidateBucketName(bad), "") << bad;
  }
}

TEST(NamesTest, ObjectNamesDeriveFromNamespaceAndIdOnly) {
  EXPECT_EQ(RegistryObjectName("kv"), "kv.registry");
  EXPECT_EQ(AnchorObjectName("kv", 7), "kv.b7");
  EXPECT_EQ(GenerationObjectName("kv", 7, 3), "kv.b7.g3");
  EXPECT_EQ(ControlSocketAddress("kv"), std::string("\0kv/kv/ctl", 10));
}

}  // namespace
}  // namespace kv::shm
