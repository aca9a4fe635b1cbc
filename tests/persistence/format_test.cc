// The data directory's file formats on their own (daemon/persistence/*_format.h): what a reader
// accepts, cuts (a torn log tail) and refuses (everything else), byte by byte.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "daemon/persistence/byte_codec.h"
#include "daemon/persistence/log_format.h"
#include "daemon/persistence/options.h"
#include "daemon/persistence/snapshot_format.h"
#include "shm/crc32c.h"

namespace kv::daemon::persistence {
namespace {

struct Rec {
  std::string key, value;
  std::uint64_t version;
  std::uint64_t expiry = 0;
};

std::string Snapshot(const std::vector<Rec>& recs) {
  SnapshotHeader h;
  h.bucket_id = 7;
  h.created_unix_ms = 1234;
  h.last_version = 99;
  h.next_log_seq = 3;
  h.key_count = recs.size();
  h.name = "shopping";
  std::string out = EncodeSnapshotHeader(h);
  std::string body;
  for (const Rec& r : recs) AppendSnapshotRecord(&body, r.key, r.value, r.version, r.expiry);
  std::uint32_t crc = shm::Crc32cExtend(shm::kCrc32cInit, body.data(), body.size());
  return out + body + EncodeSnapshotEnd(recs.size(), crc);
}

std::string Read(const std::string& file, SnapshotHeader* h, std::vector<Rec>* got) {
  return ReadSnapshot(
      "snap", file.data(), file.size(), h,
      [&](std::string_view k, std::string_view v, std::uint64_t version, std::uint64_t expiry) {
        got->push_back({std::string(k), std::string(v), version, expiry});
        return true;
      });
}

TEST(SnapshotFormatTest, RoundTripKeepsNameIdVersionsAndValues) {
  std::vector<Rec> recs = {{"milk", "1", 5}, {"eggs", "", 7}, {std::string(1024, 'k'), "v", 9}};
  std::string file = Snapshot(recs);
  SnapshotHeader h;
  std::vector<Rec> got;
  ASSERT_EQ(Read(file, &h, &got), "");
  EXPECT_EQ(h.bucket_id, 7u);
  EXPECT_EQ(h.name, "shopping");
  EXPECT_EQ(h.last_version, 99u);
  EXPECT_EQ(h.next_log_seq, 3u);
  ASSERT_EQ(got.size(), 3u);
  for (std::size_t i = 0; i < recs.size(); ++i) {
    EXPECT_EQ(got[i].key, recs[i].key);
    EXPECT_EQ(got[i].value, recs[i].value);
    EXPECT_EQ(got[i].version, recs[i].version);
  }
}

TEST(SnapshotFormatTest, EveryFlippedByteIsRefusedBeforeAnyRecordIsHandedOut) {
  std::string file = Snapshot({{"milk", "1", 5}, {"eggs", "12", 7}});
  for (std::size_t i = 0; i < file.size(); ++i) {
    std::string bad = file;
    bad[i] ^= 0x10;
    SnapshotHeader h;
    std::vector<Rec> got;
    EXPECT_NE(Read(bad, &h, &got), "") << "byte " << i;
    EXPECT_TRUE(got.empty()) << "byte " << i;
  }
}

TEST(SnapshotFormatTest, EveryTruncationIsRefused) {
  std::string file = Snapshot({{"milk", "1", 5}});
  for (std::size_t n = 0; n < file.size(); ++n) {
    SnapshotHeader h;
    std::vector<Rec> got;
    EXPECT_NE(Read(file.substr(0, n), &h, &got), "") << n;
  }
}

TEST(SnapshotFormatTest, AnotherFormatVersionIsRefusedByName) {
  std::string file = Snapshot({{"milk", "1", 5}});
  file[8] = 3;  // version word
  SnapshotHeader h;
  std::vector<Rec> got;
  std::string e = Read(file, &h, &got);
  EXPECT_NE(e.find("format version 3"), std::string::npos) << e;
  EXPECT_NE(e.find("snap"), std::string::npos) << e;
}

TEST(SnapshotFormatTest, ExpiryTimesRoundTrip) {
  std::vector<Rec> recs = {{"milk", "1", 5, 1'900'000'000'000}, {"eggs", "", 7, 0}};
  std::string file = Snapshot(recs);
  SnapshotHeader h;
  std::vector<Rec> got;
  ASSERT_EQ(Read(file, &h, &got), "");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].expiry, 1'900'000'000'000u);
  EXPECT_EQ(got[0].value, "1");
  EXPECT_EQ(got[1].expiry, 0u);
}

// A version 1 file (written before expiry times existed) is still read; in it the expiry flag
// bit is an impossible length, refused as corruption.
TEST(SnapshotFormatTest, VersionOneFilesAreStillRead) {
  std::string v1 = Snapshot({{"milk", "1", 5}});
  v1[8] = 1;
  // The header checksum covers the version word: recompute it (it ends the header).
  std::size_t header_end = 8 + 4 + 4 + 8 * 5 + 2 + 8 + 4;  // name "shopping"
  std::uint32_t crc =
      shm::Crc32cFinish(shm::Crc32cExtend(shm::kCrc32cInit, v1.data(), header_end - 4));
  std::memcpy(&v1[header_end - 4], &crc, 4);
  SnapshotHeader h;
  std::vector<Rec> got;
  ASSERT_EQ(Read(v1, &h, &got), "");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].expiry, 0u);
}

TEST(LogFormatTest, PutExpiryRoundTripsAndVersionOneIsRead) {
  for (std::uint32_t version : {1u, 2u}) {
    std::string out = EncodeLogHeader(7, 3);
    out[8] = static_cast<char>(version);
    std::uint32_t crc = shm::Crc32cFinish(shm::Crc32cExtend(shm::kCrc32cInit, out.data(), 36));
    std::memcpy(&out[36], &crc, 4);
    AppendLogRecord(&out, LogOp::kPut, "milk", "1", 5, version == 2 ? 1'900'000'000'000 : 0);
    LogReader r;
    ASSERT_EQ(r.Open("log", out.data(), out.size(), 7, 3), "") << version;
    LogRecord rec;
    ASSERT_EQ(r.Next(&rec), LogReader::kRecord) << r.error();
    EXPECT_EQ(rec.value, "1");
    EXPECT_EQ(rec.expiry, version == 2 ? 1'900'000'000'000u : 0u);
  }
}

std::string Log(int records) {
  std::string out = EncodeLogHeader(7, 3);
  for (int i = 0; i < records; ++i) {
    AppendLogRecord(&out, LogOp::kPut, "key" + std::to_string(i), "value" + std::to_string(i),
                    static_cast<std::uint64_t>(i + 1));
  }
  return out;
}

struct Scan {
  std::string open_error;
  int records = 0;
  LogReader::Result end = LogReader::kEnd;
  std::uint64_t torn = 0;
  std::string error;
};

Scan ScanLog(const std::string& file) {
  Scan s;
  LogReader r;
  s.open_error = r.Open("log", file.data(), file.size(), 7, 3);
  if (!s.open_error.empty()) return s;
  LogRecord rec;
  while ((s.end = r.Next(&rec)) == LogReader::kRecord) {
    EXPECT_EQ(rec.key, "key" + std::to_string(s.records));
    ++s.records;
  }
  s.torn = r.torn_bytes();
  s.error = r.error();
  return s;
}

TEST(LogFormatTest, EveryCutInsideTheLastRecordIsATornTailWithTheBytesCounted) {
  std::string whole = Log(3);
  std::string two = Log(2);
  for (std::size_t n = two.size(); n < whole.size(); ++n) {
    Scan s = ScanLog(whole.substr(0, n));
    ASSERT_EQ(s.open_error, "");
    EXPECT_EQ(s.end, LogReader::kEnd) << n;
    EXPECT_EQ(s.records, 2) << n;
    EXPECT_EQ(s.torn, n - two.size()) << n;
  }
  Scan s = ScanLog(whole);
  EXPECT_EQ(s.records, 3);
  EXPECT_EQ(s.torn, 0u);
}

TEST(LogFormatTest, ZerosAfterTheLastRecordArePreallocatedSpaceNotATornTail) {
  std::string file = Log(2) + std::string(4096, '\0');
  Scan s = ScanLog(file);
  EXPECT_EQ(s.end, LogReader::kEnd);
  EXPECT_EQ(s.records, 2);
  EXPECT_EQ(s.torn, 0u);
}

// A power cut during an append into preallocated zeros (appendfsync always): any prefix of the
// last record reached the disk, the rest of it and everything after it read as zeros.
TEST(LogFormatTest, ATornRecordInsidePreallocatedZerosIsATornTailOfItsOwnBytes) {
  std::string whole = Log(3);
  std::string two = Log(2);
  const std::string zeros(4096, '\0');
  for (std::size_t n = two.size() + 1; n < whole.size(); ++n) {
    std::string file = whole.substr(0, n) + std::string(whole.size() - n, '\0') + zeros;
    Scan s = ScanLog(file);
    EXPECT_EQ(s.end, LogReader::kEnd) << n << " " << s.error;
    EXPECT_EQ(s.records, 2) << n;
    EXPECT_GT(s.torn, 0u) << n;
    EXPECT_LE(s.torn, whole.size() - two.size()) << n << ": the zeros after it are not counted";
  }
}

TEST(LogFormatTest, AFlippedByteInAnyRecordButTheLastIsCorruption) {
  std::string file = Log(3);
  std::size_t last = Log(2).size();
  for (std::size_t i = kLogHeaderSize; i < last; ++i) {
    std::string bad = file;
    bad[i] ^= 0x01;
    Scan s = ScanLog(bad);
    EXPECT_EQ(s.end, LogReader::kCorrupt) << "byte " << i;
    EXPECT_NE(s.error.find("log log is corrupt at byte"), std::string::npos) << s.error;
  }
}

TEST(LogFormatTest, ABadFileHeaderOrAnotherVersionIsRefused) {
  for (std::size_t i = 0; i < kLogHeaderSize; ++i) {
    std::string bad = Log(1);
    bad[i] ^= 0x04;
    EXPECT_NE(ScanLog(bad).open_error, "") << "byte " << i;
  }
  std::string other = EncodeLogHeader(8, 3);  // another bucket's log
  EXPECT_NE(ScanLog(other).open_error.find("belongs to bucket 8"), std::string::npos);
}

// Two plain records, then a batch of `batch` records key2..: keys key0, key1, key2, ...
std::string LogWithBatch(int batch) {
  std::string out = Log(2);
  std::string inner;
  for (int i = 0; i < batch; ++i) {
    AppendLogRecord(&inner, i % 2 == 0 ? LogOp::kPut : LogOp::kDelete,
                    "key" + std::to_string(2 + i), i % 2 == 0 ? "v" : "",
                    static_cast<std::uint64_t>(3 + i));
  }
  AppendLogBatch(&out, inner, static_cast<std::uint64_t>(2 + batch));
  return out;
}

TEST(LogFormatTest, ABatchIsReadAsItsRecordsAndATornBatchDropsAllOfThem) {
  std::string whole = LogWithBatch(5);
  Scan s = ScanLog(whole);
  EXPECT_EQ(s.end, LogReader::kEnd);
  EXPECT_EQ(s.records, 7);
  EXPECT_EQ(s.torn, 0u);
  std::string two = Log(2);
  for (std::size_t n = two.size(); n < whole.size(); ++n) {  // every cut inside the batch
    Scan cut = ScanLog(whole.substr(0, n));
    EXPECT_EQ(cut.end, LogReader::kEnd) << n;
    EXPECT_EQ(cut.records, 2) << "a part of the batch survived a cut at byte " << n;
    EXPECT_EQ(cut.torn, n - two.size()) << n;
  }
  // A flipped byte inside a batch followed by more records is corruption, not a partial batch.
  std::string more = whole;
  AppendLogRecord(&more, LogOp::kPut, "key7", "v", 8);
  for (std::size_t i = two.size(); i < whole.size(); ++i) {
    std::string bad = more;
    bad[i] ^= 0x10;
    Scan b = ScanLog(bad);
    EXPECT_EQ(b.end, LogReader::kCorrupt) << "byte " << i;
    EXPECT_EQ(b.records, 2) << "byte " << i;
  }
}

// A cas in a batch keeps the key's expiry: its put inside the batch record carries it.
TEST(LogFormatTest, APutInsideABatchCarriesItsExpiry) {
  std::string out = EncodeLogHeader(7, 3);
  std::string inner;
  AppendLogRecord(&inner, LogOp::kPut, "kept", "2", 4, 1'900'000'000'000);
  AppendLogRecord(&inner, LogOp::kPut, "plain", "3", 5);
  AppendLogBatch(&out, inner, 5);
  LogReader r;
  ASSERT_EQ(r.Open("log", out.data(), out.size(), 7, 3), "");
  LogRecord rec;
  ASSERT_EQ(r.Next(&rec), LogReader::kRecord) << r.error();
  EXPECT_EQ(rec.key, "kept");
  EXPECT_EQ(rec.value, "2");
  EXPECT_EQ(rec.expiry, 1'900'000'000'000u);
  ASSERT_EQ(r.Next(&rec), LogReader::kRecord) << r.error();
  EXPECT_EQ(rec.key, "plain");
  EXPECT_EQ(rec.expiry, 0u);
  EXPECT_EQ(r.Next(&rec), LogReader::kEnd);
  EXPECT_EQ(r.valid_end(), out.size());
}

TEST(LogFormatTest, AVersion1LogIsStillRead) {
  std::string v1 = Log(2);
  v1[8] = 1;  // version field, then the header checksum again
  std::uint32_t crc = Crc(v1.data(), 36);
  std::memcpy(&v1[36], &crc, 4);
  EXPECT_EQ(ScanLog(v1).open_error, "");
  EXPECT_EQ(ScanLog(v1).records, 2);
}

TEST(PersistenceOptionsTest, SaveRulesParseAndFormatLikeRedis) {
  std::vector<SaveRule> rules;
  EXPECT_EQ(ParseSaveRules("3600 1 300 100 60 10000", &rules), "");
  ASSERT_EQ(rules.size(), 3u);
  EXPECT_EQ(rules[1].seconds, 300u);
  EXPECT_EQ(rules[1].changes, 100u);
  EXPECT_EQ(FormatSaveRules(rules), "3600 1 300 100 60 10000");
  EXPECT_EQ(ParseSaveRules("", &rules), "");
  EXPECT_TRUE(rules.empty());
  EXPECT_NE(ParseSaveRules("3600", &rules), "");
  EXPECT_NE(ParseSaveRules("0 1", &rules), "");
  EXPECT_NE(ParseSaveRules("10 x", &rules), "");
}

}  // namespace
}  // namespace kv::daemon::persistence
