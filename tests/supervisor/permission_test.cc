// Permissions: kvd started with --group kvtest (and a umask that would open everything) creates
// every object 0640, group kvtest. A user outside the group gets PERMISSION on every read path
// (registry, anchors, tables) and every write path (control socket, worker socket, kvctl); a user
// in the group works. The users and the group are system accounts created on first use and kept
// (idempotent; several test runs may share them).
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shm/control_message.h"
#include "shm/names.h"
#include "shm/registry.h"
#include "shm/segment.h"
#include "shm/unix_socket.h"
#include "tests/supervisor/supervisor_test_util.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using namespace kv::testing;

constexpr char kGroup[] = "kvtest";
constexpr char kMember[] = "kvtest-in";
constexpr char kOutsider[] = "kvtest-out";

// Sends one packet on a fresh connection to `address` and decodes the reply.
shm::ControlStatus Exchange(const std::string& address, const std::string& packet, int fd,
                            std::string* message) {
  int sock = shm::ConnectSeqpacket(address);
  if (sock < 0) {
    *message = "connect failed";
    return shm::ControlStatus::kFailed;
  }
  shm::SendPacket(sock, packet.data(), packet.size(), fd);
  char buf[shm::kMaxControlPacket];
  int received = -1;
  ssize_t n =
      shm::WaitReadable(sock, 5000) ? shm::ReceivePacket(sock, buf, sizeof buf, &received) : -1;
  ::close(sock);
  if (received >= 0) ::close(received);
  shm::ControlStatus status = shm::ControlStatus::kFailed;
  std::string_view text;
  if (n <= 0 || !shm::DecodeControlReply(buf, static_cast<std::size_t>(n), &status, &text)) {
    *message = "no reply";
    return shm::ControlStatus::kFailed;
  }
  *message = std::string(text);
  return status;
}

TEST(SupervisorPermissionTest, OutsiderIsDeniedEverywhereAndGroupMemberWorks) {
  if (std::string why = EnsureUsers(kGroup, {kMember}, {kOutsider}); !why.empty()) {
    GTEST_SKIP() << "cannot set up test users: " << why;
  }
  gid_t gid = ::getgrnam(kGroup)->gr_gid;
  mode_t old_umask = ::umask(0);  // modes must not depend on it
  std::optional<KvdInstance> kvd;
  kvd.emplace(std::vector<std::string>{"--group", kGroup});
  ::umask(old_umask);
  const std::string ns = kvd->ns();
  auto client = kvd->NewClient();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->CreateBucket("b").ok());
  Result<Bucket> bucket = client->OpenBucket("b");
  ASSERT_TRUE(bucket.ok());
  ASSERT_TRUE(bucket->Put("k", "v").ok());
  std::uint64_t id = Record(ns, "b")->bucket_id;

  std::vector<std::string> objects = ShmObjectsOfNamespace(ns);
  ASSERT_GE(objects.size(), 3u);  // registry, anchor, table
  for (const std::string& name : objects) {
    struct stat st {};
    ASSERT_EQ(::stat(("/dev/shm/" + name).c_str(), &st), 0) << name;
    // The exactly-once log is the worker's alone (channel ids are not for other users).
    bool worker_only = name.size() > 6 && name.compare(name.size() - 6, 6, ".dedup") == 0;
    EXPECT_EQ(st.st_mode & 07777, worker_only ? 0600u : 0640u) << name;
    EXPECT_EQ(st.st_gid, gid) << name;
  }

  std::string outsider = RunAsUser(kOutsider, [&](std::string* report) {
    int failures = 0;
    auto expect = [&](bool ok, const std::string& what) {
      if (!ok) {
        *report += "NOT DENIED: " + what + "\n";
        ++failures;
      }
    };
    ClientOptions options;
    options.ns = ns;
    Result<std::shared_ptr<Client>> c = Client::Open(options);
    expect(!c.ok() && c.status().code() == Code::kPermissionDenied,
           "Client::Open: " + c.status().ToString());
    for (const std::string& name : objects) {
      int fd = ::shm_open(name.c_str(), O_RDONLY, 0);
      expect(fd < 0 && errno == EACCES, "shm_open(" + name + ", O_RDONLY)");
      if (fd >= 0) ::close(fd);
    }
    std::string message;
    for (shm::ControlOp op : {shm::ControlOp::kCreate, shm::ControlOp::kDrop,
                              shm::ControlOp::kRestart, shm::ControlOp::kShutdown}) {
      shm::ControlStatus s =
          Exchange(shm::ControlSocketAddress(ns), shm::EncodeControlRequest(op, "b"), -1, &message);
      expect(s == shm::ControlStatus::kDenied,
             "control op " + std::to_string(static_cast<int>(op)) + ": " + message);
    }
    int memfd = ::memfd_create("kvt-channel", MFD_CLOEXEC);
    shm::ControlStatus s =
        Exchange(shm::BucketSocketAddress(ns, id), "KVREGISTER1", memfd, &message);
    expect(s == shm::ControlStatus::kDenied, "worker registration: " + message);
    ::close(memfd);
    for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
             {"get", "b", "k"}, {"put", "b", "k", "x"}, {"create", "c"}, {"status"}}) {
      args.insert(args.begin(), {KvctlPath(), "--namespace", ns});
      CommandResult r = RunCommand(args);
      expect(r.exit_code != 0 && r.err.find("PERMISSION") != std::string::npos,
             "kvctl " + args[3] + ": exit " + std::to_string(r.exit_code) + " " + r.err);
    }
    return failures;
  });
  EXPECT_EQ(outsider.find("NOT DENIED"), std::string::npos) << outsider;
  EXPECT_NE(outsider.find("exit=0"), std::string::npos) << outsider;

  std::string member = RunAsUser(kMember, [&](std::string* report) {
    ClientOptions options;
    options.ns = ns;
    Result<std::shared_ptr<Client>> c = Client::Open(options);
    if (!c.ok()) return *report = "open: " + c.status().ToString(), 1;
    Result<Bucket> b = c.value()->OpenBucket("b");
    if (!b.ok()) return *report = "open bucket: " + b.status().ToString(), 2;
    if (Get(*b, "k") != "v") return *report = "get: " + Get(*b, "k"), 3;
    if (Status s = b->Put("k2", "from member"); !s.ok()) return *report = "put: " + s.ToString(), 4;
    if (Status s = c.value()->CreateBucket("c"); !s.ok()) {
      return *report = "create: " + s.ToString(), 5;
    }
    CommandResult r = RunCommand({KvctlPath(), "--namespace", ns, "get", "b", "k2"});
    if (r.exit_code != 0 || r.out.rfind("from member", 0) != 0) {
      return *report = "kvctl get: exit " + std::to_string(r.exit_code) + " out '" + r.out +
                       "' err '" + r.err + "'",
             6;
    }
    return 0;
  });
  EXPECT_NE(member.find("exit=0"), std::string::npos) << member;
  EXPECT_EQ(Get(*bucket, "k2"), "from member");
}

}  // namespace
}  // namespace kv
