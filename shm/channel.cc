#include "shm/channel.h"

#include <linux/futex.h>
#include <sys/mman.h>
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
  c.fd_ = ::memfd_create("kv-channel", MFD_CLOEXEC);
  c.size_ = ChannelSize(request_capacity, reply_capacity);
  if (c.fd_ < 0 || ::ftruncate(c.fd_, static_cast<off_t>(c.size_)) != 0) {
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
      ChannelSize(copy.request_capacity, copy.reply_capacity) != c.size_) {
    *error = "channel header is invalid (magic, version, layout or capacities)";
    c.Reset();
    return c;
  }
  c.request_capacity_ = copy.request_capacity;
  c.reply_capacity_ = copy.reply_capacity;
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
