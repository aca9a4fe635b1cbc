// examples/guide.c and examples/guide.cc (built in this tree) against a real kvd: both print the
// Elixir guide's bucket session, taking the namespace from argv or from $KV_NAMESPACE.
#include <gtest/gtest.h>

#include "tests/client/client_testing.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::client_testing::kGuideSession;
using kv::testing::KvdInstance;
using kv::testing::RunCommand;

class ExamplesTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ExamplesTest, GuidePrintsTheSessionWithNamespaceFromArgv) {
  KvdInstance kvd;
  auto r = RunCommand({GetParam(), kvd.ns()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, kGuideSession);
  r = RunCommand({GetParam(), kvd.ns()});  // the session leaves the bucket as it found it
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, kGuideSession);
}

TEST_P(ExamplesTest, GuidePrintsTheSessionWithNamespaceFromEnvironment) {
  KvdInstance kvd;
  auto r = RunCommand({GetParam()}, {}, {"KV_NAMESPACE=" + kvd.ns()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, kGuideSession);
}

TEST_P(ExamplesTest, GuideWithoutKvdFailsWithTheError) {
  auto r = RunCommand({GetParam(), kv::testing::UniqueNamespace()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("UNAVAILABLE"), std::string::npos) << r.err;
}

INSTANTIATE_TEST_SUITE_P(CAndCpp, ExamplesTest, ::testing::Values(KV_GUIDE_C_PATH, KV_GUIDE_PATH),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return info.index == 0 ? std::string("C") : std::string("Cpp");
                         });

}  // namespace
}  // namespace kv
