#include "shm/batch.h"

#include <cstring>
#include <unordered_set>

#include "shm/layout.h"

namespace kv::shm {

void AppendBatchEntry(std::string* body, Op op, std::string_view key, std::string_view value,
                      std::int64_t arg) {
  BatchEntryHeader h{static_cast<std::uint8_t>(op),
                     0,
                     0,
                     static_cast<std::uint32_t>(key.size()),
                     static_cast<std::uint32_t>(value.size()),
                     0,
                     arg};
  body->append(reinterpret_cast<const char*>(&h), sizeof h);
  body->append(key);
  body->append(value);
}

WireStatus DecodeBatch(std::string_view body, std::uint64_t count, std::vector<BatchOp>* ops,
                       std::size_t* bad_index) {
  ops->clear();
  *bad_index = 0;
  if (count == 0) return WireStatus::kMalformed;
  if (count > kMaxBatchOps) return WireStatus::kTooLarge;
  ops->reserve(count);
  std::size_t at = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    *bad_index = i;
    if (body.size() - at < sizeof(BatchEntryHeader)) return WireStatus::kMalformed;
    BatchEntryHeader h;
    std::memcpy(&h, body.data() + at, sizeof h);
    at += sizeof h;
    auto op = static_cast<Op>(h.op);
    if (op != Op::kPut && op != Op::kDelete && op != Op::kCas) return WireStatus::kMalformed;
    if (h.reserved0 != 0 || h.reserved1 != 0 || h.reserved2 != 0) return WireStatus::kMalformed;
    if (h.key_len == 0) return WireStatus::kMalformed;
    if (h.key_len > kMaxKeySize || h.value_len > kMaxValueSize) return WireStatus::kTooLarge;
    if (op == Op::kDelete && h.value_len != 0) return WireStatus::kMalformed;
    if (op != Op::kCas && h.arg != 0) return WireStatus::kMalformed;
    if (std::uint64_t{h.key_len} + h.value_len > body.size() - at) return WireStatus::kMalformed;
    BatchOp b;
    b.op = op;
    b.key = body.substr(at, h.key_len);
    b.value = body.substr(at + h.key_len, h.value_len);
    b.arg = h.arg;
    at += h.key_len + h.value_len;
    ops->push_back(b);
  }
  if (at != body.size()) {
    *bad_index = count;
    return WireStatus::kMalformed;
  }
  std::unordered_set<std::string_view> keys;
  keys.reserve(ops->size() * 2);
  for (std::size_t i = 0; i < ops->size(); ++i) {
    if (!keys.insert((*ops)[i].key).second) {
      *bad_index = i;
      return WireStatus::kMalformed;  // a key twice in one batch
    }
  }
  *bad_index = 0;
  return WireStatus::kOk;
}

}  // namespace kv::shm
