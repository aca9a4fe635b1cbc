#include "daemon/persistence/bucket_dir.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <boost/filesystem.hpp>
#include <cstdio>
#include <cstring>

#include "daemon/persistence/byte_codec.h"
#include "daemon/persistence/file_util.h"
#include "shm/names.h"

namespace kv::daemon::persistence {
namespace {

constexpr char kMetaMagic[8] = {'\x89', 'K', 'V', 'M', 'E', 'T', 'A', '\n'};
constexpr char kNextIdMagic[8] = {'\x89', 'K', 'V', 'N', 'X', 'I', 'D', '\n'};
constexpr char kNextIdFileName[] = "next-id";

// Checks magic, version and trailing CRC of a small file; returns its payload offset and size.
std::string CheckSmallFile(const std::string& path, const MappedFile& f, const char* magic,
                           std::size_t min_payload) {
  if (f.size() < 8 + 4 + min_payload + 4 || std::memcmp(f.data(), magic, 8) != 0) {
    return path + " is not a kv " + (magic == kMetaMagic ? "meta" : "next-id") + " file";
  }
  if (LoadLe<std::uint32_t>(f.data() + f.size() - 4) != Crc(f.data(), f.size() - 4)) {
    return path + " is corrupt: checksum mismatch";
  }
  if (std::uint32_t v = LoadLe<std::uint32_t>(f.data() + 8); v != 1) {
    return path + " has format version " + std::to_string(v) + "; this build reads version 1";
  }
  return {};
}

}  // namespace

std::string NamespaceDir(const std::string& data_dir, const std::string& ns) {
  return data_dir + "/" + ns;
}

std::string BucketDir(const std::string& data_dir, const std::string& ns, std::uint64_t id) {
  return NamespaceDir(data_dir, ns) + "/b" + std::to_string(id);
}

std::string LogFileName(std::uint64_t seq) {
  char name[32];
  std::snprintf(name, sizeof name, "log.%020llu", static_cast<unsigned long long>(seq));
  return name;
}

std::string WriteBucketMeta(const std::string& dir, std::uint64_t id, const std::string& name) {
  if (std::string e = MakeDirs(dir, 0750); !e.empty()) return e;
  std::string out(kMetaMagic, 8);
  AppendLe<std::uint32_t>(&out, 1);
  AppendLe<std::uint64_t>(&out, id);
  AppendLe<std::uint16_t>(&out, static_cast<std::uint16_t>(name.size()));
  out += name;
  AppendLe<std::uint32_t>(&out, Crc(out));
  std::string e = WriteFileAtomically(dir, kMetaFileName, out);
  if (e.empty()) {
    // The bucket's directory entry in the namespace directory must be durable too.
    std::string parent = dir.substr(0, dir.rfind('/'));
    if (int err = FsyncDir(parent); err != 0) return FileError("cannot sync", parent, err);
  }
  return e;
}

std::string ReadBucketMeta(const std::string& dir, std::uint64_t* id, std::string* name) {
  std::string path = dir + "/" + kMetaFileName;
  MappedFile f;
  if (std::string e = f.Open(path); !e.empty()) return e;
  if (std::string e = CheckSmallFile(path, f, kMetaMagic, 8 + 2 + 1); !e.empty()) return e;
  *id = LoadLe<std::uint64_t>(f.data() + 12);
  std::size_t len = LoadLe<std::uint16_t>(f.data() + 20);
  if (22 + len + 4 != f.size()) return path + " is corrupt: bad name length";
  name->assign(f.data() + 22, len);
  if (std::string why = shm::ValidateBucketName(*name); !why.empty()) {
    return path + " holds an invalid bucket name: " + why;
  }
  return {};
}

std::string WriteNextId(const std::string& ns_dir, std::uint64_t next) {
  std::uint64_t stored = 0;
  if (ReadNextId(ns_dir, &stored).empty() && stored >= next) return {};
  if (std::string e = MakeDirs(ns_dir, 0750); !e.empty()) return e;
  std::string out(kNextIdMagic, 8);
  AppendLe<std::uint32_t>(&out, 1);
  AppendLe<std::uint64_t>(&out, next);
  AppendLe<std::uint32_t>(&out, Crc(out));
  return WriteFileAtomically(ns_dir, kNextIdFileName, out);
}

std::string ReadNextId(const std::string& ns_dir, std::uint64_t* next) {
  *next = 0;
  std::string path = ns_dir + "/" + kNextIdFileName;
  MappedFile f;
  bool missing = false;
  if (std::string e = f.Open(path, &missing); !e.empty()) return missing ? std::string() : e;
  if (std::string e = CheckSmallFile(path, f, kNextIdMagic, 8); !e.empty()) return e;
  if (f.size() != 24) return path + " is corrupt: bad size";
  *next = LoadLe<std::uint64_t>(f.data() + 12);
  return {};
}

std::string RemoveBucketDir(const std::string& dir) {
  boost::system::error_code ec;
  boost::filesystem::remove_all(dir, ec);
  if (ec) return "cannot remove " + dir + ": " + ec.message();
  return {};
}

std::vector<StoredBucket> ListStoredBuckets(const std::string& ns_dir,
                                            std::vector<std::string>* skipped) {
  std::vector<StoredBucket> out;
  DIR* d = ::opendir(ns_dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.size() < 2 || name[0] != 'b' ||
        name.find_first_not_of("0123456789", 1) != std::string::npos) {
      continue;
    }
    StoredBucket b;
    std::string dir = ns_dir + "/" + name;
    if (std::string why = ReadBucketMeta(dir, &b.id, &b.name); !why.empty()) {
      skipped->push_back(why);
      continue;
    }
    if ("b" + std::to_string(b.id) != name) {
      skipped->push_back(dir + "/meta names bucket id " + std::to_string(b.id));
      continue;
    }
    out.push_back(b);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end(),
            [](const StoredBucket& a, const StoredBucket& b) { return a.id < b.id; });
  return out;
}

std::vector<std::uint64_t> ListLogs(const std::string& dir) {
  std::vector<std::uint64_t> seqs;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return seqs;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.size() != 24 || name.compare(0, 4, "log.") != 0 ||
        name.find_first_not_of("0123456789", 4) != std::string::npos) {
      continue;
    }
    seqs.push_back(std::stoull(name.substr(4)));
  }
  ::closedir(d);
  std::sort(seqs.begin(), seqs.end());
  return seqs;
}

}  // namespace kv::daemon::persistence
