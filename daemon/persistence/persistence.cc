#include "daemon/persistence/persistence.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <spdlog/spdlog.h>

#include "daemon/crash_point.h"
#include "daemon/persistence/bucket_dir.h"
#include "daemon/persistence/file_util.h"
#include "daemon/persistence/log_format.h"
#include "daemon/persistence/restore.h"
#include "daemon/persistence/snapshot_priority.h"
#include "daemon/persistence/snapshot_writer.h"
#include "daemon/pidfd.h"
#include "daemon/process_info.h"

namespace kv::daemon::persistence {
namespace {

// The header of a log just created (OpenLog) made durable, with its directory entry.
int SyncNewLog(int fd, const std::string& dir) {
  if (::fdatasync(fd) != 0) return errno;
  return FsyncDir(dir);
}

void RemoveLogsBelow(const std::string& dir, std::uint64_t seq_limit) {
  for (std::uint64_t seq : ListLogs(dir)) {
    if (seq < seq_limit) ::unlink((dir + "/" + LogFileName(seq)).c_str());
  }
}

// Outside `always` the buffer is written once it holds kWriteBytes, once it is kWriteDelay old
// (as Tick sees it), and before the worker sleeps: not on every pass, where a sync put loop paid a
// write(2) per put (a third of its rate). A record still buffered when the worker dies is in
// shared memory, which stays the truth (a snapshot at the next start brings the disk in step);
// a power cut loses up to a second of writes with everysec anyway.
constexpr std::size_t kWriteBytes = 64 * 1024;
constexpr auto kWriteDelay = std::chrono::milliseconds(1);
constexpr auto kRetryDelay = std::chrono::seconds(1);
constexpr auto kCheckEvery = std::chrono::milliseconds(100);
constexpr std::size_t kErrorPage = 4096;

}  // namespace

// Copies the table's slot array into frozen_ (mapped, or mapped larger, first). False if it
// cannot be mapped.
bool Persistence::FreezeSlots() {
  const shm::TableView& view = store_->table().view();
  std::size_t n = view.slot_count();
  if (n > frozen_capacity_) {
    if (frozen_ != nullptr) ::munmap(frozen_, frozen_capacity_ * sizeof *frozen_);
    frozen_ = nullptr;
    frozen_capacity_ = 0;
    void* p = ::mmap(nullptr, n * sizeof *frozen_, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    frozen_ = static_cast<std::uint64_t*>(p);
    frozen_capacity_ = n;
  }
  for (std::size_t i = 0; i < n; ++i) frozen_[i] = view.SlotWord(i);
  frozen_slots_ = n;
  return true;
}

Persistence::~Persistence() {
  if (child_pid_ != 0) {
    ::kill(child_pid_, SIGKILL);
    ::waitpid(child_pid_, nullptr, 0);
  }
  if (child_pidfd_ >= 0) ::close(child_pidfd_);
  if (syncer_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(sync_mu_);
      sync_stop_ = true;
    }
    sync_cv_.notify_all();
    syncer_.join();
  }
  appender_.Switch(-1, 0, false);
  if (log_fd_ >= 0) ::close(log_fd_);
  if (child_error_ != nullptr) ::munmap(child_error_, kErrorPage);
  if (frozen_ != nullptr) ::munmap(frozen_, frozen_capacity_ * sizeof *frozen_);
}

bool Persistence::Open(const PersistenceOptions& options, const std::string& ns, BucketStore* store,
                       bool fresh, int epoll_fd, std::string* error, bool* refused) {
  *refused = false;
  if (!options.enabled()) {
    store->anchor()->persist_mode.store(0, std::memory_order_relaxed);
    return true;
  }
  options_ = options;
  epoll_fd_ = epoll_fd;
  dir_ = BucketDir(options.data_dir, ns, store->bucket_id());
  std::uint64_t meta_id = 0;
  if (std::string e = ReadBucketMeta(dir_, &meta_id, &name_); !e.empty()) {
    *error = e;
    *refused = true;
    return false;
  }
  if (meta_id != store->bucket_id()) {
    *error = dir_ + "/meta names bucket " + std::to_string(meta_id);
    *refused = true;
    return false;
  }
  void* page =
      ::mmap(nullptr, kErrorPage, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) {
    *error = std::string("cannot map a page: ") + std::strerror(errno);
    return false;
  }
  child_error_ = static_cast<char*>(page);
  // A file size limit (RLIMIT_FSIZE) must fail the write (EFBIG), not kill the worker.
  ::signal(SIGXFSZ, SIG_IGN);
  anchor_ = store->anchor();
  RestoreResult restored;
  if (fresh) {
    auto started = Clock::now();
    if (std::string e = RestoreBucket(dir_, store, &restored); !e.empty()) {
      *error = e;
      *refused = true;
      return false;
    }
    if (!restored.notes.empty()) spdlog::warn("bucket '{}': {}", name_, restored.notes);
    spdlog::info(
        "bucket '{}' restored from {}: {} keys from the snapshot, {} log records ({} ms)", name_,
        dir_, restored.keys, restored.log_records,
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count());
    changes_ = restored.log_records;
    // Compact what was replayed into a fresh snapshot.
    save_requested_ = restored.log_records != 0;
    anchor_->last_save_unix_ms.store(restored.snapshot_unix_ms, std::memory_order_relaxed);
    anchor_->last_save_ok.store(1, std::memory_order_relaxed);
  } else {
    // Shared memory is the truth. The previous worker may have applied writes its log never
    // got (a buffer lost with it): a snapshot brings the disk back in step (with always, before
    // READY: CatchUp below).
    ScanBucketDir(dir_, &restored);
    save_requested_ = true;
  }
  store_ = store;
  log_seq_ = std::max(restored.last_log_seq, restored.next_log_seq - 1);
  log_on_ = options.appendonly;
  always_ = log_on_ && options.appendfsync == AppendFsync::kAlways;
  // Preallocation pays where fdatasync flushes a journal: not on tmpfs (syncs cost nothing there,
  // and the zeros would take memory).
  preallocate_ = always_ && !OnTmpfs(dir_);
  if (!fresh && always_) {
    // In step: the disk holds this very table, as a clean stop leaves it (its snapshot, and no
    // log: a worker that logs keeps a log file from its start to its last snapshot at stop).
    // Every change of the table raises its version counter, so equal counters mean equal states.
    std::uint64_t last =
        store_->table().view().header()->last_version.load(std::memory_order_relaxed);
    CatchUp(restored.last_log_seq == 0 && restored.snapshot_header_ok &&
            restored.snapshot_last_version == last);
  }
  std::uint32_t mode = shm::kPersistSnapshots;
  if (log_on_) {
    mode |= shm::kPersistLog | ((static_cast<std::uint32_t>(options.appendfsync) + 1) << 4);
    std::string e;
    int err = 0;
    int fd = -1;
    std::uint64_t seq = log_seq_ + 1;
    if (OpenLog(seq, /*sync=*/true, &fd, &e, &err)) {
      log_fd_ = fd;
      log_seq_ = seq;
      appender_.Switch(fd, kLogHeaderSize, preallocate_);
    } else {
      Failed(shm::kPersistFailLogWrite, err, e);  // the number stays free: no gap in the chain
    }
    if (options.appendfsync == AppendFsync::kEverysec)
      syncer_ = std::thread([this] { SyncLoop(); });
  }
  anchor_->persist_mode.store(mode, std::memory_order_relaxed);
  last_good_save_ = Clock::now();
  Publish();
  return true;
}

bool Persistence::OpenLog(std::uint64_t seq, bool sync, int* fd_out, std::string* error, int* err) {
  std::string path = dir_ + "/" + LogFileName(seq);
  // No O_APPEND: records are written at the end by offset (LogAppender), inside preallocated
  // zeros.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) {
    *err = errno;
    *error = FileError("cannot create log", path, *err);
    return false;
  }
  std::string header = EncodeLogHeader(store_ != nullptr ? store_->bucket_id() : 0, seq);
  int e = WriteAll(fd, header.data(), header.size());
  if (e == 0 && sync) e = SyncNewLog(fd, dir_);
  if (e != 0) {
    ::close(fd);
    ::unlink(path.c_str());
    *err = e;
    *error = FileError("cannot create log", path, e);
    return false;
  }
  *fd_out = fd;
  log_bytes_ += header.size();
  return true;
}

void Persistence::Record(const shm::Request& request, std::int64_t number) {
  auto op = static_cast<shm::Op>(request.header.op);
  if (op == shm::Op::kFlush) return;
  ++changes_;
  if (!log_on_ || log_broken_) return;
  std::uint64_t last =
      store_->table().view().header()->last_version.load(std::memory_order_relaxed);
  // The key's record as the write left it (its value, version and expiry): the writes that
  // keep or change an expiry the request does not carry (cas, incr, expire, persist) are logged
  // as its put.
  auto written = [&](std::string_view key, shm::RecordRef* record) {
    return store_->table().view().FindAny(key, record) == shm::ReadResult::kFound;
  };
  auto log_record = [&] {
    shm::RecordRef record;
    if (written(request.key, &record)) {
      AppendLogRecord(&buffer_, LogOp::kPut, request.key, record.value, record.version,
                      record.expires_unix_ms);
    }
  };
  switch (op) {
    case shm::Op::kPut:
      AppendLogRecord(&buffer_, LogOp::kPut, request.key, request.value,
                      static_cast<std::uint64_t>(number),
                      static_cast<std::uint64_t>(request.header.arg));
      break;
    case shm::Op::kCas:
    case shm::Op::kIncr:
      log_record();
      break;
    case shm::Op::kExpire:
    case shm::Op::kPersist:
      if (number != 0) log_record();  // a persist of a key without expiry changed nothing
      break;
    case shm::Op::kDelete:
      AppendLogRecord(&buffer_, LogOp::kDelete, request.key, {}, last);
      break;
    case shm::Op::kClear:
      AppendLogRecord(&buffer_, LogOp::kClear, {}, {}, last);
      break;
    case shm::Op::kBatch: {
      // One framed record: a torn tail or a crash drops the whole batch, never a part of it.
      const std::vector<shm::BatchOp>& ops = store_->batch();
      std::uint64_t version = static_cast<std::uint64_t>(number) - ops.size();
      std::string inner;
      for (const shm::BatchOp& op : ops) {
        ++version;
        if (op.op == shm::Op::kDelete) {
          AppendLogRecord(&inner, LogOp::kDelete, op.key, {}, version);
        } else {
          shm::RecordRef record;  // a cas keeps the key's expiry; a put has none
          bool kept = op.op == shm::Op::kCas && written(op.key, &record);
          AppendLogRecord(&inner, LogOp::kPut, op.key, op.value, version,
                          kept ? record.expires_unix_ms : 0);
        }
      }
      AppendLogBatch(&buffer_, inner, static_cast<std::uint64_t>(number));
      break;
    }
    case shm::Op::kFlush:
      break;
  }
}

void Persistence::OnExpired(std::string_view key) {
  if (store_ == nullptr) return;
  ++changes_;
  if (!log_on_ || log_broken_) return;
  AppendLogRecord(&buffer_, LogOp::kDelete, key, {},
                  store_->table().view().header()->last_version.load(std::memory_order_relaxed));
}

int Persistence::WriteBuffer() {
  buffered_since_ = {};
  if (buffer_.empty()) return 0;
  if (log_broken_ || log_fd_ < 0) {
    buffer_.clear();
    return EIO;
  }
  int e = appender_.Append(buffer_.data(), buffer_.size());
  if (e != 0) {
    buffer_.clear();
    Failed(shm::kPersistFailLogWrite, e,
           FileError("cannot append to log", dir_ + "/" + LogFileName(log_seq_), e));
    return e;
  }
  log_bytes_ += buffer_.size();
  written_.fetch_add(buffer_.size(), std::memory_order_release);
  if (buffer_.capacity() > 4 * kWriteBytes) {
    std::string().swap(buffer_);
  } else {
    buffer_.clear();
  }
  return 0;
}

bool Persistence::CommitSlow() {
  if (!always_) {
    if (buffer_.size() >= kWriteBytes) WriteBuffer();
    return true;
  }
  if (WriteBuffer() != 0) return false;
  CrashPoint("log-appended");
  auto started = Clock::now();
  int synced = ::fdatasync(log_fd_);
  sync_time_ += Clock::now() - started;
  if (synced != 0) {
    int e = errno;
    Failed(shm::kPersistFailLogSync, e,
           FileError("cannot sync log", dir_ + "/" + LogFileName(log_seq_), e));
    return false;
  }
  CrashPoint("log-synced");
  return true;
}

// appendfsync always promises that an acknowledged write is on disk, and a worker starting on
// existing shared memory may acknowledge writes it did not apply: a client whose write the
// previous worker applied (and recorded in the exactly-once log) before it was killed adopts its
// channel, and the request still in the ring is answered from the exactly-once log. The previous
// worker may have died before that write's log record was written or synced, so the table is
// made durable here, before READY and before any answer. Opening the new log comes after it: the
// snapshot names that log as the first to follow it, and covers every older one.
void Persistence::CatchUp(bool in_step) {
  if (in_step) {
    save_requested_ = false;  // nothing to bring back in step
    return;
  }
  auto started = Clock::now();
  std::uint64_t next_seq = log_seq_ + 1;
  int err = 0;
  std::string e = SnapshotInPlace(next_seq, &err);
  anchor_->saves.fetch_add(1, std::memory_order_release);
  if (!e.empty()) {
    // Writes are refused and every reply a commit would publish as durable becomes PERSISTENCE
    // (Commit fails) until a snapshot succeeds (retried every second, as any failed save).
    undurable_ = true;
    refusing_ = true;
    Failed(shm::kPersistFailSnapshot, err != 0 ? err : EIO, "catch-up snapshot failed: " + e);
    return;
  }
  SaveSucceeded(next_seq);
  save_requested_ = false;
  spdlog::info(
      "bucket '{}': shared memory made durable before serving (snapshot, {} ms)", name_,
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count());
}

std::string Persistence::SnapshotInPlace(std::uint64_t next_log_seq, int* err) {
  *err = 0;
  if (!FreezeSlots()) {
    *err = errno;
    return std::string("cannot map the frozen slot array: ") + std::strerror(*err);
  }
  const shm::TableView& view = store_->table().view();
  std::string e =
      WriteSnapshotFile(dir_, HeaderNow(next_log_seq), view, frozen_, frozen_slots_, err);
  if (e.empty()) {  // what it covers, for SaveSucceeded (as a child's snapshot, StartSnapshot)
    child_changes_ = changes_;
    child_log_bytes_ = log_bytes_;
  }
  return e;
}

SnapshotHeader Persistence::HeaderNow(std::uint64_t next_log_seq) const {
  SnapshotHeader header;
  header.bucket_id = store_->bucket_id();
  header.created_unix_ms = UnixMillisNow();
  header.last_version =
      store_->table().view().header()->last_version.load(std::memory_order_relaxed);
  header.next_log_seq = next_log_seq;
  header.name = name_;
  return header;
}

void Persistence::Failed(std::uint32_t what, int err, const std::string& message) {
  if (what == shm::kPersistFailSnapshot) {
    save_failing_ = true;
    retry_at_ = Clock::now() + kRetryDelay;
    if (options_.stop_writes_on_save_error) refusing_ = true;
    anchor_->last_save_ok.store(0, std::memory_order_relaxed);
  } else {
    log_broken_ = true;  // nothing more goes to this file: the next snapshot starts a new one
    if (always_) refusing_ = true;
    save_requested_ = true;
  }
  spdlog::error("bucket '{}': {}{}", name_, message,
                refusing_ ? "; writes are refused until a snapshot succeeds" : "");
  anchor_->persist_error.store(static_cast<std::uint32_t>(err), std::memory_order_relaxed);
  anchor_->persist_error_what.store(what, std::memory_order_relaxed);
  Publish();
}

void Persistence::StartSnapshot() {
  save_requested_ = false;
  if (child_pid_ != 0) {
    save_requested_ = true;  // once the running one is done
    return;
  }
  // The old log gets every record before the rotation; the snapshot covers all of it.
  if (log_on_) WriteBuffer();
  std::uint64_t next_seq = log_seq_ + 1;
  std::uint64_t covered_bytes = log_bytes_;
  int old_fd = -1;
  // Outside `always` the rotation's syncs (the old log's last records, the new log's header and
  // directory entry) are the child's first work: on the worker's thread a directory fsync waits
  // for a journal commit, which waits for the log's dirty pages (tens of ms of stalled writes).
  // With `always` the new log must be durable before a commit into it acknowledges anything.
  bool rotation_synced = always_;
  if (log_on_) {
    std::string e;
    int err = 0;
    int fd = -1;
    if (!OpenLog(next_seq, rotation_synced, &fd, &e, &err)) {
      anchor_->saves.fetch_add(1, std::memory_order_release);
      Failed(shm::kPersistFailSnapshot, err, "snapshot not started: " + e);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(sync_mu_);
      old_fd = log_fd_;
      log_fd_ = fd;
      ++log_generation_;
      appender_.Switch(fd, kLogHeaderSize, preallocate_);
      written_.store(0, std::memory_order_relaxed);
      synced_ = 0;
    }
    log_broken_ = false;
    CrashPoint("snapshot-log-rotated");
  }
  log_seq_ = next_seq;
  const shm::TableView& view = store_->table().view();
  // Without a child, the rotation is synced here: the old log's records are the only copy.
  auto sync_rotation_here = [&] {
    if (old_fd < 0) return;
    ::fdatasync(old_fd);
    ::close(old_fd);
    if (!rotation_synced) SyncNewLog(log_fd_, dir_);
  };
  if (!FreezeSlots()) {
    int e = errno;
    sync_rotation_here();
    anchor_->saves.fetch_add(1, std::memory_order_release);
    Failed(shm::kPersistFailSnapshot, e,
           std::string("cannot map the frozen slot array: ") + std::strerror(e));
    return;
  }
  SnapshotHeader header = HeaderNow(next_seq);
  std::memset(child_error_, 0, kErrorPage);
  pid_t parent = ::getpid();
  int new_log_fd = rotation_synced ? -1 : log_fd_;
  pid_t pid = ::fork();
  if (pid == 0) {
    // The child: no ring, socket, futex or lock of the worker; only the files.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    // Background work: the worker and its clients come first (snapshot_priority.h).
    LowerSnapshotWriterPriority();
    int err = 0;
    std::string e;
    if (old_fd >= 0 && ::fdatasync(old_fd) != 0) {
      err = errno;
      e = FileError("cannot sync log", dir_ + "/" + LogFileName(next_seq - 1), err);
    }
    if (e.empty() && new_log_fd >= 0 && (err = SyncNewLog(new_log_fd, dir_)) != 0) {
      e = FileError("cannot sync log", dir_ + "/" + LogFileName(next_seq), err);
    }
    if (e.empty()) e = WriteSnapshotFile(dir_, header, view, frozen_, frozen_slots_, &err);
    if (e.empty()) {
      // The logs it covers go here too: unlinking a large file takes tens of ms. A failure
      // leaves them to the worker (SaveSucceeded); a restore ignores them anyway.
      RemoveLogsBelow(dir_, next_seq);
      ::_exit(0);
    }
    std::memcpy(child_error_, &err, sizeof err);
    std::snprintf(child_error_ + 8, kErrorPage - 8, "%s", e.c_str());
    ::_exit(1);
  }
  int fork_errno = errno;
  if (pid < 0) {
    sync_rotation_here();
    anchor_->saves.fetch_add(1, std::memory_order_release);
    Failed(shm::kPersistFailSnapshot, fork_errno,
           std::string("cannot fork the snapshot writer: ") + std::strerror(fork_errno));
    return;
  }
  if (old_fd >= 0) ::close(old_fd);
  child_pid_ = pid;
  child_next_seq_ = next_seq;
  child_changes_ = changes_;
  child_log_bytes_ = covered_bytes;
  child_pidfd_ = PidfdOpen(pid);
  if (child_pidfd_ >= 0 && epoll_fd_ >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = child_pidfd_;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, child_pidfd_, &ev);
  }
  spdlog::debug("bucket '{}': snapshot started (child {})", name_, pid);
}

void Persistence::ReapChild(bool wait) {
  if (child_pid_ == 0) return;
  int status = 0;
  pid_t r = ::waitpid(child_pid_, &status, wait ? 0 : WNOHANG);
  if (r == 0 || (r < 0 && errno == EINTR)) return;
  if (child_pidfd_ >= 0) {
    if (epoll_fd_ >= 0) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, child_pidfd_, nullptr);
    ::close(child_pidfd_);
    child_pidfd_ = -1;
  }
  child_pid_ = 0;
  bool ok = r > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (ok) {
    CrashPoint("snapshot-installed");
    SaveSucceeded(child_next_seq_);
  } else {
    int err = 0;
    std::memcpy(&err, child_error_, sizeof err);
    std::string why = child_error_[8] != 0 ? std::string(child_error_ + 8)
                      : r > 0 && WIFSIGNALED(status)
                          ? std::string("the snapshot writer was killed by signal ") +
                                ::strsignal(WTERMSIG(status))
                          : std::string("the snapshot writer failed");
    Failed(shm::kPersistFailSnapshot, err != 0 ? err : EIO, "snapshot failed: " + why);
  }
  anchor_->saves.fetch_add(1, std::memory_order_release);
}

void Persistence::SaveSucceeded(std::uint64_t covered_below) {
  RemoveLogsBelow(dir_, covered_below);
  changes_ -= std::min(changes_, child_changes_);
  log_bytes_ -= std::min(log_bytes_, child_log_bytes_);
  last_good_save_ = Clock::now();
  if (save_failing_ || refusing_) spdlog::info("bucket '{}': snapshot saved again", name_);
  save_failing_ = false;
  undurable_ = false;  // the snapshot holds the table as it was when it was frozen
  if (!log_broken_) {
    refusing_ = false;
    anchor_->persist_error.store(0, std::memory_order_relaxed);
    anchor_->persist_error_what.store(shm::kPersistFailNone, std::memory_order_relaxed);
  }
  anchor_->last_save_unix_ms.store(UnixMillisNow(), std::memory_order_relaxed);
  anchor_->last_save_ok.store(1, std::memory_order_relaxed);
  Publish();
}

void Persistence::Tick(Clock::time_point now) {
  if (store_ == nullptr) return;
  if (!buffer_.empty() && !always_) {
    if (buffered_since_ == Clock::time_point{}) buffered_since_ = now;
    if (now - buffered_since_ >= kWriteDelay) WriteBuffer();
  }
  if (now < next_check_) return;
  next_check_ = now + kCheckEvery;
  if (int e = sync_error_.exchange(0); e != 0) {
    Failed(shm::kPersistFailLogSync, e,
           FileError("cannot sync log", dir_ + "/" + LogFileName(log_seq_), e));
  }
  ReapChild(false);
  if (child_pid_ == 0) {
    bool due = save_requested_;
    if (save_failing_) {
      due = due || now >= retry_at_;
    } else {
      for (const SaveRule& rule : options_.save_rules) {
        due = due || (changes_ >= rule.changes &&
                      now - last_good_save_ >= std::chrono::seconds(rule.seconds));
      }
    }
    if (due) StartSnapshot();
  }
  Publish();
}

void Persistence::Publish() {
  anchor_->log_bytes.store(log_bytes_, std::memory_order_relaxed);
  anchor_->changes_since_save.store(changes_, std::memory_order_relaxed);
  anchor_->writes_refused.store(refusing_ ? 1 : 0, std::memory_order_relaxed);
}

void Persistence::SyncLoop() {
  std::unique_lock<std::mutex> lock(sync_mu_);
  while (!sync_stop_) {
    sync_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return sync_stop_; });
    if (sync_stop_) break;
    std::uint64_t w = written_.load(std::memory_order_acquire);
    if (w == synced_ || log_fd_ < 0) continue;
    // The fdatasync runs without the lock: a second's dirty pages can take 100+ ms to sync, and
    // the worker's thread takes the lock to rotate the log at a snapshot (it waited that long).
    // The duplicate keeps the file open if the worker closes it meanwhile; after a rotation the
    // result is moot (the snapshot child syncs the rotated log).
    int fd = ::fcntl(log_fd_, F_DUPFD_CLOEXEC, 0);
    std::uint64_t generation = log_generation_;
    lock.unlock();
    int err = fd < 0 ? errno : ::fdatasync(fd) != 0 ? errno : 0;
    if (fd >= 0) ::close(fd);
    lock.lock();
    if (generation != log_generation_) continue;
    if (err != 0) {
      sync_error_.store(err);
    } else {
      synced_ = w;
    }
  }
}

void Persistence::Stop(bool dropped) {
  if (store_ == nullptr) return;
  if (child_pid_ != 0) {
    ::kill(child_pid_, SIGKILL);
    ::waitpid(child_pid_, nullptr, 0);
    child_pid_ = 0;
    if (child_pidfd_ >= 0) ::close(child_pidfd_);
    child_pidfd_ = -1;
  }
  if (syncer_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(sync_mu_);
      sync_stop_ = true;
    }
    sync_cv_.notify_all();
    syncer_.join();
  }
  if (dropped) return;  // kvd removes the bucket's directory
  if (log_on_) WriteBuffer();
  if (log_fd_ >= 0 && ::fdatasync(log_fd_) != 0) {
    spdlog::error("bucket '{}': cannot sync log {}: {}", name_, LogFileName(log_seq_),
                  std::strerror(errno));
  }
  // A last snapshot, written here: nothing changes the table any more.
  int err = 0;
  std::string e = SnapshotInPlace(log_seq_ + 1, &err);
  if (!e.empty()) {
    spdlog::error("bucket '{}': snapshot at stop failed: {} (the log keeps every write)", name_, e);
    anchor_->saves.fetch_add(1, std::memory_order_release);
    return;
  }
  appender_.Switch(-1, 0, false);
  if (log_fd_ >= 0) ::close(log_fd_);
  log_fd_ = -1;
  SaveSucceeded(log_seq_ + 1);
  anchor_->saves.fetch_add(1, std::memory_order_release);
  spdlog::info("bucket '{}': snapshot saved at stop", name_);
}

}  // namespace kv::daemon::persistence
