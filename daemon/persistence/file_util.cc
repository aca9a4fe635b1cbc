#include "daemon/persistence/file_util.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace kv::daemon::persistence {

int WriteAll(int fd, const void* data, std::size_t size) { return WriteAllAt(fd, data, size, -1); }

int WriteAllAt(int fd, const void* data, std::size_t size, std::int64_t offset) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = offset < 0 ? ::write(fd, p, size) : ::pwrite(fd, p, size, offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    p += n;
    size -= static_cast<std::size_t>(n);
    if (offset >= 0) offset += n;
  }
  return 0;
}

int FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  int err = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return err;
}

bool OnTmpfs(const std::string& path) {
  struct statfs fs {};
  return ::statfs(path.c_str(), &fs) == 0 && fs.f_type == TMPFS_MAGIC;
}

std::string FileError(const char* what, const std::string& path, int err) {
  return std::string(what) + " " + path + ": " + std::strerror(err);
}

std::string MakeDirs(const std::string& dir, unsigned mode) {
  std::string path;
  std::size_t at = 0;
  while (at != std::string::npos) {
    at = dir.find('/', at + 1);
    path = dir.substr(0, at);
    if (path.empty()) continue;
    if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) {
      return FileError("cannot create directory", path, errno);
    }
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return "data directory " + dir + " is not a directory";
  }
  return {};
}

std::string WriteFileAtomically(const std::string& dir, const std::string& name,
                                std::string_view bytes, int* err) {
  std::string tmp = dir + "/" + name + ".tmp";
  std::string path = dir + "/" + name;
  int e = 0;
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) {
    e = errno;
    if (err != nullptr) *err = e;
    return FileError("cannot create", tmp, e);
  }
  e = WriteAll(fd, bytes.data(), bytes.size());
  if (e == 0 && ::fsync(fd) != 0) e = errno;
  ::close(fd);
  if (e == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) e = errno;
  if (e == 0) e = FsyncDir(dir);
  if (e != 0) {
    ::unlink(tmp.c_str());
    if (err != nullptr) *err = e;
    return FileError("cannot write", path, e);
  }
  return {};
}

MappedFile::~MappedFile() {
  if (map_ != nullptr) ::munmap(map_, size_);
}

MappedFile::MappedFile(MappedFile&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      map_(std::exchange(o.map_, nullptr)) {}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    if (map_ != nullptr) ::munmap(map_, size_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    map_ = std::exchange(o.map_, nullptr);
  }
  return *this;
}

std::string MappedFile::Open(const std::string& path, bool* missing) {
  if (missing != nullptr) *missing = false;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (missing != nullptr && errno == ENOENT) *missing = true;
    return FileError("cannot open", path, errno);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return FileError("cannot stat", path, e);
  }
  size_ = static_cast<std::size_t>(st.st_size);
  if (size_ == 0) {
    ::close(fd);
    data_ = "";
    return {};
  }
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  int e = errno;
  ::close(fd);
  if (p == MAP_FAILED) {
    size_ = 0;
    return FileError("cannot map", path, e);
  }
  map_ = p;
  data_ = static_cast<const char*>(p);
  return {};
}

}  // namespace kv::daemon::persistence
