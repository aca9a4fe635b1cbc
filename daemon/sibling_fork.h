// fork() whose child is the caller's sibling: clone(CLONE_PARENT), so that the child's parent is
// the caller's parent (for the spawner: kvd, which then reaps the worker and sees how it exited).
// It replaces the spawner's double fork, which cost a second fork and the exit of a middle
// process on every worker start -- the larger part of a bucket's creation time on machines
// where forking is slow (daemon/spawner.h).
//
// glibc has no fork with clone flags, and a raw clone() skips what glibc's fork does in the
// child. ForkSibling redoes the part that matters in a single-threaded process: the child's
// thread-control block gets its own thread id (CLONE_CHILD_SETTID at the address glibc gave the
// kernel at start, read back with PR_GET_TID_ADDRESS) and the robust-mutex list is registered
// again (the kernel clears it in a new process), exactly as glibc's _Fork does. What it does not
// do: run pthread_atfork handlers, reset locks held by other threads, bump pthread_once's fork
// generation.
#pragma once

#include <sys/types.h>

namespace kv::daemon {

// In the parent returns the child's pid, in the child 0; -1 with errno on failure, ENOSYS if the
// kernel cannot tell the thread-id address (no CONFIG_CHECKPOINT_RESTORE): fork otherwise.
// REQUIRES: a single-threaded caller that holds no lock and relies on no pthread_atfork handler;
// the caller's parent must reap the child (it gets its SIGCHLD).
pid_t ForkSibling();

}  // namespace kv::daemon
