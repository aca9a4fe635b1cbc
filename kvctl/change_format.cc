#include "kvctl/change_format.h"

#include "kvctl/output.h"

namespace kv::ctl {

std::string ChangeLine(const Change& change) {
  switch (change.kind) {
    case Change::Kind::kPut:
      if (change.value_omitted) {
        return EscapeBytes(change.key) + " SET (value too large for the change feed)";
      }
      return EscapeBytes(change.key) + " SET TO " + EscapeBytes(change.value);
    case Change::Kind::kDelete:
      return EscapeBytes(change.key) + " DELETED";
    case Change::Kind::kClear:
      return "CLEARED";
    case Change::Kind::kMissed:
      return "MISSED " + std::to_string(change.missed) + " CHANGES";
    case Change::Kind::kResync:
      return "RESYNC";
    case Change::Kind::kExpired:
      return EscapeBytes(change.key) + " EXPIRED";
  }
  return "UNKNOWN CHANGE";
}

nlohmann::json ChangeJson(const Change& change) {
  nlohmann::json j = {{"seq", change.sequence}};
  switch (change.kind) {
    case Change::Kind::kPut:
      j["op"] = "put";
      SetBytes(j, "key", change.key);
      if (change.value_omitted) {
        j["value_omitted"] = true;
      } else {
        SetBytes(j, "value", change.value);
      }
      break;
    case Change::Kind::kDelete:
      j["op"] = "delete";
      SetBytes(j, "key", change.key);
      break;
    case Change::Kind::kClear:
      j["op"] = "clear";
      break;
    case Change::Kind::kMissed:
      j["op"] = "missed";
      j["count"] = change.missed;
      break;
    case Change::Kind::kResync:
      j["op"] = "resync";
      break;
    case Change::Kind::kExpired:
      j["op"] = "expired";
      SetBytes(j, "key", change.key);
      break;
  }
  return j;
}

}  // namespace kv::ctl
