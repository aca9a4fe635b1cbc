// A named POSIX shared-memory object mapped into this process (Boost.Interprocess
// shared_memory_object + mapped_region), with the two things Boost does not do for us:
//   - modes independent of the umask (0640 by default: owner writes, group `kv` reads), and
//   - memory reservation with posix_fallocate, so a full /dev/shm is an error, never a SIGBUS.
//
// Not a managed_shared_memory: see docs/design.md ("Why not managed_shared_memory").
#pragma once

#include <sys/types.h>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cstddef>
#include <string>

namespace kv::shm {

struct ShmError {
  // kNotReady: the object exists but its creator has not finished it (it is still empty, or its
  // header is not published yet): being created, or its creator died doing so.
  enum Kind { kNone, kNotFound, kExists, kPermission, kNoSpace, kCorrupt, kNotReady, kOther };
  Kind kind = kNone;
  std::string message;
  explicit operator bool() const { return kind != kNone; }
};

class Segment {
 public:
  Segment() = default;
  Segment(Segment&&) noexcept = default;
  Segment& operator=(Segment&&) noexcept = default;

  // Creates `name` exclusively (fails with kExists if present), sets its size to `size` and its
  // mode to `mode`, reserves the first `reserve` bytes, and maps it read-write.
  static Segment Create(const std::string& name, std::size_t size, std::size_t reserve, mode_t mode,
                        ShmError* error);
  // Maps an existing object. Read-only mappings are PROT_READ: a write through them faults.
  // kNotFound when it does not exist, kNotReady when it is empty (its creator is sizing it).
  static Segment OpenReadOnly(const std::string& name, ShmError* error);
  static Segment OpenReadWrite(const std::string& name, ShmError* error);
  // Unlinks `name`; existing mappings stay valid. Returns false if it did not exist.
  static bool Remove(const std::string& name);

  // Reserves backing memory for [0, upto) (writer only). kNoSpace when /dev/shm is full.
  ShmError Reserve(std::size_t upto);
  // Reserves backing memory for [offset, offset + length), clipped to the segment (writer only):
  // for objects that are reserved piecewise as their parts are first written. kNoSpace when
  // /dev/shm is full. Does not change reserved().
  ShmError ReserveRange(std::size_t offset, std::size_t length);
  // Bytes from the start known to be reserved (no syscall needed below this).
  std::size_t reserved() const { return reserved_; }

  bool valid() const { return region_.get_address() != nullptr; }
  char* data() const { return static_cast<char*>(region_.get_address()); }
  std::size_t size() const { return region_.get_size(); }
  const std::string& name() const { return name_; }

 private:
  static Segment Open(const std::string& name, bool writable, ShmError* error);

  std::string name_;
  boost::interprocess::shared_memory_object object_;  // kept open by writers for Reserve()
  boost::interprocess::mapped_region region_;
  std::size_t reserved_ = 0;
};

}  // namespace kv::shm
