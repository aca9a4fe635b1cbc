// Names of a kv instance's shared objects, and validation of the user-chosen names they derive
// from.
//
// Contract: every shared object of namespace NS is named "NS." + something, and NS cannot contain
// '.', so removing "NS.*" from /dev/shm never touches another instance. Bucket names are user
// strings; no object name is ever derived from one (objects use the numeric bucket id).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kv::shm {

// Namespace: 1..32 characters of [A-Za-z0-9_-]. Returns an empty string when valid, otherwise a
// sentence saying what is wrong.
std::string ValidateNamespace(std::string_view ns);

// Bucket name: 1..64 bytes, printable ASCII without spaces (0x21..0x7e). The text protocol splits
// on whitespace, so a name with spaces could never be addressed there.
std::string ValidateBucketName(std::string_view name);

// The namespace a process uses when none is given: $KV_NAMESPACE, else "kv".
std::string DefaultNamespace();

std::string RegistryObjectName(std::string_view ns);                         // NS.registry
std::string AnchorObjectName(std::string_view ns, std::uint64_t bucket_id);  // NS.b<id>
std::string GenerationObjectName(std::string_view ns, std::uint64_t bucket_id,
                                 std::uint64_t generation);                   // NS.b<id>.g<gen>
std::string FeedObjectName(std::string_view ns, std::uint64_t bucket_id);     // NS.b<id>.feed
std::string DedupObjectName(std::string_view ns, std::uint64_t bucket_id);    // NS.b<id>.dedup
std::string HistoryObjectName(std::string_view ns, std::uint64_t bucket_id);  // NS.b<id>.hist

// Abstract unix socket addresses (no filesystem entry, released by the kernel when the owner dies).
// The leading NUL is part of the returned string.
std::string ControlSocketAddress(std::string_view ns);                          // \0kv/NS/ctl
std::string BucketSocketAddress(std::string_view ns, std::uint64_t bucket_id);  // \0kv/NS/b<id>

}  // namespace kv::shm
