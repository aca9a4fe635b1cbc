#include "shm/segment.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/interprocess/exceptions.hpp>
#include <cerrno>
#include <cstring>
#include <string>

namespace kv::shm {
namespace bip = boost::interprocess;

namespace {

ShmError FromException(const std::string& name, const bip::interprocess_exception& e) {
  ShmError error;
  switch (e.get_error_code()) {
    case bip::not_found_error:
      error.kind = ShmError::kNotFound;
      break;
    case bip::already_exists_error:
      error.kind = ShmError::kExists;
      break;
    case bip::security_error:
      error.kind = ShmError::kPermission;
      break;
    case bip::out_of_space_error:
      error.kind = ShmError::kNoSpace;
      break;
    default:
      error.kind = ShmError::kOther;
  }
  error.message = "shared memory object '" + name + "': " + e.what();
  return error;
}

// Where glibc's shm_open keeps objects (Boost.Interprocess uses shm_open on Linux).
const std::string kShmDirectory = "/dev/shm/";

ShmError FromErrno(const std::string& name, const char* what, int err) {
  ShmError error;
  error.kind = (err == ENOSPC)                   ? ShmError::kNoSpace
               : (err == EACCES || err == EPERM) ? ShmError::kPermission
                                                 : ShmError::kOther;
  error.message = "shared memory object '" + name + "': " + what + ": " + std::strerror(err);
  return error;
}

}  // namespace

Segment Segment::Create(const std::string& name, std::size_t size, std::size_t reserve, mode_t mode,
                        ShmError* error) {
  // The object is built under a private name and linked into place once its mode and size are
  // final: shm_open applies the umask, and an opener that found the public name before the
  // fchmod below would be refused (kPermission) although the object is meant to be readable.
  // link() fails with EEXIST where rename() would replace: creation stays exclusive.
  static std::atomic<unsigned> counter{0};
  std::string building = name + ".creating." + std::to_string(::getpid()) + "." +
                         std::to_string(counter.fetch_add(1, std::memory_order_relaxed));
  Segment segment;
  try {
    bip::permissions perms(mode);
    segment.object_ =
        bip::shared_memory_object(bip::create_only, building.c_str(), bip::read_write, perms);
    int fd = segment.object_.get_mapping_handle().handle;
    if (::fchmod(fd, mode) != 0) {  // the mode must not depend on the umask
      *error = FromErrno(name, "fchmod", errno);
      Remove(building);
      return {};
    }
    segment.object_.truncate(static_cast<bip::offset_t>(size));
  } catch (const bip::interprocess_exception& e) {
    Remove(building);
    *error = FromException(name, e);
    return {};
  }
  int linked = ::link((kShmDirectory + building).c_str(), (kShmDirectory + name).c_str());
  int link_errno = errno;
  Remove(building);
  if (linked != 0) {
    *error = link_errno == EEXIST ? ShmError{ShmError::kExists,
                                             "shared memory object '" + name + "': already exists"}
                                  : FromErrno(name, "link", link_errno);
    return {};
  }
  segment.name_ = name;
  try {
    segment.region_ = bip::mapped_region(segment.object_, bip::read_write);
  } catch (const bip::interprocess_exception& e) {
    Remove(name);
    *error = FromException(name, e);
    return {};
  }
  if (ShmError e = segment.Reserve(reserve)) {
    Remove(name);
    *error = e;
    return {};
  }
  return segment;
}

Segment Segment::Open(const std::string& name, bool writable, ShmError* error) {
  // A missing object is the common case where a worker starts a new bucket (anchor, feed). Say so
  // without an exception: the first one a freshly forked worker throws costs about 20 page faults
  // (the unwinder's caches), a millisecond on the bucket-create path.
  std::string path = !name.empty() && name[0] == '/' ? name : "/" + name;
  int probe = ::shm_open(path.c_str(), O_RDONLY | O_CLOEXEC, 0);
  if (probe < 0 && errno == ENOENT) {
    *error = {ShmError::kNotFound,
              "shared memory object '" + name + "': No such file or directory"};
    return {};
  }
  if (probe >= 0) ::close(probe);
  Segment segment;
  try {
    bip::mode_t mode = writable ? bip::read_write : bip::read_only;
    segment.object_ = bip::shared_memory_object(bip::open_only, name.c_str(), mode);
    bip::offset_t size = 0;
    if (!segment.object_.get_size(size) || size <= 0) {
      // Create() sizes the object right after creating it: an empty one is still being created.
      *error = {ShmError::kNotReady, "shared memory object '" + name +
                                         "' is empty (being created, or its creator died)"};
      return {};
    }
    segment.region_ = bip::mapped_region(segment.object_, mode);
    segment.name_ = name;
    segment.reserved_ = static_cast<std::size_t>(size);
    if (!writable) segment.object_ = bip::shared_memory_object();  // the mapping outlives the fd
  } catch (const bip::interprocess_exception& e) {
    *error = FromException(name, e);
    return {};
  }
  return segment;
}

Segment Segment::OpenReadOnly(const std::string& name, ShmError* error) {
  return Open(name, false, error);
}

Segment Segment::OpenReadWrite(const std::string& name, ShmError* error) {
  Segment segment = Open(name, true, error);
  segment.reserved_ = 0;  // unknown: Reserve() asks the kernel again
  return segment;
}

bool Segment::Remove(const std::string& name) {
  return bip::shared_memory_object::remove(name.c_str());
}

ShmError Segment::Reserve(std::size_t upto) {
  if (upto > size()) upto = size();
  if (upto <= reserved_) return {};
  if (ShmError e = ReserveRange(reserved_, upto - reserved_)) return e;
  reserved_ = upto;
  return {};
}

ShmError Segment::ReserveRange(std::size_t offset, std::size_t length) {
  if (offset >= size()) return {};
  length = std::min(length, size() - offset);
  if (length == 0) return {};
  int fd = object_.get_mapping_handle().handle;
  int err = ::posix_fallocate(fd, static_cast<off_t>(offset), static_cast<off_t>(length));
  if (err != 0) return FromErrno(name_, "posix_fallocate", err);
  // Map the reserved pages now, in one call, rather than one page fault per page on first write
  // (the writer's hot path). Best effort: without MADV_POPULATE_WRITE (Linux < 5.14) the pages
  // fault in as before.
  std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::size_t from = offset / page * page;
  ::madvise(data() + from, offset + length - from, MADV_POPULATE_WRITE);
  return {};
}

}  // namespace kv::shm
