// The dump format (kvctl/dump_format.h) and `kvctl dump` / `load`: a bucket survives
// dump -> drop -> load byte for byte, binary keys and values included.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "kvctl/dump_format.h"
#include "tests/testing/kvd_harness.h"

namespace kv {
namespace {

using kv::testing::KvctlPath;
using kv::testing::KvdInstance;
using kv::testing::RunCommand;

std::string RandomBytes(std::mt19937& rng, std::size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

TEST(DumpFormatTest, ChecksumIsZlibsCrc32) {
  ctl::DumpCrc crc;
  crc.process_bytes("1234", 4);
  crc.process_bytes("56789", 5);
  EXPECT_EQ(crc.checksum(), 0xCBF43926u);
}

// tests/kvctl/data/legacy_v1.kvdump was written by `kvctl dump` when the checksum was kvctl's own
// CRC-32 table (before Boost.CRC): it still verifies, loads, and is what the writer produces today
// for the same bucket, byte for byte.
TEST(DumpFormatTest, DumpsWrittenBeforeBoostCrcStillLoadAndAreRewrittenIdentically) {
  const std::string path = std::string(KV_SOURCE_DIR) + "/tests/kvctl/data/legacy_v1.kvdump";
  std::ifstream file(path, std::ios::binary);
  ASSERT_TRUE(file) << path;
  std::string image((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  std::istringstream in(image);
  ctl::DumpReader r(in);
  ctl::DumpHeader h;
  ASSERT_TRUE(r.ReadHeader(&h).ok());
  EXPECT_EQ(h.bucket, "legacy");
  std::vector<std::pair<std::string, std::string>> records;
  std::string k, v;
  for (bool end = false; !end;) {
    Status s = r.Next(&k, &v, &end);
    ASSERT_TRUE(s.ok()) << s.ToString();
    if (!end) records.emplace_back(k, v);
  }
  const std::vector<std::pair<std::string, std::string>> want = {
      {"binary", std::string("bin\0ary\xff", 8)}, {"empty", ""}, {"eggs", "12"}, {"milk", "1"}};
  EXPECT_EQ(records, want);

  std::ostringstream out;
  ctl::DumpWriter w(out);
  ASSERT_TRUE(w.Begin(h).ok());
  for (const auto& [key, value] : records) ASSERT_TRUE(w.Add(key, value).ok());
  ASSERT_TRUE(w.Finish().ok());
  EXPECT_EQ(out.str(), image);

  // And `kvctl load` restores it into a live bucket.
  KvdInstance kvd;
  auto load = RunCommand({KvctlPath(), "-n", kvd.ns(), "load", "restored", path});
  ASSERT_EQ(load.exit_code, 0) << load.err;
  auto get = RunCommand({KvctlPath(), "-n", kvd.ns(), "get", "restored", "binary"});
  EXPECT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(get.out, std::string("bin\0ary\xff", 8));
}

TEST(DumpFormatTest, RoundTripsAndRejectsEveryDamagedByte) {
  std::ostringstream out;
  ctl::DumpWriter w(out);
  ASSERT_TRUE(w.Begin({"b", 1234}).ok());
  ASSERT_TRUE(w.Add(std::string("\0k", 2), std::string("\xff\0v", 3)).ok());
  ASSERT_TRUE(w.Add("empty", "").ok());
  ASSERT_TRUE(w.Finish().ok());
  std::string image = out.str();
  EXPECT_EQ(image.substr(0, 8), std::string("\x89KVDUMP\n"));
  EXPECT_EQ(w.bytes(), image.size());

  std::istringstream in(image);
  ctl::DumpReader r(in);
  ctl::DumpHeader h;
  ASSERT_TRUE(r.ReadHeader(&h).ok());
  EXPECT_EQ(h.bucket, "b");
  EXPECT_EQ(h.created_unix_ms, 1234u);
  std::string k, v;
  bool end = false;
  ASSERT_TRUE(r.Next(&k, &v, &end).ok());
  EXPECT_EQ(k, std::string("\0k", 2));
  EXPECT_EQ(v, std::string("\xff\0v", 3));
  ASSERT_TRUE(r.Next(&k, &v, &end).ok());
  EXPECT_EQ(k, "empty");
  EXPECT_EQ(v, "");
  ASSERT_TRUE(r.Next(&k, &v, &end).ok());
  EXPECT_TRUE(end);

  for (std::size_t i = 0; i < image.size(); ++i) {
    std::string bad = image;
    bad[i] = static_cast<char>(bad[i] ^ 0x20);
    std::istringstream bin(bad);
    std::uint64_t count = 0;
    Status s = ctl::VerifyDump(bin, &h, &count);
    EXPECT_EQ(s.code(), Code::kCorrupt) << "flipped byte " << i;
  }
  for (std::size_t len = 0; len < image.size(); ++len) {
    std::istringstream cut(image.substr(0, len));
    std::uint64_t count = 0;
    EXPECT_EQ(ctl::VerifyDump(cut, &h, &count).code(), Code::kCorrupt) << "truncated at " << len;
  }
  std::istringstream trailing(image + "x");
  std::uint64_t count = 0;
  EXPECT_EQ(ctl::VerifyDump(trailing, &h, &count).code(), Code::kCorrupt);
}

class DumpLoadTest : public ::testing::Test {
 protected:
  DumpLoadTest() {
    char tmpl[] = "/tmp/kvctl_dump_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  ~DumpLoadTest() override {
    for (const char* f : {"/b.dump", "/b.dump.tmp", "/bad.dump"}) ::unlink((dir_ + f).c_str());
    ::rmdir(dir_.c_str());
  }
  testing::CommandResult Kvctl(std::vector<std::string> args, const std::string& input = {}) {
    args.insert(args.begin(), {KvctlPath(), "--namespace", kvd_.ns()});
    return RunCommand(args, input);
  }
  std::map<std::string, std::string> Contents(const std::string& bucket) {
    std::map<std::string, std::string> out;
    Result<Bucket> b = client_->OpenBucket(bucket);
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    if (!b.ok()) return out;
    Status s = b->Scan("", [&](std::string_view k, std::string_view v) {
      out.emplace(std::string(k), std::string(v));
      return true;
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }
  KvdInstance kvd_;
  std::shared_ptr<Client> client_ = kvd_.NewClient();
  std::string dir_;
};

TEST_F(DumpLoadTest, DumpDropLoadRestoresEveryByte) {
  ASSERT_TRUE(client_->CreateBucket("b").ok());
  Result<Bucket> b = client_->OpenBucket("b");
  ASSERT_TRUE(b.ok());
  std::mt19937 rng(7);
  std::map<std::string, std::string> expected;
  expected[std::string("\0", 1)] = std::string("\xff", 1);
  expected[std::string("k\0\xff", 3)] = std::string("\0\0\xff\xfe v\n", 7);
  expected["empty"] = "";
  expected["big"] = RandomBytes(rng, 60000);
  for (int i = 0; i < 300; ++i) {
    expected["key" + std::to_string(i) + RandomBytes(rng, rng() % 16)] =
        RandomBytes(rng, rng() % 300);
  }
  for (const auto& [k, v] : expected) ASSERT_TRUE(b->Put(k, v).ok());
  ASSERT_EQ(Contents("b"), expected);

  std::string file = dir_ + "/b.dump";
  auto dump = Kvctl({"dump", "b", file, "--json"});
  ASSERT_EQ(dump.exit_code, 0) << dump.err;
  auto dj = nlohmann::json::parse(dump.out);
  EXPECT_EQ(dj["keys"], expected.size());
  EXPECT_EQ(::access((file + ".tmp").c_str(), F_OK), -1);
  ASSERT_EQ(Kvctl({"drop", "b"}).exit_code, 0);
  EXPECT_EQ(Kvctl({"get", "b", "empty"}).exit_code, 1);

  auto load = Kvctl({"load", "b", file});
  ASSERT_EQ(load.exit_code, 0) << load.err;
  EXPECT_NE(load.out.find("loaded " + std::to_string(expected.size()) + " keys"), std::string::npos)
      << load.out;
  EXPECT_EQ(Contents("b"), expected);
}

TEST_F(DumpLoadTest, StdoutAndStdinCarryTheDump) {
  ASSERT_TRUE(client_->CreateBucket("src").ok());
  Result<Bucket> b = client_->OpenBucket("src");
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(b->Put(std::string("a\0", 2), std::string("\xff\0", 2)).ok());
  ASSERT_TRUE(b->Put("x", "y").ok());
  auto dump = Kvctl({"dump", "src"});
  ASSERT_EQ(dump.exit_code, 0) << dump.err;
  ASSERT_TRUE(client_->CreateBucket("dst").ok());
  Result<Bucket> dst = client_->OpenBucket("dst");
  ASSERT_TRUE(dst->Put("stale", "1").ok());
  auto load = Kvctl({"load", "dst", "-", "--clear", "--json"}, dump.out);
  ASSERT_EQ(load.exit_code, 0) << load.err;
  auto j = nlohmann::json::parse(load.out);
  EXPECT_EQ(j["keys"], 2);
  EXPECT_EQ(j["source_bucket"], "src");
  EXPECT_EQ(Contents("dst"), Contents("src"));
}

TEST_F(DumpLoadTest, CorruptDumpIsRejectedBeforeAnyWrite) {
  ASSERT_TRUE(client_->CreateBucket("b").ok());
  Result<Bucket> b = client_->OpenBucket("b");
  ASSERT_TRUE(b->Put("k", "v").ok());
  std::string file = dir_ + "/b.dump";
  ASSERT_EQ(Kvctl({"dump", "b", file}).exit_code, 0);
  std::ifstream in(file, std::ios::binary);
  std::string image((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  image[image.size() - 6] ^= 1;  // inside the record count
  auto r = Kvctl({"load", "fresh", "-"}, image);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("CORRUPT"), std::string::npos) << r.err;
  EXPECT_EQ(Kvctl({"buckets"}).out, "b\n");  // nothing was created
  auto garbage = Kvctl({"load", "fresh", "-"}, "not a dump");
  EXPECT_EQ(garbage.exit_code, 1);
  EXPECT_EQ(Kvctl({"load", "fresh", dir_ + "/missing.dump"}).exit_code, 1);
}

}  // namespace
}  // namespace kv
