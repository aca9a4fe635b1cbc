// How kvctl prints one change of a bucket (kv::Change, from a subscription): the human line
// `kvctl watch` and the shell's SUBSCRIBE print, and the JSON object of `kvctl watch --json`.
//
//   put (also cas, incr)   <key> SET TO <value>              (the value stored)
//   put, value > 64 KiB    <key> SET (value too large for the change feed)
//   delete                 <key> DELETED
//   clear                  CLEARED
//   fell behind            MISSED <n> CHANGES
//   worker crash restart   RESYNC                             (changes just before may be lost)
//
// Keys and values are escaped as everywhere in kvctl's human output (EscapeBytes: printable ASCII
// as is, "\\" and "\xNN" otherwise), so one change is always one line.
// JSON: {"seq":N,"op":"put"|"delete"|"clear"|"missed"|"resync", "key":..., "value":...,
// "count":n (missed), "value_omitted":true (value too large)}; keys and values as SetBytes.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "kv/client.h"

namespace kv::ctl {

std::string ChangeLine(const Change& change);
nlohmann::json ChangeJson(const Change& change);

}  // namespace kv::ctl
