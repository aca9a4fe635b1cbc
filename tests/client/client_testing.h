// Helpers shared by the client tests: a kvd with one bucket open, and reads that return the value
// or the error word, so expectations read like the spec.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>

#include "tests/testing/kvd_harness.h"

namespace kv::client_testing {

// The value of `key`, or the error's code word ("NOT_FOUND", "NO_BUCKET", ...).
inline std::string Get(Bucket& b, std::string_view key) {
  std::string value;
  Status s = b.Get(key, &value);
  return s.ok() ? value : CodeName(s.code());
}

// A real kvd, a client, and bucket "b" open as *bucket_.
class BucketFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    client_ = kvd_.NewClient();
    ASSERT_TRUE(client_);
    ASSERT_TRUE(client_->CreateBucket("b").ok());
    Result<Bucket> b = client_->OpenBucket("b");
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    bucket_.emplace(std::move(b).value());
  }

  kv::testing::KvdInstance kvd_;
  std::shared_ptr<Client> client_;
  std::optional<Bucket> bucket_;
};

}  // namespace kv::client_testing
