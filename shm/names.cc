#include "shm/names.h"

#include <cstdlib>

#include "shm/layout.h"

namespace kv::shm {

std::string ValidateNamespace(std::string_view ns) {
  if (ns.empty()) return "namespace is empty";
  if (ns.size() > kMaxNamespaceSize) {
    return "namespace is " + std::to_string(ns.size()) + " bytes, the limit is " +
           std::to_string(kMaxNamespaceSize);
  }
  for (char c : ns) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) return "namespace may only contain letters, digits, '_' and '-'";
  }
  return {};
}

std::string ValidateBucketName(std::string_view name) {
  if (name.empty()) return "bucket name is empty";
  if (name.size() > kMaxBucketNameSize) {
    return "bucket name is " + std::to_string(name.size()) + " bytes, the limit is " +
           std::to_string(kMaxBucketNameSize);
  }
  for (unsigned char c : name) {
    if (c < 0x21 || c > 0x7e) return "bucket name may only contain printable ASCII without spaces";
  }
  return {};
}

std::string DefaultNamespace() {
  const char* env = std::getenv("KV_NAMESPACE");
  return (env != nullptr && *env != '\0') ? std::string(env) : std::string("kv");
}

std::string RegistryObjectName(std::string_view ns) { return std::string(ns) + ".registry"; }

std::string AnchorObjectName(std::string_view ns, std::uint64_t bucket_id) {
  return std::string(ns) + ".b" + std::to_string(bucket_id);
}

std::string GenerationObjectName(std::string_view ns, std::uint64_t bucket_id,
                                 std::uint64_t generation) {
  return AnchorObjectName(ns, bucket_id) + ".g" + std::to_string(generation);
}

std::string FeedObjectName(std::string_view ns, std::uint64_t bucket_id) {
  return AnchorObjectName(ns, bucket_id) + ".feed";
}

std::string DedupObjectName(std::string_view ns, std::uint64_t bucket_id) {
  return AnchorObjectName(ns, bucket_id) + ".dedup";
}

std::string HistoryObjectName(std::string_view ns, std::uint64_t bucket_id) {
  return AnchorObjectName(ns, bucket_id) + ".hist";
}

std::string ControlSocketAddress(std::string_view ns) {
  return std::string(1, '\0') + "kv/" + std::string(ns) + "/ctl";
}

std::string BucketSocketAddress(std::string_view ns, std::uint64_t bucket_id) {
  return std::string(1, '\0') + "kv/" + std::string(ns) + "/b" + std::to_string(bucket_id);
}

}  // namespace kv::shm
