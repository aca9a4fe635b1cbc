// The CPU priority of the forked snapshot writer (docs/persistence.md, "Puts during a snapshot").
//
// The writer starts in SCHED_IDLE. A CPU that runs only idle-class work counts as idle when the
// scheduler places a waking task, so the worker and its clients, which wake each other for every
// write, keep finding a CPU. At nice 10 the writer took a CPU from them all the same: a client
// woken while it ran was put behind its own worker, and puts during a snapshot fell to a quarter
// or half of their rate on 2 vCPUs.
//
// Idle-class work may starve while other processes keep every CPU busy, so the writer moves to
// SCHED_OTHER at nice 10 (a tenth of a nice-0 task's share) after kSnapshotIdleSeconds: a snapshot
// may be late on a busy host, but it always finishes. Leaving the idle class needs the right to run
// at nice 10 (RLIMIT_NICE >= 10, as the unit's LimitNICE=-10 gives, or CAP_SYS_NICE). Without
// that right the writer runs at nice 10 from the start.
//
// Contract: called once, by the snapshot child right after the fork, before it writes. It
// installs a SIGALRM handler and arms alarm(2); nothing else in the child may use them.
#pragma once

namespace kv::daemon::persistence {

inline constexpr int kSnapshotNice = 10;
inline constexpr unsigned kSnapshotIdleSeconds = 2;

void LowerSnapshotWriterPriority();

// True if the calling process may go back from SCHED_IDLE to SCHED_OTHER at its current nice
// value: what LowerSnapshotWriterPriority asks, at kSnapshotNice, before it enters the idle
// class. Tried on a thread of its own, so that a refusal leaves the caller where it was.
bool MayLeaveIdleClass();

}  // namespace kv::daemon::persistence
