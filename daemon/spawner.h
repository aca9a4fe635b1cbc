// The worker spawner (a "zygote"): `kvd --spawner`, started once by kvd with Boost.Process, forks
// bucket workers without exec. Forking a small process whose libraries are already loaded and
// relocated costs a fraction of fork+exec+dynamic loading, which otherwise dominates the time to
// create a bucket or to restart a crashed worker.
//
// The spawner keeps one spare forked in advance, by a double fork: the spare's first parent exits
// at once, so the spare is reparented to kvd (a child subreaper), which then reaps its workers and
// learns how they exited exactly as for workers it forked itself. A launch hands the spare its
// worker command line and readiness pipe; the spare returns from RunSpawner with them and main()
// runs it as `kvd --worker ...`. The spawner then forks the next spare.
//
// Protocol on the SOCK_SEQPACKET socket at kSpawnerFd (kvd's end: WorkerLauncher):
//   kvd -> spawner: the worker's arguments, each followed by a NUL, with exactly one descriptor
//                   (SCM_RIGHTS): the write end of the worker's readiness pipe, for its fd 1.
//   spawner -> kvd: "P<pid>" (the worker's pid) or "E<reason>".
// The spawner exits when kvd's end closes (kvd stopped or died); a spare that was never assigned
// exits when the spawner's end of its own socket closes. Neither holds any shared object.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace kv::daemon {

// The spawner's end of its socket to kvd.
inline constexpr int kSpawnerFd = 3;

// Runs the spawner in `kvd --spawner`. REQUIRES: single-threaded process; kSpawnerFd open.
// In the spawner it returns std::nullopt when kvd goes away (the process then exits 0). In an
// assigned spare it returns the worker's arguments (argv without argv[0]); fd 1 is then the
// readiness pipe, every descriptor the spawner held is closed and no signal is blocked.
std::optional<std::vector<std::string>> RunSpawner();

}  // namespace kv::daemon
