// Small, careful file operations for the data directory: complete writes, durable renames, and
// read-only mappings of whole files. Every failure comes back as an errno and a sentence naming
// the file; nothing here throws or logs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kv::daemon::persistence {

// Writes every byte (retrying short writes and EINTR). Returns 0 or the errno of the failure.
int WriteAll(int fd, const void* data, std::size_t size);
// The same at `offset` (pwrite; the file position is left alone); offset < 0: as WriteAll.
int WriteAllAt(int fd, const void* data, std::size_t size, std::int64_t offset);
// fsync of a directory (makes a rename or a new file in it durable). Returns 0 or errno.
int FsyncDir(const std::string& dir);
// Creates `dir` and its missing parents with `mode`. Returns "" or why not.
std::string MakeDirs(const std::string& dir, unsigned mode);
// Replaces dir/name with `bytes` atomically and durably: dir/name.tmp written and fsync'ed,
// renamed over dir/name, dir fsync'ed. Returns "" or why not (*err: the errno).
std::string WriteFileAtomically(const std::string& dir, const std::string& name,
                                std::string_view bytes, int* err = nullptr);
// True if `path` is on a tmpfs (statfs); false if not or unknown.
bool OnTmpfs(const std::string& path);
// "<what> <path>: <strerror(err)>".
std::string FileError(const char* what, const std::string& path, int err);

// A whole file mapped read-only (empty files map to an empty view). Move-only.
class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  // Returns "" or why not; *missing is set when the file does not exist.
  std::string Open(const std::string& path, bool* missing = nullptr);
  const char* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  const char* data_ = nullptr;
  std::size_t size_ = 0;
  void* map_ = nullptr;
};

}  // namespace kv::daemon::persistence
