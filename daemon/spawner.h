// The worker spawner (a "zygote"): `kvd --spawner`, started once by kvd with Boost.Process, forks
// bucket workers without exec. Forking a small process whose libraries are already loaded and
// relocated costs a fraction of fork+exec+dynamic loading, which otherwise dominates the time to
// create a bucket or to restart a crashed worker.
//
// Each spare is forked on kvd's request as a child of kvd, which then reaps its workers and learns
// how they exited exactly as for workers it forked itself: by one fork with CLONE_PARENT
// (daemon/sibling_fork.h), or where the kernel does not allow that, by a double fork whose middle
// process exits at once so that the spare is reparented to kvd (a child subreaper). The spawner
// hands kvd the spare's socket; kvd keeps one spare in hand, and to start a worker sends the spare
// the bucket id and readiness pipe directly (no hop through the spawner on that path), then asks
// for the next spare. The spare returns from RunSpawner with them and main() runs it as
// `kvd --worker`, configured by the spawner's own command line: the spawner is started with the
// flags every worker gets (kvd replaces it when they change), which it parses once, so that a
// spare starts its worker without parsing anything.
//
// Protocol on the SOCK_SEQPACKET socket at kSpawnerFd (kvd's end: WorkerLauncher):
//   kvd -> spawner: "N" (fork a spare).
//   spawner -> kvd: "S<pid>" with the spare's socket attached (SCM_RIGHTS), or "E<reason>".
// On a spare's socket, kvd -> spare: the bucket id in decimal, with exactly one descriptor: the
// write end of the worker's readiness pipe, for its fd 1.
// The spawner exits when kvd's end closes (kvd stopped or died); a spare exits when kvd's end of
// its socket closes before it is assigned. Neither holds any shared object.
#pragma once

#include <cstdint>
#include <optional>

namespace kv::daemon {

// The spawner's end of its socket to kvd.
inline constexpr int kSpawnerFd = 3;

// Runs the spawner in `kvd --spawner`. REQUIRES: single-threaded process; kSpawnerFd open.
// In the spawner it returns std::nullopt when kvd goes away (the process then exits 0). In an
// assigned spare it returns the bucket to serve; fd 1 is then the readiness pipe, every
// descriptor the spawner held is closed and no signal is blocked.
std::optional<std::uint64_t> RunSpawner();

}  // namespace kv::daemon
