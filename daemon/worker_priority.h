// The scheduling priority of a bucket worker (docs/design.md, "Waiting"; kvd's `worker-nice`).
//
// A worker serves every client of its bucket, and each of them waits for it: when the CPUs are
// shared, a client that the worker has just woken on the worker's own CPU preempts it (the woken
// task runs first), and every other client then waits for the worker to get its CPU back. A
// worker niced below its clients keeps its CPU through those wake-ups. It never takes CPU time
// nobody asked for: it runs only for requests, and spins only where spins pay (idle_spin.h). But
// load balancing weighs it heavier, and other processes get less CPU: 0 is the default, a lower
// value the operator's choice (docs/operations.md, "Busy hosts and dedicated cores").
#pragma once

namespace kv::daemon {

// Sets the calling thread's nice value (Linux: per thread, inherited by threads and processes it
// creates later), so it must be called before the worker starts any. Lowering it below the
// current value needs CAP_SYS_NICE or an RLIMIT_NICE that allows it (systemd: LimitNICE=); where
// it is not allowed, logs a warning that says so and keeps the current value. Returns whether
// the value was applied.
bool SetWorkerNice(int nice);

}  // namespace kv::daemon
