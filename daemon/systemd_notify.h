// The two pieces of the sd_notify protocol kvd uses, without linking libsystemd: every worker is
// the kvd executable, and libsystemd drags in libgcrypt, liblzma, libzstd, liblz4 and libcap,
// whose loading and relocation each worker would pay at every start (time to restart, PSS).
//
// Protocol (sd_notify(3)): one datagram of "KEY=value\n..." lines to the AF_UNIX socket named by
// $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace). The watchdog is enabled when
// $WATCHDOG_USEC is set and $WATCHDOG_PID is unset or names this process.
#pragma once

#include <cstdint>
#include <string>

namespace kv::daemon {

// True if $NOTIFY_SOCKET is set: notifications are expected.
bool NotifySocketSet();
// Sends `state` to $NOTIFY_SOCKET. False if unset or the send failed (systemd gone): callers
// carry on either way, as with sd_notify.
bool Notify(const std::string& state);
// The watchdog timeout in microseconds, 0 if the watchdog is not enabled for this process.
std::uint64_t WatchdogUsec();

}  // namespace kv::daemon
