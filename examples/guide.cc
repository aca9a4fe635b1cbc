// guide.cc: the Elixir guide's bucket session through kv's C++ API (kv/client.h).
//
//   CREATE shopping, PUT milk 1, GET milk, DELETE milk, GET milk
//
// Usage: kv_guide [namespace]   (default: $KV_NAMESPACE, else "kv"; kvd must be running)
// Prints one line per step; exits 1 with the error on stderr if a step fails unexpectedly.
#include <iostream>
#include <string>

#include "kv/client.h"

namespace {

bool Check(const kv::Status& s, const char* step) {
  if (!s.ok()) std::cerr << step << " failed: " << s.ToString() << "\n";
  return s.ok();
}

}  // namespace

int main(int argc, char** argv) {
  kv::ClientOptions options;
  if (argc > 1) options.ns = argv[1];
  kv::Result<std::shared_ptr<kv::Client>> client = kv::Client::Open(options);
  if (!Check(client.status(), "open")) return 1;

  if (!Check((*client)->CreateBucket("shopping"), "CREATE")) return 1;
  std::cout << "CREATE shopping -> OK\n";
  kv::Result<kv::Bucket> bucket = (*client)->OpenBucket("shopping");
  if (!Check(bucket.status(), "open bucket")) return 1;

  if (!Check(bucket->Put("milk", "1"), "PUT")) return 1;
  std::cout << "PUT shopping milk 1 -> OK\n";

  std::string value;
  if (!Check(bucket->Get("milk", &value), "GET")) return 1;
  std::cout << "GET shopping milk -> " << value << "\n";

  std::string old;
  if (!Check(bucket->Delete("milk", &old), "DELETE")) return 1;
  std::cout << "DELETE shopping milk -> OK (was " << old << ")\n";

  kv::Status s = bucket->Get("milk", &value);
  if (s.code() != kv::Code::kNotFound) {
    std::cerr << "GET after DELETE: expected NOT_FOUND, got " << s.ToString() << "\n";
    return 1;
  }
  std::cout << "GET shopping milk -> NOT_FOUND\n";
  return 0;
}
