// spdlog setup for kvd and its workers: one stderr logger per process (journald under systemd),
// every line stamped with the pid and the process's role ("kvd", "worker b3").
// Not a file sink: several processes appending to one file is unsupported by spdlog 1.10.
//
// Under systemd (stderr is the journal stream named by $JOURNAL_STREAM) a line is
// "<3>error [pid role] message": the syslog priority prefix journald reads (so `journalctl -p
// err` finds errors), and no timestamp of kvd's own (journald stamps every line). Elsewhere:
// "2026-12-04 15:00:00.123 error [pid role] message".
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace kv::daemon {

// The syslog priority (0 emerg .. 7 debug) of a spdlog level: critical 2, error 3, warn 4,
// info 6, debug and trace 7.
int SyslogPriority(spdlog::level::level_enum level);

// True if stderr is the journal: $JOURNAL_STREAM is "<device>:<inode>" and names the file stderr
// is open on (systemd.exec(5); checked as sd-journal does, since a child that inherits the
// variable may have had its stderr redirected elsewhere).
bool StderrIsJournal();

// "<3>" if stderr is the journal, else "": for the error lines kvd writes to stderr itself
// before logging is set up (a refused configuration), so journald files them as errors too.
const char* StderrErrorPrefix();

// Installs the default logger (journal or plain format: see above). REQUIRES: called once, before
// any thread starts.
void SetUpLogging(const std::string& role, const std::string& level);

// Changes the role stamped on later lines: a forked spare becomes "worker b3" without building a
// logger of its own. REQUIRES: SetUpLogging was called; no other thread logs meanwhile.
void SetLogRole(const std::string& role);

}  // namespace kv::daemon
