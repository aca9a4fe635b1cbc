// kv_version() and kv::Version(): the version this library was built as (kv/version.h,
// generated from project(VERSION)), so a program can tell which libkvclient it loaded.
#include "kv/client.h"
#include "kv/kv.h"

namespace kv {

const char* Version() { return KV_VERSION_STRING; }

}  // namespace kv

extern "C" const char* kv_version(void) { return KV_VERSION_STRING; }
