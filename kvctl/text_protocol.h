// The KV text protocol of the Elixir guide's KVServer, spoken by `kvctl shell`:
//   CREATE <bucket>              -> OK
//   PUT <bucket> <key> <value>   -> OK
//   GET <bucket> <key>           -> <value> then OK (an empty line then OK when the key is missing)
//   DELETE <bucket> <key>        -> OK
//   SUBSCRIBE <bucket>           -> no reply; then one line per change of the bucket
//                                   (kvctl/change_format.h: "milk SET TO 3", "milk DELETED")
// Expiry, with Redis's words and answers (an integer line, then OK):
//   PUT <bucket> <key> <value> EX <seconds> | PX <milliseconds>   -> OK
//   EXPIRE <bucket> <key> <seconds>, PEXPIRE ... <milliseconds>   -> 1 (set) or 0 (no such key)
//   TTL <bucket> <key>, PTTL ...   -> seconds (rounded up) / milliseconds left; -1: no expiry;
//                                     -2: no such key
//   PERSIST <bucket> <key>         -> 1 (expiry removed) or 0 (none, or no such key)
// A TTL that is not a positive decimal integer, or longer than kv::kMaxTtl, answers
// "ERROR INVALID: ..." (Redis deletes the key on EXPIRE with a TTL <= 0; kv refuses it).
//   MULTI                        -> OK; then PUT and DELETE lines answer QUEUED (all on one
//                                   bucket) until
//   EXEC                         -> OK once the queued writes are applied all-or-nothing as one
//                                   batch (kv::WriteBatch), else ERROR <CODE>: ... and none is
//   DISCARD                      -> OK; forgets the queued writes
// Inside MULTI, any other command (SUBSCRIBE included) answers "ERROR INVALID: ..." and is not
// queued (the block stays open); a key twice, or a write to a second bucket, too.
// A command on a bucket that does not exist answers NOT FOUND; anything unparsable answers
// UNKNOWN COMMAND. Tokens are separated by whitespace, as in Elixir's String.split/1.
// Other failures (kvd down, timeouts) answer "ERROR <CODE>: <message>".
// SUBSCRIBE is not run here: it takes over the session (kvctl/session.cc), so RunTextCommand
// answers UNKNOWN COMMAND for it and the session recognises it with SubscribeTarget first,
// outside a MULTI block only.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kv/client.h"

namespace kv::ctl {

// Executes one protocol line (without its line terminator) against `client` and returns the
// reply lines, without terminators. Stateless: MULTI answers ERROR (use TextProtocol).
std::vector<std::string> RunTextCommand(Client& client, std::string_view line);

// One session's protocol state: a MULTI block being queued. Thread-compatible.
class TextProtocol {
 public:
  // As RunTextCommand, with MULTI/EXEC/DISCARD.
  std::vector<std::string> Run(Client& client, std::string_view line);
  // Whether a MULTI block is open: then every line but EXEC, DISCARD and a queueable write is
  // answered ERROR INVALID by Run (a session sends it every line, SUBSCRIBE too).
  bool in_multi() const { return in_multi_; }

 private:
  bool in_multi_ = false;
  std::string bucket_;             // the block's bucket (empty until its first write)
  std::vector<std::string> keys_;  // queued keys (each once)
  WriteBatch batch_;
};

// The bucket of a "SUBSCRIBE <bucket>" line; nullopt for any other line.
std::optional<std::string> SubscribeTarget(std::string_view line);

// The reply to a failed (or successful) command: OK, NOT FOUND or ERROR <CODE>: <message>.
std::vector<std::string> TextAnswer(const Status& s);

}  // namespace kv::ctl
