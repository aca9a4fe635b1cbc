// The dump format (kvctl/dump_format.h) and `kvctl dump` / `load`: a bucket survives
// dump -> drop -> load byte for byte, binary keys and values included.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
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
  EXPECT_EQ(h.version, 1u);  // before expiry times: still read
  std::vector<std::pair<std::string, std::string>> records;
  ctl::DumpRecord rec;
  for (bool end = false; !end;) {
    Status s = r.Next(&rec, &end);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(rec.expires_unix_ms, 0u);
    if (!end) records.emplace_back(rec.key, rec.value);
  }
  const std::vector<std::pair<std::string, std::string>> want = {
      {"binary", std::string("bin\0ary\xff", 8)}, {"empty", ""}, {"eggs", "12"}, {"milk", "1"}};
  EXPECT_EQ(records, want);

  std::ostringstream out;
  ctl::DumpWriter w(out);
  ASSERT_TRUE(w.Begin(h).ok());  // version 1, as read
  for (const auto& [key, value] : records) ASSERT_TRUE(w.Add(key, value).ok());
  EXPECT_EQ(w.Add("k", "v", 1).code(), Code::kInvalidArgument);  // no expiry in version 1
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
  ASSERT_TRUE(w.Add("empty", "", 1'900'000'000'123).ok());
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
  EXPECT_EQ(h.version, 2u);
  ctl::DumpRecord rec;
  bool end = false;
  ASSERT_TRUE(r.Next(&rec, &end).ok());
  EXPECT_EQ(rec.key, std::string("\0k", 2));
  EXPECT_EQ(rec.value, std::string("\xff\0v", 3));
  EXPECT_EQ(rec.expires_unix_ms, 0u);
  ASSERT_TRUE(r.Next(&rec, &end).ok());
  EXPECT_EQ(rec.key, "empty");
  EXPECT_EQ(rec.value, "");
  EXPECT_EQ(rec.expires_unix_ms, 1'900'000'000'123u);
  ASSERT_TRUE(r.Next(&rec, &end).ok());
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

// Every record of a dump file, key -> (value, expiry time).
std::map<std::string, std::pair<std::string, std::uint64_t>> DumpRecords(const std::string& file) {
  std::map<std::string, std::pair<std::string, std::uint64_t>> out;
  std::ifstream in(file, std::ios::binary);
  ctl::DumpReader r(in);
  ctl::DumpHeader h;
  EXPECT_TRUE(r.ReadHeader(&h).ok()) << file;
  ctl::DumpRecord rec;
  for (bool end = false;;) {
    Status s = r.Next(&rec, &end);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok() || end) break;
    out[rec.key] = {rec.value, rec.expires_unix_ms};
  }
  return out;
}

// Keys with an expiry are dumped with their absolute expiry time and loaded back with exactly
// that time: a dump of the loaded bucket is the same, expiry times included.
TEST_F(DumpLoadTest, ExpiryTimesSurviveDumpDropLoad) {
  using namespace std::chrono_literals;
  ASSERT_TRUE(client_->CreateBucket("b").ok());
  Result<Bucket> b = client_->OpenBucket("b");
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(b->Put("session", "alice", 1h).ok());
  ASSERT_TRUE(b->Put(std::string("bin\0", 4), std::string("\xff", 1), 2h).ok());
  ASSERT_TRUE(b->Put("plain", "forever").ok());
  std::string file = dir_ + "/b.dump";
  ASSERT_EQ(Kvctl({"dump", "b", file}).exit_code, 0);
  auto dumped = DumpRecords(file);
  ASSERT_EQ(dumped.size(), 3u);
  EXPECT_EQ(dumped["plain"].second, 0u);
  std::uint64_t now =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  EXPECT_GT(dumped["session"].second, now + 50 * 60 * 1000);
  EXPECT_LE(dumped["session"].second, now + 60 * 60 * 1000);

  ASSERT_EQ(Kvctl({"drop", "b"}).exit_code, 0);
  auto load = Kvctl({"load", "b", file});
  ASSERT_EQ(load.exit_code, 0) << load.err;
  EXPECT_EQ(load.out, "loaded 3 keys into bucket b (dump of bucket b)\n");
  b = client_->OpenBucket("b");
  ASSERT_TRUE(b.ok());
  auto ttl = b->Ttl("session");
  ASSERT_TRUE(ttl.ok() && ttl->has_value()) << ttl.status().ToString();
  EXPECT_GT(**ttl, 50min);
  EXPECT_FALSE(b->Ttl("plain")->has_value());
  // The same expiry times, to the millisecond.
  ASSERT_EQ(Kvctl({"dump", "b", file}).exit_code, 0);
  EXPECT_EQ(DumpRecords(file), dumped);
}

// A key whose expiry time passed before the load is not stored, and the load says how many.
TEST_F(DumpLoadTest, KeysExpiredAtLoadTimeAreSkippedAndCounted) {
  std::ostringstream out;
  ctl::DumpWriter w(out);
  ASSERT_TRUE(w.Begin({"src", 1}).ok());
  ASSERT_TRUE(w.Add("gone", "old", 1'000).ok());  // expired in 1970
  ASSERT_TRUE(w.Add("kept", "new", 40'000'000'000'000).ok());
  ASSERT_TRUE(w.Add("plain", "p").ok());
  ASSERT_TRUE(w.Finish().ok());
  auto load = Kvctl({"load", "b", "-"}, out.str());
  ASSERT_EQ(load.exit_code, 0) << load.err;
  EXPECT_EQ(load.out,
            "loaded 2 keys into bucket b (dump of bucket src); skipped 1 keys already expired\n");
  auto json = Kvctl({"load", "b", "-", "--clear", "--json"}, out.str());
  ASSERT_EQ(json.exit_code, 0) << json.err;
  auto j = nlohmann::json::parse(json.out);
  EXPECT_EQ(j["keys"], 2);
  EXPECT_EQ(j["expired"], 1);
  EXPECT_EQ(Contents("b"), (std::map<std::string, std::string>{{"kept", "new"}, {"plain", "p"}}));
  Result<Bucket> b = client_->OpenBucket("b");
  ASSERT_TRUE(b.ok());
  // Year 3237: past what a nanosecond system_clock::time_point holds, kept to the millisecond.
  auto kept = b->Ttl("kept");
  ASSERT_TRUE(kept.ok() && kept->has_value());
  EXPECT_GT(**kept, std::chrono::hours(24 * 365 * 1000));
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
