// The KV text protocol of the Elixir guide's KVServer, spoken by `kvctl shell`:
//   CREATE <bucket>              -> OK
//   PUT <bucket> <key> <value>   -> OK
//   GET <bucket> <key>           -> <value> then OK (an empty line then OK when the key is missing)
//   DELETE <bucket> <key>        -> OK
// A command on a bucket that does not exist answers NOT FOUND; anything unparsable answers
// UNKNOWN COMMAND. Tokens are separated by whitespace, as in Elixir's String.split/1.
// Other failures (kvd down, timeouts) answer "ERROR <CODE>: <message>".
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kv/client.h"

namespace kv::ctl {

// Executes one protocol line (without its line terminator) against `client` and returns the
// reply lines, without terminators.
std::vector<std::string> RunTextCommand(Client& client, std::string_view line);

}  // namespace kv::ctl
