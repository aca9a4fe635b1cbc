// The fixture of tests that need one open bucket: a real kvd (KvdInstance, so the harness's
// sweep applies), a client of it, and one bucket created and opened.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kv/client.h"
#include "tests/testing/kvd_harness.h"

namespace kv::testing {

// After SetUp (a fatal failure if any step fails): kvd_ runs with `kvd_args`, client_ is a client
// of it, and the bucket `bucket` exists and is open as *bucket_. A fixture that extends SetUp
// calls BucketFixture::SetUp() first and returns if HasFatalFailure().
class BucketFixture : public ::testing::Test {
 protected:
  explicit BucketFixture(std::vector<std::string> kvd_args = {}, std::string bucket = "b")
      : kvd_(std::move(kvd_args)), bucket_name_(std::move(bucket)) {}

  void SetUp() override {
    client_ = kvd_.NewClient();
    ASSERT_TRUE(client_);
    ASSERT_TRUE(client_->CreateBucket(bucket_name_).ok());
    Result<Bucket> b = client_->OpenBucket(bucket_name_);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    bucket_.emplace(std::move(b).value());
  }

  KvdInstance kvd_;
  std::shared_ptr<Client> client_;
  std::optional<Bucket> bucket_;

 private:
  std::string bucket_name_;
};

// In a forked child (child_process.h): bucket `name` of namespace `ns`, opened with a client of
// the child's own (the Bucket keeps it alive).
inline Result<Bucket> OpenInChild(const std::string& ns, const std::string& name) {
  ClientOptions options;
  options.ns = ns;
  Result<std::shared_ptr<Client>> client = Client::Open(options);
  if (!client.ok()) return client.status();
  return client.value()->OpenBucket(name);
}

}  // namespace kv::testing
