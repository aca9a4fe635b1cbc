#include "shm/channel.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <new>

namespace kv::shm {
namespace {

bool IsPowerOfTwo(std::uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

std::size_t ChannelSize(std::uint32_t request_capacity, std::uint32_t reply_capacity) {
  return sizeof(ChannelHeader) + std::size_t{request_capacity} + reply_capacity;
}

}  // namespace

Channel::~Channel() { Reset(); }

Channel::Channel(Channel&& other) noexcept { *this = std::move(other); }

Channel& Channel::operator=(Channel&& other) noexcept {
  if (this != &other) {
    Reset();
    fd_ = other.fd_;
    header_ = other.header_;
    size_ = other.size_;
    request_capacity_ = other.request_capacity_;
    reply_capacity_ = other.reply_capacity_;
    channel_id_ = other.channel_id_;
    other.fd_ = -1;
    other.header_ = nullptr;
  }
  return *this;
}

void Channel::Reset() {
  if (header_ != nullptr) ::munmap(header_, size_);
  if (fd_ >= 0) ::close(fd_);
  header_ = nullptr;
  fd_ = -1;
}

Channel Channel::Create(std::uint32_t request_capacity, std::uint32_t reply_capacity,
                        std::string* error) {
  Channel c;
  if (!IsPowerOfTwo(request_capacity) || !IsPowerOfTwo(reply_capacity) || request_capacity < 4096 ||
      reply_capacity < 4096) {
    *error = "channel capacities must be powers of two of at least 4096 bytes";
    return c;
  }
  c.fd_ = ::memfd_create("kv-channel", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  c.size_ = ChannelSize(request_capacity, reply_capacity);
  if (c.fd_ < 0 || ::ftruncate(c.fd_, static_cast<off_t>(c.size_)) != 0 ||
      ::fcntl(c.fd_, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    *error = std::string("cannot create a channel memfd: ") + std::strerror(errno);
    c.Reset();
    return c;
  }
  void* p = ::mmap(nullptr, c.size_, PROT_READ | PROT_WRITE, MAP_SHARED, c.fd_, 0);
  if (p == MAP_FAILED) {
    *error = std::string("cannot map a channel memfd: ") + std::strerror(errno);
    c.Reset();
    return c;
  }
  c.header_ = new (p) ChannelHeader();
  c.header_->magic = kChannelMagic;
  c.header_->format_version = kFormatVersion;
  c.header_->layout_word = kChannelLayout;
  c.header_->request_capacity = request_capacity;
  c.header_->reply_capacity = reply_capacity;
  std::uint64_t id = 0;
  while (id == 0) {
    if (::getrandom(&id, sizeof id, 0) != static_cast<ssize_t>(sizeof id)) id = 0;
  }
  c.header_->channel_id = id;
  c.channel_id_ = id;
  c.request_capacity_ = request_capacity;
  c.reply_capacity_ = reply_capacity;
  return c;
}

Channel Channel::Attach(int fd, std::string* error) {
  Channel c;
  c.fd_ = fd;
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      st.st_size < static_cast<off_t>(sizeof(ChannelHeader)) || st.st_size > (64 << 20)) {
    *error = "channel descriptor is not a memfd of a plausible size";
    c.Reset();
    return c;
  }
  int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0 || (seals & F_SEAL_SHRINK) == 0) {
    *error = "channel memfd is not sealed against shrinking (F_SEAL_SHRINK)";
    c.Reset();
    return c;
  }
  c.size_ = static_cast<std::size_t>(st.st_size);
  void* p = ::mmap(nullptr, c.size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    *error = std::string("cannot map channel: ") + std::strerror(errno);
    c.Reset();
    return c;
  }
  c.header_ = static_cast<ChannelHeader*>(p);
  ChannelHeader copy;
  std::memcpy(static_cast<void*>(&copy), p, offsetof(ChannelHeader, request_tail));
  if (copy.magic != kChannelMagic || copy.format_version != kFormatVersion ||
      copy.layout_word != kChannelLayout || !IsPowerOfTwo(copy.request_capacity) ||
      !IsPowerOfTwo(copy.reply_capacity) || copy.request_capacity < 4096 ||
      copy.reply_capacity < 4096 ||
      ChannelSize(copy.request_capacity, copy.reply_capacity) != c.size_ || copy.channel_id == 0) {
    *error = "channel header is invalid (magic, version, layout, capacities or id)";
    c.Reset();
    return c;
  }
  c.request_capacity_ = copy.request_capacity;
  c.reply_capacity_ = copy.reply_capacity;
  c.channel_id_ = copy.channel_id;
  return c;
}

RingWriter Channel::RequestWriter() const {
  char* base = reinterpret_cast<char*>(header_) + sizeof(ChannelHeader);
  return RingWriter(&header_->request_tail, &header_->request_head, base, request_capacity_);
}

RingReader Channel::RequestReader() const {
  const char* base = reinterpret_cast<const char*>(header_) + sizeof(ChannelHeader);
  return RingReader(&header_->request_tail, &header_->request_head, base, request_capacity_);
}

RingWriter Channel::ReplyWriter() const {
  char* base = reinterpret_cast<char*>(header_) + sizeof(ChannelHeader) + request_capacity_;
  return RingWriter(&header_->reply_tail, &header_->reply_head, base, reply_capacity_);
}

RingReader Channel::ReplyReader() const {
  const char* base =
      reinterpret_cast<const char*>(header_) + sizeof(ChannelHeader) + request_capacity_;
  return RingReader(&header_->reply_tail, &header_->reply_head, base, reply_capacity_);
}

int CreateStagedValue(std::string_view value, std::string* error) {
  int fd = ::memfd_create("kv-value", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) {
    *error = std::string("cannot create a staging memfd: ") + std::strerror(errno);
    return -1;
  }
  std::size_t done = 0;
  while (done < value.size()) {
    ssize_t n = ::write(fd, value.data() + done, value.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = std::string("cannot fill a staging memfd: ") + std::strerror(errno);
      ::close(fd);
      return -1;
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    *error = std::string("cannot seal a staging memfd: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

bool ReadStagedValue(int fd, std::uint32_t size, std::string* out, std::string* error) {
  struct stat st;
  // F_GET_SEALS succeeds only on shmem (memfd, tmpfs) files: reading them never blocks.
  if (::fcntl(fd, F_GET_SEALS) < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    *error = "staged value is not a memfd";
    return false;
  }
  if (st.st_size != static_cast<off_t>(size)) {
    *error = "staged value has " + std::to_string(st.st_size) + " bytes, the request announced " +
             std::to_string(size);
    return false;
  }
  out->resize(size);
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, out->data() + done, size - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // truncated meanwhile (an unsealed memfd) or an I/O error
      *error = "staged value is shorter than announced";
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

void FutexWait(const std::atomic<std::uint32_t>* word, std::uint32_t expected, long timeout_ns) {
  struct timespec ts;
  ts.tv_sec = timeout_ns / 1000000000L;
  ts.tv_nsec = timeout_ns % 1000000000L;
  ::syscall(SYS_futex, reinterpret_cast<const std::uint32_t*>(word), FUTEX_WAIT, expected, &ts,
            nullptr, 0);
}

void FutexWakeAll(const std::atomic<std::uint32_t>* word) {
  ::syscall(SYS_futex, reinterpret_cast<const std::uint32_t*>(word), FUTEX_WAKE, INT32_MAX, nullptr,
            nullptr, 0);
}

}  // namespace kv::shm
