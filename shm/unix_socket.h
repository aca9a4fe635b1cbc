// Abstract-namespace AF_UNIX SOCK_SEQPACKET sockets: kvd's control socket and each worker's
// registration socket. Chosen because the kernel (not a lock in shared memory) handles a peer's
// death: a dead peer is a hang-up, never a wedge. Binding the address doubles as an instance
// lock (EADDRINUSE while the owner lives) and leaves nothing behind in the filesystem.
//
// Every function returns -1 / false with errno set on failure. All fds are CLOEXEC.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

namespace kv::shm {

int ListenSeqpacket(const std::string& address);  // nonblocking listener
// A connected socket, blocking unless `nonblocking` (then a listener whose backlog is full, e.g.
// a stopped worker's, gives -1 with errno EAGAIN at once instead of blocking).
int ConnectSeqpacket(const std::string& address, bool nonblocking = false);
// Sends one packet, with `fd` attached (SCM_RIGHTS) when fd >= 0. `flags` are added to
// MSG_NOSIGNAL (e.g. MSG_DONTWAIT: false with errno EAGAIN when the peer's queue is full).
bool SendPacket(int sock, const void* data, std::size_t size, int fd = -1, int flags = 0);
// Receives one packet (at most `cap` bytes); *fd receives an attached descriptor or -1.
// Returns bytes received, 0 on hang-up, -1 on error (EAGAIN for nonblocking sockets).
ssize_t ReceivePacket(int sock, void* data, std::size_t cap, int* fd);
// Waits until `sock` is readable or `timeout_ms` passes. Returns true if readable or hung up.
bool WaitReadable(int sock, int timeout_ms);

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};
bool GetPeerCredentials(int sock, PeerCredentials* out);
// True if the peer may use this instance: root, our own uid, or a member (primary or
// supplementary, via SO_PEERGROUPS) of our effective group.
bool PeerMayAccess(int sock);

}  // namespace kv::shm
