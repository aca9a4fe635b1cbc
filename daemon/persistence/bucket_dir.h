// Where a namespace's buckets live in the data directory, and the two small files kvd keeps:
//
//   <data-dir>/<namespace>/next-id          the lowest bucket id never used (written on drop)
//   <data-dir>/<namespace>/b<id>/meta       the bucket's name and id (written at create)
//   <data-dir>/<namespace>/b<id>/snapshot   the last complete snapshot (snapshot_format.h)
//   <data-dir>/<namespace>/b<id>/log.<seq>  append-only logs (log_format.h), seq in 20 digits
//
// meta and next-id: magic (8 bytes "\x89KVMETA\n" / "\x89KVNXID\n"), version u32 (1), then
// meta: id u64, name_len u16, name; next-id: id u64; and a CRC-32C u32 of every byte before it.
// Both are replaced atomically (file_util.h). kvd writes them; workers only read meta.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kv::daemon::persistence {

std::string NamespaceDir(const std::string& data_dir, const std::string& ns);
std::string BucketDir(const std::string& data_dir, const std::string& ns, std::uint64_t id);
std::string LogFileName(std::uint64_t seq);  // "log.<seq, 20 digits>"
inline constexpr char kSnapshotFileName[] = "snapshot";
inline constexpr char kMetaFileName[] = "meta";

// Creates the bucket's directory and writes its meta file. Returns "" or why not.
std::string WriteBucketMeta(const std::string& dir, std::uint64_t id, const std::string& name);
// Reads a meta file. Returns "" or why not.
std::string ReadBucketMeta(const std::string& dir, std::uint64_t* id, std::string* name);
// Records that ids below `next` are used; never lowers what is stored. Returns "" or why not.
std::string WriteNextId(const std::string& ns_dir, std::uint64_t next);
// The stored next id (0 if there is none). Returns "" or why not (a corrupt file).
std::string ReadNextId(const std::string& ns_dir, std::uint64_t* next);
// Removes a dropped bucket's directory and everything in it.
std::string RemoveBucketDir(const std::string& dir);

struct StoredBucket {
  std::uint64_t id = 0;
  std::string name;
};
// Every bucket directory of the namespace with a valid meta file, by id. Directories without
// one are reported in *skipped (one line each), not returned.
std::vector<StoredBucket> ListStoredBuckets(const std::string& ns_dir,
                                            std::vector<std::string>* skipped);

// The sequence numbers of the log files in `dir`, ascending.
std::vector<std::uint64_t> ListLogs(const std::string& dir);

}  // namespace kv::daemon::persistence
