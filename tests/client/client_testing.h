// Helpers shared by the client tests: reads that return the value or the error word, so
// expectations read like the spec, and the session the guide examples print. (The kvd + open
// bucket fixture is tests/testing/bucket_fixture.h.)
#pragma once

#include <string>
#include <string_view>

#include "kv/client.h"

namespace kv::client_testing {

// What examples/guide.c and examples/guide.cc print: the Elixir guide's bucket session.
inline constexpr char kGuideSession[] =
    "CREATE shopping -> OK\n"
    "PUT shopping milk 1 -> OK\n"
    "GET shopping milk -> 1\n"
    "DELETE shopping milk -> OK (was 1)\n"
    "GET shopping milk -> NOT_FOUND\n";

// The value of `key`, or the error's code word ("NOT_FOUND", "NO_BUCKET", ...).
inline std::string Get(Bucket& b, std::string_view key) {
  std::string value;
  Status s = b.Get(key, &value);
  return s.ok() ? value : CodeName(s.code());
}

}  // namespace kv::client_testing
