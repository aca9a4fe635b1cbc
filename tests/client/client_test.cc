// kv::Client: opening an instance, bucket lifecycle, status, shutdown, and each error.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>

#include "kv/kv.h"
#include "shm/anchor.h"
#include "shm/names.h"
#include "shm/registry.h"
#include "shm/segment.h"
#include "tests/client/client_testing.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::client_testing::Get;
using kv::testing::KvdInstance;

class ClientTest : public ::testing::Test {
 protected:
  KvdInstance kvd_;
};

TEST_F(ClientTest, OpenNamesItsNamespace) {
  ClientOptions options;
  options.ns = kvd_.ns();
  Result<std::shared_ptr<Client>> client = Client::Open(options);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  EXPECT_EQ((*client)->ns(), kvd_.ns());
}

TEST_F(ClientTest, OpenTakesTheNamespaceFromTheEnvironmentWhenEmpty) {
  ::setenv("KV_NAMESPACE", kvd_.ns().c_str(), 1);
  Result<std::shared_ptr<Client>> client = Client::Open({});
  ::unsetenv("KV_NAMESPACE");
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  EXPECT_EQ((*client)->ns(), kvd_.ns());
}

TEST(ClientOpenTest, BadNamespaceIsInvalid) {
  for (const char* ns : {"bad/namespace", "has space", "dot.ted", "../x"}) {
    ClientOptions options;
    options.ns = ns;
    Result<std::shared_ptr<Client>> client = Client::Open(options);
    EXPECT_EQ(client.status().code(), Code::kInvalidArgument) << ns;
  }
  ClientOptions options;
  options.ns = std::string(300, 'n');
  EXPECT_EQ(Client::Open(options).status().code(), Code::kInvalidArgument);
}

TEST_F(ClientTest, NegativeTimeoutIsInvalid) {
  ClientOptions options;
  options.ns = kvd_.ns();
  options.timeout = std::chrono::milliseconds(-1);
  EXPECT_EQ(Client::Open(options).status().code(), Code::kInvalidArgument);
  options.timeout = std::chrono::milliseconds::max();  // clamped, not overflowed into "forever"
  Result<std::shared_ptr<Client>> client = Client::Open(options);
  ASSERT_TRUE(client.ok());
  EXPECT_TRUE((*client)->CreateBucket("b").ok());
  Result<Bucket> b = (*client)->OpenBucket("b");
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->Put("k", "v").ok());
}

TEST(ClientOpenTest, NamespaceWithoutKvdIsUnavailable) {
  ClientOptions options;
  options.ns = kv::testing::UniqueNamespace();
  Result<std::shared_ptr<Client>> client = Client::Open(options);
  EXPECT_EQ(client.status().code(), Code::kUnavailable);
  EXPECT_NE(client.status().message().find(options.ns), std::string::npos)
      << client.status().ToString();
}

// A client opened while kvd is creating its registry (created, not yet sized or not yet
// published) is told kvd is not ready: UNAVAILABLE, what callers retry on, never CORRUPT.
class RegistryBeingCreatedTest : public ::testing::Test {
 protected:
  void TearDown() override { shm::Segment::Remove(shm::RegistryObjectName(ns_)); }
  Status OpenStatus() {
    ClientOptions options;
    options.ns = ns_;
    return Client::Open(options).status();
  }
  std::string ns_ = kv::testing::UniqueNamespace();
};

TEST_F(RegistryBeingCreatedTest, CreatedNotSizedIsUnavailable) {
  int fd =
      ::shm_open(("/" + shm::RegistryObjectName(ns_)).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ::close(fd);
  Status s = OpenStatus();
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("being created"), std::string::npos) << s.ToString();
}

TEST_F(RegistryBeingCreatedTest, SizedNotPublishedIsUnavailableThenOpens) {
  shm::ShmError e;
  std::size_t size = sizeof(shm::RegistryHeader) + 4 * sizeof(shm::RegistryEntry);
  shm::Segment s = shm::Segment::Create(shm::RegistryObjectName(ns_), size, size, 0600, &e);
  ASSERT_TRUE(s.valid()) << e.message;
  Status status = OpenStatus();
  EXPECT_EQ(status.code(), Code::kUnavailable) << status.ToString();
  // kv_client_open says the same through the C ABI.
  kv_client* c = nullptr;
  EXPECT_EQ(kv_client_open(ns_.c_str(), 1000, &c), KV_UNAVAILABLE) << kv_last_error();
  EXPECT_EQ(c, nullptr);

  auto* h = new (s.data()) shm::RegistryHeader();
  h->format_version = shm::kFormatVersion;
  h->layout_word = shm::kRegistryLayout;
  h->capacity = 4;
  h->magic.store(shm::kRegistryMagic, std::memory_order_release);
  status = OpenStatus();
  EXPECT_TRUE(status.ok()) << status.ToString();
}

std::uint64_t BucketId(Client& client, const std::string& name) {
  Result<InstanceStatus> status = client.GetStatus();
  if (status.ok()) {
    for (const BucketInfo& b : status->buckets) {
      if (b.name == name) return b.id;
    }
  }
  return 0;
}

// A bucket whose worker has created its anchor but not yet stored the magic (the last store) is
// starting, not corrupt.
TEST_F(ClientTest, BucketWhoseAnchorIsBeingCreatedIsUnavailable) {
  auto client = kvd_.NewClient();
  ASSERT_TRUE(client->CreateBucket("a").ok());
  std::uint64_t id = BucketId(*client, "a");
  ASSERT_NE(id, 0u);
  shm::ShmError e;
  shm::Segment anchor = shm::Segment::OpenReadWrite(shm::AnchorObjectName(kvd_.ns(), id), &e);
  ASSERT_TRUE(anchor.valid()) << e.message;
  auto* header = reinterpret_cast<shm::AnchorHeader*>(anchor.data());
  std::uint64_t magic = header->magic;
  header->magic = 0;
  Result<Bucket> bucket = client->OpenBucket("a");
  EXPECT_EQ(bucket.status().code(), Code::kUnavailable) << bucket.status().ToString();
  header->magic = magic;
  bucket = client->OpenBucket("a");
  ASSERT_TRUE(bucket.ok()) << bucket.status().ToString();
  EXPECT_TRUE(bucket->Put("k", "v").ok());
}

bool Exited(pid_t pid) {  // gone, or a zombie its (stopped) parent has not reaped
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string pid_field, comm, state;
  return !(stat >> pid_field >> comm >> state) || state == "Z";
}

// A worker killed before it could size its new anchor leaves an empty object: the next worker
// replaces it, as kvd replaces an empty registry.
TEST_F(ClientTest, WorkerReplacesAnEmptyAnchorItsPredecessorLeft) {
  auto client = kvd_.NewClient();
  ASSERT_TRUE(client->CreateBucket("e").ok());
  std::uint64_t id = BucketId(*client, "e");
  pid_t worker = kvd_.WorkerPid("e");
  ASSERT_GT(worker, 0);
  kvd_.Signal(SIGSTOP);  // no restart until the anchor is emptied
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  bool exited = kv::testing::WaitFor([&] { return Exited(worker); }, std::chrono::seconds(30));
  int fd = ::shm_open(("/" + shm::AnchorObjectName(kvd_.ns(), id)).c_str(), O_RDWR, 0);
  bool emptied = fd >= 0 && ::ftruncate(fd, 0) == 0;
  if (fd >= 0) ::close(fd);
  kvd_.Signal(SIGCONT);
  ASSERT_TRUE(exited);
  ASSERT_TRUE(emptied) << std::strerror(errno);
  Result<Bucket> bucket = Status(Code::kUnavailable, "not yet");
  bool opened = kv::testing::WaitFor(
      [&] {
        bucket = client->OpenBucket("e");
        return bucket.ok();
      },
      std::chrono::seconds(30));
  ASSERT_TRUE(opened) << bucket.status().ToString();
  EXPECT_TRUE(bucket->Put("k", "v").ok());
  EXPECT_EQ(Get(*bucket, "k"), "v");
}

TEST_F(ClientTest, CreateBucketIsIdempotentAndValidatesNames) {
  auto client = kvd_.NewClient();
  ASSERT_TRUE(client->CreateBucket("shopping").ok());
  Result<Bucket> b = client->OpenBucket("shopping");
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(b->Put("milk", "1").ok());
  ASSERT_TRUE(client->CreateBucket("shopping").ok());
  EXPECT_EQ(Get(*b, "milk"), "1");  // re-creating changes nothing
  for (std::string bad : {std::string(), std::string("two words"), std::string("tab\t"),
                          std::string(kMaxBucketNameSize + 1, 'x'), std::string("nul\0", 4)}) {
    EXPECT_EQ(client->CreateBucket(bad).code(), Code::kInvalidArgument) << bad;
    EXPECT_EQ(client->DropBucket(bad).code(), Code::kInvalidArgument) << bad;
    EXPECT_EQ(client->RestartBucket(bad).code(), Code::kInvalidArgument) << bad;
    EXPECT_EQ(client->OpenBucket(bad).status().code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(client->CreateBucket(std::string(kMaxBucketNameSize, 'x')).ok());
}

TEST_F(ClientTest, MissingBucketIsBucketNotFound) {
  auto client = kvd_.NewClient();
  Result<Bucket> b = client->OpenBucket("nope");
  EXPECT_EQ(b.status().code(), Code::kBucketNotFound);
  EXPECT_NE(b.status().message().find("nope"), std::string::npos) << b.status().ToString();
  EXPECT_EQ(client->DropBucket("nope").code(), Code::kBucketNotFound);
  EXPECT_EQ(client->RestartBucket("nope").code(), Code::kBucketNotFound);
}

TEST_F(ClientTest, DropBucketDeletesItsData) {
  auto client = kvd_.NewClient();
  ASSERT_TRUE(client->CreateBucket("b").ok());
  {
    Result<Bucket> b = client->OpenBucket("b");
    ASSERT_TRUE(b.ok());
    ASSERT_TRUE(b->Put("k", "v").ok());
  }
  ASSERT_TRUE(client->DropBucket("b").ok());
  EXPECT_EQ(client->OpenBucket("b").status().code(), Code::kBucketNotFound);
  ASSERT_TRUE(client->CreateBucket("b").ok());  // a new bucket of the same name starts empty
  Result<Bucket> b = client->OpenBucket("b");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(Get(*b, "k"), "NOT_FOUND");
}

TEST_F(ClientTest, RestartBucketStartsANewWorkerAndKeepsData) {
  auto client = kvd_.NewClient();
  ASSERT_TRUE(client->CreateBucket("b").ok());
  Result<Bucket> b = client->OpenBucket("b");
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(b->Put("k", "v").ok());
  pid_t before = kvd_.WorkerPid("b");
  ASSERT_TRUE(client->RestartBucket("b").ok());
  EXPECT_TRUE(kv::testing::WaitFor(
      [&] {
        pid_t now = kvd_.WorkerPid("b");
        return now != 0 && now != before;
      },
      std::chrono::seconds(10)));
  EXPECT_EQ(Get(*b, "k"), "v");
  EXPECT_TRUE(
      kv::testing::WaitFor([&] { return b->Put("k", "w").ok(); }, std::chrono::seconds(10)));
  EXPECT_EQ(Get(*b, "k"), "w");
}

TEST_F(ClientTest, GetStatusListsKvdAndEveryBucket) {
  auto client = kvd_.NewClient();
  ASSERT_TRUE(client->CreateBucket("a").ok());
  ASSERT_TRUE(client->CreateBucket("b").ok());
  Result<Bucket> a = client->OpenBucket("a");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(a->Put("k1", "v").ok());
  ASSERT_TRUE(a->Put("k2", "v").ok());
  Result<InstanceStatus> status = client->GetStatus();
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_EQ(status->ns, kvd_.ns());
  EXPECT_EQ(status->kvd_pid, kvd_.pid());
  EXPECT_GT(status->kvd_started_unix_ms, 0u);
  ASSERT_EQ(status->buckets.size(), 2u);
  auto it = std::find_if(status->buckets.begin(), status->buckets.end(),
                         [](const BucketInfo& i) { return i.name == "a"; });
  ASSERT_NE(it, status->buckets.end());
  EXPECT_EQ(it->id, a->id());
  EXPECT_EQ(it->state, "running");
  EXPECT_EQ(it->worker_pid, kvd_.WorkerPid("a"));
  EXPECT_EQ(it->keys, 2u);
  EXPECT_GE(it->writes, 2u);
  EXPECT_GT(it->memory_bytes, 0u);
  EXPECT_GE(it->generation, 1u);
  EXPECT_TRUE(it->reason.empty()) << it->reason;
}

TEST_F(ClientTest, ShutdownStopsKvdAndLaterControlIsUnavailable) {
  auto client = kvd_.NewClient();
  ASSERT_TRUE(client->CreateBucket("b").ok());
  Result<Bucket> b = client->OpenBucket("b");
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(b->Put("k", "v").ok());
  ASSERT_TRUE(client->Shutdown().ok());
  EXPECT_TRUE(
      kv::testing::WaitFor([&] { return kv::testing::ProcessesOfNamespace(kvd_.ns()).empty(); },
                           std::chrono::seconds(10)));
  EXPECT_EQ(client->CreateBucket("c").code(), Code::kUnavailable);
  EXPECT_EQ(client->Shutdown().code(), Code::kUnavailable);
  EXPECT_EQ(Get(*b, "k"), "v");  // data is kept, and readable without any kv process
  Result<InstanceStatus> status = client->GetStatus();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->kvd_pid, 0);
}

}  // namespace
}  // namespace kv
