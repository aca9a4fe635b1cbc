// Resource exhaustion (DESIGN §6): a full /dev/shm, the bucket limit, a bucket's memory limit and
// the file-descriptor limit each give a clear error, lose nothing stored, and leave the rest of
// the instance serving.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>

#include <iostream>

#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::testing::KvdInstance;

#define CHILD_CHECK(cond)                                                        \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::cerr << __FILE__ << ":" << __LINE__ << ": check failed: " #cond "\n"; \
      ::_exit(1);                                                                \
    }                                                                            \
  } while (0)

// Runs `body` in a child process with a private mount namespace whose /dev/shm is a tmpfs of
// `size` (the host's /dev/shm is untouched; the tmpfs vanishes with the namespace). Returns false
// if this machine does not allow it (not root, no CAP_SYS_ADMIN).
bool CanMountPrivateShm() {
  pid_t pid = ::fork();
  if (pid == 0) {
    bool ok = ::unshare(CLONE_NEWNS) == 0 &&
              ::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0 &&
              ::mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=1m") == 0;
    ::_exit(ok ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

void EnterPrivateShm(const char* size) {
  CHILD_CHECK(::unshare(CLONE_NEWNS) == 0);
  CHILD_CHECK(::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0);
  std::string options = std::string("size=") + size;
  CHILD_CHECK(::mount("tmpfs", "/dev/shm", "tmpfs", 0, options.c_str()) == 0);
}

TEST(ExhaustionTest, FullDevShmIsBucketFullNotSigbus) {
  if (!CanMountPrivateShm()) GTEST_SKIP() << "needs CAP_SYS_ADMIN to mount a private tmpfs";
  ::testing::FLAGS_gtest_death_test_style = "fast";
  EXPECT_EXIT(
      {
        EnterPrivateShm("6m");
        {
          KvdInstance kvd;
          auto client = kvd.NewClient();
          CHILD_CHECK(client != nullptr);
          CHILD_CHECK(client->CreateBucket("filler").ok());
          CHILD_CHECK(client->CreateBucket("bystander").ok());
          Result<Bucket> filler = client->OpenBucket("filler");
          Result<Bucket> bystander = client->OpenBucket("bystander");
          CHILD_CHECK(filler.ok() && bystander.ok());
          CHILD_CHECK(bystander->Put("k", "before").ok());
          std::string value(16 * 1024, 'x');
          Status s;
          int stored = 0;
          while ((s = filler->Put("k" + std::to_string(stored), value)).ok()) ++stored;
          std::cerr << "stored " << stored << " values, then: " << s.ToString() << "\n";
          CHILD_CHECK(s.code() == Code::kBucketFull);
          CHILD_CHECK(stored > 10);
          // Nothing stored is lost; the bystander and the filler still serve reads; deletes work.
          std::string got;
          for (int i = 0; i < stored; ++i)
            CHILD_CHECK(filler->Get("k" + std::to_string(i), &got).ok());
          CHILD_CHECK(bystander->Get("k", &got).ok() && got == "before");
          CHILD_CHECK(filler->Delete("k0").ok());
          CHILD_CHECK(bystander->Put("k", "after").ok());  // within its reserved memory
          CHILD_CHECK(kvd.Stop() == 0);
        }
        ::_exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(ExhaustionTest, MaxBucketsReachedIsAClearError) {
  KvdInstance kvd({"--max-buckets", "2"});
  auto client = kvd.NewClient();
  ASSERT_TRUE(client->CreateBucket("a").ok());
  ASSERT_TRUE(client->CreateBucket("b").ok());
  Status s = client->CreateBucket("c");
  EXPECT_EQ(s.code(), Code::kFailed) << s.ToString();
  EXPECT_NE(s.message().find("maximum number of buckets"), std::string::npos) << s.ToString();
  ASSERT_TRUE(client->CreateBucket("a").ok());  // existing ones still "create"
  Result<Bucket> a = client->OpenBucket("a");
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->Put("k", "v").ok());
  ASSERT_TRUE(client->DropBucket("b").ok());
  EXPECT_TRUE(client->CreateBucket("c").ok());  // room again
}

TEST(ExhaustionTest, ClientOutOfFileDescriptorsGetsErrorsNotCrashes) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "the sanitizer runtime needs file descriptors of its own at a limit of 20";
#endif
  KvdInstance kvd;
  auto admin = kvd.NewClient();
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(admin->CreateBucket("b" + std::to_string(i)).ok());
  ::testing::FLAGS_gtest_death_test_style = "fast";
  std::string ns = kvd.ns();
  EXPECT_EXIT(
      {
        ClientOptions options;
        options.ns = ns;
        auto client = Client::Open(options);
        CHILD_CHECK(client.ok());
        struct rlimit limit;
        ::getrlimit(RLIMIT_NOFILE, &limit);
        limit.rlim_cur = 20;  // a handful beyond stdio and what is open already
        CHILD_CHECK(::setrlimit(RLIMIT_NOFILE, &limit) == 0);
        std::vector<Bucket> open;
        Status failure;
        for (int i = 0; i < 12 && failure.ok(); ++i) {
          Result<Bucket> b = client.value()->OpenBucket("b" + std::to_string(i));
          if (!b.ok()) {
            failure = b.status();
            break;
          }
          failure = b->Put("k", "v");  // each write channel costs a socket
          if (failure.ok()) open.push_back(std::move(b).value());
        }
        std::cerr << "opened " << open.size() << " buckets, then: " << failure.ToString() << "\n";
        CHILD_CHECK(!failure.ok());
        CHILD_CHECK(failure.message().find("open files") != std::string::npos ||
                    failure.message().find("descriptor") != std::string::npos);
        // Everything already open keeps working.
        std::string got;
        for (Bucket& b : open) CHILD_CHECK(b.Get("k", &got).ok() && b.Put("k", "w").ok());
        ::_exit(0);
      },
      ::testing::ExitedWithCode(0), "");
  // The instance is unaffected.
  Result<Bucket> b = admin->OpenBucket("b0");
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->Put("k", "x").ok());
}

}  // namespace
}  // namespace kv
