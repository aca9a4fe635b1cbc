#include "daemon/persistence/snapshot_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "daemon/crash_point.h"
#include "daemon/persistence/bucket_dir.h"
#include "daemon/persistence/file_util.h"
#include "shm/crc32c.h"

namespace kv::daemon::persistence {
namespace {

constexpr std::size_t kFlushBytes = 1 << 20;

bool IsLiveWord(std::uint64_t word) {
  return word != shm::kSlotEmpty && word != shm::kSlotTombstone;
}

}  // namespace

std::string WriteSnapshotFile(const std::string& dir, SnapshotHeader header,
                              const shm::TableView& table, const std::uint64_t* slots,
                              std::uint64_t slot_count, int* err) {
  *err = 0;
  std::uint64_t count = 0;
  for (std::uint64_t i = 0; i < slot_count; ++i) count += IsLiveWord(slots[i]) ? 1 : 0;
  header.key_count = count;
  std::string tmp = dir + "/" + kSnapshotFileName + ".tmp";
  std::string path = dir + "/" + kSnapshotFileName;
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) {
    *err = errno;
    return FileError("cannot create", tmp, *err);
  }
  auto fail = [&](const char* what, int e) {
    *err = e;
    ::close(fd);
    ::unlink(tmp.c_str());
    return FileError(what, tmp, e);
  };
  std::string buf = EncodeSnapshotHeader(header);
  std::size_t body_from = buf.size();  // the body CRC starts after the header
  std::uint32_t crc = shm::kCrc32cInit;
  std::uint64_t written = 0;
  for (std::uint64_t i = 0; i < slot_count; ++i) {
    if (i == slot_count / 2) CrashPoint("snapshot-half-written");
    std::uint64_t word = slots[i];
    if (!IsLiveWord(word)) continue;
    std::uint32_t k = 0, v = 0;
    const shm::RecordHeader* rec = table.CheckedRecord(word, &k, &v);
    if (rec == nullptr) {
      *err = EIO;
      ::close(fd);
      ::unlink(tmp.c_str());
      return "cannot snapshot " + path + ": the table's record at slot " + std::to_string(i) +
             " is damaged";
    }
    // An expiring key is written with its expiry even if it has passed: the restore then
    // replaces any older value of the key, and the restored worker expires it at once.
    const char* kv = shm::RecordKey(rec);
    AppendSnapshotRecord(&buf, {kv, k}, {kv + k, v}, rec->version, shm::RecordExpiry(rec));
    ++written;
    if (buf.size() >= kFlushBytes) {
      crc = shm::Crc32cExtend(crc, buf.data() + body_from, buf.size() - body_from);
      if (int e = WriteAll(fd, buf.data(), buf.size()); e != 0) return fail("cannot write", e);
      buf.clear();
      body_from = 0;
    }
  }
  crc = shm::Crc32cExtend(crc, buf.data() + body_from, buf.size() - body_from);
  buf += EncodeSnapshotEnd(written, crc);
  if (int e = WriteAll(fd, buf.data(), buf.size()); e != 0) return fail("cannot write", e);
  if (::fsync(fd) != 0) return fail("cannot sync", errno);
  if (::close(fd) != 0) {
    *err = errno;
    ::unlink(tmp.c_str());
    return FileError("cannot close", tmp, *err);
  }
  CrashPoint("snapshot-before-rename");
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    *err = errno;
    ::unlink(tmp.c_str());
    return FileError("cannot rename to", path, *err);
  }
  if (int e = FsyncDir(dir); e != 0) {
    *err = e;
    return FileError("cannot sync directory", dir, e);
  }
  return {};
}

}  // namespace kv::daemon::persistence
