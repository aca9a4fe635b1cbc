#include "shm/unix_socket.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

namespace kv::shm {
namespace {

// A worker that dies with a client's doorbell packet unread leaves ECONNRESET pending on the
// client's socket, reported ahead of the staged reply value the worker sent just before dying.
TEST(UnixSocketTest, PacketsSentBeforeAResetArriveAfterIt) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
  int client = pair[0], worker = pair[1];
  int value_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(value_fd, 0);
  ASSERT_TRUE(SendPacket(worker, "S", 1, value_fd));
  ::close(value_fd);
  ASSERT_TRUE(SendPacket(client, "K", 1));  // never read by the worker
  ::close(worker);

  char byte = 0;
  int fd = -1;
  ASSERT_EQ(ReceivePacket(client, &byte, 1, &fd), 1);
  EXPECT_EQ(byte, 'S');
  EXPECT_GE(fd, 0);
  if (fd >= 0) ::close(fd);
  EXPECT_EQ(ReceivePacket(client, &byte, 1, &fd), 0) << "then the hang-up";
  ::close(client);
}

}  // namespace
}  // namespace kv::shm
