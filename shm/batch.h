// The body of a batch request (Op::kBatch, shm/message.h): the operations of one atomic batch,
// back to back. Encoded by the client (kv::WriteBatch), decoded and validated by the worker
// before anything is applied (docs/protocol.md, "Batches").
//
//   entry   op        u8    1 put, 2 delete, 3 cas (shm::Op values)
//           reserved  u8, u16, u32 (after value_len)   0
//           key_len   u32   1..kMaxKeySize
//           value_len u32   put/cas: 0..kMaxValueSize; delete: 0
//           arg       i64   cas: expected version (0: key must be absent); else 0
//           key, value bytes
//
// The request's value is the body (so a large batch travels staged, like a large value) and its
// arg the entry count, 1..kMaxBatchOps. A key may appear once per batch: a second operation on
// the same key is refused (MALFORMED), so that every operation is checked against the state
// before the batch and the outcome never depends on the order within it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "shm/message.h"

namespace kv::shm {

struct BatchEntryHeader {
  std::uint8_t op;
  std::uint8_t reserved0;
  std::uint16_t reserved1;
  std::uint32_t key_len;
  std::uint32_t value_len;
  std::uint32_t reserved2;
  std::int64_t arg;
};
static_assert(sizeof(BatchEntryHeader) == 24);

struct BatchOp {
  Op op = Op::kPut;
  std::string_view key;
  std::string_view value;
  std::int64_t arg = 0;  // cas: expected version
};

// Bytes one entry takes in a body.
inline std::size_t BatchEntrySize(std::size_t key_len, std::size_t value_len) {
  return sizeof(BatchEntryHeader) + key_len + value_len;
}
// Appends one entry to *body.
void AppendBatchEntry(std::string* body, Op op, std::string_view key, std::string_view value,
                      std::int64_t arg);

// Decodes and validates `count` entries filling [body, body+size) exactly. On kOk *ops views
// into the body. Else the status (kMalformed, kTooLarge) and *bad_index the failing entry.
// Never reads outside the body.
WireStatus DecodeBatch(std::string_view body, std::uint64_t count, std::vector<BatchOp>* ops,
                       std::size_t* bad_index);

}  // namespace kv::shm
