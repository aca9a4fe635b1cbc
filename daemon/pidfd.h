// Process handles (pidfds) and signalling through them.
//
// A pid names a process only until it is reaped; after that the kernel may give it to any new
// process. A pidfd names one process for as long as the descriptor is open: a signal sent
// through it reaches that process or nobody. kvd holds a pidfd for every worker (children and
// adopted workers alike) and signals workers only through it.
#pragma once

#include <sys/types.h>

namespace kv::daemon {

// pidfd_open(2) of `pid` with O_CLOEXEC semantics (pidfds are always close-on-exec). Returns the
// descriptor, or -1 with errno (ESRCH: no such process).
int PidfdOpen(pid_t pid);

// Sends `sig` to a process. Returns 0, or the errno of the failure.
//  - pidfd >= 0: through pidfd_send_signal(2). Only the process `pidfd` was opened for can
//    receive it; once that process has exited and been reaped the call fails with ESRCH and no
//    process is signalled, even if its pid now belongs to another one. `pid` is not used.
//  - pidfd < 0: kill(2) of `pid` (`pid` > 0, else EINVAL). REQUIRES: `pid` cannot have been
//    reused -- it is an unreaped child of the caller (a child's pid is not reused before its
//    parent reaps it), e.g. kvd's spawner.
int SignalProcess(int pidfd, pid_t pid, int sig);

}  // namespace kv::daemon
