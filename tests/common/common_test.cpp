// The shared helpers of common/: real files in a temp folder, known CRC-32 check values.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <sys/stat.h>

#include "faceadapt/common/crc32.hpp"
#include "faceadapt/common/durable_file.hpp"
#include "faceadapt/common/log_format.hpp"
#include "faceadapt/common/site_files.hpp"
#include "faceadapt/common/text.hpp"
#include "faceadapt/common/time.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace faceadapt;

TEST(AtomicWrite, ReplacesWholeFiles) {
    test::TempDir dir;
    common::write_file_atomic(dir.path() / "f", "one");
    common::write_file_atomic(dir.path() / "f", "two");
    EXPECT_EQ(common::read_file(dir.path() / "f"), "two");
    EXPECT_FALSE(fs::exists(dir.path() / "f.tmp"));
    EXPECT_THROW(common::write_file_atomic(dir.path() / "no" / "such" / "f", "x"), std::runtime_error);
}

TEST(ReadFile, ReadsBinaryBytesAndNamesAMissingFile) {
    test::TempDir dir;
    const std::string bytes("a\0b\r\n\xff", 6);
    std::ofstream(dir.path() / "bin", std::ios::binary) << bytes;
    EXPECT_EQ(common::read_file(dir.path() / "bin"), bytes);
    try {
        common::read_file(dir.path() / "absent");
        FAIL() << "no exception";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("absent"), std::string::npos) << e.what();
    }
}

TEST(Crc32, MatchesTheStandardCheckValueAndContinues) {
    EXPECT_EQ(common::crc32(""), 0u);
    EXPECT_EQ(common::crc32("123456789"), 0xCBF43926u);  // the CRC-32/ISO-HDLC check value
    EXPECT_EQ(common::crc32("56789", common::crc32("1234")), 0xCBF43926u);
}

TEST(UtcTimestamp, FormatsAKnownInstant) {
    const auto t = std::chrono::system_clock::time_point(std::chrono::seconds(1795741323));  // 2026-11-27T01:02:03Z
    EXPECT_EQ(common::utc_timestamp(t), "2026-11-27T01:02:03Z");
    EXPECT_EQ(common::utc_compact(t), "20261127T010203Z");
    EXPECT_EQ(common::utc_timestamp().size(), 20u);
}

TEST(UniqueFd, ClosesOnDestructionAndMoves) {
    test::TempDir dir;
    std::ofstream(dir.path() / "f") << "x";
    int raw = -1;
    {
        common::UniqueFd a(::open((dir.path() / "f").c_str(), O_RDONLY | O_CLOEXEC));
        ASSERT_TRUE(a.valid());
        raw = a.get();
        common::UniqueFd b(std::move(a));
        EXPECT_FALSE(a.valid());
        EXPECT_EQ(b.get(), raw);
    }
    EXPECT_EQ(::fcntl(raw, F_GETFD), -1);  // closed
}

// Issue 18: a relayed child line keeps its own level once; timestamps unless the journal is stderr.
TEST(LogFormat, RelayedLinesLoseTheirLevelWordAndTimestampsFollowTheJournal) {
    auto r = common::relayed_line("info train: 40 chips");
    ASSERT_TRUE(r.level);
    EXPECT_EQ(*r.level, "info");
    EXPECT_EQ(r.text, "train: 40 chips");
    r = common::relayed_line("warning evaluate: 2 crops unreadable");
    EXPECT_EQ(*r.level, "warning");
    EXPECT_EQ(r.text, "evaluate: 2 crops unreadable");
    r = common::relayed_line("cycle 1/2 iter 3/10 loss=1.2");  // a printf line: no level
    EXPECT_FALSE(r.level);
    EXPECT_EQ(r.text, "cycle 1/2 iter 3/10 loss=1.2");
    EXPECT_FALSE(common::relayed_line("informed").level);
    EXPECT_FALSE(common::relayed_line("info").level);

    ::unsetenv("FACEADAPT_LOG_FORMAT");
    ::unsetenv("JOURNAL_STREAM");
    EXPECT_FALSE(common::stderr_is_journal());
    EXPECT_EQ(std::string(common::log_pattern()).rfind("%Y-%m-%dT", 0), 0u) << "not the journal: timestamps";
    // JOURNAL_STREAM naming this very stderr (as systemd sets it) means the journal.
    struct stat st {};
    ASSERT_EQ(::fstat(2, &st), 0);
    const std::string mine = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
    ::setenv("JOURNAL_STREAM", mine.c_str(), 1);
    EXPECT_TRUE(common::stderr_is_journal());
    EXPECT_STREQ(common::log_pattern(), "%^%l%$ %v");
    ::setenv("JOURNAL_STREAM", (mine + "1").c_str(), 1);  // another file: inherited, not ours
    EXPECT_FALSE(common::stderr_is_journal());
    ::setenv("FACEADAPT_LOG_FORMAT", "plain", 1);
    EXPECT_STREQ(common::log_pattern(), "%^%l%$ %v");
    ::unsetenv("FACEADAPT_LOG_FORMAT");
    ::unsetenv("JOURNAL_STREAM");
}

TEST(Printable, KeepsUtf8EscapesControlsAndReplacesInvalidBytes) {
    EXPECT_EQ(common::printable("José Müller 李"), "José Müller 李");
    EXPECT_TRUE(common::is_printable_utf8("José Müller 李"));
    // a forged log line, an ANSI escape, DEL and a C1 control (U+009B, the 8-bit CSI)
    EXPECT_EQ(common::printable("a\nb\x1b[31mc\x7f" "d\xc2\x9b"), "a\\x0ab\\x1b[31mc\\x7fd\\x9b");
    EXPECT_FALSE(common::is_printable_utf8("a\nb"));
    EXPECT_FALSE(common::is_printable_utf8("\xc2\x9b"));
    // a lone continuation byte, an overlong '/', a UTF-16 surrogate, a truncated sequence
    EXPECT_EQ(common::printable("x\x80y"), "x\xef\xbf\xbdy");
    EXPECT_EQ(common::printable("\xc0\xaf"), "\xef\xbf\xbd\xef\xbf\xbd");
    EXPECT_EQ(common::printable("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    EXPECT_EQ(common::printable("ab\xe6\x9d"), "ab\xef\xbf\xbd\xef\xbf\xbd");
    EXPECT_FALSE(common::is_printable_utf8("\xed\xa0\x80"));
}

TEST(ParseInt, TakesWholeDecimalIntegersOnly) {
    EXPECT_EQ(common::parse_int("0"), 0);
    EXPECT_EQ(common::parse_int("42"), 42);
    EXPECT_EQ(common::parse_int("-7"), -7);
    EXPECT_EQ(common::parse_int("9223372036854775807"), INT64_MAX);
    EXPECT_EQ(common::parse_int("-9223372036854775808"), INT64_MIN);
    // what std::stoll would take or half-take
    for (const char* bad : {"", " 42", "42 ", "+42", "12abc", "0x10", "4.2", "-", "9223372036854775808", "\xef\xbc\x91"})
        EXPECT_FALSE(common::parse_int(bad).has_value()) << bad;
}

TEST(Printable, CutsAtWholeCharactersAndSaysSo) {
    const std::string long_text(1000, 'a');
    EXPECT_EQ(common::printable(long_text, 10), std::string(10, 'a') + "...");
    EXPECT_EQ(common::printable(long_text).size(), 300u + 3u) << "the default bound";
    const auto cut = common::printable("ééééé", 3);  // 2 bytes each: cut after the second
    EXPECT_EQ(cut, "éé...");
    EXPECT_TRUE(common::is_printable_utf8(cut));
    EXPECT_EQ(common::printable(""), "");
}

// The snapshot's operator constraints and a cycle's clustering (site_files.hpp): what the
// console writes, the learner reads, and the other way round.
TEST(SiteFiles, ConstraintsRoundTripWithMergesAndRefuseMalformedRows) {
    test::TempDir dir;
    const fs::path file = dir.path() / "constraints.csv";
    EXPECT_TRUE(common::read_constraints(file).empty()) << "a missing file is no constraint";
    common::OperatorConstraints c;
    c.must = {{5, "Ada Lovelace"}};
    c.cannot = {{{6, {}}, {-1, "Ada Lovelace"}}, {{7, {}}, {8, {}}}};
    c.same = {{9, 10}, {9, 11}};
    common::write_constraints(file, c);
    EXPECT_EQ(common::read_file(file),
              "kind,a,b\nmust,5,Ada Lovelace\ncannot,6,name:Ada Lovelace\ncannot,7,8\nsame,9,10\nsame,9,11\n");
    EXPECT_EQ(common::read_constraints(file), c);
    auto refused = [&](const std::string& text) {
        std::ofstream(file) << text;
        try {
            (void)common::read_constraints(file);
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    EXPECT_NE(refused("kind,a,b\nsame,9,x\n").find("line 2"), std::string::npos);
    EXPECT_NE(refused("kind,a,b\nsame,-1,4\n").find("bad crop id"), std::string::npos);
    EXPECT_NE(refused("kind,a,b\nmerge,1,2\n").find("not must, cannot or same"), std::string::npos);
    const std::string hostile = refused("kind,a,b\nmust,1,<script>\n");
    EXPECT_EQ(hostile.find("<script>"), std::string::npos) << "never echoed: " << hostile;
    common::OperatorConstraints bad;
    bad.must = {{1, "a\nb"}};
    EXPECT_THROW(common::write_constraints(file, bad), std::runtime_error);
    EXPECT_TRUE(common::valid_person_name("Ada Lovelace-2.x_y"));
    EXPECT_FALSE(common::valid_person_name(""));
    EXPECT_FALSE(common::valid_person_name(std::string(65, 'a')));
    EXPECT_FALSE(common::valid_person_name("Zoë"));
}

TEST(SiteFiles, ClusteringRoundTripsAndIsBounded) {
    test::TempDir dir;
    const fs::path file = dir.path() / "clustering.csv";
    const std::vector<common::ClusterAssignment> rows{{3, 0}, {4, 0}, {9, -1}, {12, 7}};
    common::write_clustering(file, rows);
    EXPECT_EQ(common::read_file(file), "crop,cluster\n3,0\n4,0\n9,-1\n12,7\n");
    EXPECT_EQ(common::read_clustering(file), rows);
    EXPECT_THROW(common::write_clustering(file, {{1, -2}}), std::runtime_error);
    EXPECT_EQ(common::read_clustering(file), rows) << "a refused write leaves the file as it was";
    for (const char* text : {"crop,cluster\n1,-2\n", "crop,cluster\n1\n", "crop,label\n1,2\n", "crop,cluster\n1,2,3\n",
                             "crop,cluster\nx,2\n"}) {
        std::ofstream(file) << text;
        EXPECT_THROW(common::read_clustering(file), std::invalid_argument) << text;
    }
    std::ofstream(file) << "crop,cluster\n1," << std::string(5000, '1') << "\n";
    EXPECT_THROW(common::read_clustering(file), std::invalid_argument) << "a line over 4096 bytes";
    EXPECT_THROW(common::read_clustering(dir.path() / "absent.csv"), std::invalid_argument);
}

// The test servers' ports (tests/support): a port handed out twice, or one the kernel may give to
// the next outgoing connection, made the browser test's daemon fail to bind its /metrics in CI.
TEST(TestSupport, FreeLoopbackPortsAreDistinctBindableAndBelowTheEphemeralRange) {
    int ephemeral_low = 32768;
    std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> ephemeral_low;
    std::set<int> seen;
    for (int i = 0; i < 200; ++i) {
        const int port = test::free_loopback_port();
        EXPECT_GT(port, 1024);
        EXPECT_LT(port, ephemeral_low);
        EXPECT_TRUE(seen.insert(port).second) << "port " << port << " handed out twice";
    }
    // A port handed out can be bound by the server it is meant for.
    const int port = test::free_loopback_port();
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << "port " << port;
    ::close(fd);
}
