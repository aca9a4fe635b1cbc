// Output helpers shared by every command: the error line, human formatting (bytes, durations,
// escaped binary strings) and JSON encoding of byte strings.
//
// Errors always go to stderr as "kvctl: CODE: message" (CODE from kv::CodeName, one upper-case
// word scripts can match). With --json a failing command also prints
// {"ok":false,"error":"CODE","message":"..."} on stdout, so a script reading JSON always gets JSON.
//
// Byte strings (keys, values) in JSON: a string that is valid UTF-8 is emitted as a JSON string;
// any other is emitted base64-encoded and the object gets "<field>_encoding": "base64".
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "kv/status.h"
#include "kvctl/context.h"

namespace kv::ctl {

// Prints the error (see above) and returns kExitFailed.
int Fail(const Context& ctx, const Status& s);
// Prints a JSON document on stdout (one line).
void PrintJson(const nlohmann::json& doc);

// "1.5 KiB", "12.0 MiB", "3 B".
std::string HumanBytes(std::uint64_t bytes);
// "1d2h3m4s", "5s"; "-" for 0.
std::string HumanUptime(std::uint64_t started_unix_ms);
// Seconds since `started_unix_ms` (0 if unknown).
std::uint64_t UptimeSeconds(std::uint64_t started_unix_ms);
std::uint64_t NowUnixMs();
// Printable ASCII is kept; backslash becomes "\\" and every other byte "\xNN".
std::string EscapeBytes(std::string_view bytes);

bool IsValidUtf8(std::string_view s);
std::string Base64Encode(std::string_view bytes);
// Sets obj[field] to `bytes` (and obj[field + "_encoding"] = "base64" if not UTF-8).
void SetBytes(nlohmann::json& obj, const std::string& field, std::string_view bytes);

}  // namespace kv::ctl
