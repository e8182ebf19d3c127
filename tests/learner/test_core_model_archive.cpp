// Model files whose torch archive is hostile (issue 13): refused with an error naming the file
// before libtorch parses them, never a huge allocation or a read past a record. Each hostile
// archive is a real OutputArchive with one field changed in place (lengths kept), wrapped in a
// model file whose CRC is right, as a buggy or hostile writer would produce.
#include <filesystem>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "faceadapt/common/crc32.hpp"
#include "faceadapt/learner/model_file.hpp"
#include "test_core_util.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace faceadapt::learner;
using faceadapt::test::error_of;
using faceadapt::test::slurp;
using faceadapt::test::spit;

namespace {

void put_le(std::string& out, std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
}

// The file's trailer made to match, as the fuzz harness does.
std::string with_right_crc(std::string bytes) {
    bytes.resize(bytes.size() - 4);
    put_le(bytes, faceadapt::common::crc32(bytes), 4);
    return bytes;
}

class ModelArchiveTest : public ::testing::Test {
protected:
    void SetUp() override {
        torch::manual_seed(3);
        torch::serialize::OutputArchive a;
        a.write("fc.weight", torch::ones({2, 3}));
        std::ostringstream out;
        a.save_to(out);
        archive = out.str();
        FaceResNet net(FaceResNetOptions{0.0, 16.0, 0});
        ModelMetadata meta;
        meta.version = 1;
        save_model(net, meta, dir.path() / "real.fam");
        const std::string real = slurp(dir.path() / "real.fam");
        const std::uint32_t m = static_cast<unsigned char>(real[12]) | static_cast<unsigned char>(real[13]) << 8 |
                                static_cast<unsigned char>(real[14]) << 16;
        head = real.substr(0, 16 + m);
    }
    // A model file around `weights` (the real file's header and metadata), CRC right.
    fs::path model_with(const std::string& weights) {
        std::string bytes = head;
        put_le(bytes, weights.size(), 8);
        bytes += weights;
        put_le(bytes, 0, 4);
        const fs::path p = dir.path() / ("hostile-" + std::to_string(++files) + ".fam");
        spit(p, with_right_crc(bytes));
        return p;
    }
    // `archive` with the first `from` (after `after`) replaced by `to` of the same length.
    std::string patched(const std::string& from, const std::string& to, const std::string& after = {}) {
        EXPECT_EQ(from.size(), to.size());
        const auto start = after.empty() ? 0 : archive.find(after);
        const auto at = archive.find(from, start);
        EXPECT_NE(start, std::string::npos) << after;
        EXPECT_NE(at, std::string::npos) << "pattern not in the archive";
        std::string out = archive;
        if (at != std::string::npos) out.replace(at, from.size(), to);
        return out;
    }
    // load_model refuses `p` with an error that names it and says `what`.
    void expect_refused(const fs::path& p, const std::string& what) {
        const std::string msg = error_of([&] { load_model(p); });
        EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
        EXPECT_NE(msg.find(what), std::string::npos) << msg;
    }
    faceadapt::test::TempDir dir;
    std::string archive, head;
    int files = 0;
};

}  // namespace

TEST_F(ModelArchiveTest, TheFuzzerFindingIsRefusedBeforeItsFourGigabyteString) {
    // fuzz_model_file's out-of-memory input: a BINUNICODE of 0xFFFFFFF8 bytes in the debug pickle,
    // which libtorch's unpickler allocated as read. The harness fixed the CRC before loading.
    const fs::path seed = faceadapt::test::source_dir() / "fuzz/corpus/fuzz_model_file/finding-oom-pickle-string-length";
    ASSERT_TRUE(fs::exists(seed)) << seed;
    const fs::path p = dir.path() / "finding.fam";
    spit(p, with_right_crc(slurp(seed)));
    expect_refused(p, "code/__torch__.py.debug_pkl' at byte 38: an argument of 4294967288 bytes runs past the record");
}

TEST_F(ModelArchiveTest, WhatOutputArchiveWritesPassesTheCheck) {
    // The one-tensor archive is sound; it fails later, on the tensors the network expects.
    const std::string msg = error_of([&] { load_model(model_with(archive)); });
    EXPECT_EQ(msg.find("torch archive:"), std::string::npos) << msg;
    EXPECT_NE(msg.find("weights do not load"), std::string::npos) << msg;
    // and the full network's archive loads (the round trip in test_core_model_file.cpp too)
    EXPECT_NO_THROW(load_model(dir.path() / "real.fam"));
}

TEST_F(ModelArchiveTest, AStorageLargerThanItsRecordIsRefused) {
    // numel 6 -> 255: libtorch would size the storage from the pickle and read past the record.
    expect_refused(model_with(patched(std::string("cpuq\x06K\x06", 7), std::string("cpuq\x06K\xff", 7))),
                   "storage '0' claims 255 elements, its record holds 24 bytes");
    // a storage naming a record that is not there
    expect_refused(model_with(patched(std::string("X\x01\x00\x00\x00" "0q", 7), std::string("X\x01\x00\x00\x00" "9q", 7),
                                      "FloatStorage")),
                   "storage '9' has no record");
}

TEST_F(ModelArchiveTest, MemoIndexesMustBeDense) {
    // libtorch reserves 1 + 2 * index memo slots for a LONG_BINPUT: an index must follow the last.
    expect_refused(model_with(patched(std::string("q\x02(", 3), std::string("q\xc8(", 3), "_rebuild_tensor_v2")),
                   "memo index 200 skips ahead of 2");
}

TEST_F(ModelArchiveTest, CompressedOrOutOfBoundsRecordsAreRefused) {
    // Central directory entry of archive/data/0: method 0 -> 8 (deflate; libtorch would allocate
    // the declared size and inflate what is not deflate data).
    const std::string cd = "PK\x01\x02";
    const auto at = archive.find(cd);
    ASSERT_NE(at, std::string::npos);
    std::string deflated = archive;
    deflated[at + 10] = 8;
    deflated[8] = 8;  // and in its local header (the first in the archive)
    expect_refused(model_with(deflated), "record 'archive/data/0': deflate data is damaged");
    std::string beyond = archive;  // its local header offset far past the end
    beyond[at + 45] = '\x7f';
    expect_refused(model_with(beyond), "record 'archive/data/0': local header outside the archive");
    // the end record's central directory offset past the end
    std::string lost = archive;
    lost.resize(lost.size() - 22);  // without the end record: no zip at all
    expect_refused(model_with(lost), "no zip end-of-central-directory record");
}

TEST_F(ModelArchiveTest, CodeOtherThanAParameterListIsRefused) {
    // The TorchScript compiler would parse (and recurse into) whatever code/__torch__.py holds.
    expect_refused(model_with(patched("= Tensor", "= ((((((")), "code 'archive/code/__torch__.py' line 5");
    expect_refused(model_with(patched("class Module(Module):", "def f(x): return ---x")),
                   "code 'archive/code/__torch__.py' line 1");
}

TEST_F(ModelArchiveTest, ATupleAttributePassesOnlyAsAFlatTupleOfNames) {
    // torch::optim::Adam writes its betas as `betas : Tuple[float, float]` (a co-training
    // checkpoint holds two such archives): that passes; anything else in the brackets does not.
    torch::serialize::OutputArchive a;
    a.write("fc.weight", torch::ones({2, 3}));
    a.write("betas", c10::IValue(c10::ivalue::Tuple::create({c10::IValue(0.9), c10::IValue(0.999)})));
    std::ostringstream out;
    a.save_to(out);
    archive = out.str();
    ASSERT_NE(archive.find("betas : Tuple[float, float]"), std::string::npos);
    const std::string msg = error_of([&] { load_model(model_with(archive)); });
    EXPECT_EQ(msg.find("torch archive:"), std::string::npos) << msg;
    EXPECT_NE(msg.find("weights do not load"), std::string::npos) << msg;
    expect_refused(model_with(patched("Tuple[float, float]", "Tuple[float, f(x)]]")), "is not what a parameter archive holds");
    expect_refused(model_with(patched("Tuple[float, float]", "Tuple[float, float,")), "is not what a parameter archive holds");
    expect_refused(model_with(patched("Tuple[float, float]", "Tuple[float,float]]")), "is not what a parameter archive holds");
}
